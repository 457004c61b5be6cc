"""Fast deflate for zip members: ISA-L (python-isal) instead of zlib, same format.

Reading: :func:`inflate_member` streams one member of a zip file, inflated with
``isal.isal_zlib`` (about twice zlib's speed), checking what :mod:`zipfile` checks (the local
header's signature, the declared size and the CRC-32). Writing: :func:`fast_deflate` gives a
member opened with ``ZipFile.open(name, "w")`` an ISA-L compressor; the member stays plain
deflate, so every zip reader (Python's ``zipfile``, the ``unzip`` command, R's ``unzip``) reads it.

Examples
--------
>>> import io, zipfile
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
...     with zf.open("a.txt", "w") as fh:
...         _ = fast_deflate(fh)
...         _ = fh.write(b"hello " * 1000)
>>> zipfile.ZipFile(buf).read("a.txt") == b"hello " * 1000
True
"""

from __future__ import annotations

import struct
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from isal import isal_zlib

from ...core.threads import thread_count
from ...errors import SourceFormatError

__all__ = ["DEFLATE_LEVEL", "fast_deflate", "inflate_member"]

#: ISA-L's level for written members. Measured here on a 344 MiB matrix text: zlib level 1 gave
#: 174 MiB in 3.9 s; ISA-L levels 1, 2 and 3 gave 169, 167 and 165 MiB in about 2.0, 1.8 and
#: 1.5 s. ``benchmarks/bench_build.py`` prints the time and both sizes of each run.
DEFLATE_LEVEL = 3
#: Compressed bytes read at a time, and the most inflated bytes one call may return.
_READ = 1 << 18
_OUT = 1 << 21
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


def fast_deflate(member, *, threads: int | None = None) -> bool:
    """Swap the zlib compressor of a zip member being written for ISA-L's; True when done.

    ``member`` is what ``ZipFile.open(name, "w")`` returned, before anything was written to it.
    With more than one thread (default: :func:`~refinewidgets.core.threads.thread_count`),
    each ``write`` to the member is deflated on its own thread while the next is prepared, as
    pigz does: every piece ends on a byte boundary (a sync flush) and the last one closes the
    stream, so the member is one ordinary deflate stream. A stored (uncompressed) member, or a
    Python whose ``zipfile`` keeps its compressor elsewhere, is left as it is (zlib), so the
    call is always safe.
    """
    compressor = getattr(member, "_compressor", None)
    if compressor is None or getattr(member, "_compress_size", 1) != 0:
        return False
    if (
        getattr(member, "_zinfo", None) is None
        or member._zinfo.compress_type != zipfile.ZIP_DEFLATED
    ):
        return False
    workers = thread_count(threads)
    if workers > 1:
        member._compressor = _ParallelDeflate(workers)
        if type(member) is zipfile._ZipWriteFile and hasattr(member, "_crc"):
            # the CRC-32 too is computed on the deflating threads (ISA-L's, about 3x zlib's)
            member._compressor.member = member
            member.__class__ = _CrcOnThreadsWriteFile
    else:
        member._compressor = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
    return True


def _deflate_piece(data: bytes) -> tuple[bytes, int, int]:
    """``(the deflated piece, its input's CRC-32, its input's length)``."""
    piece = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
    return (
        piece.compress(data) + piece.flush(isal_zlib.Z_SYNC_FLUSH),
        isal_zlib.crc32(data),
        len(data),
    )


class _CrcOnThreadsWriteFile(zipfile._ZipWriteFile):
    """A member being written whose CRC-32 its :class:`_ParallelDeflate` keeps: ``write`` is
    ``zipfile``'s without the CRC (zlib's, in the writing thread); the compressor sets the
    member's CRC as its pieces come back, in order, so it is complete when ``close`` (after the
    compressor's ``flush``) writes it into the headers."""

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if not isinstance(data, (bytes, bytearray)):
            data = memoryview(data).cast("B")
        nbytes = len(data)
        self._file_size += nbytes
        out = self._compressor.compress(data)
        self._compress_size += len(out)
        self._fileobj.write(out)
        return nbytes


