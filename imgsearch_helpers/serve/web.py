"""Serving over HTTP, one way for `imgsearch serve` and `make app`: who may be exposed, which port,
and uvicorn behind the `Guard` (the app itself is mounted by `app.mount_app`).

Exposure: a token (`--token`, or IMGSEARCH_API_TOKEN) covers the API and the app alike. Binding
an address other than loopback without one is refused unless `--allow-anyone` says so; an empty
token is refused rather than read as "no token".
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket

from ..errors import ServerError, UsageError
from .guard import Guard, Policy, hosts_for
from .uploads import MAX_FILES_PER_REQUEST, MAX_UPLOAD_MB

TOKEN_VARIABLE = "IMGSEARCH_API_TOKEN"
MB = 1_000_000
MULTIPART_SLACK = 64_000  # form fields and part headers around the files


def body_limits() -> tuple[tuple[str, int], ...]:
    """The largest body each route may send: one upload, a batch of them, or a small form or JSON."""
    one_file = MAX_UPLOAD_MB * MB + MULTIPART_SLACK
    return (("/api/images", MAX_FILES_PER_REQUEST * MAX_UPLOAD_MB * MB + MULTIPART_SLACK),
            ("/api/search/text", 64_000), ("/api/search", one_file), ("/gradio_api/upload", one_file))


def port_number(text: str) -> int:
    """argparse type: a TCP port."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_token(token: str | None, host: str, allow_anyone: bool) -> str | None:
    """The token to serve with (None: none), or UsageError when the choice would expose the server
    by mistake: an empty token, or a non-loopback address without a token or `--allow-anyone`."""
    if token is None:
        token = os.environ.get(TOKEN_VARIABLE)
    if token is not None and not token.strip():
        raise UsageError(f"the token is empty (--token or {TOKEN_VARIABLE}); leave it out to serve without one "
                         "on this machine only")
    if token is None and not is_loopback(host) and not allow_anyone:
        raise UsageError(f"refusing to serve on {host} without a token: anyone who can reach this machine could "
                         "search, upload and delete. Pass --token (or set IMGSEARCH_API_TOKEN), or --allow-anyone "
                         "to serve it open on purpose")
    return token


def ensure_port_free(host: str, port: int) -> None:
    """ServerError now, before the index is built, when another process listens on `port`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server there? "
                              "pick another --port)") from None


def describe_exposure(host: str, port: int, token: str | None) -> str:
    where = f"http://{host}:{port}"
    if token:
        return f"the API and the app need the token (API: `Authorization: Bearer ...`; browser: {where}/login)"
    if is_loopback(host):
        return "no token: only programs on this machine can reach it"
    return f"no token and listening on {host} (--allow-anyone): anyone who can reach this machine can use it"


def run_web(app, host: str, port: int, token: str | None) -> None:
    """Serve `app` behind the Guard until stopped (Ctrl-C ends it quietly)."""
    import uvicorn

    policy = Policy(token, hosts_for(host, token), body_limits())
    uvicorn.run(Guard(app, policy), host=host, port=port, log_level="warning")
