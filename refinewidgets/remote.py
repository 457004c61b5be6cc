"""``rw.remote``: refine.bio's and Bgee's catalogs, fetched into a cache and opened locally.

>>> import refinewidgets as rw
>>> sorted(rw.remote.__all__)[:3]
['DownloadIntegrityError', 'RemoteDatasetError', 'RemoteError']

In a notebook (needs the network; tested only against a local server, see the README)::

    hits = rw.remote.refinebio.search("medulloblastoma", organism="HOMO_SAPIENS")
    hits.facets["technology"]                    # {'microarray': ..., 'rna-seq': ...}
    paths = rw.remote.refinebio.fetch(["GSE37382"], email="me@example.org")
    cat = rw.open_catalog(*paths)                # then rw.Dataset(...) and rw.build as usual
    rw.remote.bgee.list_experiments("Danio_rerio")
    cat = rw.open_catalog(*rw.remote.bgee.fetch("Danio_rerio"))
    cat = rw.open_catalog(*rw.remote.cached())   # offline: everything downloaded so far

The submodules (``refinebio``, ``bgee``, ``cache``) are imported on first use, so importing
refinewidgets does not import the HTTP client.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from .io.remote.errors import (
    DownloadIntegrityError,
    RemoteDatasetError,
    RemoteError,
    RemoteNotFoundError,
    ResponseFormatError,
    SamplesLeftOutWarning,
    ServiceUnavailableError,
    ServiceUnreachableError,
    TokenError,
)

if TYPE_CHECKING:
    from .io.remote import bgee, cache, refinebio

__all__ = [
    "DownloadIntegrityError",
    "RemoteDatasetError",
    "RemoteError",
    "RemoteNotFoundError",
    "ResponseFormatError",
    "SamplesLeftOutWarning",
    "ServiceUnavailableError",
    "ServiceUnreachableError",
    "TokenError",
    "bgee",
    "cache",
    "cached",
    "refinebio",
]

_MODULES = ("refinebio", "bgee", "cache")


def cached(*, service: str | None = None, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The complete downloads in the cache (of ``"refinebio"`` or ``"bgee"``), for
    ``rw.open_catalog(*paths)``; needs no network.

    Examples
    --------
    >>> import tempfile
    >>> cached(cache_dir=tempfile.mkdtemp())
    []
    """
    from .io.remote.cache import DownloadCache

    return DownloadCache(cache_dir).complete_paths(service)


def __getattr__(name: str):
    if name in _MODULES:
        return import_module(f".io.remote.{name}", __package__)
    raise AttributeError(f"module 'refinewidgets.remote' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
