"""``lagscope.django``: the Django app (INSTALLED_APPS entry) with the Server-Timing middleware.

Add ``"lagscope.django"`` to INSTALLED_APPS and
``"lagscope.django.middleware.ServerTimingMiddleware"`` first in MIDDLEWARE. The package is
a thin shell: :mod:`.conf` reads the settings, :mod:`.db` hooks the database,
:mod:`.middleware` times requests, :mod:`.checks` holds the system checks; the timing
record, metric names and the trust rule live in :mod:`lagscope.instrument`.
"""

from __future__ import annotations

__all__: list[str] = []
