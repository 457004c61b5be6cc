"""Tarballs as containers: compression read from the content, members streamed and checked,
extracted copies checked before each use and bounded in a cache.

A tarball is read as a stream, one member at a time: every member name is checked as the stream
is read (absolute names, ``..`` parts, links, devices and FIFOs refuse the whole tarball), sizes
against :data:`~refinewidgets.io.containers.limits.READ_LIMITS`. What the members hold is the
format's business (:mod:`refinewidgets.io.bgee.tarball` indexes Bgee's H5AD members).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ...core.cache_dir import CACHE_ENV
from ...errors import OutputError, SourceFormatError, UnsafeArchiveError
from .atomic import PARTIAL_NAME, process_alive
from .limits import READ_LIMITS
from .names import check_member_name

__all__ = [
    "READ_ERRORS",
    "TarStream",
    "check_record",
    "clean_stale_dirs",
    "intact",
    "is_tarball",
    "record_check",
    "tar_compression",
    "unwritable",
]

_CHUNK = 1 << 20


_MAGIC = (("gzip", b"\x1f\x8b"), ("bzip2", b"BZh"), ("xz", b"\xfd7zXZ\x00"))


# errors of a damaged archive or compressed stream, while reading (never while writing)
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, lzma.LZMAError, ValueError)


_DECOMPRESS = {
    "gzip": lambda fh: gzip.GzipFile(fileobj=fh, mode="rb"),
    "bzip2": lambda fh: bz2.BZ2File(fh, "rb"),
    "xz": lambda fh: lzma.LZMAFile(fh, "rb"),
    "none": lambda fh: fh,
}


def tar_compression(path: str | os.PathLike) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or ``"none"`` when ``path`` holds a tar archive (read
    from its first bytes, and those of its first header once decompressed), else None.

    Raises the decompressor's error (``EOFError``, ``OSError``...) for a damaged stream.
    """
    with open(path, "rb") as fh:
        head = fh.read(6)
        kind = next((k for k, magic in _MAGIC if head.startswith(magic)), "none")
        fh.seek(0)
        raw = _DECOMPRESS[kind](fh)
        block = raw.read(512)
    if len(block) < 512:
        return kind if kind != "none" and not block else None  # an empty compressed stream
    return kind if block[257:262] == b"ustar" or not block.strip(b"\0") else None


def is_tarball(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a (possibly compressed) tar archive, judged by its content."""
    try:
        return os.path.isfile(path) and tar_compression(path) is not None
    except READ_ERRORS:
        return False


def check_record(member: Path) -> Path:
    """Where an extracted member's check record is kept: beside it."""
    return member.with_name(member.name + ".check.json")


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK * 4):
            digest.update(chunk)
    return digest.hexdigest()


def record_check(path: Path, member) -> None:
    """Note the inode and change time of an extracted member whose bytes were just checked
    (a failure to write it only costs a digest at the next use)."""
    with contextlib.suppress(OSError):
        st = path.stat()
        record = {"ino": st.st_ino, "ctime_ns": st.st_ctime_ns, "size": st.st_size}
        check_record(path).write_text(json.dumps(record | {"digest": member.digest}))


def intact(path: Path, member) -> bool:
    """Whether the extracted copy of ``member`` at ``path`` holds the member's bytes: its size,
    then its inode and change time as recorded when its bytes were last checked; if those
    changed (the file was rewritten, or only touched), the digest of its bytes."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != member.size:
        return False
    try:
        record = json.loads(check_record(path).read_text())
    except (OSError, ValueError):
        record = None
    if (
        isinstance(record, dict)
        and record.get("digest") == member.digest
        and (record.get("ino"), record.get("ctime_ns"), record.get("size"))
        == (st.st_ino, st.st_ctime_ns, st.st_size)
    ):
        return True
    try:
        same = _file_digest(path) == member.digest
    except OSError:
        return False
    if same:
        record_check(path, member)
    return same


def clean_stale_dirs(folder: Path) -> None:
    """Remove the temporary index folders that killed processes left in ``folder``."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = PARTIAL_NAME.match(entry.name)
            if (
                match
                and not process_alive(int(match.group(1)))
                and entry.is_dir(follow_symlinks=False)
            ):
                shutil.rmtree(entry.path, ignore_errors=True)


def unwritable(folder: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"Cannot write in the cache folder {folder} ({exc.strerror or exc}): set the environment "
        f"variable {CACHE_ENV} to a folder you can write to (or pass cache_dir=)."
    )


