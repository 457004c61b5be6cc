"""Where refinewidgets keeps what it caches (parsed matrices, Bgee tarball indexes,
downloads, out-of-core arrays): one folder, set by ``$REFINEWIDGETS_CACHE``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir"]

CACHE_ENV = "REFINEWIDGETS_CACHE"


def default_cache_dir() -> Path:
    """The folder refinewidgets caches files in.

    ``$REFINEWIDGETS_CACHE`` when set; else the user's cache folder: ``$XDG_CACHE_HOME/
    refinewidgets`` (default ``~/.cache/refinewidgets``) on Linux, ``~/Library/Caches/
    refinewidgets`` on macOS, ``%LOCALAPPDATA%\\refinewidgets\\Cache`` on Windows. The folder is
    created when first written to.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "refinewidgets" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "refinewidgets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "refinewidgets"
