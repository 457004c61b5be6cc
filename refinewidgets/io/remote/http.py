"""One HTTP session per service: retries with backoff, timeouts, and errors a person can act on.

Built on ``requests`` with urllib3's ``Retry``: a refused connection, a timeout, HTTP 429 and
5xx are retried with exponential backoff (honouring ``Retry-After``); what still fails becomes
one of :mod:`.errors`, naming the service, the address, what happened and what to do.
Defaults come from the environment, so a command line or a test can tune them:

- ``REFINEWIDGETS_HTTP_TIMEOUT``: seconds to wait for a connection or a reply (default 30);
- ``REFINEWIDGETS_HTTP_RETRIES``: retries after the first attempt (default 5);
- ``REFINEWIDGETS_HTTP_BACKOFF``: backoff factor in seconds (default 1: waits 0, 2, 4, ... s).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from ..._version import __version__
from .errors import (
    RemoteDatasetError,
    RemoteError,
    RemoteNotFoundError,
    ServiceUnavailableError,
    TokenError,
)

__all__ = ["RETRY_STATUSES", "Http", "http_settings"]

TIMEOUT_ENV = "REFINEWIDGETS_HTTP_TIMEOUT"
RETRIES_ENV = "REFINEWIDGETS_HTTP_RETRIES"
BACKOFF_ENV = "REFINEWIDGETS_HTTP_BACKOFF"
#: Statuses retried with backoff: too many requests and the server's own failures.
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Methods retried: those that can be repeated safely (a POST creates something each time).
_RETRIED_METHODS = frozenset({"GET", "HEAD", "PUT", "OPTIONS"})
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS.update({503: "Service Unavailable", 504: "Gateway Timeout"})


def _env_number(name: str, default: float, kind=float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise RemoteError(f"${name} is {text!r}; it must be a number (or unset).") from None
    if value < 0:
        raise RemoteError(f"${name} is {text!r}; it must not be negative.")
    return value


def http_settings(
    timeout: float | None = None, retries: int | None = None, backoff: float | None = None
) -> tuple[float, int, float]:
    """``(timeout, retries, backoff)``: the arguments given, else the environment, else defaults.

    Examples
    --------
    >>> http_settings(5, 0, 0.1)
    (5, 0, 0.1)
    """
    return (
        _env_number(TIMEOUT_ENV, 30.0) if timeout is None else timeout,
        int(_env_number(RETRIES_ENV, 5, int)) if retries is None else retries,
        _env_number(BACKOFF_ENV, 1.0) if backoff is None else backoff,
    )


class Http:
    """A ``requests`` session for one service, with retries and our errors.

    Parameters
    ----------
    base_url
        The service's root; relative paths are joined to it.
    service
        The name errors use ("refine.bio", "Bgee").
    hint
        What to check when the service cannot be reached (the environment variable of its address).
    timeout, retries, backoff
        See :func:`http_settings`.

    Examples
    --------
    >>> http = Http("http://127.0.0.1:9/v1/", service="refine.bio", retries=0)
    >>> http.url("search/")
    'http://127.0.0.1:9/v1/search/'
    """

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        hint: str = "",
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise RemoteError(
                f"The {service} address {base_url!r} is not an http(s) URL; fix it ({hint})."
            )
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.service = service
        self.hint = hint
        self.timeout, self.retries, self.backoff = http_settings(timeout, retries, backoff)
        retry = Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            backoff_factor=self.backoff,
            backoff_max=60,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=_RETRIED_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"refinewidgets/{__version__}"

    def url(self, path: str) -> str:
        """``path`` joined to the base URL (an absolute URL is kept)."""
        return urljoin(self.base_url, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        ok: tuple[int, ...] = (200, 201, 202, 204, 206),
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return a response whose status is in ``ok``, else raise our error.

        ``what`` names the thing asked for ("the experiment 'GSE1'"), for a 404's message.
        """
        url = self.url(path)
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise self.unreachable(url, exc) from None
        if response.status_code not in ok:
            raise self.status_error(response, what=what)
        return response

    def json(self, path: str, *, what: str = "", method: str = "GET", **kwargs: Any) -> Any:
        """The JSON body of a request (see :meth:`request`)."""
        response = self.request(method, path, what=what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailableError(
                f"{self.service} answered {response.url} with something that is not JSON "
                f"(content type {response.headers.get('Content-Type', 'unknown')!r}): is "
                f"{self.base_url} really its API? {self.hint}"
            ) from None

    def unreachable(self, url: str, exc: BaseException) -> RemoteError:
        """The error for a request that got no answer: no network, refused, or too slow."""
        host = urlsplit(url).netloc
        reason = exc.args[0] if exc.args else exc
        inner = getattr(reason, "reason", None) if isinstance(reason, MaxRetryError) else None
        tries = f"{self.retries + 1} attempt(s)"
        if isinstance(exc, requests.exceptions.Timeout) or isinstance(inner, ReadTimeoutError):
            return ServiceUnavailableError(
                f"{self.service} did not answer within {self.timeout:g} s ({url}; {tries}). "
                f"The service may be busy or the network slow: try again later, or wait longer "
                f"with {TIMEOUT_ENV}=<seconds>."
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            detail = str(inner or reason)
            if "refused" in detail.lower():
                detail = "connection refused"
            elif "name or service not known" in detail.lower() or "resolve" in detail.lower():
                detail = "the host name does not resolve (no network?)"
            return ServiceUnavailableError(
                f"Cannot reach {self.service} at {host} ({detail}; {tries}). Check your network "
                f"connection{' and ' + self.hint if self.hint else ''}. Files already downloaded "
                "stay usable offline: `refinewidgets cache list` shows them."
            )
        return ServiceUnavailableError(f"{self.service}: the request to {url} failed ({exc}).")

    def status_error(self, response: requests.Response, *, what: str = "") -> RemoteError:
        """The error for an HTTP status we do not accept, with the server's own message."""
        status = response.status_code
        reason = response.reason or _REASONS.get(status, "")
        said = _server_message(response)
        said_text = f" It said: {said}" if said else ""
        head = f"{self.service} answered HTTP {status} {reason}".rstrip()
        if status == 404:
            thing = what or response.url
            return RemoteNotFoundError(
                f"{head} for {thing}: it does not know it ({response.url}).{said_text} Check the "
                "spelling; search the catalog to find valid names."
            )
        if status in (401, 403):
            return TokenError(f"{head} ({response.url}).{said_text}")
        method = getattr(response.request, "method", "GET") or "GET"
        retried = (
            f"after {self.retries} retries with backoff"
            if method.upper() in _RETRIED_METHODS
            else f"(a {method} is not retried: repeating it could act twice)"
        )
        if status == 429:
            return ServiceUnavailableError(
                f"{head} ({response.url}) {retried}: it limits "
                "how often a client may ask (refine.bio: 10 requests a second). Wait a minute "
                "and try again."
            )
        if status >= 500:
            return ServiceUnavailableError(
                f"{head} ({response.url}) {retried}: the service has a problem of its own. "
                "Try again later."
            )
        return RemoteDatasetError(f"{head} ({response.url}).{said_text}")


def _server_message(response: requests.Response) -> str:
    """refine.bio's ``{"message", "details"}`` (or DRF's ``{"detail"}``) as one line."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, Mapping):
        return ""
    parts = [str(body[k]) for k in ("message", "detail") if body.get(k)]
    details = body.get("details")
    if details:
        shown = ", ".join(map(str, details)) if isinstance(details, list) else str(details)
        parts.append(f"(details: {shown})")
    return " ".join(parts)[:600]
