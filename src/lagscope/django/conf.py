"""Typed access to ``settings.LAGSCOPE``, read on each access so ``override_settings`` works.

The table itself (names, types, defaults, meanings) is
:class:`lagscope.instrument.options.InstrumentOptions`. Validation runs only when the
settings dict changes identity, so a request pays one attribute read and one ``is``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from django.conf import settings

from lagscope.instrument.options import InstrumentOptions, options_from_mapping

__all__ = ["SETTING_NAME", "get_options"]

SETTING_NAME = "LAGSCOPE"

_EMPTY: Mapping[str, object] = {}
_lock = threading.Lock()
# (raw object, its validated options); replaced as a whole so readers never see a mix.
_cache: tuple[object, InstrumentOptions] | None = None


def get_options() -> InstrumentOptions:
    """The current options; raises OptionsError for an invalid ``LAGSCOPE`` setting."""
    global _cache
    raw = getattr(settings, SETTING_NAME, _EMPTY)
    cached = _cache
    if cached is not None and cached[0] is raw:
        return cached[1]
    # A dict mutated in place keeps its identity; tests use override_settings, which
    # replaces it. Validate afresh whenever the object changes.
    options = options_from_mapping(raw)
    with _lock:
        _cache = (raw, options)
    return options
