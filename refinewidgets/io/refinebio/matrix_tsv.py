"""The matrix TSV at the speed of the hardware: parse it into, and format it from, float64 arrays.

Reading (:func:`parse_matrix`): one thread inflates the member and cuts the text into batches
of whole lines, sized by rows (about 1/:data:`BATCHES` of the member, at least
:data:`MIN_BATCH_ROWS` rows, at most :data:`MAX_BATCH_BYTES` unless those rows are longer), so
the work per column and batch stays a fixed share whatever the width; the calling thread parses
each batch with polars (the fastest parser measured here: 0.36 s for 1,000 samples x 19,944
genes, against 0.74 s for ``pyarrow.csv`` and 1.96 s for pandas' C engine), takes its values
out in one ``to_numpy`` call (no Python call per column: 16,000 of them a batch at 16,000
samples) and copies them into the final samples x genes array, whose capacity is estimated
from the member's size and grown when short.
Peak memory: the matrix plus a few batches and polars' buffers for them.

Writing (:func:`format_matrix`): one thread formats batches of genes with polars' ``write_csv``
(shortest round-trip text of each float64, empty for NaN) while the caller compresses and writes
the previous batch, so formatting and deflate overlap.
"""

from __future__ import annotations

import mmap
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from ...errors import ExpressionValueError, SourceFormatError

__all__ = [
    "BATCHES",
    "BLOCK_BYTES",
    "MAX_BATCH_BYTES",
    "MIN_BATCH_ROWS",
    "format_matrix",
    "parse_matrix",
    "parse_matrix_blocks",
]

#: Text cells read as missing values.
NULLS = ["", "NA", "NaN", "nan"]
#: A member is parsed in about this many batches: the time spent per column and batch stays a
#: fixed share of the work whatever the width, and the text in flight (a few batches, with
#: polars' buffers about six) stays a small share of the matrix.
BATCHES = 64
#: Rows parsed together at least: fewer would spend the time per column, not per value.
MIN_BATCH_ROWS = 256
#: Text parsed together at most (unless MIN_BATCH_ROWS rows are longer).
MAX_BATCH_BYTES = 64 << 20
#: Text parsed together at least: each parse call costs about 2 ms of its own (measured: ten
#: 100-sample members parse in 1.4 s with 2 MiB batches, 2.0 s with 0.5 MiB).
_MIN_BATCH_BYTES = 2 << 20
#: Values (float64 bytes) of one block of genes when a member is parsed as a stream of blocks.
BLOCK_BYTES = 128 << 20
#: Text formatted together when writing: about 1/_WRITE_BATCHES of the whole, within these
#: bounds, and at least _MIN_WRITE_GENES lines (measured: 1/256 of a 1,000-sample matrix
#: formats as fast as 1/64, with less than half the memory in flight).
_WRITE_BATCHES = 256
_WRITE_BATCH_BYTES = (1 << 20, 16 << 20)
_MIN_WRITE_GENES = 8
_PAGE = mmap.PAGESIZE
_POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


