"""The client's facts across the front: header format and the app-side middleware."""

from __future__ import annotations

from typing import Any

from lagscope.instrument.connections import CLIENT_CONNECTION_NEW
from lagscope.serve.reload.facts import (
    FrontFactsMiddleware,
    client_header,
    is_front_header,
    parse_client_header,
)


def _seen(environ: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        got.update(env)
        return [b""]

    FrontFactsMiddleware(app, "secret")(environ, lambda *a: None)
    return got


def test_header_round_trip() -> None:
    value = client_header(True, ("::1", 5555)).decode()
    assert value == "new ::1 5555"
    assert parse_client_header(value) == (True, "::1", "5555")
    assert parse_client_header(client_header(False, None).decode()) == (False, None, None)
    for bad in ("", "maybe 1.2.3.4 5", "new 1.2.3.4", "new 1.2.3.4 x5", "new  5"):
        assert parse_client_header(bad) is None


def test_front_headers_include_underscore_spellings() -> None:
    assert is_front_header(b"x-lagscope-client")
    assert is_front_header(b"x_lagscope_front")
    assert not is_front_header(b"x-lagscope-secret")


def test_facts_applied_only_with_the_token_and_removed_always() -> None:
    base = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000"}
    good = _seen(
        {**base, "HTTP_X_LAGSCOPE_FRONT": "secret", "HTTP_X_LAGSCOPE_CLIENT": "reused 10.0.0.7 51"}
    )
    assert (good["REMOTE_ADDR"], good["REMOTE_PORT"], good[CLIENT_CONNECTION_NEW]) == (
        "10.0.0.7",
        "51",
        False,
    )
    assert "HTTP_X_LAGSCOPE_CLIENT" not in good and "HTTP_X_LAGSCOPE_FRONT" not in good
    forged = _seen(
        {**base, "HTTP_X_LAGSCOPE_FRONT": "guess", "HTTP_X_LAGSCOPE_CLIENT": "new 10.0.0.7 51"}
    )
    assert forged["REMOTE_ADDR"] == "127.0.0.1"
    assert CLIENT_CONNECTION_NEW not in forged
    assert "HTTP_X_LAGSCOPE_CLIENT" not in forged
