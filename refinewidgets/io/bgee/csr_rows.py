"""Read chosen rows of a CSR matrix stored in HDF5, in few reads and straight into the result.

A CSR matrix on disk is three 1-d datasets (``data``, ``indices``, ``indptr``); the stored
values of row ``r`` are ``data[indptr[r]:indptr[r + 1]]``. :func:`read_csr_rows` reads the
values of the rows asked for, and only these rows' values reach the result:

1. Rows next to each other on disk are one *run* (their values are contiguous).
2. Runs are split at *windows* (``window`` values, whole HDF5 chunks when the data is chunked),
   so that no read is larger than a window: temporary memory stays bounded whatever the
   selection.
3. Runs of one window separated by at most ``gap`` values not asked for are read together, in
   one call per dataset: a call to HDF5 costs about as much as copying tens of thousands of
   values (measured by ``benchmarks/bench_single_cell.py``), and in a compressed file the
   skipped values share chunks that are decompressed anyway.
4. Each read's values go to their place in the result arrays, which are allocated once at
   their final size (``float32`` values; ``int32`` column indices when the columns allow): a
   read that keeps all it reads goes straight there, the others through two small buffers
   reused by every read.
5. Where the values are plain bytes in the file (uncompressed, unfiltered, native byte order:
   what anndata writes without ``compression=``), :class:`FileArray` reads them with
   ``os.preadv`` instead of HDF5: a read costs about 2 us instead of 15, so reads skip gaps
   of a few thousand values and read little more than the asked values (measured on 20,000
   scattered cells of 200,000: 0.09 s against 0.23 s through HDF5).

Damaged ``indices`` (outside ``[0, n_columns)``) raise :class:`DamagedIndicesError` (an
``IndexError``); the caller turns it into its own error. ``indptr`` is the caller's to check.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator

import h5py
import numpy as np
import scipy.sparse as sp

__all__ = [
    "DamagedIndicesError",
    "FileArray",
    "ReadPlan",
    "plan_reads",
    "read_csr_rows",
    "read_gap",
    "read_window",
    "without_chunk_cache",
]

#: Values skipped rather than starting a new read, for uncompressed data: one HDF5 read call
#: (about 12 us) costs about as much as copying 30,000 values of each array.
GAP_UNCOMPRESSED = 1 << 15
#: Most values read in one call (bounds the two reused buffers: 2 MB for float32 + int32).
WINDOW = 1 << 18
#: A read of runs shorter than this (on average) gathers their values with one ``take``
#: instead of a copy per run.
SHORT_RUN = 64
#: Values skipped rather than starting a new read, for :class:`FileArray`: a file read
#: (``os.preadv``) costs about 2 us, as much as copying a few thousand values.
GAP_FILE = 1 << 12


class DamagedIndicesError(IndexError):
    """A stored column index is outside the matrix's columns (a damaged file)."""


def _chunk(dataset) -> int | None:
    chunks = getattr(dataset, "chunks", None)
    return int(chunks[0]) if chunks else None


def _compressed(dataset) -> bool:
    """Whether the values pass through filters (compression, shuffle...) on their way out."""
    if isinstance(dataset, h5py.Dataset):
        return dataset.id.get_create_plist().get_nfilters() > 0
    return False


def without_chunk_cache(dataset):
    """``dataset`` (an HDF5 dataset) opened again with no chunk cache; anything else as is.

    With compressed data a plan reads each chunk once (reads are whole chunks apart, see
    :func:`read_gap` and :func:`read_window`); uncompressed chunks are read in part straight
    from the file. A cache would only copy every value once more, and keep up to its size
    (h5py's default: 8 MB a dataset) after the read (measured: 16 MB left for X's two arrays)."""
    if not isinstance(dataset, h5py.Dataset):
        return dataset
    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    access.set_chunk_cache(521, 0, 1.0)
    return h5py.Dataset(h5py.h5d.open(dataset.file.id, dataset.name.encode(), dapl=access))


