"""What a downloaded file must look like before the cache calls it complete.

A size and a checksum say the bytes are the ones the server meant; they say nothing when the
server announced neither (Bgee publishes ``.md5`` files for some files only) or when it served
the wrong thing whole (an HTML error page with status 200). So every download is also checked
by its kind, read from its name:

- ``.zip``: the central directory is found and read (``zipfile``), and lists at least one member;
- ``.tar.gz`` / ``.tgz``: the gzip stream is read to its end (its CRC and length checked) and the
  tar stream inside it walked member by member;
- ``.gz``: the gzip stream is read to its end;
- ``.h5ad`` / ``.h5``: the HDF5 signature is at one of the offsets HDF5 allows (0, 512, 1024,
  2048, ...; the HDF5 file format specification, "Format Signature");
- anything else: it must not be an HTML page.

Every kind is also refused when it starts like an HTML page, with a message that says so.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

__all__ = ["check_structure", "kind_of"]

_HDF5 = b"\x89HDF\r\n\x1a\n"
_CHUNK = 1 << 20


def kind_of(name: str) -> str:
    """The kind of file a name promises: ``zip``, ``tar.gz``, ``gzip``, ``hdf5`` or ``other``.

    Examples
    --------
    >>> kind_of("Homo_sapiens_droplet_based_h5ad.tar.gz"), kind_of("GSE1.zip")
    ('tar.gz', 'zip')
    """
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if low.endswith(".gz"):
        return "gzip"
    if low.endswith((".h5ad", ".h5", ".hdf5")):
        return "hdf5"
    return "other"


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def check_structure(path: str | os.PathLike, name: str | None = None) -> str | None:
    """None when ``path`` has the structure its name (or ``name``) promises, else what is wrong.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.zip"
    >>> _ = p.write_bytes(b"<!DOCTYPE html><html><body>Service down</body></html>")
    >>> check_structure(p)
    'it is an HTML page (a web page), not a zip archive'
    """
    path = Path(path)
    kind = kind_of(name or path.name)
    with open(path, "rb") as f:
        head = f.read(4096)
    label = {
        "zip": "a zip archive",
        "tar.gz": "a gzip-compressed tar archive",
        "gzip": "a gzip file",
        "hdf5": "an HDF5 (H5AD) file",
        "other": "the file expected",
    }[kind]
    if _looks_like_html(head):
        return f"it is an HTML page (a web page), not {label}"
    if kind == "zip":
        return _check_zip(path)
    if kind == "tar.gz":
        return _check_tar_gz(path)
    if kind == "gzip":
        return _check_gzip(path)
    if kind == "hdf5":
        return _check_hdf5(path)
    return None


def _check_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            if not z.infolist():
                return "the zip archive is empty"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        return f"it is not a readable zip archive ({exc})"
    return None


def _check_gzip(path: Path) -> str | None:
    try:
        with gzip.open(path, "rb") as g:
            while g.read(_CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"its gzip stream cannot be read to the end ({exc})"
    return None


def _check_tar_gz(path: Path) -> str | None:
    try:
        with gzip.open(path, "rb") as g:
            with tarfile.open(fileobj=g, mode="r|") as tar:
                members = sum(1 for _ in tar)
            while g.read(_CHUNK):  # the rest of the gzip stream, to check its CRC and length
                pass
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        return f"its gzip/tar stream cannot be read to the end ({exc})"
    if not members:
        return "the tar archive holds no file"
    return None


def _check_hdf5(path: Path) -> str | None:
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as f:
        while offset + len(_HDF5) <= size:
            f.seek(offset)
            if f.read(len(_HDF5)) == _HDF5:
                return None
            offset = 512 if offset == 0 else offset * 2
    return "it does not carry the HDF5 signature (it is not an HDF5/H5AD file)"
