"""The reference app's HTML page before and after the fast row rendering, in process.

Both sides run one query and render the same 500-row table; they differ only in how the
rows are rendered. "before" is the straightforward version: model instances from
``.only()`` fed to a compiled (cached) template with a ``{% for %}`` loop. "after" is the
shipped view (``values_list`` + ``render_rows`` + cached page template). Rounds alternate
the two, so the CPU's speed switching hits both alike; medians and their ratio are printed.

    uv run --all-extras python bench/bench_demo_page.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    os.environ["LAGSCOPE_DATA_DIR"] = tempfile.mkdtemp(prefix="lagscope-bench-demo-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "lagscope.refapp.settings"
    import django

    django.setup()
    from django.template import engines
    from django.test import RequestFactory

    from lagscope.refapp.models import Item
    from lagscope.refapp.seed import ensure_database
    from lagscope.refapp.views import api_items, items_page

    ensure_database(500)
    page = engines["django"].from_string(
        "<!DOCTYPE html><html><body><h1>Items</h1><p>{{ count }} items.</p><table><tbody>\n"
        "{% for item in items %}"
        "<tr><td>{{ item.sku }}</td><td>{{ item.name }}</td><td>{{ item.category }}</td>"
        '<td class="num">{{ item.price }}</td><td class="num">{{ item.quantity }}</td>'
        '<td>{{ item.updated_at|date:"Y-m-d H:i" }}</td></tr>\n'
        "{% endfor %}</tbody></table></body></html>"
    )
    fields = ("sku", "name", "category", "price", "quantity", "updated_at")

    def before() -> int:
        items = list(Item.objects.order_by("id").only(*fields))
        return len(page.render({"count": len(items), "items": items}))

    request = RequestFactory().get("/items/")

    def after() -> int:
        return len(items_page(request).content)

    def json_view() -> int:
        return len(api_items(request).content)

    sides = {"before (template loop)": before, "after (shipped view)": after, "JSON": json_view}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for fn in sides.values():
        fn()  # warm: template compile, connection open
    for _ in range(args.rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    print(f"# {platform.platform()}, Python {sys.version.split()[0]}, Django {django.__version__}")
    print(f"# {args.rounds} interleaved rounds, SQLite, 500 rows")
    print("| view | p50 ms | min ms |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} |")
    ratio = statistics.median(times["before (template loop)"]) / statistics.median(
        times["after (shipped view)"]
    )
    print(f"| speed-up, before / after (p50) | {ratio:.1f}× | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
