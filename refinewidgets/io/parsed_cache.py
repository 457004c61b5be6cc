"""A cache of parsed matrices: a rebuild with other options costs compute, not parsing.

The first read of a refine.bio matrix member stores its parsed values in the cache folder; a
later read of the same member (the same file, unchanged) loads them back instead of inflating
and parsing the TSV again. Layout (``<cache>`` is
:func:`~refinewidgets.io.bgee_tarball.default_cache_dir`, ``$REFINEWIDGETS_CACHE``)::

    <cache>/parsed/<key>/values.npy    float64, samples x genes, C order (read back memory-mapped)
    <cache>/parsed/<key>/index.json    gene ids, sample ids, the file's identity, bytes

The form, measured (``benchmarks/bench_rebuild.py``): ``.npy`` loads at the speed of the page
cache and needs no library; Arrow IPC was no faster for one dense float64 block.

``<key>`` hashes the identity of the file holding the member (resolved path, size, modification
time, and a BLAKE2 hash of its first and last MiB: for a zip the last MiB holds the central
directory, so every member's CRC-32), the member's name, and which samples were parsed. A
changed file gets a new key; its old entries age out. A member whose uncompressed text is at
most :data:`WHOLE_MEMBER_BYTES` is parsed and stored whole, so a rebuild with other samples of
it also hits; a bigger one is stored for the samples asked.

The cache holds at most ``$REFINEWIDGETS_PARSED_CACHE_MAX_BYTES`` bytes (default 10 GiB; ``0``
turns the cache off), the least recently used entries removed first. Entries are written under a
temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import RefineWidgetsError

__all__ = ["MAX_BYTES_ENV", "WHOLE_MEMBER_BYTES", "ParsedCache", "file_identity"]

MAX_BYTES_ENV = "REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 10 * 2**30
#: Members up to this size (uncompressed text) are parsed and stored whole.
WHOLE_MEMBER_BYTES = 1 * 2**30
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


class ParsedCache:
    """Parsed matrices on disk, keyed by file identity, member and samples.

    Parameters
    ----------
    folder
        Where entries go (default ``<default_cache_dir()>/parsed``).
    max_bytes
        The bound on the entries' total size (default from ``$REFINEWIDGETS_PARSED_CACHE_MAX_BYTES``,
        else 10 GiB); 0 turns the cache off.

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

    def __init__(self, folder: str | os.PathLike | None = None, max_bytes: int | None = None):
        if folder is None:
            from .bgee_tarball import default_cache_dir

            folder = default_cache_dir() / "parsed"
        self.folder = Path(folder)
        self.max_bytes = _max_bytes() if max_bytes is None else max(0, int(max_bytes))
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
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]

    def get(self, key: str):
        """``(genes, samples, values)`` of an entry (values memory-mapped, read-only), or None."""
        entry = self.folder / key
        try:
            index = json.loads((entry / "index.json").read_text())
            values = np.load(entry / "values.npy", mmap_mode="r")
        except (OSError, ValueError):
            self.misses += 1
            return None
        if values.shape != (len(index["samples"]), len(index["genes"])):
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(entry / "index.json")  # recently used
        self.hits += 1
        return index["genes"], index["samples"], values

    def put(self, key: str, genes: Sequence[str], samples: Sequence[str], values) -> None:
        """Store an entry (samples x genes); a failure to write only costs the cache."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        if not self.enabled or values.nbytes > self.max_bytes:
            return
        work = self.folder / f".{key}.{os.getpid()}.{time.monotonic_ns()}.partial"
        try:
            work.mkdir(parents=True)
            np.save(work / "values.npy", values, allow_pickle=False)
            index = {"genes": [str(g) for g in genes], "samples": [str(s) for s in samples]}
            (work / "index.json").write_text(json.dumps(index | {"bytes": int(values.nbytes)}))
            try:
                work.rename(self.folder / key)
            except OSError:  # another process stored it first: theirs is as good
                shutil.rmtree(work, ignore_errors=True)
            self._evict(keep=key)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)

    def entries(self) -> list[tuple[float, int, Path]]:
        """``(last used, bytes, folder)`` of every entry."""
        out = []
        if not self.folder.is_dir():
            return out
        for entry in self.folder.iterdir():
            if entry.name.startswith("."):
                continue
            try:
                index = entry / "index.json"
                used = index.stat().st_mtime
                size = (entry / "values.npy").stat().st_size
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
    ) -> tuple[list[str], list[str], np.ndarray]:
        """``(genes, samples, values)`` of ``samples`` of ``member``: from the cache, else
        parsed with ``parse(samples to parse)`` and stored. ``size`` is the member's
        uncompressed size (None when unknown)."""
        whole = size is not None and size <= WHOLE_MEMBER_BYTES
        wanted = list(samples)
        if not self.enabled:
            return parse(wanted)
        key = self.key(file, member, None if whole else wanted)
        found = self.get(key)
        fresh = found is None
        if fresh:
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
        else:
            genes, cols, values = found
        if list(cols) == wanted:  # the parsed array itself, or an owned copy of the stored one
            return list(genes), wanted, values if fresh else np.array(values)
        position = {s: i for i, s in enumerate(cols)}
        rows = np.fromiter((position[s] for s in wanted), dtype=np.int64, count=len(wanted))
        return list(genes), wanted, np.asarray(values)[rows]
