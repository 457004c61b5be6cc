"""Errors of the remote clients; each also subclasses the matching builtin."""

from __future__ import annotations

from ...errors import RefineWidgetsError, RefineWidgetsWarning

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


class RemoteError(RefineWidgetsError):
    """Base class of the errors of refine.bio's and Bgee's clients."""


class ServiceUnavailableError(RemoteError, ConnectionError):
    """The service could not be reached, did not answer in time, or kept failing (429, 5xx)."""


class ServiceUnreachableError(ServiceUnavailableError):
    """No connection could be made at all: the host name does not resolve, the connection was
    refused or could not be opened in time (no network, a firewall, a wrong address).

    A view can tell this apart from a service that answered with an error. ``service`` is the
    service's name ("refine.bio", "Bgee") and ``detail`` the technical reason, for a fold-away.
    """

    def __init__(self, message: str, *, service: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.detail = detail


class RemoteNotFoundError(RemoteError, LookupError):
    """The service does not know an accession, organism, species or file (HTTP 404)."""


class TokenError(RemoteError, PermissionError):
    """No refine.bio API token, or one whose terms of use were not accepted."""


class RemoteDatasetError(RemoteError, RuntimeError):
    """refine.bio refused a dataset request or reported that processing it failed."""


class DownloadIntegrityError(RemoteError, ValueError):
    """A downloaded file has another size, checksum or structure than expected; discarded."""


class ResponseFormatError(RemoteError, ValueError):
    """A service answered, but not in the shape its own code writes: not JSON, too large, a
    field missing or of another type (the message names the field and both types)."""


class SamplesLeftOutWarning(RefineWidgetsWarning):
    """refine.bio left samples of a requested experiment out of its download (unprocessed
    samples, or samples of an organism without a quantile-normalization target)."""
