"""The items table body, rendered in one tight loop (no model import, so it is testable
without the app installed).

It produces exactly what the template loop it replaces produced::

    {% for item in items %}<tr><td>{{ item.sku }}</td><td>{{ item.name }}</td>
    <td>{{ item.category }}</td><td class="num">{{ item.price }}</td>
    <td class="num">{{ item.quantity }}</td><td>{{ item.updated_at|date:"Y-m-d H:i" }}</td></tr>
    {% endfor %}

(``{{ }}`` autoescapes; ``|date`` shows the current time zone). Per-row template machinery
(variable resolution, filter calls, autoescape wrappers) was ~90 % of the page time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.utils import timezone
from django.utils.html import escape

__all__ = ["ROW_FIELDS", "Row", "render_rows"]

ROW_FIELDS = ("sku", "name", "category", "price", "quantity", "updated_at")
Row = tuple[str, str, str, Decimal, int, dt.datetime]

_ROW = (
    "<tr><td>{}</td><td>{}</td><td>{}</td>"
    '<td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>\n'
).format


def render_rows(rows: Iterable[Row]) -> str:
    """One ``<tr>`` per row, every text field escaped."""
    tz = timezone.get_current_timezone()
    return "".join(
        _ROW(
            escape(sku),
            escape(name),
            escape(category),
            price,
            quantity,
            updated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        )
        for sku, name, category, price, quantity, updated_at in rows
    )
