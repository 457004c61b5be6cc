"""One HTTP session per service: retries with backoff, deadlines, caps, safe redirects, and
errors a person can act on.

Built on ``requests`` with urllib3's ``Retry``: a timeout while reading, HTTP 429 and 5xx are
retried with exponential backoff (honouring ``Retry-After``); a connection that cannot be made at
all (a name that does not resolve, a refused connection) is **not** retried, so being offline is
said at once. What still fails becomes one of :mod:`.errors`, naming the service, the address,
what happened and what to do.

- Every API answer and index page is read against an overall deadline, its status line and
  headers included (a reply trickling a byte a second is cut; the sockets of a request past its
  deadline are shut down), and against a size cap, then parsed (invalid JSON, or JSON nested too
  deep, is a :class:`~.errors.ResponseFormatError`).
- Redirects are followed by hand, at most five: never to anything but ``http(s)://``, and a
  credential header (``API-KEY``, ``Authorization``, ``Cookie``) is dropped as soon as the
  address leaves the host it was meant for.
- Secrets (a token) registered with :meth:`Http.add_secret` are scrubbed from every message.

Defaults come from the environment, so a command line or a test can tune them:

- ``REFINEWIDGETS_HTTP_TIMEOUT``: seconds to wait for bytes of a reply (default 30);
- ``REFINEWIDGETS_HTTP_CONNECT_TIMEOUT``: seconds to wait for a connection (default 10);
- ``REFINEWIDGETS_HTTP_DEADLINE``: seconds a whole API answer or index page may take (default 120);
- ``REFINEWIDGETS_HTTP_RETRIES``: retries after the first attempt (default 5);
- ``REFINEWIDGETS_HTTP_BACKOFF``: backoff factor in seconds (default 1: waits 0, 2, 4, ... s);
- ``REFINEWIDGETS_JSON_MAX_MB``: the largest JSON answer or index page read (default 64).
"""

from __future__ import annotations

import json as _json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from ..._version import __version__
from .deadline import Watch, WatchedAdapter
from .errors import (
    RemoteDatasetError,
    RemoteError,
    RemoteNotFoundError,
    ResponseFormatError,
    ServiceUnavailableError,
    ServiceUnreachableError,
    TokenError,
)

__all__ = ["RETRY_STATUSES", "Http", "expect", "http_settings", "scrub"]

TIMEOUT_ENV = "REFINEWIDGETS_HTTP_TIMEOUT"
CONNECT_TIMEOUT_ENV = "REFINEWIDGETS_HTTP_CONNECT_TIMEOUT"
DEADLINE_ENV = "REFINEWIDGETS_HTTP_DEADLINE"
RETRIES_ENV = "REFINEWIDGETS_HTTP_RETRIES"
BACKOFF_ENV = "REFINEWIDGETS_HTTP_BACKOFF"
JSON_CAP_ENV = "REFINEWIDGETS_JSON_MAX_MB"
#: Statuses retried with backoff: too many requests and the server's own failures.
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Methods retried: those that can be repeated safely (a POST creates something each time).
_RETRIED_METHODS = frozenset({"GET", "HEAD", "PUT", "OPTIONS"})
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS.update({503: "Service Unavailable", 504: "Gateway Timeout"})
#: Headers that carry credentials: never sent on to another host.
_CREDENTIAL_HEADERS = frozenset({"api-key", "authorization", "cookie", "proxy-authorization"})
_MAX_REDIRECTS = 5
_ERROR_BODY_CAP = 64 * 1024
_READ = 64 * 1024


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


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[token]`` (for messages and log lines).

    Examples
    --------
    >>> scrub("refine.bio does not know the token 0b1c2d3e-aa", ["0b1c2d3e-aa"])
    'refine.bio does not know the token [token]'
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[token]")
    return text


