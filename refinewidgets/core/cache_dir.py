"""Where refinewidgets keeps what it caches (parsed matrices, Bgee tarball indexes,
downloads, out-of-core arrays): one folder, set by ``$REFINEWIDGETS_CACHE``."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["CACHE_ENV", "default_cache_dir"]

CACHE_ENV = "REFINEWIDGETS_CACHE"


def default_cache_dir() -> Path:
    """The folder refinewidgets caches files in.

    ``$REFINEWIDGETS_CACHE`` when set; else the user's cache folder as ``platformdirs`` finds
    it: ``$XDG_CACHE_HOME/refinewidgets`` (default ``~/.cache/refinewidgets``) on Linux,
    ``~/Library/Caches/refinewidgets`` on macOS, ``%LOCALAPPDATA%\\refinewidgets\\Cache`` on
    Windows. The folder is created when first written to.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("refinewidgets", appauthor=False))
