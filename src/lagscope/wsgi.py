"""``lagscope.wsgi.ServerTimingMiddleware``, the path the README has always shown for the WSGI
middleware; the middleware itself is :class:`lagscope.instrument.wsgi.WsgiServerTimingMiddleware`.

Only this name is kept here, so ``application = lagscope.wsgi.ServerTimingMiddleware(application)``
in an existing ``wsgi.py`` keeps working.
"""

from __future__ import annotations

from lagscope.instrument.wsgi import WsgiServerTimingMiddleware as ServerTimingMiddleware

__all__ = ["ServerTimingMiddleware"]
