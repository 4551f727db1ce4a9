"""The Milvus launcher's port check: a port held only by a crashed server's lingering connections
(TIME_WAIT) is free, as it is for the server's own listeners; a port another process listens on is not."""
import socket

from imgsearch_helpers.index.milvus_launcher import bind_as_the_server_does
from imgsearch_helpers.index.milvus_server import bindable


def leave_time_wait() -> int:
    """A port whose listener is gone and whose accepted connection was closed by the server side
    first, as the kernel closes a killed server's connections: that side stays in TIME_WAIT. The
    listener sets SO_REUSEADDR, as Milvus's (Go's) listeners do; Linux lets a new socket share the
    port only when both have it."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first
    client.recv(1)  # the client sees the end ...
    client.close()  # ... and closes too
    listener.close()
    return port


def plain_bind_fails(port: int) -> bool:
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_a_port_in_time_wait_is_free_for_the_launcher():
    port = leave_time_wait()
    assert plain_bind_fails(port)  # the check `milvus-server` makes would refuse it for a minute
    sock = bind_as_the_server_does(None, port)
    assert sock is not None
    sock.close()
    assert bindable(port)


def test_a_port_another_process_listens_on_is_refused():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert bind_as_the_server_does(None, port) is None
        assert not bindable(port)
