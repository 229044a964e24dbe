"""Platform facts of lagscope.netutil: listener options, error classification by number,
and lagscope's own event loop. The Windows branches run here with ``platform="win32"``."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys

import pytest

from lagscope.netutil import (
    SO_EXCLUSIVEADDRUSE,
    bind_listeners,
    classify_oserror,
    free_port,
    listen_options,
    new_event_loop,
    run_in_new_loop,
)


def test_windows_listeners_are_exclusive_and_never_reuse_addresses() -> None:
    options = listen_options("win32")
    assert (socket.SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1) in options
    assert SO_EXCLUSIVEADDRUSE == ~4  # winsock2.h: ((int)(~SO_REUSEADDR))
    # On Windows SO_REUSEADDR lets a second process bind the same port and take a share
    # of the connections (what Django's runserver would do next to lagscope serve).
    assert all(opt != socket.SO_REUSEADDR for _, opt, _ in options)
    assert listen_options("linux") == [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


def test_a_second_listener_on_the_same_port_is_refused() -> None:
    (first,) = bind_listeners("127.0.0.1", 0)
    with first:
        first.listen(8)
        port = first.getsockname()[1]
        with pytest.raises(OSError, match=r"\S") as caught:
            bind_listeners("127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE


def test_bind_listeners_ipv6_is_v6_only() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        socks = bind_listeners("::1", 0)
    except OSError:
        pytest.skip("::1 cannot be bound here")
    with socks[0] as sock:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


class _WinError(OSError):
    """An OSError as Windows raises it: ``winerror`` set (CPython sets it only there)."""

    def __init__(self, winerror: int, message: str) -> None:
        super().__init__(errno.EINVAL, message)
        self.winerror = winerror


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
        # A localised message must not matter, nor a missing one.
        (OSError(errno.ECONNREFUSED, "Es konnte keine Verbindung hergestellt werden"), "refused"),
        (OSError(errno.ENETUNREACH, ""), "unreachable"),
        (OSError(errno.EHOSTUNREACH, "Aucun chemin d'accès pour atteindre l'hôte"), "unreachable"),
        (OSError(errno.ECONNRESET, "x"), "reset"),
        (OSError(errno.ETIMEDOUT, "x"), "timeout"),
        (TimeoutError(), "timeout"),
        (OSError(errno.ENOENT, "unreachable network, says the text"), "error"),
        # Windows: Winsock numbers as errno, and Win32 codes from overlapped (Proactor) I/O.
        (OSError(10061, "Не удалось установить соединение"), "refused"),
        (OSError(10065, "x"), "unreachable"),
        (_WinError(1225, "Der Remotecomputer hat die Netzwerkverbindung abgelehnt"), "refused"),
        (_WinError(64, "Der angegebene Netzwerkname ist nicht mehr verfügbar"), "reset"),
        (_WinError(1236, "x"), "aborted"),
        (_WinError(121, "x"), "timeout"),
        (_WinError(1232, "x"), "unreachable"),
        (ValueError("not a socket error"), "error"),
    ],
)
def test_classify_oserror_by_number_only(exc: BaseException, kind: str) -> None:
    assert classify_oserror(exc) == kind


def test_low_posix_errnos_are_not_read_as_win32_codes() -> None:
    # errno 64 is ENONET on Linux; only winerror may mean ERROR_NETNAME_DELETED.
    assert classify_oserror(OSError(64, "x")) == "error"


def test_lagscopes_own_loop_runs_a_coroutine_and_closes() -> None:
    async def main() -> int:
        await asyncio.sleep(0)
        return 7

    assert run_in_new_loop(main()) == 7
    loop = new_event_loop()
    try:
        assert not loop.is_closed()
    finally:
        loop.close()


@pytest.mark.skipif(sys.platform != "win32", reason="ProactorEventLoop exists only on Windows")
def test_windows_loop_is_proactor_whatever_the_policy() -> None:  # pragma: no cover
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())  # type: ignore[attr-defined,unused-ignore]
    try:
        loop = new_event_loop()
        try:
            assert type(loop).__name__ == "ProactorEventLoop"
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(policy)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_free_port_is_bindable_on_its_host(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        port = free_port(host)
    except OSError:
        pytest.skip(f"no {host} on this machine")
    assert 1024 <= port <= 65535
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, port))  # free a moment ago: binding it now works
