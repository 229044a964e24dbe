"""Create, migrate and seed the reference app's database (first run), idempotently.

The rows are a pure function of their index, so every install shows the same 500 items and
tests can compare pages byte for byte.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["ensure_database", "seed_rows"]

_ADJECTIVES = ("Compact", "Heavy", "Blue", "Quiet", "Rapid", "Folding", "Spare", "Classic")
_NOUNS = ("Widget", "Lamp", "Nuts & Bolts", "Kettle", "Bracket", "Hose", "Notebook", "Drill")
_CATEGORIES = ("Hardware", "Garden", "Kitchen", "Office", "Toys", "Tools", "Books", "Outdoor")
_BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def seed_rows(count: int) -> list[dict[str, Any]]:
    """The demo rows, deterministic. One name contains ``&`` so escaping is exercised."""
    rows = []
    for i in range(1, count + 1):
        rows.append(
            {
                "sku": f"LS-{i:05d}",
                "name": f"{_ADJECTIVES[i % 8]} {_NOUNS[(i * 7) % 8]} {i}",
                "category": _CATEGORIES[(i * 3) % 8],
                "price": Decimal((i * 3719) % 99_000 + 100) / 100,
                "quantity": (i * 13) % 250,
                "updated_at": _BASE_TIME + dt.timedelta(minutes=i * 97),
            }
        )
    return rows


def ensure_database(count: int) -> bool:
    """Apply migrations and seed ``count`` rows if the table is empty. Django must be set up.

    Returns True when rows were inserted (first run).
    """
    from django.core.management import call_command
    from django.db import connections, transaction

    from lagscope.refapp.models import Item

    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3") and db["NAME"] != ":memory:":
        # First run: the per-user data directory may not exist yet.
        Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    with transaction.atomic():
        if Item.objects.exists():
            return False
        Item.objects.bulk_create([Item(**row) for row in seed_rows(count)])
    return True
