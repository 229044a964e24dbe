"""lagscope: find where every millisecond of a slow web response goes.

The package root owns only the public API list and the version. Each command lives in its
own subpackage (``lagscope.probe``, ``lagscope.inject``, ...); shared pure pieces sit in
top-level modules (``lagscope.errors``, ``lagscope.settings_table``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
