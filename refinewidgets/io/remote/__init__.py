"""Clients of the real services: refine.bio's API (v1), Bgee's FTP, and the download cache.

:mod:`.refinebio` searches refine.bio's catalog and fetches one EXPERIMENT-aggregated download
per experiment (no quantile normalization, no scaling: refinewidgets normalizes locally);
:mod:`.bgee` lists and fetches Bgee's droplet single-cell files; :mod:`.cache` keeps what was
downloaded (resumable, checked, atomic) so that ``rw.open_catalog(*paths)`` opens it offline.
Imported on first use through ``rw.remote``, so ``import refinewidgets`` needs no network
library.
"""

from .errors import (
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
]
