"""A cache of parsed matrices: a rebuild with other options, or other samples, costs compute, not
parsing.

The first read of a refine.bio matrix member stores its parsed values in the cache folder; a
later read of the same member (the same file, unchanged) takes them from there instead of
inflating and parsing the TSV again. Every member is stored whole (all its samples), so a later
selection of *other* samples of it is a gather too. Layout (``<cache>`` is
:func:`~refinewidgets.io.bgee.tarball.default_cache_dir`, ``$REFINEWIDGETS_CACHE``)::

    <cache>/parsed/<key>/values.npy          samples x genes, C order (read back memory-mapped)
    <cache>/parsed/<key>/block00000.npy ...  or: consecutive blocks of genes, samples x genes each
    <cache>/parsed/<key>/index.json          gene ids, sample ids, the blocks' gene ranges, bytes

A member whose uncompressed text is at most :data:`WHOLE_MEMBER_BYTES` is parsed in memory and
stored as one ``values.npy``. A bigger one (a species compendium) is parsed as a stream of gene
blocks (:data:`~refinewidgets.io.refinebio.matrix_tsv.BLOCK_BYTES` each), each written as it comes, so
the memory of the first read stays bounded (the blocks in flight, far under 1 GiB) whatever
the member's size; a selection then reads each block's rows of the samples asked. In both forms one sample's values
in a block are contiguous on disk: a selection reads only its samples' pages.

The form, measured (``benchmarks/bench_rebuild.py``, ``benchmarks/bench_compendium.py``):
``.npy`` loads at the speed of the page cache and needs no library; Arrow IPC was no faster for
one dense float64 block; samples x genes blocks keep a selection's reads contiguous where a
genes x samples layout reads every page.

With ``float32=True`` (or ``$REFINEWIDGETS_PARSED_CACHE_FLOAT32=1``) values are stored as
float32: half the disk and the reads, values rounded to float32 (the first read returns the
same rounded values as the later ones, so builds agree); a block holding a finite value beyond
float32's range is stored as float64.

``<key>`` hashes the identity of the file holding the member (:func:`file_identity`), the
member's name, and which samples were parsed (whole: none named). A changed file gets a new
key; its old entries age out. An entry found damaged (a block missing, a shape that does not
match its index) is removed and the member parsed again.

The cache holds at most ``$REFINEWIDGETS_PARSED_CACHE_MAX_BYTES`` bytes (default 10 GiB; ``0``
turns the cache off), the least recently used entries removed first; a member whose values
would not fit is parsed for the samples asked and stored for them only. Entries are written
under a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ...errors import RefineWidgetsError

__all__ = [
    "FLOAT32_ENV",
    "MAX_BYTES_ENV",
    "WHOLE_MEMBER_BYTES",
    "BlockedValues",
    "ParsedCache",
    "file_identity",
]

MAX_BYTES_ENV = "REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"
FLOAT32_ENV = "REFINEWIDGETS_PARSED_CACHE_FLOAT32"
DEFAULT_MAX_BYTES = 10 * 2**30
#: Members up to this size (uncompressed text) are parsed in memory; bigger ones are streamed.
WHOLE_MEMBER_BYTES = 1 * 2**30
#: Bytes of text per value assumed when a streamed member's values are estimated (refine.bio
#: writes about 10 to 19 characters a value; fewer only for short integers).
_TEXT_BYTES_PER_VALUE = 8
#: Changes when the stored form changes: older entries are then never read.
FORMAT = 1
_EDGE = 2**20


def file_identity(path: Path) -> dict:
    """What says a file is unchanged: resolved path, size, modification and change times,
    inode, and a hash of its bytes (all of them up to 8 MiB, else its first and last MiB).

    The change time (``st_ctime``) moves on every write and cannot be set back (``touch -d``
    sets the modification time only), so a file rewritten in place with its size and
    modification time kept gets a new identity; so does a file replaced by another (inode).
    (Where the kernel keeps coarse timestamps, the change time moves by clock ticks of a few ms:
    a rewrite within the tick the identity was taken in keeps it, and only the hash can tell.)

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.tsv"
    >>> _ = path.write_text("Gene\\tS1\\nG1\\t1.111\\n")
    >>> before = file_identity(path)
    >>> _ = path.write_text("Gene\\tS1\\nG1\\t9.999\\n")
    >>> file_identity(path) == before
    False
    """
    path = Path(path).resolve()
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        stat = os.fstat(fh.fileno())
        if stat.st_size <= _WHOLE_HASH:
            while chunk := fh.read(_EDGE):
                digest.update(chunk)
        else:
            digest.update(fh.read(_EDGE))
            fh.seek(stat.st_size - _EDGE)
            digest.update(fh.read(_EDGE))
    return {
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": [stat.st_dev, stat.st_ino],
        "edges": digest.hexdigest(),
    }


#: Files up to this size are hashed whole (a few ms); larger ones by their first and last MiB.
_WHOLE_HASH = 8 << 20


def _max_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_BYTES
    try:
        return max(0, int(value))
    except ValueError:
        return DEFAULT_MAX_BYTES


def _float32_default() -> bool:
    return os.environ.get(FLOAT32_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _stored(values: np.ndarray, float32: bool) -> np.ndarray:
    """``values`` as stored: float32 when asked and every finite value fits, else float64."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if not float32:
        return values
    with np.errstate(over="ignore"):
        narrow = values.astype(np.float32)
    if (np.isinf(narrow) & np.isfinite(values)).any():
        return values  # beyond float32's range: nothing is lost, the block stays float64
    return narrow