class _Prefetch:
    """Run an iterator in its own thread, ``depth`` items ahead of the consumer.

    Exceptions of the iterator are raised in the consumer; when the consumer stops early (an
    error, or ``close``), the thread is told to stop and the iterator is closed in it.
    """

    _DONE = object()

    def __init__(self, make: Callable[[], Iterator], depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make) -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    if not self._put((item, None)):
                        return
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            self._put((self._DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((self._DONE, exc))

    def __iter__(self) -> Iterator:
        try:
            while True:
                item, exc = self._queue.get()
                if exc is not None:
                    raise exc
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


# -- reading ------------------------------------------------------------------------------
def _text_batches(chunks: Iterable[bytes], size: int | None) -> Iterator[bytes]:
    """The member's lines after the header, in batches of whole lines (see the module doc)."""
    pending: list[bytes] = []
    held = 0
    header_done = False
    target = _MIN_BATCH_BYTES
    sized = False
    for chunk in chunks:
        if not header_done:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue  # still inside the header line
            header_done, chunk = True, chunk[cut + 1 :]
        pending.append(chunk)
        held += len(chunk)
        if held < target:
            continue
        cut = chunk.rfind(b"\n")
        if cut < 0:
            continue  # a line longer than the batch: keep reading to its end
        rest = chunk[cut + 1 :]
        pending[-1] = chunk[: cut + 1]
        batch = b"".join(pending)
        pending, held = [rest], len(rest)
        if not sized:  # the first batch tells the length of a row
            sized = True
            row = len(batch) / max(_count(batch, b"\n"), 1)
            share = (size or 0) / BATCHES
            target = int(
                max(MIN_BATCH_ROWS * row, min(max(share, _MIN_BATCH_BYTES), MAX_BATCH_BYTES))
            )
        yield batch
    batch = b"".join(pending)
    if batch.strip():
        yield batch


class _Rows:
    """A samples x genes float64 array filled a batch of genes at a time.

    The capacity (genes) is estimated, grown when short, and the array is made contiguous at
    the end, in place; the pages beyond the result are given back to the operating system.
    The array lives in its own anonymous memory map so that those pages, and the whole array
    when freed, return to the system at once.
    """

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.used = 0
        self.capacity = 0
        self._map: mmap.mmap | None = None
        self.values = np.empty((n_rows, 0))

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity or self.n_rows == 0:
            self.capacity = max(self.capacity, capacity)
            return
        new_map = mmap.mmap(-1, max(self.n_rows * capacity * 8, 1))
        new = np.frombuffer(new_map, dtype=np.float64, count=self.n_rows * capacity)
        new = new.reshape(self.n_rows, capacity)
        if self.used:
            new[:, : self.used] = self.values[:, : self.used]
        self._map, self.values, self.capacity = new_map, new, capacity

    def finish(self) -> np.ndarray:
        n, used = self.n_rows, self.used
        if n == 0 or self._map is None:
            return np.empty((n, used))
        if used == self.capacity:
            return self.values
        flat = np.frombuffer(self._map, dtype=np.float64, count=n * self.capacity)
        for i in range(1, n):  # rows move towards the start only: copying in order is safe
            flat[i * used : (i + 1) * used] = flat[i * self.capacity : i * self.capacity + used]
        start = -(-n * used * 8 // _PAGE) * _PAGE
        if start < len(self._map) and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED, start, len(self._map) - start)
        self.values = flat[: n * used].reshape(n, used)
        return self.values


def _parsed_batches(
    chunks: Callable[[], Iterator[bytes]],
    header: list[str],
    positions: list[int],
    *,
    size: int | None,
    label: str,
    name: str,
    bad_value: Callable[[], str],
) -> Iterator[tuple[int, pl.Series, np.ndarray]]:
    """``(text bytes, gene ids, values positions x genes)`` for each batch of lines; the text
    is inflated and cut in its own thread (see :func:`parse_matrix`). The values come out of
    polars in one call (a Fortran-ordered genes x positions array, transposed: no per-column
    Python call), null cells as NaN."""
    width = len(header)
    names = [f"c{i}" for i in range(width)]
    schema = {name: pl.Float64 for name in names}
    schema["c0"] = pl.String
    wanted = sorted({0, width - 1, *positions})  # the last column finds short lines
    # the rows of each batch's value columns (``wanted`` without the gene column) to keep
    read = {pos: i for i, pos in enumerate(wanted[1:])}
    take = np.array([read[pos] for pos in positions], dtype=np.intp)
    if np.array_equal(take, np.arange(len(read))):
        take = None  # every column read, in order: the common case, no copy
    batches = _Prefetch(lambda: _text_batches(chunks(), size))
    try:
        for text in batches:
            try:
                frame = _parse_batch(text, names, schema, wanted, width)
            except (*_POLARS_ERRORS, pa.ArrowInvalid) as exc:
                batches.close()  # the reading thread stops before the file is read again below
                raise _parse_error(exc, label, name, bad_value) from None
            ids = frame.drop_in_place("c0")  # eager, in place: drop() plans a lazy query
            yield len(text), ids, _batch_values(frame, len(ids), take)
    finally:
        batches.close()


def _batch_values(frame: pl.DataFrame, n_genes: int, take: np.ndarray | None) -> np.ndarray:
    """A parsed batch's value columns (its gene column taken out) as a positions x genes
    float64 array: all in one call (``to_numpy`` of a Fortran-ordered genes x columns array,
    transposed), then the columns at ``take`` (``None``: all of them, in order)."""
    if frame.width == 0:  # no value column read (a matrix of gene ids only)
        return np.empty((0, n_genes))
    block = frame.to_numpy(order="fortran").T
    if block.dtype != np.float64:  # not Float64 columns: make them so
        block = block.astype(np.float64)
    return block if take is None else block[take]


def parse_matrix(
    chunks: Callable[[], Iterator[bytes]],
    header: list[str],
    positions: list[int],
    *,
    size: int | None,
    label: str,
    name: str,
    bad_value: Callable[[], str],
) -> tuple[list[str], np.ndarray]:
    """Parse a matrix TSV into ``(gene ids, values samples x genes)``.

    Parameters
    ----------
    chunks
        Makes an iterator of the member's bytes (header line included); run in its own thread.
    header
        The header's cells (gene column first).
    positions
        For each row of the result, the header position of its column.
    size
        The member's size in bytes when known (for the batch size and the first capacity).
    label, name
        The archive's and the member's names, for error messages.
    bad_value
        Describes the first non-numeric value (file, line, column); called on a conversion error.
    """
    rows = _Rows(len(positions))
    genes: list[pl.Series] = []
    done_bytes = 0
    batches = _parsed_batches(
        chunks, header, positions, size=size, label=label, name=name, bad_value=bad_value
    )
    for n_bytes, ids, values in batches:
        done_bytes += n_bytes
        end = rows.used + len(ids)
        if end > rows.capacity:  # estimate the genes from the bytes per row so far
            estimate = end + 64
            if size:
                estimate += int(max(size - done_bytes, 0) * end / done_bytes * 1.03)
            if rows.capacity:  # the estimate was short: grow by a quarter at least
                estimate = max(estimate, int(end * 1.25))
            rows.reserve(estimate)
        if len(values):  # no sample asked: no values array
            rows.values[:, rows.used : end] = values
        genes.append(ids)
        rows.used = end
    gene_ids = pl.concat(genes).fill_null("").to_list() if genes else []
    return gene_ids, rows.finish()


def parse_matrix_blocks(
    chunks: Callable[[], Iterator[bytes]],
    header: list[str],
    positions: list[int],
    *,
    size: int | None,
    label: str,
    name: str,
    bad_value: Callable[[], str],
    block_bytes: int | None = None,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Parse a matrix TSV as consecutive blocks of genes: ``(gene ids, values samples x
    genes)`` for each, a block about ``block_bytes`` (default :data:`BLOCK_BYTES`) of values
    (whole parsed batches), so that a member of any size streams through a bounded amount of
    memory: a block, the batches parsed for the next one, and the text in flight. The other
    parameters are those of :func:`parse_matrix`.
    """
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    pending: list[tuple[pl.Series, np.ndarray]] = []
    held = 0
    n = len(positions)

    def block() -> tuple[list[str], np.ndarray]:
        n_genes = sum(len(ids) for ids, _ in pending)
        values = np.empty((n, n_genes))
        at = 0
        for ids, part in pending:
            values[:, at : at + len(ids)] = part
            at += len(ids)
        gene_ids = pl.concat([ids for ids, _ in pending]).fill_null("").to_list()
        pending.clear()
        return gene_ids, values

    batches = _parsed_batches(
        chunks, header, positions, size=size, label=label, name=name, bad_value=bad_value
    )
    for _, ids, part in batches:
        pending.append((ids, part))
        held += 8 * n * len(ids)
        if held >= block_bytes:
            yield block()
            held = 0
    if pending:
        yield block()


def _parse_error(exc: BaseException, label: str, name: str, bad_value) -> SourceFormatError:
    message = str(exc).strip()
    if "could not parse" in message or "conversion error" in message:
        return SourceFormatError(
            f"{label}: non-numeric expression value in {name} at {bad_value()}. "
            "Expression matrices hold numbers only (empty for missing)."
        )
    first = message.splitlines()[0] if message else type(exc).__name__
    return SourceFormatError(f"{label}: cannot parse {name}: {first}")


def _parse_batch(text: bytes, names, schema, wanted, width) -> pl.DataFrame:
    """One batch of lines, checked as strictly as pyarrow's reader (which reads it on doubt)."""
    frame = pl.read_csv(
        text,
        has_header=False,
        separator="\t",
        schema=schema,
        columns=None if len(wanted) == width else wanted,  # all: polars checks no list
        null_values=NULLS,
    )
    if frame.get_column("c0").null_count():  # empty lines come as rows of nulls: drop them
        frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
    last = names[width - 1]
    if frame.get_column(last).null_count() and _count(text, b"\t") != frame.height * (width - 1):
        # polars fills the missing cells of a short line: let pyarrow read it (and refuse it)
        frame = _parse_batch_strictly(text, names, wanted)
    if frame.get_column("c0").null_count():
        frame = frame.with_columns(pl.col("c0").fill_null(""))
    return frame


def _count(text: bytes, char: bytes) -> int:
    """How many times the byte ``char`` is in ``text``: numpy's vectorized compare, 1 MiB at a
    time (a small temporary), about 4x faster than ``bytes.count``, which takes a byte at a time."""
    view = np.frombuffer(text, dtype=np.uint8)
    step = 1 << 20
    return sum(
        int(np.count_nonzero(view[i : i + step] == char[0])) for i in range(0, len(view), step)
    )


def _parse_batch_strictly(text: bytes, names, wanted) -> pl.DataFrame:
    import io

    types = {names[i]: pa.float64() for i in wanted}
    types["c0"] = pa.string()
    table = pacsv.read_csv(
        io.BytesIO(text),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=[names[i] for i in wanted],
            null_values=NULLS,
            strings_can_be_null=False,
        ),
    )
    return pl.from_arrow(table)


# -- writing ------------------------------------------------------------------------------
def _text_rows(
    genes: np.ndarray, samples: list[str], X: np.ndarray, *, float32: bool
) -> Iterator[bytes]:
    n_samples, n_genes = X.shape
    row_bytes = 20 * max(n_samples, 1) + 20  # about 19 characters per value
    low, high = _WRITE_BATCH_BYTES
    batch = min(max(row_bytes * n_genes // _WRITE_BATCHES, low), high)
    step = int(max(_MIN_WRITE_GENES, min(n_genes, batch // row_bytes)))
    for start, stop, block in _gene_blocks(X, step):
        block = np.asarray(block, dtype=np.float64)  # float32 input: widened
        if float32:
            with np.errstate(over="ignore"):
                rounded = block.astype(np.float32)
            _check_float32(rounded, block, samples)
            block = rounded
        yield _format_block(block, genes[start:stop])


def _format_block(block: np.ndarray, genes: np.ndarray) -> bytes:
    """The TSV lines of a samples x genes block: a line per gene, its id then its values.

    The values are formatted as one column, gene after gene (the shortest text that parses
    back to the same number, as polars writes a CSV; NaN empty), then each gene's run is
    joined with tabs. Measured: as fast as a CSV writer on a frame of 1,000 samples, twice as
    fast at 30,000, where a frame of one column per sample costs more than its values.
    """
    n_samples, n_genes = block.shape
    values = pl.Series(np.ascontiguousarray(block.T).ravel())  # gene-major
    text = values.fill_nan(None).cast(pl.String).fill_null("")
    del values  # each step's input is freed as soon as it is used: a batch's peak is small
    rows = text.reshape((n_genes, n_samples)).arr.join("\t")
    del text
    lines = pl.Series(genes, dtype=pl.String) + "\t" + rows + "\n"
    del rows
    joined = lines.str.join("").item()
    del lines
    return joined.encode("utf-8")


def _gene_blocks(X, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, X[:, start:stop])`` for consecutive blocks of ``step`` genes.

    A chunked (Dask) array is computed one chunk of genes at a time, all samples, and sliced
    from memory: slicing it straight by ``step`` genes would read every chunk a step crosses
    again for each step (measured: 8x the reads at 100,000 samples and 512-gene chunks).
    """
    n_genes = X.shape[1]
    chunks = getattr(X, "chunks", None)
    if chunks is None:
        for start in range(0, n_genes, step):
            stop = min(start + step, n_genes)
            yield start, stop, X[:, start:stop]
        return
    edges = np.cumsum([0, *chunks[1]]).tolist()

    def read(k: int) -> np.ndarray:
        # read here (threads), not on a cluster's workers: an out-of-core result's zarr array
        # is in a folder this process reaches, and sending blocks from workers costs more
        return np.asarray(X[:, edges[k] : edges[k + 1]].compute(scheduler="threads"))

    with ThreadPoolExecutor(1, thread_name_prefix="refinewidgets-read") as pool:
        ahead = pool.submit(read, 0) if len(edges) > 1 else None
        for k in range(len(edges) - 1):
            held = ahead.result()
            # the next chunk is read while this one is formatted (two chunks in memory)
            ahead = pool.submit(read, k + 1) if k + 2 < len(edges) else None
            width = edges[k + 1] - edges[k]
            even = -(-width // -(-width // step))  # equal steps, no short tail per chunk
            for start in range(0, width, even):
                stop = min(start + even, width)
                yield edges[k] + start, edges[k] + stop, held[:, start:stop]
            del held


def _check_float32(rounded: np.ndarray, values: np.ndarray, samples: list[str]) -> None:
    overflow = np.isinf(rounded) & np.isfinite(values)
    if overflow.any():
        i, j = (int(k[0]) for k in np.nonzero(overflow))
        raise ExpressionValueError(
            f"The value {values[i, j]!r} of sample {samples[i]} is beyond float32's range "
            "(about 3.4e38), so it cannot be written with float32=True; write float64 (the "
            "default) instead."
        )


def format_matrix(
    write: Callable[[bytes], object],
    genes: np.ndarray,
    samples: list[str],
    X: np.ndarray,
    *,
    float32: bool = False,
) -> None:
    """Format the rows (genes) of a samples x genes array as TSV lines and ``write`` them.

    Each line is the gene id, then one value per sample: the shortest text that parses back to
    the same float64 (or float32 with ``float32=True``), empty for NaN. Batches are formatted in
    a thread while ``write`` (compression, disk) takes the previous one.
    """
    for text in _Prefetch(lambda: _text_rows(genes, samples, X, float32=float32)):
        write(text)
