"""The download cache: resumable, checked, atomic, reused offline; listed and pruned.

Layout (``cache_dir`` defaults to :func:`~refinewidgets.core.cache_dir.default_cache_dir`,
which honours ``$REFINEWIDGETS_CACHE``)::

    <cache_dir>/downloads/<service>/<folder>/<file>     a complete, checked download
    <cache_dir>/downloads/<service>/<folder>/.<file>.json   where it came from, its size/checksum
    <cache_dir>/downloads/<service>/<folder>/.<file>.part   an unfinished download (resumable)

Decisions (pooch's, plus resuming, which pooch does not do; so we use ``requests`` directly):

- A file is written to ``.<file>.part`` and moved into place (``os.replace``) only after its
  size and, when the server gave one, its checksum (SHA-1 from refine.bio) matched. A mismatch
  deletes the part file and raises :class:`~.errors.DownloadIntegrityError`. So a name without a
  leading dot is always complete, and ``rw.open_catalog(<cache_dir>/downloads)`` (which skips
  hidden files) never sees a partial file.
- An interrupted transfer keeps its part file; the next attempt (in the same call, up to the
  retry count, or a later call) asks for the rest with an HTTP ``Range`` header. A server that
  answers a range request with the whole file (200) restarts it from zero.
- A cached file (a complete file with its ``.json`` record) is returned without any network
  access, so a notebook that fetched once runs offline.
- A full disk (``ENOSPC``, ``EDQUOT``) removes the part file and raises
  :class:`~refinewidgets.errors.OutputError` saying how much was needed.
- Names from servers (accessions, file names) are checked against a strict pattern before they
  become paths.
- Two processes downloading the same file at once are not coordinated (the second may restart
  the first's part file); the final rename keeps the result whole either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import requests
import urllib3

from ...core.cache_dir import default_cache_dir
from ...errors import OutputError, SourceFormatError
from ..containers.names import check_name_part
from .errors import DownloadIntegrityError, ServiceUnavailableError
from .http import Http
from .integrity import check_structure, kind_of
from .resume import (
    MIN_RATE_ENV,
    ShortRead,
    content_range,
    discard,
    read_validators,
    response_chunks,
    slowest_rate,
    total_length,
    validator,
    why,
    without_query,
    write_error,
    write_validators,
)

__all__ = ["DOWNLOADS", "DownloadCache", "Entry", "checksum_of", "safe_name"]

#: The subfolder of the cache folder that holds downloads.
DOWNLOADS = "downloads"
_FORMAT = "refinewidgets-download"
_VERSION = 2
_CHUNK = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_ALGORITHMS = ("sha1", "sha256", "md5")


def safe_name(value: object, what: str) -> str:
    """``value`` if it can be one part of a path in the cache, else a SourceFormatError.

    Examples
    --------
    >>> safe_name("GSE1.zip", "file name")
    'GSE1.zip'
    >>> safe_name("../etc", "file name")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.SourceFormatError: The file name '../etc' from the server cannot name a file ...
    """
    text = str(value)
    ok = isinstance(value, str) and _NAME.fullmatch(text)
    if ok:
        check_name_part(text, what)
        return text
    raise SourceFormatError(
        f"The {what} {text!r} from the server cannot name a file in the cache (letters, "
        "digits, '.', '_' and '-', starting with a letter or digit). It was refused."
    )


def checksum_of(path: str | os.PathLike, algorithm: str = "sha1") -> str:
    """The hex digest of a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> checksum_of(p)
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_checksum(checksum: str | None) -> tuple[str, str] | None:
    if not checksum:
        return None
    algorithm, _, value = checksum.partition(":")
    if algorithm not in _ALGORITHMS or not re.fullmatch(r"[0-9a-fA-F]{16,128}", value):
        raise ValueError(f"checksum {checksum!r}: expected '<sha1|sha256|md5>:<hex digest>'.")
    return algorithm, value.lower()


@dataclass
class Entry:
    """One file in the cache.

    Attributes
    ----------
    path
        Where it is.
    service
        ``refinebio`` or ``bgee`` (the first folder under ``downloads``).
    size
        Bytes on disk.
    complete
        False for an unfinished download (``.<file>.part``).
    url, checksum, downloaded_at
        From its record (empty for an unfinished download).
    """

    path: Path
    service: str
    size: int
    complete: bool
    url: str = ""
    checksum: str = ""
    downloaded_at: str = ""


def _progress_bar(progress, label: str):
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False)
    return progress or None