class TarStream:
    """A tarball read as a stream of checked members, and the bound on its extracted members.

    A subclass sets ``path``, ``label`` (the name in messages), ``compression`` (from
    :func:`tar_compression`), ``progress`` (None or ``progress(done, total)``), ``passes`` (a
    count of reads), ``_identity`` (its second item the tarball's size), ``_root`` (the cache
    folder of every tarball's extracted ``members``) and ``max_cache_bytes`` (0: no bound).
    """

    path: Path
    label: str
    compression: str
    progress: object
    passes: int
    max_cache_bytes: int
    _identity: tuple
    _root: Path

    def _corrupt(self, exc: BaseException) -> SourceFormatError:
        return SourceFormatError(
            f"{self.path} is truncated or corrupt ({type(exc).__name__}: {exc}): download it again."
        )

    def _stream(self, stop_after: set[str] | None = None) -> Iterator[tuple[tarfile.TarInfo, IO]]:
        """Yield each member of the tarball with the open tar, checking it first.

        Without ``stop_after`` the compressed stream is read to its end, so a truncated file is
        detected even past the last member.
        """
        self.passes += 1
        packed = self._identity[1]
        total = 0
        try:
            fh = open(self.path, "rb")
        except OSError as exc:
            raise SourceFormatError(f"Cannot read {self.path} ({exc.strerror or exc}).") from None
        raw = _DECOMPRESS[self.compression](fh)
        try:
            tar = tarfile.open(fileobj=raw, mode="r|")
        except READ_ERRORS as exc:
            raw.close()
            fh.close()
            raise self._corrupt(exc) from None
        with fh, raw, tar:
            while True:
                try:
                    info = tar.next()
                except READ_ERRORS as exc:
                    raise self._corrupt(exc) from None
                self._report(fh.tell(), packed)
                if info is None:
                    break
                self._check(info)
                if info.isfile():
                    total += info.size
                    READ_LIMITS.check_tar_member(self.label, info.name, info.size, total, packed)
                yield info, tar
            if stop_after is None:
                try:
                    while raw.read(_CHUNK):
                        pass
                except READ_ERRORS as exc:
                    raise self._corrupt(exc) from None
                self._report(packed, packed)

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(min(done, total), total)

    def _check(self, info: tarfile.TarInfo) -> None:
        check_member_name(info.name, self.label)
        if info.isfile() or info.isdir():
            return
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            what = f"a {kind} link to {info.linkname!r}"
        else:
            what = "a device or FIFO"
        raise UnsafeArchiveError(
            f"{self.label} holds {info.name!r}, {what}: only regular files and folders are read "
            "from a tarball, so it was refused and nothing was extracted. Get the tarball again "
            "from Bgee (bgee.org), or re-pack it without links."
        )

    def _copy_member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path) -> str:
        """Write member ``info`` to ``dest``: read errors are the tarball's, write errors ours.
        Returns the digest of the bytes written."""
        digest = hashlib.blake2b(digest_size=16)
        try:
            src = tar.extractfile(info)
        except READ_ERRORS as exc:
            raise self._corrupt(exc) from None
        written = 0
        try:
            out = open(dest, "wb")
        except OSError as exc:
            raise unwritable(dest.parent, exc) from None
        with out:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except READ_ERRORS as exc:
                    raise self._corrupt(exc) from None
                if not chunk:
                    break
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise OutputError(
                        f"Could not write {info.name} of {self.label} to {dest.parent} "
                        f"({exc.strerror or exc}): check that the disk has room, or set "
                        f"{CACHE_ENV} to another folder."
                    ) from None
                written += len(chunk)
        if written != info.size:
            raise self._corrupt(EOFError(f"{info.name}: {written:,} of {info.size:,} bytes"))
        return digest.hexdigest()

    def _cached_members(self) -> list[tuple[float, int, Path]]:
        """``(last use, size, path)`` of every extracted member in the cache."""
        found = []
        with contextlib.suppress(OSError):
            for index in self._root.iterdir():
                folder = index / "members"
                if index.name.startswith(".") or not folder.is_dir():
                    continue
                for path in folder.rglob("*.h5ad"):
                    if path.name.startswith("."):
                        continue
                    with contextlib.suppress(OSError):
                        st = path.stat()
                        used = st.st_mtime
                        with contextlib.suppress(OSError):
                            used = max(used, check_record(path).stat().st_mtime)
                        found.append((used, st.st_size, path))
        return found

    def _evict(self, keep: set[Path], room: int) -> None:
        """Remove least recently used members until ``room`` more bytes fit under the bound."""
        if not self.max_cache_bytes:
            return
        cached = sorted(self._cached_members(), key=lambda c: c[0])
        total = sum(size for _, size, _ in cached)
        for _, size, path in cached:
            if total + room <= self.max_cache_bytes:
                break
            if path in keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
            with contextlib.suppress(OSError):
                check_record(path).unlink()
