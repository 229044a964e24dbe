"""Django management commands of the lagscope app."""

from __future__ import annotations