class _ParallelDeflate:
    """What ``zipfile`` expects of a compressor (``compress``, ``flush``), deflating each piece
    written on a pool of threads; pieces come back in order, at most ``workers`` in flight."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="refinewidgets-deflate")
        self._pending: deque[Future] = deque()
        self._limit = workers
        self.member = None  # a _CrcOnThreadsWriteFile: its CRC is kept here
        self._crc = 0

    def _take(self, future: Future) -> bytes:
        out, crc, length = future.result()
        if self.member is not None:
            self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
            self.member._crc = self._crc
        return out

    def compress(self, data) -> bytes:
        self._pending.append(self._pool.submit(_deflate_piece, bytes(data)))
        done = []
        while self._pending and (self._pending[0].done() or len(self._pending) > self._limit):
            done.append(self._take(self._pending.popleft()))
        return b"".join(done)

    def flush(self, mode: int = isal_zlib.Z_FINISH) -> bytes:
        try:
            done = [self._take(future) for future in self._pending]
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
        last = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15).flush(mode)
        return b"".join(done) + last


def inflate_member(path: Path, info: zipfile.ZipInfo, label: str) -> Iterator[bytes] | None:
    """The inflated bytes of one zip member, chunk by chunk, or None when this reader cannot
    take it (encrypted, or compressed with something else than deflate): use ``zipfile``.

    Damage (a bad local header, a truncated or corrupt deflate stream, a size or CRC-32 that
    differs from the central directory's) raises SourceFormatError naming the member.
    """
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    return _inflate(path, info, label)


def _damaged(label: str, name: str, why: str) -> SourceFormatError:
    return SourceFormatError(
        f"{label}: {name} is damaged ({why}); the zip is corrupt: download it again."
    )


def _pieces(fh, left: int, inflater, label: str, name: str) -> Iterator[bytes]:
    """The member's bytes as they come: ``left`` compressed bytes read from ``fh`` and inflated
    (``inflater`` None: stored), at most ``_OUT`` bytes a piece."""
    while left > 0:
        raw = fh.read(min(_READ, left))
        if not raw:
            raise _damaged(label, name, "the compressed data is cut off")
        left -= len(raw)
        if inflater is None:
            yield raw
            continue
        while raw:
            try:
                data = inflater.decompress(raw, _OUT)
            except isal_zlib.error as exc:
                raise _damaged(label, name, f"invalid deflate data: {exc}") from None
            raw = inflater.unconsumed_tail
            if data:
                yield data
            if inflater.eof:
                return
    # all the input is in, but an output held back by the _OUT limit may remain (a member
    # compressing more than _OUT / _READ = 8 to 1 in its last read)
    while inflater is not None and not inflater.eof:
        try:
            data = inflater.decompress(b"", _OUT)
        except isal_zlib.error as exc:
            raise _damaged(label, name, f"invalid deflate data: {exc}") from None
        if not data:
            return
        yield data


def _inflate(path: Path, info: zipfile.ZipInfo, label: str) -> Iterator[bytes]:
    name = info.filename
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL_HEADER.size)
        if len(head) < _LOCAL_HEADER.size:
            raise _damaged(label, name, "the member's header is cut off")
        signature, name_len, extra_len = _LOCAL_HEADER.unpack(head)
        if signature != b"PK\x03\x04":
            raise _damaged(label, name, "bad magic number for its header")
        fh.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        inflater = (
            isal_zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        )
        size, crc = 0, 0
        for data in _pieces(fh, info.compress_size, inflater, label, name):
            size += len(data)
            if size > info.file_size:
                raise _damaged(label, name, "more data than its declared size")
            crc = isal_zlib.crc32(data, crc)
            yield data
        if inflater is not None and not inflater.eof:
            raise _damaged(label, name, "the deflate stream ends early")
        if size != info.file_size:
            raise _damaged(label, name, f"{size:,} bytes instead of {info.file_size:,}")
        if crc != info.CRC:
            raise _damaged(label, name, f"bad CRC-32 for file {name!r}")
