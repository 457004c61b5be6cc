"""What a download relies on to resume and to fail clearly: the server's validators (ETag,
Last-Modified) kept beside a partial file, ``Content-Range`` read strictly, the slowest rate
accepted, bodies read in chunks with short reads detected, and write errors that name the disk.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ...errors import OutputError

#: Bytes asked of a response at a time.
_CHUNK = 1 << 20

__all__ = [
    "MIN_RATE_ENV",
    "ShortRead",
    "content_range",
    "discard",
    "slowest_rate",
    "read_validators",
    "response_chunks",
    "total_length",
    "validator",
    "why",
    "without_query",
    "write_error",
    "write_validators",
]


MIN_RATE_ENV = "REFINEWIDGETS_HTTP_MIN_RATE"


def slowest_rate() -> float:
    """The slowest download accepted, bytes a second over a read timeout (default 1024)."""
    text = os.environ.get(MIN_RATE_ENV) or "1024"
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise OutputError(f"${MIN_RATE_ENV} is {text!r}; it must be a number.") from None


def without_query(url: str) -> str:
    """A URL without its query: a presigned URL's signature is not kept or shown."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def validator(response) -> str | None:
    """What ``If-Range`` can use: a strong ``ETag``, else ``Last-Modified``."""
    etag = response.headers.get("ETag", "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified", "").strip() or None


def write_validators(where: Path, source: str, validator: str | None, total) -> None:
    if validator is None:
        discard(where)
        return
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(
        json.dumps({"source": source, "validator": validator, "total": total}), encoding="utf-8"
    )


def read_validators(where: Path) -> dict | None:
    try:
        saved = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(saved, dict) and isinstance(saved.get("validator"), str)
    return saved if ok and saved["validator"] else None


def content_range(response) -> tuple[int | None, int | None, int | None]:
    """``(first, last, total)`` of ``Content-Range: bytes first-last/total`` (None if absent)."""
    match = re.fullmatch(
        r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range", "")
    )
    if not match:
        return None, None, None
    whole = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), whole


def why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ShortRead) else type(exc).__name__


class ShortRead(Exception):
    """The reply ended cleanly but before its announced length."""


def response_chunks(response) -> Iterator[bytes]:
    """The body as it arrives (``read1``), so bytes received before a cut are kept."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2.3
        yield from response.iter_content(_CHUNK)
        return
    while True:
        data = read1(_CHUNK, decode_content=False)
        if not data:
            return
        yield data


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_error(exc: OSError, path: Path, total: int | None) -> OutputError:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        need = f" ({total:,} bytes needed)" if total else ""
        return OutputError(
            f"No space left on the disk for {path.name} in {path.parent}{need}. The unfinished "
            "file was removed. Free some space (`refinewidgets cache prune --all` empties the "
            "download cache) or set $REFINEWIDGETS_CACHE to a folder on a bigger disk."
        )
    return OutputError(f"Cannot write {path} ({exc.strerror or exc}).")


def total_length(response, start: int) -> int | None:
    match = re.search(r"/(\d+)$", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and "Content-Encoding" not in response.headers:
        return start + int(length)
    return None
