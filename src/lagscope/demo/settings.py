"""The reference app's Django settings under the path they had before the reference app became
``lagscope.refapp``: settings files written against it (``from lagscope.demo.settings import
*``) keep working. New code imports :mod:`lagscope.refapp.settings`.
"""

from __future__ import annotations

from lagscope.refapp.settings import *  # noqa: F403
