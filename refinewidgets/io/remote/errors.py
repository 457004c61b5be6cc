"""Errors of the remote clients; each also subclasses the matching builtin."""

from __future__ import annotations

from ...errors import RefineWidgetsError

__all__ = [
    "DownloadIntegrityError",
    "RemoteDatasetError",
    "RemoteError",
    "RemoteNotFoundError",
    "ServiceUnavailableError",
    "TokenError",
]


class RemoteError(RefineWidgetsError):
    """Base class of the errors of refine.bio's and Bgee's clients."""


class ServiceUnavailableError(RemoteError, ConnectionError):
    """The service could not be reached, did not answer in time, or kept failing (429, 5xx)."""


class RemoteNotFoundError(RemoteError, LookupError):
    """The service does not know an accession, organism, species or file (HTTP 404)."""


class TokenError(RemoteError, PermissionError):
    """No refine.bio API token, or one whose terms of use were not accepted."""


class RemoteDatasetError(RemoteError, RuntimeError):
    """refine.bio refused a dataset request or reported that processing it failed."""


class DownloadIntegrityError(RemoteError, ValueError):
    """A downloaded file has another size or checksum than the server announced; discarded."""
