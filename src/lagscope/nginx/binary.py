"""Where the nginx binary is: an explicit path, PATH, or the usual install folders.

Used by ``lagscope nginx-config --check``, the demo's ``--nginx`` and the benchmarks; it
imports no CLI.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["find_nginx", "nginx_locations"]


def nginx_locations(platform: str = sys.platform, drive: str = "C:\\") -> list[Path]:
    """Where nginx usually sits when it is not on PATH.

    Windows: nginx.org ships a zip that people unpack at the root of a drive, as
    ``C:\\nginx`` or as the versioned ``C:\\nginx-1.27.3`` (newest version first).
    """
    if platform == "win32":
        root = Path(drive)
        unpacked = sorted(root.glob("nginx-*/nginx.exe"), key=_version_key, reverse=True)
        return [root / "nginx" / "nginx.exe", *unpacked]
    return [Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")]


def _version_key(path: Path) -> tuple[int, ...]:
    numbers = path.parent.name.removeprefix("nginx-").split(".")
    return tuple(int(n) if n.isdigit() else -1 for n in numbers)


def find_nginx(explicit: str | None = None) -> Path | None:
    """The nginx binary: ``explicit``, else on PATH, else the usual places
    (:func:`nginx_locations`)."""
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    found = shutil.which("nginx")
    if found:
        return Path(found)
    for candidate in nginx_locations():
        if candidate.is_file():
            return candidate
    return None