class FileArray:
    """A 1-d HDF5 dataset stored as plain bytes in its file (uncompressed, unfiltered, native
    byte order; contiguous or in chunks), read with ``os.preadv`` straight into the
    destination, without HDF5: about 2 us a read against 15 us through HDF5, so only the asked
    values need reading (measured by ``benchmarks/bench_single_cell.py``).

    Use :meth:`of` (None when the dataset is not stored that way), then read inside
    ``with array.open() as opened:``.
    """

    def __init__(self, path, dtype, size: int, addresses: np.ndarray, chunk: int | None):
        self.path, self.dtype, self.shape = str(path), np.dtype(dtype), (int(size),)
        self.addresses, self.chunk = addresses, chunk
        self.chunks = (chunk,) if chunk else None
        self._fd: int | None = None

    @classmethod
    def of(cls, dataset) -> FileArray | None:
        """The dataset's values as a :class:`FileArray`, or None when they are not plain bytes
        in one local file (compressed or filtered, external, virtual, user block, another
        driver, foreign byte order, chunks never written, or no ``os.preadv``)."""
        try:
            return cls._of(dataset)
        except (AttributeError, OSError, RuntimeError, ValueError, TypeError, KeyError):
            return None  # an h5py or HDF5 without what is needed: HDF5 reads it

    @classmethod
    def _of(cls, dataset) -> FileArray | None:
        if not isinstance(dataset, h5py.Dataset) or not hasattr(os, "preadv"):
            return None
        file, dtype = dataset.file, dataset.dtype
        if dataset.ndim != 1 or file.driver != "sec2" or file.userblock_size:
            return None
        if dtype.kind not in "iuf" or not dtype.isnative:
            return None
        plist = dataset.id.get_create_plist()
        if plist.get_nfilters() or plist.get_external_count():
            return None
        n, itemsize = dataset.shape[0], dtype.itemsize
        if plist.get_layout() == h5py.h5d.CONTIGUOUS:
            offset = dataset.id.get_offset()
            if offset is None:  # nothing written yet
                return None
            addresses, chunk, ends = np.array([offset], dtype=np.int64), None, offset + n * itemsize
        elif plist.get_layout() == h5py.h5d.CHUNKED:
            chunk = int(dataset.chunks[0])
            count = -(-n // chunk)
            if dataset.id.get_num_chunks() != count:
                return None
            addresses = np.full(count, -1, dtype=np.int64)
            sizes = np.zeros(count, dtype=np.int64)

            def record(info) -> None:
                k = info.chunk_offset[0] // chunk
                addresses[k], sizes[k] = info.byte_offset, info.size

            dataset.id.chunk_iter(record)
            if (addresses < 0).any() or (sizes != chunk * itemsize).any():
                return None
            ends = int((addresses + sizes).max()) if count else 0
        else:
            return None
        path = os.fspath(file.filename)
        if ends > os.stat(path).st_size:
            return None
        return cls(path, dtype, n, addresses, chunk)

    @contextlib.contextmanager
    def open(self) -> Iterator[FileArray]:
        """This array with its file open, to :meth:`read` (a handle of its own each time, so
        that reads in several threads never share one)."""
        opened = copy.copy(self)
        opened._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            yield opened
        finally:
            os.close(opened._fd)

    def read(self, begin: int, end: int, out: np.ndarray) -> None:
        """Values ``begin:end`` into ``out`` (contiguous, this array's dtype)."""
        if self._fd is None:
            raise ValueError("a FileArray is read inside 'with array.open() as opened:'")
        raw = memoryview(out).cast("B")
        size = self.dtype.itemsize
        pos = begin
        while pos < end:
            if self.chunk:
                k, within = divmod(pos, self.chunk)
                stop = min(end, (k + 1) * self.chunk)
            else:
                k, within, stop = 0, pos, end
            want = (stop - pos) * size
            got = os.preadv(
                self._fd,
                [raw[(pos - begin) * size : (stop - begin) * size]],
                int(self.addresses[k]) + within * size,
            )
            if got != want:
                raise OSError(f"{self.path} ended early: {got} of {want} bytes read")
            pos = stop


def read_gap(*datasets) -> int:
    """Values to skip rather than start a new read, for these stored arrays.

    :class:`FileArray`: :data:`GAP_FILE`. Uncompressed: :data:`GAP_UNCOMPRESSED`. Compressed: less than a chunk (the smallest of the
    arrays'), so that a skipped stretch never holds a whole chunk that would have been left
    undecompressed; but at least 4,096 values (a read call costs more than that).

    >>> read_gap(np.zeros(10))
    32768
    """
    if all(isinstance(d, FileArray) for d in datasets):
        return GAP_FILE
    if not any(_compressed(d) for d in datasets):
        return GAP_UNCOMPRESSED
    chunks = [c for c in map(_chunk, datasets) if c]
    return max(4096, min(chunks)) if chunks else 4096


def read_window(*datasets) -> int:
    """Most values per read: :data:`WINDOW`, rounded to whole chunks of the arrays'
    largest chunk (so that no chunk is split between two reads and decompressed twice).

    >>> read_window(np.zeros(10))
    262144
    """
    chunks = [c for c in map(_chunk, datasets) if c]
    if not chunks:
        return WINDOW
    chunk = max(chunks)
    return chunk * max(1, WINDOW // chunk)


class ReadPlan:
    """Where the values of the selected rows are on disk and in the result.

    Attributes
    ----------
    starts, stops
        Pieces of the stored arrays to keep (``[start, stop)``), in order.
    out
        Where each piece starts in the result.
    reads
        Boundaries of the reads: read ``k`` covers pieces ``reads[k]:reads[k + 1]``, i.e. the
        stored values ``starts[reads[k]]:stops[reads[k + 1] - 1]``.
    indptr
        The ``indptr`` of the result (``int64``).
    """

    __slots__ = ("indptr", "out", "reads", "starts", "stops")

    def __init__(self, starts, stops, out, reads, indptr) -> None:
        self.starts, self.stops, self.out, self.reads, self.indptr = (
            starts,
            stops,
            out,
            reads,
            indptr,
        )

    @property
    def n_reads(self) -> int:
        """Number of read calls (per dataset)."""
        return max(0, len(self.reads) - 1)

    @property
    def values_read(self) -> int:
        """Stored values read (per dataset), the skipped ones inside reads included."""
        first, last = self.reads[:-1], self.reads[1:] - 1
        return int((self.stops[last] - self.starts[first]).sum()) if self.n_reads else 0


def plan_reads(
    indptr: np.ndarray, rows: np.ndarray, *, gap: int = GAP_UNCOMPRESSED, window: int = WINDOW
) -> ReadPlan:
    """Plan the reads of ``rows`` (sorted, unique positions) of a CSR matrix with ``indptr``.

    Examples
    --------
    >>> indptr = np.array([0, 2, 5, 5, 9, 10])
    >>> plan = plan_reads(indptr, np.array([0, 1, 3]), gap=0)  # row 2 is empty: one run
    >>> plan.starts.tolist(), plan.stops.tolist(), plan.n_reads, plan.indptr.tolist()
    ([0], [9], 1, [0, 2, 5, 9])
    >>> plan = plan_reads(indptr, np.array([0, 4]), gap=0)  # 7 values apart: two reads
    >>> plan.starts.tolist(), plan.stops.tolist(), plan.n_reads
    ([0, 9], [2, 10], 2)
    >>> plan_reads(indptr, np.array([0, 4]), gap=7).n_reads  # or one, skipping them
    1
    """
    if window < 1 or gap < 0:
        raise ValueError(f"need window >= 1 and gap >= 0, got window={window}, gap={gap}")
    begin, end = indptr[rows], indptr[rows + 1]
    lengths = end - begin
    out_ptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    keep = lengths > 0
    begin, end, out = begin[keep], end[keep], out_ptr[:-1][keep]
    if begin.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ReadPlan(empty, empty, empty, np.zeros(1, dtype=np.int64), out_ptr)
    # runs: selected rows one after the other on disk
    new_run = np.ones(begin.size, dtype=bool)
    new_run[1:] = begin[1:] != end[:-1]
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], begin.size) - 1
    run_start, run_stop, run_out = begin[first], end[last], out[first]
    # pieces: runs cut at window boundaries (a read never exceeds a window)
    cuts = (run_stop - 1) // window - run_start // window  # boundaries inside each run
    if cuts.any():
        n_pieces = cuts + 1
        run = np.repeat(np.arange(run_start.size), n_pieces)
        k = np.arange(run.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
        window_start = (run_start[run] // window + k) * window
        starts = np.maximum(run_start[run], window_start)
        stops = np.minimum(run_stop[run], window_start + window)
        pieces_out = run_out[run] + (starts - run_start[run])
    else:
        starts, stops, pieces_out = run_start, run_stop, run_out
    # reads: pieces of one window with small gaps between them
    new = np.ones(starts.size, dtype=bool)
    new[1:] = (starts[1:] - stops[:-1] > gap) | (starts[1:] // window != starts[:-1] // window)
    reads = np.append(np.flatnonzero(new), starts.size)
    return ReadPlan(
        np.asarray(starts, dtype=np.int64),
        np.asarray(stops, dtype=np.int64),
        np.asarray(pieces_out, dtype=np.int64),
        reads,
        out_ptr,
    )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start ``s`` and length ``n``."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def _reader(stored) -> Callable[[int, int, np.ndarray], None]:
    """``read(begin, end, out)``: ``stored[begin:end]`` into the contiguous array ``out``.

    For an HDF5 dataset this is HDF5's own read into ``out`` (no temporary array; about 15 us
    a call, measured); a :class:`FileArray` reads its file; anything else is sliced."""
    if isinstance(stored, FileArray):
        return stored.read
    if isinstance(stored, h5py.Dataset):
        dataset_id, space = stored.id, stored.id.get_space()

        def read(begin: int, end: int, out: np.ndarray) -> None:
            space.select_hyperslab((begin,), (end - begin,))
            dataset_id.read(h5py.h5s.create_simple((end - begin,)), space, out)

        return read

    def read_sliced(begin: int, end: int, out: np.ndarray) -> None:
        out[...] = stored[begin:end]

    return read_sliced


def read_csr_rows(
    data,
    indices,
    indptr: np.ndarray,
    rows: np.ndarray,
    n_columns: int,
    *,
    gap: int = GAP_UNCOMPRESSED,
    window: int = WINDOW,
    columns: str = "columns",
    plan: ReadPlan | None = None,
) -> sp.csr_matrix:
    """The rows ``rows`` (sorted, unique positions) of a stored CSR matrix, as ``float32`` CSR.

    Parameters
    ----------
    data, indices
        The stored ``data`` and ``indices`` (HDF5 datasets, or arrays).
    indptr
        The stored ``indptr``, in memory and already checked.
    rows
        Sorted, unique row positions.
    n_columns
        Number of columns: every stored column index must be below it.
    gap, window
        See the module docstring; :func:`read_csr_rows` is exact whatever they are.
    columns
        What the columns are, for the error message (``"genes"``).
    plan
        The :func:`plan_reads` of these rows, when the caller made it (``gap`` and ``window``
        are then unused).

    Raises
    ------
    DamagedIndicesError
        A stored column index is outside ``[0, n_columns)``.

    Examples
    --------
    >>> stored = sp.csr_matrix(np.arange(12, dtype=np.float32).reshape(4, 3))
    >>> m = read_csr_rows(stored.data, stored.indices, stored.indptr, np.array([1, 3]), 3)
    >>> m.toarray().tolist()
    [[3.0, 4.0, 5.0], [9.0, 10.0, 11.0]]
    """
    if plan is None:
        plan = plan_reads(np.asarray(indptr), rows, gap=gap, window=window)
    nnz = int(plan.indptr[-1])
    index_type = np.int32 if n_columns < 2**31 else np.int64
    outputs = (np.empty(nnz, dtype=np.float32), np.empty(nnz, dtype=index_type))
    stored = (data, indices)
    readers = tuple(_reader(s) for s in stored)
    direct = tuple(np.dtype(s.dtype) == o.dtype for s, o in zip(stored, outputs))
    # indices are checked once on the result when storing them there cannot change a value
    check_each = not np.can_cast(np.dtype(indices.dtype), index_type, casting="safe")
    starts, stops, out, reads = plan.starts, plan.stops, plan.out, plan.reads
    firsts, lasts = reads[:-1], reads[1:]
    extents = stops[lasts - 1] - starts[firsts]
    # one buffer per array, reused by every read that keeps only part of what it reads (or
    # whose values change type on the way)
    buffered = extents if check_each or not all(direct) else extents[lasts - firsts > 1]
    size = int(buffered.max()) if buffered.size else 0
    buffers = tuple(np.empty(size, dtype=s.dtype) for s in stored)
    for first, last, extent in zip(firsts.tolist(), lasts.tolist(), extents.tolist()):
        begin, end = int(starts[first]), int(starts[first]) + extent
        o0, o1 = int(out[first]), int(out[last - 1] + stops[last - 1] - starts[last - 1])
        whole = last - first == 1  # one piece: all that is read is kept
        gather = None
        if not whole:
            rel = (starts[first:last] - begin, stops[first:last] - begin)
            gather = (
                _ranges(rel[0], rel[1] - rel[0])
                if (o1 - o0) < SHORT_RUN * (last - first)
                else list(zip(rel[0].tolist(), rel[1].tolist()))
            )
        for k in (0, 1):
            check = (n_columns, columns) if k == 1 and check_each else None
            piece = (begin, end, extent, whole, gather)
            _keep(readers[k], buffers[k], outputs[k][o0:o1], piece, direct[k], check)
    if not check_each:
        _check(outputs[1], n_columns, columns)
    return sp.csr_matrix((*outputs, plan.indptr), shape=(rows.size, n_columns))


def _keep(read, buffer: np.ndarray, target: np.ndarray, piece: tuple, direct: bool, check) -> None:
    """Read ``piece`` (``begin, end, extent, whole, gather``) of one stored array and keep its
    chosen values in ``target``: straight into it when all is kept and no cast or check is
    needed, else through ``buffer``. ``check``: ``(n_columns, columns)`` when the kept values
    are column indices to check before their cast."""
    begin, end, extent, whole, gather = piece
    if whole and direct and check is None:
        read(begin, end, target)
        return
    span = buffer[:extent]
    read(begin, end, span)
    if whole:
        kept = span
    elif isinstance(gather, np.ndarray):  # many short pieces: one take
        kept = span[gather]
    elif check is not None:  # the kept values, in their stored type, to check before the cast
        kept = np.concatenate([span[a:b] for a, b in gather])
    else:
        np.concatenate([span[a:b] for a, b in gather], out=target, casting="unsafe")
        return
    if check is not None:
        _check(kept, *check)
    target[...] = kept


def _check(indices: np.ndarray, bound: int, columns: str) -> None:
    if indices.size and (indices.min() < 0 or indices.max() >= bound):
        raise DamagedIndicesError(
            f"X's indices hold {int(indices.min())}..{int(indices.max())}, outside the "
            f"{bound:,} {columns}"
        )
