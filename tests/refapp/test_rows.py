"""The fast table body renders exactly what the per-row template loop rendered."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.template import Context, Engine

from lagscope.refapp.rows import ROW_FIELDS, render_rows
from lagscope.refapp.seed import seed_rows

# The straightforward template the page used before (kept here as the reference).
REFERENCE = (
    "{% for item in items %}"
    "<tr><td>{{ item.sku }}</td><td>{{ item.name }}</td><td>{{ item.category }}</td>"
    '<td class="num">{{ item.price }}</td><td class="num">{{ item.quantity }}</td>'
    '<td>{{ item.updated_at|date:"Y-m-d H:i" }}</td></tr>\n'
    "{% endfor %}"
)


def test_fast_rows_match_the_template_loop() -> None:
    rows = seed_rows(500)
    reference = Engine().from_string(REFERENCE).render(Context({"items": rows}))
    fast = render_rows([tuple(r[f] for f in ROW_FIELDS) for r in rows])
    assert fast == reference
    assert "Nuts &amp; Bolts" in fast


def test_hostile_text_is_escaped_like_the_template() -> None:
    when = dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.timezone.utc)
    row = {
        "sku": "<b>",
        "name": "\"quoted\" & 'single'",
        "category": "</td>",
        "price": Decimal("1234.50"),
        "quantity": -3,
        "updated_at": when,
    }
    reference = Engine().from_string(REFERENCE).render(Context({"items": [row]}))
    assert render_rows([tuple(row[f] for f in ROW_FIELDS)]) == reference  # type: ignore[list-item]
    assert "<b>" not in reference