class _TooBig(Exception):
    """A streamed member outgrew the cache's bound while it was written."""


class BlockedValues:
    """A stored member's values: consecutive gene blocks, each a memory-mapped samples x genes
    ``.npy``; :meth:`take` gathers the rows (samples) asked as one float64 array.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "a.npy", np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> np.save(folder / "b.npy", np.array([[5.0], [6.0]], dtype=np.float32))
    >>> v = BlockedValues([folder / "a.npy", folder / "b.npy"], [(0, 2), (2, 3)], 2)
    >>> v.shape, v.take([1]).tolist()
    ((2, 3), [[3.0, 4.0, 6.0]])
    """

    def __init__(self, paths: Sequence[Path], ranges: Sequence[tuple[int, int]], n_rows: int):
        self.blocks = []
        for path, (start, stop) in zip(paths, ranges, strict=True):
            block = np.load(path, mmap_mode="r")
            if block.shape != (n_rows, stop - start) or block.dtype not in (
                np.float64,
                np.float32,
            ):
                raise ValueError(f"{path.name}: {block.dtype} {block.shape} does not match")
            self.blocks.append((start, stop, block))
        self.shape = (n_rows, ranges[-1][1] if ranges else 0)
        self.dtype = np.dtype(np.float64)

    def take(self, rows) -> np.ndarray:
        """The ``rows`` (positions) as a new float64 array, rows x all genes."""
        rows = np.asarray(rows, dtype=np.intp)
        out = np.empty((len(rows), self.shape[1]))
        order = np.argsort(rows, kind="stable")  # read each block front to back
        ranked = rows[order]
        for start, stop, block in self.blocks:
            out[order, start:stop] = block[ranked]
        return out

    def __array__(self, dtype=None, copy=None):
        whole = self.take(np.arange(self.shape[0]))
        return whole if dtype is None else whole.astype(dtype)


