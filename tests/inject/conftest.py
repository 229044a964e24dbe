"""Fixtures for the inject tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.inject_servers import EchoServer


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()
