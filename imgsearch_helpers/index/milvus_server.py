"""A real Milvus server without Docker: Milvus 2.3.5 standalone from the `milvus` PyPI package.

    python -m imgsearch_helpers.index.milvus_server [--base-dir DIR] [--port 19530]

then point the notebooks at it with `MILVUS_URI=http://127.0.0.1:19530`. The tests and
benchmarks use `MilvusServer` the same way; it runs the server in its own process group, so
`kill()` can stop it as abruptly as a crash (the fault tests do).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .._io import read_json, write_json
from ..config import get_settings
from ..errors import ServerError
from ..local_server import free_port
from .milvus_launcher import bind_as_the_server_does

PROBE = "imgsearch_start_probe"  # created, written, flushed and dropped to tell that the server is up
ETCD_PEER_PORT = 2380  # fixed in the packaged standalone: one such server per machine


def stop_with_parent() -> None:
    """In the launched child (Linux): get SIGINT when the thread that started it ends, its process
    killed included, so a test run or benchmark that dies (out of memory, SIGKILL) leaves no server
    holding the ports. The `milvus-server` launcher stops its Milvus process on SIGINT. Start the
    server from a thread that lives as long as you need it (the main thread does)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job starts with SIGINT ignored
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    """True when a server could listen on `port` now (binding as the launcher does)."""
    sock = bind_as_the_server_does(None, port)
    if sock is None:
        return False
    sock.close()
    return True


# Every port a component listens on. The launcher picks free ones at each start, but the
# components register their addresses in etcd, and after a crash a restart on other ports
# waits for the old registrations forever: so the ports are chosen once per data folder.
PORT_KEYS = ("etcd_port", "root_coord_port", "proxy_internal_port", "query_coord_port", "query_node_port",
             "index_coord_port", "index_node_port", "data_coord_port", "data_node_port")


class MilvusServer:
    """One standalone Milvus keeping its data under `base_dir` (kept across restarts)."""

    def __init__(self, base_dir, port: int | None = None):
        self.base_dir = Path(base_dir)
        self.ports = self._ports(port)
        self.port = self.ports["proxy_port"]
        self.process: subprocess.Popen | None = None

    def _ports(self, port: int | None) -> dict:
        """The data folder's ports (chosen and saved on first use); `port` sets the client port."""
        saved = self.base_dir / "ports.json"
        ports = read_json(saved, default={}) or {key: free_port() for key in PORT_KEYS}
        ports["proxy_port"] = port or ports.get("proxy_port") or free_port()
        write_json(saved, ports)
        return ports

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.base_dir / "server.log"

    def start(self, timeout_s: float = 180) -> MilvusServer:
        """Start the server and return once it answers a request."""
        if port_in_use(ETCD_PEER_PORT):
            raise ServerError(f"port {ETCD_PEER_PORT} is in use: another Milvus server runs on this machine "
                               "(its embedded etcd always takes that port); stop it first")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._wait_until_bindable(timeout_s)
        launcher = [sys.executable, "-m", "imgsearch_helpers.index.milvus_launcher"]  # `milvus-server`, see there
        with open(self.log, "a") as log:
            options = [f"--{key.replace('_', '-')}={value}" for key, value in self.ports.items()]
            self.process = subprocess.Popen([*launcher, "--data", str(self.base_dir), *options],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=stop_with_parent)
        self._wait_until_answering(timeout_s)
        return self

    def _wait_until_answering(self, timeout_s: float) -> None:
        """Wait until a write goes through: after a crash the server answers reads well before the
        old processes' registrations expire (about 30 s), and until then a flush fails."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"Milvus exited while starting; log {self.log}:\n{self.log.read_text()[-2000:]}")
            try:
                self._write_probe()
                return
            except Exception:  # noqa: BLE001 - not ready yet, whatever pymilvus raises
                time.sleep(2)
        self.kill()
        raise ServerError(f"Milvus did not answer at {self.uri} within {timeout_s} s; log {self.log}")

    def _write_probe(self) -> None:
        from .milvus import MilvusClient

        # a channel of its own: pymilvus's shared one may be left from before a restart
        client = MilvusClient(uri=self.uri, timeout=10, dedicated=True)
        try:
            if client.has_collection(PROBE):
                client.drop_collection(PROBE)
            client.create_collection(PROBE, dimension=2)
            client.insert(PROBE, [{"id": 1, "vector": [0.0, 1.0]}])
            client.flush(PROBE)
            client.drop_collection(PROBE)
        finally:
            client.close()

    def stop(self, timeout_s: float = 30) -> None:
        """Shut down cleanly (Ctrl-C to the launcher, which stops the server)."""
        if self.process is None:
            return
        self._signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._signal(signal.SIGKILL)  # leave no server behind the launcher
        self.process = None
        self._wait_until_closed()

    def kill(self) -> None:
        """Stop at once, like a crash: SIGKILL to the launcher and the server."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        self._wait_until_closed()

    def _wait_until_bindable(self, timeout_s: float) -> None:
        """Until no other process listens on the ports (one that is stopping, say): the launcher
        would refuse a taken port. (Sockets of a crashed server left in TIME_WAIT do not count:
        see `milvus_launcher`.)"""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(map(bindable, self.ports.values())):
            time.sleep(1)

    def _wait_until_closed(self, timeout_s: float = 30) -> None:
        """The server process is gone only once nothing listens on its ports any more."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (port_in_use(self.port) or port_in_use(ETCD_PEER_PORT)):
            time.sleep(0.2)

    def _signal(self, sig) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> MilvusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", type=Path, default=get_settings().cache_dir / "milvus-server",
                        help="where the server keeps its data and logs (default: <cache>/milvus-server)")
    parser.add_argument("--port", type=int, default=19530)
    args = parser.parse_args(argv)
    with MilvusServer(args.base_dir, args.port) as server:
        print(f"Milvus is serving at {server.uri} (data in {args.base_dir}); Ctrl-C stops it.", flush=True)
        try:
            while server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