class ParsedCache:
    """Parsed matrices on disk, keyed by file identity, member and samples.

    Parameters
    ----------
    folder
        Where entries go (default ``<default_cache_dir()>/parsed``).
    max_bytes
        The bound on the entries' total size (default from ``$REFINEWIDGETS_PARSED_CACHE_MAX_BYTES``,
        else 10 GiB); 0 turns the cache off.
    float32
        Store values as float32 (default from ``$REFINEWIDGETS_PARSED_CACHE_FLOAT32``, else
        False: float64, exact).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "m.tsv").write_text("x")
    1
    >>> cache = ParsedCache(folder / "cache")
    >>> key = cache.key(folder / "m.tsv", "m.tsv", None)
    >>> cache.get(key) is None
    True
    >>> cache.put(key, ["G1", "G2"], ["S1"], np.array([[1.0, 2.0]]))
    >>> genes, samples, values = cache.get(key)
    >>> genes, samples, values.tolist()
    (['G1', 'G2'], ['S1'], [[1.0, 2.0]])
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        max_bytes: int | None = None,
        *,
        float32: bool | None = None,
    ):
        if folder is None:
            from ...core.cache_dir import default_cache_dir

            folder = default_cache_dir() / "parsed"
        self.folder = Path(folder)
        self.max_bytes = _max_bytes() if max_bytes is None else max(0, int(max_bytes))
        self.float32 = _float32_default() if float32 is None else bool(float32)
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def key(self, file: Path, member: str, samples: Sequence[str] | None) -> str:
        """The entry key of ``member`` of ``file`` (``samples`` None: the whole member)."""
        parts = {
            "format": FORMAT,
            "file": file_identity(file),
            "member": member,
            "samples": None if samples is None else list(samples),
        }
        if self.float32:
            parts["float32"] = True  # a float64 entry is never answered with rounded values
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]

    def get(self, key: str):
        """``(genes, samples, values)`` of an entry, or None. ``values`` is memory-mapped,
        read-only: an array (one ``values.npy``) or :class:`BlockedValues` (a streamed
        member)."""
        entry = self.folder / key
        try:
            index = json.loads((entry / "index.json").read_text())
        except (OSError, ValueError):
            self.misses += 1
            return None
        shape = (len(index["samples"]), len(index["genes"]))
        try:
            if "blocks" in index:
                ranges = [tuple(r) for r in index["blocks"]]
                paths = [entry / f"block{k:05d}.npy" for k in range(len(ranges))]
                values = BlockedValues(paths, ranges, shape[0])
            else:
                values = np.load(entry / "values.npy", mmap_mode="r")
        except (OSError, ValueError, TypeError):
            values = None
        if values is None or values.shape != shape:
            shutil.rmtree(entry, ignore_errors=True)  # damaged: parsed and stored again
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(entry / "index.json")  # recently used
        self.hits += 1
        return index["genes"], index["samples"], values

    def put(self, key: str, genes: Sequence[str], samples: Sequence[str], values) -> None:
        """Store an entry (samples x genes); a failure to write only costs the cache."""
        values = _stored(values, self.float32)
        if not self.enabled or values.nbytes > self.max_bytes:
            return
        work = self._work(key)
        try:
            work.mkdir(parents=True)
            np.save(work / "values.npy", values, allow_pickle=False)
            self._commit(work, key, genes, samples, {"bytes": int(values.nbytes)})
        except OSError:
            shutil.rmtree(work, ignore_errors=True)

    def put_blocks(
        self, key: str, samples: Sequence[str], blocks: Iterable[tuple[list[str], np.ndarray]]
    ) -> bool:
        """Store a member streamed as gene blocks ``(gene ids, values samples x genes)``, each
        written as it comes; True when stored. An error of the stream is raised (nothing is
        left behind); a failure to write, or a member outgrowing the bound, only costs the
        cache (False)."""
        work = self._work(key)
        genes: list[str] = []
        ranges: list[list[int]] = []
        total = 0
        try:
            work.mkdir(parents=True)
            for ids, values in blocks:
                values = _stored(values, self.float32)
                total += values.nbytes
                if total > self.max_bytes:
                    raise _TooBig
                np.save(work / f"block{len(ranges):05d}.npy", values, allow_pickle=False)
                ranges.append([len(genes), len(genes) + len(ids)])
                genes += ids
            if not ranges:  # a header without genes: one empty block keeps the shape
                np.save(work / "block00000.npy", np.empty((len(samples), 0)))
                ranges.append([0, 0])
            self._commit(work, key, genes, samples, {"bytes": total, "blocks": ranges})
            return True
        except (OSError, _TooBig):
            shutil.rmtree(work, ignore_errors=True)
            return False
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _work(self, key: str) -> Path:
        return self.folder / f".{key}.{os.getpid()}.{time.monotonic_ns()}.partial"

    def _commit(self, work: Path, key: str, genes, samples, extra: dict) -> None:
        index = {"genes": [str(g) for g in genes], "samples": [str(s) for s in samples]}
        (work / "index.json").write_text(json.dumps(index | extra))
        try:
            work.rename(self.folder / key)
        except OSError:  # another process stored it first: theirs is as good
            shutil.rmtree(work, ignore_errors=True)
        self._evict(keep=key)

    def entries(self) -> list[tuple[float, int, Path]]:
        """``(last used, bytes, folder)`` of every entry."""
        out = []
        if not self.folder.is_dir():
            return out
        for entry in self.folder.iterdir():
            if entry.name.startswith("."):
                continue
            try:
                used = (entry / "index.json").stat().st_mtime
                size = sum(f.stat().st_size for f in entry.iterdir() if f.suffix == ".npy")
            except OSError:
                continue
            out.append((used, size, entry))
        return out

    def _evict(self, keep: str) -> None:
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        for _, size, entry in entries:
            if total <= self.max_bytes:
                break
            if entry.name == keep:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            total -= size

    def clear(self) -> None:
        """Remove every entry."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def read(
        self,
        file: Path,
        member: str,
        samples: Sequence[str],
        all_samples: Sequence[str],
        size: int | None,
        parse: Callable[[list[str]], tuple[list[str], list[str], np.ndarray]],
        blocks: Callable[[], Iterable[tuple[list[str], np.ndarray]]] | None = None,
    ) -> tuple[list[str], list[str], np.ndarray]:
        """``(genes, samples, values)`` of ``samples`` of ``member``: from the cache, else
        parsed and stored. ``size`` is the member's uncompressed size (None when unknown);
        ``parse(samples)`` parses some samples in memory; ``blocks()`` streams every sample
        (``all_samples``, in order) as gene blocks, for members above
        :data:`WHOLE_MEMBER_BYTES`."""
        wanted = list(samples)
        if not self.enabled:
            return parse(wanted)
        whole = size is not None and size <= WHOLE_MEMBER_BYTES
        streamed = (
            not whole
            and blocks is not None
            and size is not None
            and size / _TEXT_BYTES_PER_VALUE * (4 if self.float32 else 8) <= self.max_bytes
        )
        key = self.key(file, member, None if whole or streamed else wanted)
        found = self.get(key)
        fresh = found is None
        if fresh and streamed:
            try:
                stored = self.put_blocks(key, list(all_samples), blocks())
            except RefineWidgetsError:
                stored = False  # a problem in samples not asked for is not this read's
            found = self.get(key) if stored else None
            if found is None:
                return parse(wanted)  # raises if the problem is in the samples asked
            fresh = False
        elif fresh:
            try:
                parsed = parse(list(all_samples) if whole else wanted)
            except RefineWidgetsError:
                if not whole:
                    raise
                # a problem in samples not asked for is not this read's: parse the asked ones
                # (which raises if the problem is theirs) and store nothing
                return parse(wanted)
            self.put(key, *parsed)
            genes, cols, values = parsed
            if self.float32:  # the values a later read gets from the float32 entry
                values = _stored(values, True).astype(np.float64)
        if not fresh:
            genes, cols, values = found
        if list(cols) == wanted and fresh:  # the parsed array itself
            return list(genes), wanted, values
        position = {s: i for i, s in enumerate(cols)}
        rows = np.fromiter((position[s] for s in wanted), dtype=np.intp, count=len(wanted))
        if isinstance(values, BlockedValues):
            return list(genes), wanted, values.take(rows)
        return list(genes), wanted, np.asarray(values)[rows].astype(np.float64, copy=False)
