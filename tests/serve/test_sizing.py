"""ContentLengthMiddleware: what it sizes, what it leaves alone, and that keep-alive survives
on a real waitress server."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lagscope.serve.sizing import ContentLengthMiddleware
from serve.wsgi_apps import unsized
from support.wsgi import waitress_server

StartResponse = Callable[..., Any]


def _call(
    app: Any, environ: dict[str, Any] | None = None
) -> tuple[str, dict[str, str], bytes, Iterable[bytes]]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = app({"REQUEST_METHOD": "GET", **(environ or {})}, start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return seen["status"], {k.lower(): v for k, v in seen["headers"]}, body, result


def test_generator_body_gets_sized() -> None:
    status, headers, body, _ = _call(ContentLengthMiddleware(unsized, 1024))
    assert (status, body) == ("200 OK", b"hello world")
    assert headers["content-length"] == "11"


def test_body_over_the_bound_streams_unsized_and_whole() -> None:
    _, headers, body, _ = _call(ContentLengthMiddleware(unsized, 8))
    assert body == b"hello world"
    assert "content-length" not in headers


def test_legacy_write_callable_is_kept_in_order() -> None:
    def legacy(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"first ")
        return [b"second"]

    _, headers, body, _ = _call(ContentLengthMiddleware(legacy, 1024))
    assert body == b"first second"
    assert headers["content-length"] == "12"


def test_streaming_head_nobody_and_sized_responses_are_left_alone() -> None:
    class Streaming(list[bytes]):
        streaming = True

    def streaming(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return Streaming([b"a", b"b"])

    _, headers, _, result = _call(ContentLengthMiddleware(streaming, 1024))
    assert "content-length" not in headers
    assert isinstance(result, Streaming)  # the very same object, untouched

    def no_content(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("304 Not Modified", [])
        return []

    _, headers, _, _ = _call(ContentLengthMiddleware(no_content, 1024))
    assert "content-length" not in headers

    _, headers, _, _ = _call(ContentLengthMiddleware(unsized, 1024), {"REQUEST_METHOD": "HEAD"})
    assert "content-length" not in headers

    def sized(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    _, headers, _, _ = _call(ContentLengthMiddleware(sized, 1024))
    assert headers["content-length"] == "2"


def test_close_is_called_on_the_original_iterable() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body()

    _call(ContentLengthMiddleware(app, 1024))
    _call(ContentLengthMiddleware(app, 0))
    assert closed == [True, True]


def _requests_on_one_connection(port: int, count: int) -> list[tuple[int, str | None, bool]]:
    """(status, Content-Length, whether the request went out on the first socket)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        conn.connect()
        first = conn.sock
        for _ in range(count):
            conn.request("GET", "/")  # reconnects by itself if the server closed
            used = conn.sock
            resp = conn.getresponse()
            resp.read()
            out.append((resp.status, resp.getheader("Content-Length"), used is first))
    finally:
        conn.close()
    return out


def test_keep_alive_survives_on_waitress_only_with_the_wrapper() -> None:
    # Negative control: waitress closes after an unsized response.
    with waitress_server(unsized) as (_, port):
        bare = _requests_on_one_connection(port, 3)
    assert [same for _, _, same in bare] == [True, False, False]
    with waitress_server(ContentLengthMiddleware(unsized, 1024)) as (_, port):
        wrapped = _requests_on_one_connection(port, 3)
    assert wrapped == [(200, "11", True)] * 3
