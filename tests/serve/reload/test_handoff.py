"""The handoff's carrier with real sockets: a connected TCP socket crosses a Unix socket
pair and still talks to its peer; messages keep their boundaries; the end of the peer ends
the reader."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from lagscope.serve.reload import handoff
from lagscope.serve.reload.handoff import UnixCarrier, unpack

posix = pytest.mark.skipif(sys.platform == "win32", reason="SCM_RIGHTS: POSIX")


@posix
def test_a_client_socket_crosses_with_its_message_and_keeps_its_peer() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    ours, theirs = handoff.pair()
    sender, receiver = UnixCarrier(ours), UnixCarrier(theirs)
    try:
        client.sendall(b"waiting in the kernel")  # sent before the handoff: it travels too
        sender.send({"kind": "conn", "reused": True}, served)
        sender.send({"kind": "retire"})
        assert served.fileno() == -1  # the sender's copy is closed
        got = receiver.receive()
        assert got is not None
        message, moved = got
        assert message == {"kind": "conn", "reused": True}
        assert moved is not None
        with moved:
            assert moved.getpeername() == client.getsockname()
            assert moved.recv(100) == b"waiting in the kernel"
            moved.sendall(b"answered")
            assert client.recv(100) == b"answered"
        assert receiver.receive() == ({"kind": "retire"}, None)
    finally:
        for s in (client, listener):
            s.close()
        sender.close()
        receiver.close()


@posix
def test_the_reader_ends_when_the_peer_closes() -> None:
    ours, theirs = handoff.pair()
    receiver = UnixCarrier(theirs)
    seen: list[str] = []
    reader = threading.Thread(
        target=receiver.serve, args=(lambda message, sock: seen.append(message["kind"]),)
    )
    reader.start()
    sender = UnixCarrier(ours)
    sender.send({"kind": "closed"})
    sender.close()
    reader.join(10)
    assert not reader.is_alive()
    assert seen == ["closed"]
    receiver.close()


@posix
def test_a_send_to_a_closed_peer_raises_and_still_closes_the_socket() -> None:
    ours, theirs = handoff.pair()
    theirs.close()
    a, b = socket.socketpair()
    with pytest.raises(ConnectionError):  # BrokenPipeError (SEQPACKET), refused (DGRAM)
        UnixCarrier(ours).send({"kind": "conn"}, a)
    assert a.fileno() == -1
    b.close()
    ours.close()


def test_a_line_without_a_shared_socket_carries_none() -> None:
    message = {"kind": "retire"}
    assert unpack(message) is None
    assert message == {"kind": "retire"}
