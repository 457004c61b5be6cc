"""File access shared by the readers and writers: zip or folder stores, safe names, atomic writes.

A refine.bio download is read the same way whether it is a zip or the folder it unzips to: a
:class:`Store` lists member names (POSIX, relative) and opens them. Zip member names that would
escape a target folder (``..`` parts, absolute paths, drive letters) are refused when a zip is
opened, before anything is read. Output files are written to a temporary file beside the target
and renamed into place, so an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
import pandas as pd

from ..errors import (
    OutputError,
    OutputExistsError,
    PathNotFoundError,
    RefineWidgetsError,
    SourceFormatError,
    UnsafeArchiveError,
)
from .deflate import inflate_member
from .matrix_tsv import format_matrix, parse_matrix, parse_matrix_blocks

__all__ = [
    "READ_LIMITS",
    "DirStore",
    "ReadLimits",
    "TarStore",
    "Store",
    "ZipStore",
    "atomic_output",
    "check_output",
    "clean_stale_partials",
    "check_member_name",
    "check_name_part",
    "matrix_header",
    "not_regular_file",
    "open_store",
    "read_matrix",
    "write_matrix",
]


def check_member_name(name: str, archive: str) -> None:
    """Refuse a member name that is absolute or climbs out of the archive's root.

    Examples
    --------
    >>> check_member_name("GSE1/GSE1.tsv", "x.zip")
    >>> check_member_name("../evil.sh", "x.zip")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.UnsafeArchiveError: x.zip holds an unsafe member name '../evil.sh' ...
    """
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    if (
        normalized.startswith("/")
        or ".." in parts
        or (len(normalized) > 1 and normalized[1] == ":")
    ):
        raise UnsafeArchiveError(
            f"{archive} holds an unsafe member name {name!r} (absolute, or with '..'): it could "
            "write outside its folder, so the archive was refused. Nothing was extracted. "
            "Get the download again from a trusted source."
        )


_UNSAFE_PART = ("/", "\\", "\x00", ":")


def check_name_part(name: str, what: str) -> None:
    """Refuse a name from data (a group key, an accession) that cannot be one part of a path.

    Examples
    --------
    >>> check_name_part("GSE1", "group key")
    >>> check_name_part("../x", "group key")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.SourceFormatError: The group key '../x' cannot name a file ...
    """
    text = str(name)
    if (
        not text
        or text in (".", "..")
        or text.startswith(".")
        or any(c in text for c in _UNSAFE_PART)
        or any(ord(c) < 32 for c in text)
    ):
        raise SourceFormatError(
            f"The {what} {text!r} cannot name a file in a download: it is empty, starts with "
            "'.', or holds '/', '\\', ':' or a control character. Rename it (accessions are "
            "letters, digits, '_' and '-') before writing."
        )


#: Bytes read at a time when a member is streamed.
_CHUNK = 1 << 22


class Store:
    """Members of a download, in a zip or a folder."""

    label: str
    names: list[str]

    def open(self, name: str) -> IO[bytes]:  # pragma: no cover - interface
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def first_line(self, name: str) -> str:
        with self.open(name) as fh:
            return fh.readline().decode("utf-8").rstrip("\r\n")

    def size(self, name: str) -> int | None:
        """The member's size in bytes once uncompressed, when the store knows it."""
        return None

    def chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes, a few MB at a time (the fastest way this store has)."""
        with self.open(name) as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    def close(self) -> None:
        pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class ReadLimits:
    """Caps on what an archive may expand to, checked before anything is read (zip bombs).

    A member (or the whole archive) above ``ratio_floor`` bytes once uncompressed may expand at
    most ``max_ratio`` times (refine.bio's matrices compress 3-10x; a zip bomb, 1,000x); the
    whole archive may hold at most ``max_bytes`` uncompressed. Override them with the
    environment variables ``REFINEWIDGETS_MAX_RATIO`` and ``REFINEWIDGETS_MAX_BYTES`` (0 turns a
    cap off), or by changing :data:`READ_LIMITS`.
    """

    max_ratio: float = 200.0
    max_bytes: int = 1 << 40  # 1 TiB: the largest refine.bio compendia are a few hundred GB
    ratio_floor: int = 1 << 24  # 16 MiB: smaller members cannot do harm, whatever their ratio

    @classmethod
    def from_environment(cls) -> ReadLimits:
        limits = cls()
        for name, attr, kind in (
            ("REFINEWIDGETS_MAX_RATIO", "max_ratio", float),
            ("REFINEWIDGETS_MAX_BYTES", "max_bytes", int),
        ):
            text = os.environ.get(name)
            if text:
                try:
                    setattr(limits, attr, kind(text))
                except ValueError:
                    raise SourceFormatError(
                        f"The environment variable {name}={text!r} is not a number."
                    ) from None
        return limits

    def check(self, label: str, members: list[tuple[str, int, int]]) -> None:
        """Check a zip's ``(name, uncompressed size, compressed size)`` of every member."""
        for name, size, stored in [*members, ("(the whole archive)", *_totals(members))]:
            self._ratio(label, name, size, stored)
        self._total(label, _totals(members)[0])

    def check_tar_member(self, label: str, name: str, size: int, total: int, packed: int) -> None:
        """Check one tar member (``size``) and the members so far (``total``) against the
        archive's size on disk (``packed``): a tar records no per-member compressed size."""
        self._ratio(label, name, size, packed)
        self._ratio(label, "(the whole archive)", total, packed)
        self._total(label, total)

    def _ratio(self, label: str, name: str, size: int, stored: int) -> None:
        ratio = size / max(stored, 1)
        if self.max_ratio and size > self.ratio_floor and ratio > self.max_ratio:
            raise UnsafeArchiveError(
                f"{label}: {name} would expand {ratio:,.0f} times ({stored:,} bytes to "
                f"{size:,}), above the cap of {self.max_ratio:,.0f}x: it looks like an archive "
                "bomb, so nothing was read. " + _OVERRIDE.format(var="REFINEWIDGETS_MAX_RATIO")
            )

    def _total(self, label: str, total: int) -> None:
        if self.max_bytes and total > self.max_bytes:
            raise UnsafeArchiveError(
                f"{label} would expand to {total:,} bytes, above the cap of {self.max_bytes:,}: "
                "nothing was read. " + _OVERRIDE.format(var="REFINEWIDGETS_MAX_BYTES")
            )


_OVERRIDE = (
    "If you trust this archive, raise the cap with the environment variable {var} (0 turns it off)."
)


def _totals(members: list[tuple[str, int, int]]) -> tuple[int, int]:
    return sum(m[1] for m in members), sum(m[2] for m in members)


#: The caps every archive is checked against (see :class:`ReadLimits`).
READ_LIMITS = ReadLimits.from_environment()


class ZipStore(Store):
    """A zip archive; member names and sizes are checked when it is opened."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = self.path.name
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SourceFormatError(
                f"{self.path} is not a readable zip file ({exc}): it may be truncated or corrupt; "
                "download it again."
            ) from None
        infos = [i for i in self._zip.infolist()]
        seen: set[str] = set()
        for info in infos:
            if "\x00" in info.orig_filename:  # zipfile cuts the name at the NUL
                raise UnsafeArchiveError(
                    f"{self.label} holds a member name with a NUL character "
                    f"({info.orig_filename!r}): zip tools read it as {info.filename!r} or "
                    "refuse it, so the archive was refused. Nothing was read. Get the download "
                    "again from a trusted source, or re-create the zip."
                )
            check_member_name(info.filename, self.label)
            if not info.is_dir():
                _check_once(info.filename.replace("\\", "/"), seen, self.label)
        READ_LIMITS.check(
            self.label,
            [(i.filename, i.file_size, i.compress_size) for i in infos if not i.is_dir()],
        )
        self.names = [i.filename.replace("\\", "/") for i in infos if not i.is_dir()]
        self._info = {n: i for n, i in zip(self.names, (i for i in infos if not i.is_dir()))}
        self._size = self.path.stat().st_size

    def _checked(self, name: str):
        """The member's entry; one whose data would run past the end of the file is refused
        before reading (``zipfile`` would first allocate its claimed compressed size)."""
        info = self._info.get(name, name)
        if (
            isinstance(info, zipfile.ZipInfo)
            and info.header_offset + info.compress_size > self._size
        ):
            raise SourceFormatError(
                f"{self.label}: {name} is damaged (its data, {info.compress_size:,} bytes, would "
                "run past the end of the archive); the zip is corrupt: download it again."
            )
        return info

    def open(self, name: str) -> IO[bytes]:
        info = self._checked(name)
        try:
            return _Guarded(self._zip.open(info), self.label, name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise SourceFormatError(
                f"{self.label}: cannot read {name} ({exc}); the zip may be corrupt."
            ) from None

    def size(self, name: str) -> int | None:
        info = self._info.get(name)
        return None if info is None else info.file_size

    def chunks(self, name: str) -> Iterator[bytes]:
        info = self._info.get(name)
        if info is not None:
            self._checked(name)
        fast = None if info is None else inflate_member(self.path, info, self.label)
        if fast is None:  # encrypted, another compression, or no such member: zipfile decides
            yield from super().chunks(name)
            return
        try:
            yield from fast
        except OSError as exc:
            raise SourceFormatError(
                f"{self.label}: cannot read {name} ({exc}); the zip may be corrupt."
            ) from None

    def read_bytes(self, name: str) -> bytes:
        info = self._checked(name)
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise SourceFormatError(
                f"{self.label}: cannot read {name} ({exc}); the zip may be corrupt."
            ) from None

    def close(self) -> None:
        self._zip.close()


def _check_once(name: str, seen: set[str], label: str) -> None:
    """Refuse a second member of one name: readers would take one of the two, unsaid."""
    if name in seen:
        raise UnsafeArchiveError(
            f"{label} holds two members named {name!r}: which one is meant is ambiguous (zip "
            "and tar tools take either), so the archive was refused. Re-create it with one "
            f"{name}."
        )
    seen.add(name)


class _Guarded(io.RawIOBase):
    """A zip member's stream whose damage (bad CRC, broken deflate data) reads as our error."""

    def __init__(self, raw: IO[bytes], label: str, name: str) -> None:
        self._raw, self._label, self._name = raw, label, name

    def _fail(self, exc: BaseException) -> SourceFormatError:
        return SourceFormatError(
            f"{self._label}: {self._name} is damaged ({exc}); the zip is corrupt: download it again."
        )

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise self._fail(exc) from None

    def readinto(self, buffer) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise self._fail(exc) from None
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return self._raw.readline(-1 if size is None else size)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        self._raw.close()
        super().close()


class TarStore(Store):
    """A tar archive (plain, or compressed with gzip, bzip2 or xz), checked as it is indexed.

    Headers are read one at a time and each is checked before the archive is read further: its
    name (no ``..``, no absolute path), its type (regular files and folders only: links and
    devices are refused) and the sizes against :data:`READ_LIMITS`, so a tar bomb is refused at
    the header of its first oversized member, before its data is inflated.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = self.path.name
        packed = self.path.stat().st_size
        try:
            self._tar = tarfile.open(self.path, "r:*")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise SourceFormatError(
                f"{self.path} is not a readable tar archive ({exc}): it may be truncated or "
                "corrupt; download it again."
            ) from None
        members: dict[str, tarfile.TarInfo] = {}
        seen: set[str] = set()
        total = 0
        try:
            while (info := self._tar.next()) is not None:
                check_member_name(info.name, self.label)
                if not (info.isfile() or info.isdir()):
                    raise UnsafeArchiveError(
                        f"{self.label} holds {info.name!r}, a link or special file: only regular "
                        "files and folders are read from an archive, so it was refused. Nothing "
                        "was extracted."
                    )
                if info.isfile():
                    _check_once(info.name.replace("\\", "/"), seen, self.label)
                    total += info.size
                    READ_LIMITS.check_tar_member(self.label, info.name, info.size, total, packed)
                    members[info.name.replace("\\", "/")] = info
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            self._tar.close()
            raise SourceFormatError(
                f"{self.label}: cannot read the archive's index ({exc}); it may be truncated or "
                "corrupt: download it again."
            ) from None
        except BaseException:
            self._tar.close()
            raise
        self._members = members
        self.names = list(members)

    def open(self, name: str) -> IO[bytes]:
        try:
            raw = self._tar.extractfile(self._members[name])
        except KeyError:
            raise SourceFormatError(f"{self.label} has no member {name}.") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise SourceFormatError(
                f"{self.label}: cannot read {name} ({exc}); the archive may be corrupt."
            ) from None
        return _Guarded(raw, self.label, name)

    def size(self, name: str) -> int | None:
        info = self._members.get(name)
        return None if info is None else info.size

    def close(self) -> None:
        self._tar.close()


class DirStore(Store):
    """An unzipped download folder; symbolic links that lead outside it are not followed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = self.path.name
        root = self.path.resolve()
        names = []
        #: Files left out: links that lead outside the folder, and pipes, sockets or devices.
        self.outside: list[str] = []
        self.special: list[str] = []
        for folder, dirs, files in os.walk(self.path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
            for f in files:
                full = Path(folder) / f
                if full.is_symlink() and not full.resolve().is_relative_to(root):
                    self.outside.append(full.relative_to(self.path).as_posix())
                    continue  # a link out of the download is not part of it
                if not full.is_file():  # a pipe or device would block its reader
                    self.special.append(full.relative_to(self.path).as_posix())
                    continue
                names.append(full.relative_to(self.path).as_posix())
        self.names = sorted(names)
        self._root = root

    def open(self, name: str) -> IO[bytes]:
        full = (self.path / name).resolve()
        if not full.is_relative_to(self._root):
            raise UnsafeArchiveError(
                f"{self.label}: {name} leads outside the folder; it was not read."
            )
        try:
            return open(full, "rb")
        except OSError as exc:
            raise SourceFormatError(
                f"{self.label}: cannot read {name} ({exc.strerror or exc})."
            ) from None

    def size(self, name: str) -> int | None:
        try:
            return (self.path / name).stat().st_size
        except OSError:
            return None


def not_regular_file(path: str | os.PathLike) -> str:
    """The message for a path that is neither a regular file nor a folder (a named pipe, a
    socket, a device): reading it could block forever, so it is never opened.

    Examples
    --------
    >>> not_regular_file("stuck.zip").split(":")[0]
    'stuck.zip is not a regular file (a named pipe, socket or device)'
    """
    return (
        f"{path} is not a regular file (a named pipe, socket or device): reading it could "
        "wait forever, so it was not opened. Give the path of the download file itself."
    )


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def open_store(path: str | os.PathLike) -> Store:
    """A :class:`DirStore` for a folder, a :class:`TarStore` for a tar file, else a
    :class:`ZipStore`."""
    path = Path(path)
    if path.is_dir():
        return DirStore(path)
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist: check the path.")
    if not path.is_file():
        raise SourceFormatError(not_regular_file(path))
    if path.name.lower().endswith(TAR_SUFFIXES):
        return TarStore(path)
    return ZipStore(path)


def _find_bad_value(store: Store, name: str, columns: list[str] | None) -> str:
    header = matrix_header(store, name)
    with store.open(name) as fh:
        fh.readline()
        wanted = set(columns) if columns is not None else set(header[1:])
        for lineno, raw in enumerate(fh, start=2):
            cells = raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            for col, cell in zip(header[1:], cells[1:]):
                if col not in wanted or cell.strip() in ("", "NA", "NaN", "nan"):
                    continue
                try:
                    float(cell)
                except ValueError:
                    return f"line {lineno}, column {col!r} (gene {cells[0]!r}): {cell!r}"
    return "an unparseable value"


def matrix_header(store: Store, name: str) -> list[str]:
    """The header cells of a matrix TSV: the gene column's name, then the sample accessions.

    A byte-order mark, surrounding whitespace and double quotes are removed from each name;
    the first cell may be empty (species compendia) or ``Gene``.
    """
    try:
        line = store.first_line(name)
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"{store.label}: the header of {name} is not UTF-8 text ({exc}); a matrix header "
            "holds 'Gene' and the sample accessions, tab-separated."
        ) from None
    cells = [c.strip().strip('"').strip() for c in line.lstrip("\ufeff").split("\t")]
    if len(cells) < 2 and not cells[0]:
        raise SourceFormatError(
            f"{store.label}: {name} is empty; expected a header 'Gene<TAB>sample...'."
        )
    seen: set[str] = set()
    for c in cells[1:]:
        if c in seen:
            raise SourceFormatError(
                f"{store.label}: {name} lists the sample {c!r} twice in its header: each "
                "column must be a different sample accession. Remove the duplicate column."
            )
        seen.add(c)
    return cells


def read_matrix(
    store: Store, name: str, columns: list[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """Read a refine.bio matrix TSV: ``(gene ids, sample columns, values samples x genes)``.

    Only ``columns`` (sample accessions) are parsed when given, each found by its name in the
    header. Empty cells, ``NA`` and ``NaN`` become NaN. A non-numeric value raises
    SourceFormatError naming the file, line and column. The text is inflated in one thread and
    parsed in batches of rows straight into the returned array (see
    :mod:`refinewidgets.io.matrix_tsv`).
    """
    header = matrix_header(store, name)
    position = {c: i for i, c in enumerate(header) if i}
    samples = header[1:] if columns is None else list(columns)
    missing = [s for s in samples if s not in position]
    if missing:
        raise SourceFormatError(
            f"{store.label}: {name} has no column for {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}."
        )
    genes, X = parse_matrix(
        lambda: store.chunks(name),
        header,
        [position[s] for s in samples],
        size=store.size(name),
        label=store.label,
        name=name,
        bad_value=lambda: _find_bad_value(store, name, samples),
    )
    empty = np.flatnonzero(pd.Series(np.asarray(genes, dtype=object)).astype(str).str.strip() == "")
    if empty.size:
        raise SourceFormatError(
            f"{store.label}: {name} has {empty.size} row(s) without a gene id (the first on line "
            f"{empty[0] + 2}): their values cannot be joined with other samples' genes. Fill in "
            "the gene ids or remove those rows."
        )
    return genes, samples, X


def read_matrix_blocks(store: Store, name: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every sample of a matrix TSV as consecutive blocks of genes: ``(gene ids, values
    samples x genes)``, the samples in the header's order; memory stays bounded whatever the
    member's size (see :func:`~refinewidgets.io.matrix_tsv.parse_matrix_blocks`). Errors as
    :func:`read_matrix`.
    """
    header = matrix_header(store, name)
    return parse_matrix_blocks(
        lambda: store.chunks(name),
        header,
        list(range(1, len(header))),
        size=store.size(name),
        label=store.label,
        name=name,
        bad_value=lambda: _find_bad_value(store, name, None),
    )


def write_matrix(
    fh: IO[bytes],
    genes: list[str] | np.ndarray,
    samples: list[str],
    X: np.ndarray,
    *,
    float32: bool = False,
) -> None:
    """Write a samples x genes array as refine.bio's genes x samples TSV (``Gene`` header).

    Each value is written as the shortest text that parses back to the same float64 (pandas'
    ``repr`` of it may differ in form, e.g. ``1e+20`` against ``1e20``, never in value); NaN is
    an empty cell. ``float32=True`` rounds the values to float32 first and writes the shortest
    text of the float32 (about 7 significant digits, a smaller file): parsed as float32, it
    gives exactly the rounded value.

    A tab, line break or NUL inside a gene id or sample name would shift every column after
    it, so such a name is refused.
    """
    for what, names in (("sample name", samples), ("gene id", genes)):
        text = pd.Series(np.asarray(names, dtype=object).astype(str))
        bad = text.str.contains(r"[\t\r\n\x00]", regex=True)
        if bad.any():
            raise SourceFormatError(
                f"The {what} {text[bad].iloc[0]!r} holds a tab, a line break or a NUL character: "
                "it cannot be written to a tab-separated matrix. Rename it."
            )
    fh.write(("Gene\t" + "\t".join(samples) + "\n").encode("utf-8"))
    if len(genes) == 0 or len(samples) == 0:
        if len(genes):
            fh.write(("\n".join(map(str, genes)) + "\n").encode("utf-8"))
        return
    format_matrix(
        fh.write, np.asarray(genes, dtype=object).astype(str), samples, X, float32=float32
    )


_PARTIAL = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.partial$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def clean_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that a killed writer left in ``folder``; returns them.

    Our temporary files are named ``.<target>.<pid>.<random>.partial``; one whose process no
    longer runs can never be completed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match and not _alive(int(match.group(1))) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(
        f"{path} exists; choose another name or pass overwrite=True to replace it."
    )


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output path before any work is done: a folder, an existing file (unless
    ``overwrite``), a missing or unwritable folder. Returns the path.

    `atomic_output` runs the same checks; call this first when the work before writing is long
    (a build), so a bad name fails at once.

    Examples
    --------
    >>> check_output("/no/such/folder/out.zip")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.PathNotFoundError: The folder /no/such/folder does not exist; create it first.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(
            f"{path} is a folder; give a file name such as {path / 'dataset.zip'}."
        )
    if os.path.lexists(path) and not overwrite:
        raise _exists_error(path)
    parent = path.parent
    if not parent.exists():
        raise PathNotFoundError(f"The folder {parent} does not exist; create it first.")
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder: choose a folder to write into.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write in {parent} (permission denied): choose a folder you can write to."
        )
    return path


#: Temporary files being written now, removed if a signal ends the process (see
#: :func:`_signals_remove_partials`).
_WRITING: set[Path] = set()
_WRITING_LOCK = threading.RLock()  # re-entrant: the handler may run inside it
#: Signals whose default action ends the process without running ``finally`` blocks.
_ENDING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _remove_partials_and_end(signum: int, frame) -> None:
    """Remove the temporary files being written, then end the process by the same signal (its
    default action: the exit status still says "terminated by SIGTERM")."""
    with _WRITING_LOCK:
        for tmp in list(_WRITING):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _WRITING.clear()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _signals_remove_partials(tmp: Path) -> Iterator[None]:
    """While ``tmp`` is written, SIGTERM and SIGHUP remove it before the process ends.

    Only signals left at their default action are handled (a server's or the user's own
    handler is kept), and only from the main thread, where Python runs signal handlers; a
    write in another thread is still covered when the main thread installed the handler, and
    the next write to the folder removes what a killed writer left (:func:`clean_stale_partials`).
    """
    installed = []
    with _WRITING_LOCK:
        _WRITING.add(tmp)
        if threading.current_thread() is threading.main_thread():
            for signum in _ENDING_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    signal.signal(signum, _remove_partials_and_end)
                    installed.append(signum)
    try:
        yield
    finally:
        with _WRITING_LOCK:
            _WRITING.discard(tmp)
            for signum in installed:
                if signal.getsignal(signum) is _remove_partials_and_end:
                    signal.signal(signum, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Without ``overwrite`` the file is claimed atomically (a hard link, which fails if the name
    exists), so of two writers racing for one name exactly one succeeds and the other gets
    OutputExistsError. The temporary file is removed on every exit path, SIGTERM and SIGHUP
    included (the process then ends by that signal, as it would have), and those of writers
    killed otherwise (SIGKILL, a crash) are cleaned up by the next write to the folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = check_output(path, overwrite=overwrite)  # early; the claim below is the real check
    clean_stale_partials(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent
        )
    except OSError as exc:
        raise OutputError(
            f"Cannot write in {path.parent} ({exc.strerror or exc}): choose a folder you can "
            "write to."
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    signals = _signals_remove_partials(tmp)
    signals.__enter__()
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        if overwrite:
            os.replace(tmp, path)
        else:
            _claim(tmp, path)
    except OSError as exc:
        if isinstance(exc, RefineWidgetsError):
            raise
        raise OutputError(
            f"Could not write {path} ({exc.strerror or exc}); nothing was written. Check that "
            "the disk has room and the folder is writable."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        signals.__exit__(None, None, None)


def _claim(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:
        pass  # a file system without hard links: claim the name, then replace it
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        raise _exists_error(path) from None
    os.replace(tmp, path)
