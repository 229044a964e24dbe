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
# The settings object last seen without LAGSCOPE. A missing setting costs ~2 µs per lookup
# (LazySettings raises AttributeError internally); override_settings swaps the wrapped
# object, so remembering "missing" per object stays correct under it.
_missing_in: object = None


def _raw_setting() -> object:
    global _missing_in
    wrapped = settings._wrapped
    if wrapped is _missing_in:
        return _EMPTY
    raw = getattr(settings, SETTING_NAME, None)
    if raw is None:
        _missing_in = wrapped
        return _EMPTY
    return raw


def get_options() -> InstrumentOptions:
    """The current options; raises OptionsError for an invalid ``LAGSCOPE`` setting."""
    global _cache
    raw = _raw_setting()
    cached = _cache
    if cached is not None and cached[0] is raw:
        return cached[1]
    # A dict mutated in place keeps its identity; tests use override_settings, which
    # replaces it. Validate afresh whenever the object changes.
    options = options_from_mapping(raw)
    with _lock:
        _cache = (raw, options)
    return options
