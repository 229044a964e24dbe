"""Entry point for ``python -m lagscope``: the same process entry as the console script."""

from __future__ import annotations

from lagscope.process_entry import run

if __name__ == "__main__":
    run()
