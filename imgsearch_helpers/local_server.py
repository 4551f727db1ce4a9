"""Servers started on this machine (Milvus, the app, JupyterLab): a free port, and waiting until one answers."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .errors import ServerError


def free_port() -> int:
    """A localhost port free right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_url(url: str, process=None, log: Path | None = None, timeout_s: float = 180) -> None:
    """Return once `url` answers; fail at once if `process` exits, naming the end of its `log`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"the server for {url} exited" + _log_tail(log))
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise ServerError(f"nothing answered at {url} within {timeout_s} s" + _log_tail(log))


def _log_tail(log: Path | None) -> str:
    return f": {log.read_text()[-2000:]}" if log else ""


@contextmanager
def serving(command: list[str], url: str, log: Path, env: dict | None = None, timeout_s: float = 180):
    """Run `command` (a server) with its output in `log`; yield once `url` answers, then stop it."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_url(url, process, log, timeout_s)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=60)