class DownloadCache:
    """Downloads kept under ``<cache_dir>/downloads``.

    Examples
    --------
    >>> import tempfile
    >>> cache = DownloadCache(tempfile.mkdtemp())
    >>> cache.path_for("refinebio", "experiments", "GSE1.zip").parts[-4:]
    ('downloads', 'refinebio', 'experiments', 'GSE1.zip')
    >>> cache.list().empty
    True
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.root = base / DOWNLOADS

    def __repr__(self) -> str:
        return f"DownloadCache({str(self.root)!r})"

    def path_for(self, service: str, *parts: str) -> Path:
        """The cache path of a file; every part is checked with :func:`safe_name`."""
        return self.root.joinpath(
            safe_name(service, "service"), *(safe_name(p, "name") for p in parts)
        )

    @staticmethod
    def record_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.json")

    @staticmethod
    def part_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.part")

    @staticmethod
    def validators_path(path: Path) -> Path:
        """Where the ``ETag``/``Last-Modified`` of an unfinished download are kept."""
        return path.with_name(f".{path.name}.part.json")

    def record(self, path: str | os.PathLike) -> dict | None:
        """The record of a complete cached file, or None when it is not (completely) cached.

        A file recorded by an older version (before structure checks) is checked once now; a
        file that fails, or whose size changed, is set aside (:meth:`set_aside`), so the next
        download fetches it again.
        """
        path = Path(path)
        try:
            record = json.loads(self.record_path(path).read_text(encoding="utf-8"))
            size = path.stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            return None
        if record.get("size") != size:
            self.set_aside(path, "its size changed since it was downloaded")
            return None
        if record.get("version", 1) < 2:
            problem = check_structure(path)
            if problem is not None:
                self.set_aside(path, problem)
                return None
            record.update(version=_VERSION, structure=kind_of(path.name))
            self._write_record(path, record)
        return record

    def set_aside(self, path: str | os.PathLike, reason: str) -> Path:
        """Move a bad cached file out of the way (``.<file>.bad``, its record removed), so that
        the next download of it starts afresh; returns where it went.

        For a reader that finds a cached file damaged: say "set aside; the next fetch downloads
        it again", which is then true without ``--refresh``.
        """
        path = Path(path)
        aside = path.with_name(f".{path.name}.bad")
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside)
        discard(self.record_path(path))
        with contextlib.suppress(OSError):
            aside.with_name(aside.name + ".txt").write_text(reason + "\n", encoding="utf-8")
        return aside

    def _write_record(self, path: Path, record: dict) -> None:
        tmp = path.with_name(f".{path.name}.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, self.record_path(path))

    def download(
        self,
        http: Http,
        url: str,
        path: str | os.PathLike,
        *,
        size: int | None = None,
        checksum: str | None = None,
        headers: dict | None = None,
        progress=None,
        refresh: bool = False,
        what: str = "",
        extra: dict | None = None,
    ) -> Path:
        """Download ``url`` to ``path`` (a path from :meth:`path_for`), or reuse the cached copy.

        ``size`` and ``checksum`` (``"sha1:<hex>"``) are what the server announced; the file is
        kept only when it matches them (and the ``Content-Length`` of the reply). An interrupted
        transfer is resumed with ``Range`` up to ``http.retries`` times; a later call resumes it
        too. ``progress``: True for a text bar, or any object with ``reset(total)``/``update(n)``/
        ``close()`` (tqdm's protocol). ``extra``: more fields for the file's record.
        """
        path = Path(path)
        expected = _parse_checksum(checksum)
        if not refresh and self.record(path) is not None:
            return path
        part = self._prepare(path, refresh)
        bar = _progress_bar(progress, path.name)
        shown = http.scrub(without_query(url))
        try:
            total = self._transfer(http, url, part, size, headers or {}, bar, what or shown)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        self._check_part(
            part,
            path.name,
            shown,
            {"the server announced": size, "the reply's length was": total},
            expected,
        )
        os.replace(part, path)
        discard(self.validators_path(part))
        record = {
            "format": _FORMAT,
            "version": _VERSION,
            "url": without_query(url),
            "size": path.stat().st_size,
            "checksum": f"{expected[0]}:{expected[1]}" if expected else "",
            "structure": kind_of(path.name),
            "downloaded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **(extra or {}),
        }
        self._write_record(path, record)
        return path

    def _prepare(self, path: Path, refresh: bool) -> Path:
        """The partial file of ``path``, its folder made (with ``refresh``, emptied)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"Cannot create the cache folder {path.parent} ({exc.strerror or exc}): set "
                "$REFINEWIDGETS_CACHE to a folder you can write to."
            ) from None
        part = self.part_path(path)
        if refresh:
            discard(part)
            discard(self.validators_path(part))
        return part

    def _check_part(
        self, part: Path, name: str, shown: str, sizes: dict, expected: tuple[str, str] | None
    ) -> None:
        """Refuse (and drop) a finished part whose size, checksum or structure is not what was
        announced: ``sizes`` maps how a size was told to the size (None: not told)."""
        got = part.stat().st_size
        again = "It was discarded: the next call downloads it again from the start."
        for label, want in sizes.items():
            if want is not None and got != want:
                problem = check_structure(part, name)  # an error page says more than sizes
                self._drop_part(part)
                if problem is not None:
                    raise DownloadIntegrityError(
                        f"The download of {shown} is not usable: {problem} ({got:,} bytes where "
                        f"{label} {want:,}). The server answered with an error page or a damaged "
                        f"file. {again}"
                    )
                raise DownloadIntegrityError(
                    f"The download of {shown} has {got:,} bytes but {label} {want:,}: the "
                    f"transfer was damaged or the file changed on the server. {again}"
                )
        if expected is not None:
            algorithm, value = expected
            actual = checksum_of(part, algorithm)
            if actual != value:
                self._drop_part(part)
                raise DownloadIntegrityError(
                    f"The download of {shown} has {algorithm.upper()} {actual}, but the server "
                    f"announced {value}: the file is damaged (or changed on the server). {again}"
                )
        problem = check_structure(part, name)
        if problem is not None:
            self._drop_part(part)
            raise DownloadIntegrityError(
                f"The download of {shown} is not usable: {problem}. The server may have answered "
                f"with an error page or a damaged file. {again} If it keeps happening, the "
                "service has a problem: try again later."
            )

    def _drop_part(self, part: Path) -> None:
        discard(part)
        discard(self.validators_path(part))

    def _transfer(self, http: Http, url, part: Path, size, headers, bar, what) -> int | None:
        """Fill ``part`` from ``url``, resuming after interruptions; returns the total length.

        A resume asks ``Range: bytes=<have>-`` with ``If-Range`` (the ``ETag``, else the
        ``Last-Modified``, of the reply that began the part): a server whose file changed since
        answers with the whole new file (200), which replaces the part. A part without such a
        validator is never resumed, and a 206 is kept only when its ``Content-Range`` starts
        where the part ends and has the total length of the first reply.
        """
        interruptions = 0
        source = without_query(http.url(url))
        while True:
            have, saved = self._resumable(part, source)
            ask = {"Accept-Encoding": "identity", **headers}  # the bytes as stored
            if have:
                ask["Range"] = f"bytes={have}-"
                ask["If-Range"] = saved["validator"]
            response = http.request("GET", url, headers=ask, ok=(200, 206, 416), what=what)
            with response:
                usable, total = self._reply_fits(response, part, have, saved, source)
                if not usable:  # the part is stale, or the reply is not its rest: start over
                    self._drop_part(part)
                    interruptions += 1
                    if interruptions > http.retries:
                        raise DownloadIntegrityError(_refused(response.status_code, what))
                    continue
                have = have if response.status_code == 206 else 0
                if bar is not None:
                    bar.reset(total=total)
                    if have:
                        bar.update(have)
                try:
                    self._write(
                        response, part, append=have > 0, bar=bar, total=total, min_rate=http
                    )
                    if total is not None and part.stat().st_size < total:
                        raise ShortRead(f"the connection closed before byte {total:,}")
                    return total
                except _INTERRUPTIONS as exc:
                    interruptions += 1
                    if interruptions > http.retries:
                        raise self._interrupted(part, what, interruptions, exc) from None
                    time.sleep(min(http.backoff * 2 ** (interruptions - 1), 30))

    def _resumable(self, part: Path, source: str) -> tuple[int, dict | None]:
        """``(bytes of the part, its saved validators)``; a part that cannot be resumed safely
        (no validator, or one of another address) is dropped: ``(0, None)``."""
        have = part.stat().st_size if part.exists() else 0
        saved = read_validators(self.validators_path(part)) if have else None
        if have and (saved is None or saved.get("source") != source):
            self._drop_part(part)  # no way to tell that its bytes are still the server's
            return 0, None
        return have, saved

    def _reply_fits(self, response, part: Path, have: int, saved, source: str):
        """``(usable, total length)`` of a reply: a 416 or a 206 that is not the rest of the
        part is not usable; a 200 (the whole file) is, and its validators are saved."""
        if response.status_code == 416:  # asked beyond the end: the part is stale
            return False, None
        if response.status_code == 206:
            first, last, whole = content_range(response)
            expected_total = saved.get("total") if saved else None
            fits = not (
                not have
                or first != have
                or whole is None
                or (last is not None and last != whole - 1)
                or (expected_total is not None and whole != expected_total)
            )
            return fits, whole
        total = total_length(response, 0)  # the whole file (first request, or it changed)
        write_validators(self.validators_path(part), source, validator(response), total)
        return True, total

    def _interrupted(
        self, part: Path, what: str, interruptions: int, exc: BaseException
    ) -> ServiceUnavailableError:
        got = part.stat().st_size if part.exists() else 0
        resumable = read_validators(self.validators_path(part)) is not None
        nxt = (
            "the next call resumes where it stopped"
            if resumable
            else "the server gives no ETag or Last-Modified to resume safely "
            "with, so the next call starts it again"
        )
        return ServiceUnavailableError(
            f"The download of {what} was interrupted {interruptions} times "
            f"({why(exc)}); {got:,} bytes are kept in {part}: {nxt}."
        )

    @staticmethod
    def _write(response, part: Path, *, append: bool, bar, total, min_rate: Http) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        flags |= getattr(os, "O_BINARY", 0)
        fd = os.open(part, flags, 0o644)
        window = max(min_rate.timeout, 0.05)
        rate = slowest_rate()
        began, received = time.monotonic(), 0
        try:
            for chunk in response_chunks(response):
                received += len(chunk)
                elapsed = time.monotonic() - began
                if elapsed >= window:  # a trickle is an interruption, resumed like one
                    if received / elapsed < rate:
                        raise ShortRead(
                            f"slower than {rate:,.0f} bytes/s for {elapsed:.0f} s; set "
                            f"{MIN_RATE_ENV} to accept a slower line"
                        )
                    began, received = time.monotonic(), 0
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except OSError as exc:
                        os.close(fd)
                        fd = -1
                        discard(part)
                        final = part.with_name(part.name[1 : -len(".part")])
                        raise write_error(exc, final, total) from None
                    view = view[n:]
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if fd >= 0:
                os.close(fd)

    def entries(self) -> Iterator[Entry]:
        """Every download in the cache, complete or not, sorted by path."""
        if not self.root.is_dir():
            return
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            service = path.relative_to(self.root).parts[0]
            name = path.name
            if name.endswith(".part") and name.startswith("."):
                yield Entry(path, service, path.stat().st_size, False)
            elif not name.startswith("."):
                record = self.record(path) or {}
                yield Entry(
                    path,
                    service,
                    path.stat().st_size,
                    bool(record),
                    str(record.get("url", "")),
                    str(record.get("checksum", "")),
                    str(record.get("downloaded_at", "")),
                )

    def list(self) -> pd.DataFrame:
        """The cache's files as a table: path, service, size, complete, url, checksum, downloaded_at."""
        rows = [vars(e) for e in self.entries()]
        columns = ["path", "service", "size", "complete", "url", "checksum", "downloaded_at"]
        return pd.DataFrame(rows, columns=columns)

    def complete_paths(self, service: str | None = None) -> list[Path]:
        """The complete downloads (of one service), as paths ``rw.open_catalog`` accepts."""
        return [
            e.path
            for e in self.entries()
            if e.complete and (service is None or e.service == service)
        ]

    def prune(
        self,
        *,
        everything: bool = False,
        older_than_days: float | None = None,
        dry_run: bool = False,
    ) -> list[Path]:
        """Remove unfinished downloads and files without a record; with ``everything`` all files,
        with ``older_than_days`` the files downloaded longer ago. Returns the removed paths."""
        now = time.time()
        removed = []
        for entry in list(self.entries()):
            old = (
                older_than_days is not None
                and now - entry.path.stat().st_mtime > older_than_days * 86400
            )
            if everything or not entry.complete or old:
                removed.append(entry.path)
                if not dry_run:
                    discard(entry.path)
                    discard(self.record_path(entry.path))
        if everything and not dry_run and self.root.is_dir():  # records of pending work too
            for path in [p for p in self.root.rglob(".*") if p.is_file()]:
                discard(path)
        if not dry_run and self.root.is_dir():
            for folder in sorted((p for p in self.root.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty ones
        return removed

    def copy_to(self, path: Path, out: str | os.PathLike) -> Path:
        """Copy a cached file into the folder ``out`` (atomically); returns the copy."""
        out = Path(out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        target = out / path.name
        tmp = out / f".{path.name}.{os.getpid()}.copy"
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            discard(tmp)
            raise write_error(exc, target, path.stat().st_size) from None
        return target


#: What interrupts a transfer that a retry may resume.
_INTERRUPTIONS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.HTTPError,
    ShortRead,
)


def _refused(status: int, what: str) -> str:
    """The message when the server keeps answering a resume with what cannot be used."""
    if status == 416:
        return (
            f"{what}: the server refuses to send the rest of a partial download "
            "(HTTP 416). The partial file was discarded; the next call downloads "
            "it again from the start."
        )
    return (
        f"{what}: the server answers range requests with another range "
        "or length than asked. Nothing was kept; try again later."
    )
