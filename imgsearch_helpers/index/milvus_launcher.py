"""The `milvus` package's launcher (`milvus-server`), with its port check made the way the server
itself binds: `python -m imgsearch_helpers.index.milvus_launcher` takes the same arguments.

The launcher checks each port by binding a plain socket, which fails while connections of a
server that crashed linger in TIME_WAIT (a minute on Linux), although Milvus's own listeners would
bind at once: Go sets SO_REUSEADDR on them, and Linux lets a socket share a port with TIME_WAIT
connections when both set it. Checked with SO_REUSEADDR too, a port that another process listens
on is still refused, and a server restarted after a crash does not wait out that minute.
"""
from __future__ import annotations

import socket
import sys


def bind_as_the_server_does(config, port: int) -> socket.socket | None:
    """A listening socket on `port`, as the launcher's `try_bind_port` returns it; None if taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        return None
    return sock


def main() -> int | None:
    import milvus

    milvus.MilvusServerConfig.try_bind_port = bind_as_the_server_does
    return milvus.main()


if __name__ == "__main__":
    sys.exit(main())
