"""Stores: the members of a download, read the same way from a zip, a tar file or a folder.

A refine.bio download is read the same way whether it is a zip or the folder it unzips to: a
:class:`Store` lists member names (POSIX, relative) and opens them. Zip member names that would
escape a target folder are refused when a zip is opened (see :mod:`.names`), and the sizes
checked against :data:`~refinewidgets.io.containers.limits.READ_LIMITS`, before anything is
read.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ...errors import (
    PathNotFoundError,
    SourceFormatError,
    UnsafeArchiveError,
)
from .deflate import inflate_member
from .limits import READ_LIMITS
from .names import check_member_name

__all__ = [
    "DirStore",
    "Store",
    "TAR_SUFFIXES",
    "TarStore",
    "ZipStore",
    "not_regular_file",
    "open_store",
]


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
