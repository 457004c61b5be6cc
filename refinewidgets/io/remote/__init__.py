"""Clients of the real services: refine.bio's API (v1), Bgee's FTP, and the download cache.

:mod:`.refinebio` searches refine.bio's catalog and fetches one EXPERIMENT-aggregated download
per experiment (no quantile normalization, no scaling: refinewidgets normalizes locally), its
tokens and datasets in :mod:`.refinebio_datasets` and its settings read as pyrefinebio reads them
in :mod:`.config`; :mod:`.bgee` lists and fetches Bgee's droplet single-cell files; :mod:`.cache`
keeps what was downloaded (resumed only when safe, checked by size, checksum and structure
(:mod:`.integrity`), atomic) so that ``rw.open_catalog(*paths)`` opens it offline; :mod:`.http`
is the one HTTP session per service (timeouts, deadline, size cap, redirects without credentials).
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
