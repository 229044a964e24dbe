"""``manage.py lagscope``."""

from __future__ import annotations
