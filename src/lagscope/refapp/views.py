"""The reference app's two views, written the way a careful Django developer writes them.

Both fetch exactly the columns they show with one query (``values`` / ``values_list``), so
there is no N+1 and no model instantiation. The HTML page renders its 500 rows with
:func:`lagscope.refapp.rows.render_rows` (one tight loop with escaping) and drops them into a
cached template; the page looks exactly as the per-row ``{% for %}`` template made it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from lagscope.refapp.models import Item
from lagscope.refapp.rows import ROW_FIELDS, render_rows

__all__ = ["ITEM_FIELDS", "api_items", "items_page"]

ITEM_FIELDS = ("id", "sku", "name", "category", "price", "quantity", "updated_at")


def api_items(request: HttpRequest) -> JsonResponse:
    items = list(Item.objects.order_by("id").values(*ITEM_FIELDS))
    return JsonResponse({"count": len(items), "items": items})


def items_page(request: HttpRequest) -> HttpResponse:
    rows = list(Item.objects.order_by("id").values_list(*ROW_FIELDS))
    body = render_rows(rows)
    return render(
        request,
        "lagscope_demo/items.html",
        # render_rows escapes every field itself.
        {"count": len(rows), "rows": mark_safe(body)},
    )