_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def expect(value: object, kind, where: str, service: str = "refine.bio") -> Any:
    """``value`` if it is of ``kind`` (a type or a tuple of types), else a ResponseFormatError
    naming the field, the type expected and the type received.

    ``int`` accepts no ``bool`` (JSON's true is not a count); ``float`` accepts an ``int``.

    Examples
    --------
    >>> expect(3, int, "'count' of search/")
    3
    >>> expect("3", int, "'count' of search/")
    Traceback (most recent call last):
    ...
    refinewidgets.io.remote.errors.ResponseFormatError: refine.bio answered with 'count' of search/ as a string ('3'); its API writes an integer there. Is the address really refine.bio's API?
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok:
        return value
    wanted = " or ".join(dict.fromkeys(_TYPE_NAMES.get(k, k.__name__) for k in kinds))
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ResponseFormatError(
        f"{service} answered with {where} as {_type_name(value)} ({shown}); its API writes "
        f"{wanted} there. Is the address really {service}'s API?"
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


class Http:
    """A ``requests`` session for one service, with retries, deadlines, caps and our errors.

    Parameters
    ----------
    base_url
        The service's root; relative paths are joined to it.
    service
        The name errors use ("refine.bio", "Bgee").
    hint
        What to check when the service cannot be reached (where its address is set).
    timeout, retries, backoff
        See :func:`http_settings`.
    connect_timeout, deadline, json_cap
        Seconds to wait for a connection; seconds a whole answer of :meth:`json` or
        :meth:`text` may take; the largest such answer in bytes (default: the environment).

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
        connect_timeout: float | None = None,
        deadline: float | None = None,
        json_cap: int | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise RemoteError(
                f"The {service} address {base_url!r} is not an http(s) URL; fix it ({hint})."
            )
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.service = service
        self.hint = hint
        self.timeout, self.retries, self.backoff = http_settings(timeout, retries, backoff)
        self.connect_timeout = (
            _env_number(CONNECT_TIMEOUT_ENV, 10.0) if connect_timeout is None else connect_timeout
        )
        self.deadline = _env_number(DEADLINE_ENV, 120.0) if deadline is None else deadline
        self.json_cap = (
            int(_env_number(JSON_CAP_ENV, 64.0) * 2**20) if json_cap is None else int(json_cap)
        )
        self.secrets: set[str] = set()
        retry = Retry(
            total=self.retries,
            connect=0,  # no connection at all (no name, refused): said at once, never retried
            read=self.retries,
            status=self.retries,
            other=0,
            redirect=0,
            backoff_factor=self.backoff,
            backoff_max=60,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=_RETRIED_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        self.session = requests.Session()
        adapter = WatchedAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"refinewidgets/{__version__}"

    def add_secret(self, secret: str | None) -> None:
        """Scrub ``secret`` (a token) from every message this session writes."""
        if secret:
            self.secrets.add(str(secret))

    def scrub(self, text: str) -> str:
        """``text`` without the secrets of :meth:`add_secret`."""
        return scrub(text, self.secrets)

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
        deadline: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return a response whose status is in ``ok``, else raise our error.

        The body is not read yet (read it with :meth:`read_body`, or iterate it). ``what`` names
        the thing asked for ("the experiment 'GSE1'"), for a 404's message. Redirects are
        followed as the module says. ``deadline`` (``time.monotonic``) bounds the wait for the
        status line and headers, retries included (downloads pass none: a rate floor guards them).
        """
        url = self.url(path)
        kwargs.setdefault("timeout", (self.connect_timeout, self.timeout))
        kwargs["stream"] = True
        kwargs["allow_redirects"] = False
        headers = dict(kwargs.pop("headers", None) or {})
        for _ in range(_MAX_REDIRECTS + 1):
            self._check_scheme(url)
            response = self._send(method, url, headers, deadline, kwargs)
            if not response.is_redirect:
                break
            target = urljoin(response.url, response.headers.get("Location", ""))
            response.close()
            self._check_scheme(target, redirected_from=url)
            if _origin(target) != _origin(url):  # credentials stay with the host they are for
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method.upper() == "POST"
            ):
                method = "GET"
                kwargs.pop("json", None)
                kwargs.pop("data", None)
            url = target
        else:
            raise ResponseFormatError(
                self.scrub(
                    f"{self.service} redirected {self.url(path)} more than {_MAX_REDIRECTS} "
                    "times; refused. The service may be misconfigured: try again later."
                )
            )
        if response.status_code not in ok:
            with response:
                raise self.status_error(response, what=what)
        return response

    def _send(
        self, method: str, url: str, headers: dict, deadline: float | None, kwargs: dict
    ) -> requests.Response:
        """One request, no redirect followed; ``deadline`` bounds its status line and headers."""
        try:
            if deadline is None:
                return self.session.request(method, url, headers=headers, **kwargs)
            with Watch(deadline - time.monotonic()) as watch:
                response = self.session.request(method, url, headers=headers, **kwargs)
            if watch.expired:  # cut short: what was read is not the answer
                response.close()
                raise self.past_deadline(url, 0)
            return response
        except requests.exceptions.RequestException as exc:
            if deadline is not None and watch.expired:
                raise self.past_deadline(url, 0) from None
            raise self.unreachable(url, exc) from None

    def _check_scheme(self, url: str, redirected_from: str | None = None) -> None:
        if urlsplit(url).scheme in ("http", "https"):
            return
        if redirected_from is None:
            raise ResponseFormatError(
                self.scrub(f"{self.service} gave the address {url!r}, which is not http(s).")
            )
        raise ResponseFormatError(
            self.scrub(
                f"{self.service} redirected {redirected_from} to {url!r}, which is not an http(s) "
                "address; refused (a web service has no business pointing at local files)."
            )
        )

    def chunks(self, response: requests.Response, *, decode: bool = True) -> Iterator[bytes]:
        """The body as it arrives (so a deadline is checked between two pieces, however slow)."""
        read1 = getattr(response.raw, "read1", None)
        if read1 is None:  # pragma: no cover - urllib3 < 2.3
            yield from response.iter_content(_READ, decode_unicode=False)
            return
        while True:
            data = read1(_READ, decode_content=decode)
            if not data:
                return
            yield data

    def read_body(
        self,
        response: requests.Response,
        *,
        cap: int | None = None,
        deadline: float | None = None,
        what: str = "the answer",
    ) -> bytes:
        """The whole body, at most ``cap`` bytes, read before ``deadline`` (``time.monotonic``)."""
        cap = self.json_cap if cap is None else cap
        if deadline is None:
            deadline = time.monotonic() + self.deadline
        cap_mb = f"{cap / 2**20:g} MB"
        length = response.headers.get("Content-Length", "")
        too_big = (
            f"{self.service} sent more than {cap_mb} for {what} ({response.url}); refused. If "
            f"that is expected, raise the cap with {JSON_CAP_ENV}=<megabytes>."
        )
        if length.isdigit() and int(length) > cap:
            response.close()
            raise ResponseFormatError(self.scrub(too_big))
        parts, size = [], 0
        try:
            for chunk in self.chunks(response):
                size += len(chunk)
                if size > cap:
                    raise ResponseFormatError(self.scrub(too_big))
                parts.append(chunk)
                if time.monotonic() > deadline:
                    raise self.past_deadline(response.url, size)
        except RemoteError:
            raise
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self.unreachable(response.url, exc) from None
        finally:
            response.close()
        return b"".join(parts)

    def past_deadline(self, url: str, size: int) -> ServiceUnavailableError:
        """The error for an answer not finished within the overall deadline."""
        return ServiceUnavailableError(
            self.scrub(
                f"{self.service} did not finish answering {url} within the deadline "
                f"({self.deadline:g} s; {size:,} bytes received). It may be overloaded or the "
                f"network very slow: try again later, or allow longer with "
                f"{DEADLINE_ENV}=<seconds>."
            )
        )

    def text(self, path: str, *, what: str = "", **kwargs: Any) -> str:
        """The body of a GET as text (an index page, a checksum file), capped and on time."""
        deadline = time.monotonic() + self.deadline
        response = self.request("GET", path, what=what, deadline=deadline, **kwargs)
        body = self.read_body(response, deadline=deadline, what=what or "the page")
        return body.decode(response.encoding or "utf-8", errors="replace")

    def json(self, path: str, *, what: str = "", method: str = "GET", **kwargs: Any) -> Any:
        """The JSON body of a request (see :meth:`request`), capped, on time and parsed."""
        deadline = time.monotonic() + self.deadline
        response = self.request(method, path, what=what, deadline=deadline, **kwargs)
        ctype = response.headers.get("Content-Type", "unknown")
        body = self.read_body(response, deadline=deadline, what=what or "the answer")
        try:
            return _json.loads(body)
        except (ValueError, RecursionError) as exc:
            kind = "JSON nested too deep" if isinstance(exc, RecursionError) else "not JSON"
            raise ResponseFormatError(
                self.scrub(
                    f"{self.service} answered {response.url} with something that is {kind} "
                    f"(content type {ctype!r}): is {self.base_url} really its API? {self.hint}"
                )
            ) from None

    def unreachable(self, url: str, exc: BaseException) -> RemoteError:
        """The error for a request that got no answer: no network, refused, or too slow."""
        host = urlsplit(url).netloc
        inner = exc
        if isinstance(exc, requests.exceptions.RequestException) and exc.args:
            inner = exc.args[0]
        if isinstance(inner, MaxRetryError):
            inner = inner.reason
        tries = f"{self.retries + 1} attempt(s)"
        url = self.scrub(url)
        no_connection = isinstance(
            inner, (NewConnectionError, NameResolutionError, ConnectTimeoutError)
        ) or isinstance(exc, requests.exceptions.ConnectTimeout)
        if no_connection:
            detail = str(inner)
            low = detail.lower()
            if "refused" in low:
                said = "connection refused"
            elif isinstance(inner, NameResolutionError) or "resolve" in low or "known" in low:
                said = "the host name does not resolve (no network?)"
            elif isinstance(inner, ConnectTimeoutError) or "timed out" in low:
                said = f"no connection within {self.connect_timeout:g} s"
            else:
                said = "no connection"
            where = f" and {self.hint}" if self.hint else ""
            return ServiceUnreachableError(
                f"{self.service} cannot be reached from this computer ({said} at {host}). Check "
                f"your network connection{where}. Files already "
                "downloaded stay usable offline: `refinewidgets cache list` shows them.",
                service=self.service,
                detail=self.scrub(f"{url}: {detail}"),
            )
        if isinstance(exc, requests.exceptions.Timeout) or isinstance(inner, ReadTimeoutError):
            return ServiceUnavailableError(
                f"{self.service} did not answer within {self.timeout:g} s ({url}; {tries}). "
                f"The service may be busy or the network slow: try again later, or wait longer "
                f"with {TIMEOUT_ENV}=<seconds>."
            )
        if isinstance(
            exc, (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError, OSError)
        ):
            return ServiceUnavailableError(
                f"The connection to {self.service} at {host} broke ({self.scrub(str(inner))}; "
                f"{tries}). Try again later."
            )
        return ServiceUnavailableError(
            self.scrub(f"{self.service}: the request to {url} failed ({exc}).")
        )

    def status_error(self, response: requests.Response, *, what: str = "") -> RemoteError:
        """The error for an HTTP status we do not accept, with the server's own message."""
        status = response.status_code
        reason = response.reason or _REASONS.get(status, "")
        said = self.scrub(_server_message(self, response))
        said_text = f" It said: {said}" if said else ""
        head = f"{self.service} answered HTTP {status} {reason}".rstrip()
        url = self.scrub(response.url)
        if status == 404:
            thing = what or url
            return RemoteNotFoundError(
                f"{head} for {thing}: it does not know it ({url}).{said_text} Check the "
                "spelling; search the catalog to find valid names."
            )
        if status in (401, 403):
            return TokenError(f"{head} ({url}).{said_text}")
        method = getattr(response.request, "method", "GET") or "GET"
        retried = (
            f"after {self.retries} retries with backoff"
            if method.upper() in _RETRIED_METHODS
            else f"(a {method} is not retried: repeating it could act twice)"
        )
        if status == 429:
            return ServiceUnavailableError(
                f"{head} ({url}) {retried}: it limits "
                "how often a client may ask (refine.bio: 10 requests a second). Wait a minute "
                "and try again."
            )
        if status >= 500:
            return ServiceUnavailableError(
                f"{head} ({url}) {retried}: the service has a problem of its own. Try again later."
            )
        return RemoteDatasetError(f"{head} ({url}).{said_text}")


def _server_message(http: Http, response: requests.Response) -> str:
    """refine.bio's ``{"message", "details"}`` (or DRF's ``{"detail"}``) as one line."""
    try:
        raw = http.read_body(
            response, cap=_ERROR_BODY_CAP, deadline=time.monotonic() + min(http.timeout, 10)
        )
        body = _json.loads(raw)
    except (RemoteError, ValueError, RecursionError):
        return ""
    if not isinstance(body, Mapping):
        return ""
    parts = [str(body[k]) for k in ("message", "detail") if body.get(k)]
    details = body.get("details")
    if details:
        shown = ", ".join(map(str, details)) if isinstance(details, list) else str(details)
        parts.append(f"(details: {shown})")
    return re.sub(r"\s+", " ", " ".join(parts))[:600]
