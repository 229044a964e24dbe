"""Response hygiene: give every response the stack can size a Content-Length.

Waitress answers a response without Content-Length with chunked encoding and then closes
the connection, so the next request pays a new TCP connect (and whatever the antivirus adds
to it). :class:`ContentLengthMiddleware` wraps any WSGI app and, for a response that has
neither Content-Length nor Transfer-Encoding, buffers the body up to a bound and sends it
sized. It leaves alone what must stream: Django streaming responses, ``wsgi.file_wrapper``
bodies, HEAD requests (the body is empty there but the length must be the GET's), bodies
over the bound (sent as they come), and 1xx/204/304 (no body by definition).

Pure WSGI, no I/O of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["ContentLengthMiddleware"]

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_NO_BODY = ("1", "204", "304")


class _Passthrough(Iterator[bytes]):
    """Buffered chunks followed by the rest of the app's iterable; closes the original."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], original: Iterable[bytes]):
        self._it = itertools.chain(head, rest)
        self._original = original

    def __iter__(self) -> _Passthrough:
        return self

    def __next__(self) -> bytes:
        return next(self._it)

    def close(self) -> None:
        close = getattr(self._original, "close", None)
        if close is not None:
            close()


class ContentLengthMiddleware:
    """Add Content-Length to unsized, bounded, non-streaming responses."""

    def __init__(self, app: WSGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "HEAD" or self.max_bytes <= 0:
            return self.app(environ, start_response)
        captured: list[tuple[str, list[tuple[str, str]], Any]] = []
        written: list[bytes] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            if exc_info is not None and captured:
                # PEP 3333: replacing headers after an error; nothing was sent yet.
                captured.clear()
            captured.append((status, headers, exc_info))
            # The legacy write() callable: collect, it goes out before the iterable.
            return written.append

        result = self.app(environ, capture)
        if captured and not self._wants_sizing(captured[-1], result, environ):
            return self._send_as_is(start_response, captured[-1], written, iter(result), result)

        chunks = list(written)
        size = sum(len(c) for c in chunks)
        iterator = iter(result)
        judged = bool(captured)
        for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if not judged and captured:
                # A generator app calls start_response on its first step: judge now.
                judged = True
                if not self._wants_sizing(captured[-1], result, environ):
                    return self._send_as_is(start_response, captured[-1], chunks, iterator, result)
            if size > self.max_bytes and captured:
                return self._send_as_is(start_response, captured[-1], chunks, iterator, result)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        if not captured:
            raise RuntimeError("the WSGI application never called start_response")
        status, headers, exc_info = captured[-1]
        if self._wants_sizing(captured[-1], None, environ):
            headers = [*headers, ("Content-Length", str(size))]
        start_response(status, headers, exc_info)
        return [b"".join(chunks)]

    @staticmethod
    def _wants_sizing(
        response: tuple[str, list[tuple[str, str]], Any],
        result: Iterable[bytes] | None,
        environ: dict[str, Any],
    ) -> bool:
        status, headers, _ = response
        if status.startswith(_NO_BODY):
            return False
        for name, _value in headers:
            if name.lower() in ("content-length", "transfer-encoding"):
                return False
        if result is not None:
            if getattr(result, "streaming", False):
                return False
            wrapper = environ.get("wsgi.file_wrapper")
            if isinstance(wrapper, type) and isinstance(result, wrapper):
                return False
        return True

    @staticmethod
    def _send_as_is(
        start_response: StartResponse,
        response: tuple[str, list[tuple[str, str]], Any],
        head: list[bytes],
        rest: Iterator[bytes],
        result: Iterable[bytes],
    ) -> Iterable[bytes]:
        status, headers, exc_info = response
        start_response(status, headers, exc_info)
        if head:
            return _Passthrough(list(head), rest, result)
        # Nothing consumed yet: hand the original back (keeps wsgi.file_wrapper fast paths).
        return result
