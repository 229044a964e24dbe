"""The reference app's two views, written the way a careful Django developer writes them.

Both fetch exactly the columns they show with one query (``values_list`` / ``values``), so
there is no N+1 and no model instantiation. The HTML page renders its 500 rows in one tight
Python loop with escaping, then drops them into a cached template: the per-row
``{% for %}``/``{{ }}`` template machinery was ~90 % of the page time (docs/serve.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from lagscope.demo.models import Item

__all__ = ["ITEM_FIELDS", "api_items", "items_page", "render_rows"]

ITEM_FIELDS = ("id", "sku", "name", "category", "price", "quantity", "updated_at")
_ROW_FIELDS = ("sku", "name", "category", "price", "quantity", "updated_at")

_ROW = (
    "<tr><td>{}</td><td>{}</td><td>{}</td>"
    '<td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>\n'
).format


def api_items(request: HttpRequest) -> JsonResponse:
    items = list(Item.objects.order_by("id").values(*ITEM_FIELDS))
    return JsonResponse({"count": len(items), "items": items})


def render_rows(rows: list[tuple[str, str, str, Decimal, int, dt.datetime]]) -> str:
    """The table body, one ``<tr>`` per row; same text as the template loop it replaces
    (``{{ value }}`` autoescaped, ``|date:"Y-m-d H:i"`` in the current time zone)."""
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


def items_page(request: HttpRequest) -> HttpResponse:
    rows = list(Item.objects.order_by("id").values_list(*_ROW_FIELDS))
    body = render_rows(rows)
    return render(
        request,
        "lagscope_demo/items.html",
        # render_rows escapes every field itself.
        {"count": len(rows), "rows": mark_safe(body)},
    )
