"""Entry point for ``python -m lagscope``."""

from __future__ import annotations

from lagscope.cli import main

if __name__ == "__main__":
    main()
