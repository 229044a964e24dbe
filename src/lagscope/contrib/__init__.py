"""Optional integrations with other tools (each needs its own extra)."""

from __future__ import annotations
