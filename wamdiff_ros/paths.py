"""Where the package's data lives: ``config/`` and ``models/`` in a source checkout or an install.

In a source checkout (``make setup``) they sit beside the ``wamdiff_ros`` package; after
``colcon build`` they are in ``share/wamdiff_ros/`` of the install prefix.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "wamdiff_ros"


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """Root holding ``config/``, ``models/`` and ``launch/`` (``WAMDIFF_SHARE`` overrides)."""
    env = os.environ.get("WAMDIFF_SHARE")
    if env:
        return Path(env)
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "config").is_dir() and (source_root / "package.xml").is_file():
        return source_root
    candidates = [Path(sys.prefix) / "share" / PACKAGE]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory(PACKAGE)))
    except Exception:
        pass
    for c in candidates:
        if (c / "config").is_dir():
            return c
    raise FileNotFoundError(
        f"{PACKAGE}: cannot find its config/ directory (looked in {source_root} and "
        f"{', '.join(map(str, candidates))}); set WAMDIFF_SHARE to the package's share directory"
    )


def config_path(*parts: str) -> Path:
    return share_dir().joinpath("config", *parts)


def models_path(*parts: str) -> Path:
    return share_dir().joinpath("models", *parts)


def resolve(path: str | os.PathLike, kind: str = "config") -> Path:
    """Resolve a user path: as given if it exists, else relative to ``config/`` or ``models/``."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    base = config_path() if kind == "config" else models_path()
    q = base / p
    if q.exists():
        return q
    raise FileNotFoundError(f"{path}: no such file (also looked in {base})")
