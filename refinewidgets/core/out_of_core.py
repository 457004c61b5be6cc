"""The sample path of a build on a Dask cluster, out of core: groups bigger than memory.

``rw.build(ds, cat, client=client)`` runs each bulk group's steps as Dask tasks on blocks of
samples, with the same code the in-memory path runs on a whole group, so the results are equal
(to floating-point summation order, far below 1e-12):

1. **read and sanitise** (a task per block of up to ``block_samples`` samples of one matrix):
   the block is read from its source, its gene ids sanitised and its unusable samples filtered
   (:func:`~refinewidgets.core.merge._clean`); the cleaned values go to a file in the work
   folder, the gene ids back to the client;
2. **join** (on the client): the group's genes from the blocks' gene ids only;
3. **target** (with quantile normalization and no target from a source): each block's part
   of the target (the sum of its sorted samples, as
   :func:`~refinewidgets.core.quantile.determine_target` computes it, log rules applied),
   computed while reading when the block has exactly the group's genes (the usual case), else
   by a task gathering it on the group's genes; nothing is written;
4. **gather and quantile-normalize** (a task per block): gathered again (cheaper than storing
   it), normalized against the summed target or the source's, the samples the KS check tests
   kept, written as one file per block of genes;
5. **scale and write** (a task per block of 512 genes, all samples): the same scikit-learn
   scaling as in memory, on the same gene blocks, written into the group's zarr array.

``X`` of the result is a Dask array over that zarr array (``<workdir>/<group>.zarr``): nothing
holds the whole matrix in memory. A task holds one block of samples (steps 1-4) or one block of
genes for every sample (step 5). The work folder must be reachable from every worker (a shared
filesystem for a cluster of several machines; any folder for a local cluster).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BuildError
from .compute import BUDGET_ENV, WORKER_ENVIRON, gather, local_client, memory_budget, submit
from .ks_check import ks_check
from .merge import GroupMatrix, _Block, _clean, _join_genes
from .quantile import quantile_normalize_rows, target_sum
from .scale import scale_rows

__all__ = [
    "BLOCK_SAMPLES",
    "DaskGroup",
    "GENE_BLOCK",
    "WORKER_ENVIRON",
    "dask_group",
    "default_workdir",
    "local_client",
    "needs_out_of_core",
]

#: Samples per reading task (20,000 genes x 2,000 samples is 320 MB as float64); a matrix of
#: up to this many samples is read once.
BLOCK_SAMPLES = 2000
BLOCK_SAMPLES_ENV = "REFINEWIDGETS_BLOCK_SAMPLES"
#: Genes per scaling task: the in-memory path scales 512 genes at a time too.
GENE_BLOCK = 512


def default_workdir() -> Path:
    """Where out-of-core builds put their arrays: ``<cache>/out-of-core``."""
    from .cache_dir import default_cache_dir

    return default_cache_dir() / "out-of-core"


@dataclass
class _Piece:
    """What the client keeps of a read block: its cleaned gene ids, kept samples, log rules."""

    path: str
    genes: pd.Index
    samples: list[str]
    logs: list[int]
    filtered: list[tuple[str, str]]
    transforms: dict[str, str]
    #: Its part of the QN target over its own genes: the group's part when the join keeps
    #: exactly these genes (the usual case), saving a pass over the block.
    target_part: tuple[np.ndarray, int] | None = None


@dataclass
class DaskGroup:
    """A group built out of core: its matrix lives in ``zarr_path``."""

    gm: GroupMatrix
    zarr_path: str
    info: dict[str, Any] = field(default_factory=dict)


# -- tasks (run on the workers) --------------------------------------------------------------
def _read_block(
    source, matrix_id, accessions, label, technology, log_rnaseq, path, target_part=False
) -> _Piece:
    cache = getattr(source, "parsed_cache", None)
    if cache is not None:
        cache.max_bytes = 0  # the blocks go to the work folder; no second copy in the cache
    frame = source.read_matrix(matrix_id, list(accessions))
    filtered: list[tuple[str, str]] = []
    transforms: dict[str, str] = {}
    block = _clean(frame, label, technology, log_rnaseq, filtered, transforms)
    if block is None:
        return _Piece("", pd.Index([]), [], [], filtered, transforms)
    values = np.ascontiguousarray(block.values[:, block.columns])
    np.save(path, values, allow_pickle=False)
    piece = _Piece(path, block.genes, block.samples, block.logs, filtered, transforms)
    if target_part:
        rows = GroupMatrix(None, list(block.samples), block.genes).fill([block]).X
        piece.target_part = target_sum(rows.T)
    return piece


def _gathered(piece: _Piece, genes: pd.Index) -> np.ndarray:
    """The block's samples on the group's genes (samples x genes), log rules applied."""
    values = np.load(piece.path)
    block = _Block(
        piece.genes, values, list(piece.samples), list(range(values.shape[1])), piece.logs
    )
    return GroupMatrix(None, list(piece.samples), genes).fill([block]).X


def _target_part(piece: _Piece, genes: pd.Index) -> tuple[np.ndarray, int]:
    """The block's share of the quantile-normalization target ``(sum, used)``."""
    return target_sum(_gathered(piece, genes).T)


def _finish_block(piece: _Piece, genes: pd.Index, path: str, target, wanted, starts):
    """Gather the block on the group's genes, quantile-normalize its rows (``target`` None:
    leave them), keep the rows the KS check tests (``wanted``, local positions), and write it
    as one file per gene block (``<path>.<start>.npy``), so that each scaling task reads
    contiguous values. The gathered block is computed again rather than stored in between:
    one pass over the disk less."""
    X = _gathered(piece, genes)
    os.remove(piece.path)
    if target is not None:
        quantile_normalize_rows(X, target, out=X)
    tested = X[wanted].copy()
    for start in starts:  # a contiguous copy first: np.save of a strided view is 5x slower
        piece = np.ascontiguousarray(X[:, start : start + GENE_BLOCK])
        np.save(f"{path}.{start}.npy", piece, allow_pickle=False)
    return tested


def _new_array(path: str, shape, chunks) -> None:
    """An empty float64 zarr array, uncompressed (measured: compressing costs more time than
    the disk saves)."""
    import zarr

    if hasattr(zarr, "create_array"):  # zarr 3
        zarr.create_array(store=path, shape=shape, chunks=chunks, dtype="f8", compressors=None)
    else:  # pragma: no cover - zarr 2
        zarr.open_array(path, mode="w", shape=shape, chunks=chunks, dtype="f8", compressor=None)


def _scale_genes(block_paths, rows_of_block, n_samples, start, stop, scale_by, zarr_path) -> None:
    """Genes ``start:stop`` of every sample: gathered in the group's order, scaled, written."""
    import zarr

    sub = np.empty((n_samples, stop - start))
    for path, rows in zip(block_paths, rows_of_block):
        piece = f"{path}.{start}.npy"
        sub[rows] = np.load(piece)
        os.remove(piece)
    scale_rows(sub, scale_by, block=GENE_BLOCK)
    zarr.open_array(zarr_path, mode="r+")[:, start:stop] = sub


# -- the client side ---------------------------------------------------------------------------
def _blocks(by_matrix, block_samples):
    for (src, matrix_id), accessions in by_matrix.items():
        for i in range(0, len(accessions), block_samples):
            yield src, matrix_id, accessions[i : i + block_samples]


#: What the step after the join says and is timed as, with quantile normalization and without.
_NORMALIZE_STEP = {
    True: ("quantile-normalizing on the Dask cluster", "quantile-normalize and split"),
    False: ("splitting by gene block", "split"),
}


class _Clock:
    """Each step's wall time (for ``uns``), and the step's message to ``step`` (which may raise
    to cancel)."""

    def __init__(self, step) -> None:
        self.step, self.seconds = step, {}
        self.start, self.name = time.perf_counter(), None

    def __call__(self, message: str, name: str) -> None:
        now = time.perf_counter()
        if self.name is not None:
            self.seconds[self.name] = round(now - self.start, 3)
        self.start, self.name = now, name
        self.step(message)


def dask_group(
    client,
    key: str,
    by_matrix,
    technology: dict[str, str],
    log_rnaseq: dict[str, bool],
    *,
    join: str,
    order: dict[str, int],
    quantile_normalize: bool,
    shipped_target: tuple[np.ndarray, str] | None,
    scale_by: str,
    workdir: Path,
    block_samples: int | None = None,
    step=lambda message: None,
) -> DaskGroup:
    """Read, join, quantile-normalize and scale one bulk group on ``client``'s workers: the
    module's steps 1-5, one function each.

    ``block_samples`` (default ``$REFINEWIDGETS_BLOCK_SAMPLES``, else :data:`BLOCK_SAMPLES`)
    samples are read per task. ``step(message)`` is called between the steps (it may raise
    to cancel: the work folder is then removed)."""
    block_samples = block_samples or int(os.environ.get(BLOCK_SAMPLES_ENV) or BLOCK_SAMPLES)
    run = Path(workdir) / f"{key}-{uuid.uuid4().hex[:8]}"
    run.mkdir(parents=True)
    with _removed_on_error(run):
        dashboard = getattr(client, "dashboard_link", None) or ""
        clock = _Clock(step)
        clock(f"{key}: reading on the Dask cluster" + (f" ({dashboard})" * bool(dashboard)), "read")
        blocks = list(_blocks(by_matrix, block_samples))
        with_target = quantile_normalize and shipped_target is None
        pieces = _read_all(client, run, blocks, technology, log_rnaseq, with_target)
        kept = [p for p in pieces if p.samples]
        if not kept:
            shutil.rmtree(run, ignore_errors=True)
            filtered = [f for p in pieces for f in p.filtered]
            return DaskGroup(GroupMatrix(np.empty((0, 0)), [], pd.Index([]), filtered), "")
        genes, union = _join(kept, join)
        clock(f"{key}: joining {len(genes):,} genes", "target")
        parts = _target_parts(client, kept, genes) if with_target else []
        ordered, rows_of_block = _group_order(kept, order)
        message, name = _NORMALIZE_STEP[quantile_normalize]
        clock(f"{key}: {message}", name)
        target, qn = _target(key, quantile_normalize, shipped_target, parts, len(ordered))
        gathered = [str(run / f"rows-{i}") for i in range(len(kept))]
        ks = _normalize_and_split(client, kept, genes, gathered, target, rows_of_block)
        if qn is not None:
            qn.update(ks.check(ordered, len(genes)))
        clock(f"{key}: {'scaling and ' * (scale_by != 'NONE')}writing", "scale and write")
        zarr_path = str(run / f"{key}.zarr")
        _scale_and_write(client, zarr_path, gathered, rows_of_block, len(genes), scale_by)
        clock(f"{key}: written", "")
        ours = {"workdir": str(run), "blocks": len(blocks), "dashboard": dashboard}
        info = {"out_of_core": {**ours, "seconds": clock.seconds}} | (
            {} if qn is None else {"quantile_normalization": qn}
        )
        return DaskGroup(_group_matrix(zarr_path, ordered, genes, union, pieces), zarr_path, info)


def _normalize_and_split(client, kept, genes, gathered, target, rows_of_block) -> _KsRows:
    """Step 4: a task per block gathers it on the group's genes, quantile-normalizes it against
    ``target`` (None: not), and stores it by gene block (``<gathered>.<start>.npy``); the rows
    the KS check tests come back in the returned :class:`_KsRows`."""
    starts = list(range(0, len(genes), GENE_BLOCK))
    n_samples = sum(map(len, rows_of_block)) if target is not None else 0  # 0: no KS check
    ks = _KsRows(n_samples, rows_of_block)
    ks.tested = gather(
        client,
        [
            submit(client, _finish_block, p, genes, path, target, mine, starts)
            for p, path, mine in zip(kept, gathered, ks.local)
        ],
    )
    return ks


def _group_matrix(zarr_path: str, ordered, genes: pd.Index, union, pieces) -> GroupMatrix:
    """The group as the build's next steps take it: ``X`` a Dask array over its zarr array."""
    import dask.array as da

    kept = [p for p in pieces if p.samples]
    return GroupMatrix(
        X=da.from_zarr(zarr_path),
        samples=ordered,
        genes=genes,
        filtered=[f for p in pieces for f in p.filtered],
        genes_per_sample={s: len(p.genes) for p in kept for s in p.samples},
        genes_dropped=int(len(union) - len(genes)),
        transforms={k: v for p in pieces for k, v in p.transforms.items()},
        block_genes=[(list(p.samples), p.genes) for p in kept],
    )


def _read_all(client, run: Path, blocks, technology, log_rnaseq, with_target) -> list[_Piece]:
    """Step 1: a task per block reads, sanitises and stores it (``<run>/read-<i>.npy``), with
    its part of the target when ``with_target``."""
    futures = [
        submit(
            client,
            _read_block,
            src,
            matrix_id,
            accessions,
            f"{src.name} ({matrix_id})",
            {a: technology[a] for a in accessions},
            {a: log_rnaseq[a] for a in accessions},
            str(run / f"read-{i}.npy"),
            with_target,
        )
        for i, (src, matrix_id, accessions) in enumerate(blocks)
    ]
    return gather(client, futures)


def _join(kept: list[_Piece], join: str) -> tuple[pd.Index, Any]:
    """Step 2, on the client: the group's genes from the blocks' gene ids only (and the union,
    for the count of genes the join dropped)."""
    stand_ins = [_Block(p.genes, np.empty((0, 0)), p.samples, [], p.logs) for p in kept]
    genes, union = _join_genes(stand_ins, join)
    return pd.Index(genes, dtype=object), union


def _target_parts(client, kept: list[_Piece], genes: pd.Index) -> list[tuple[np.ndarray, int]]:
    """Step 3: each block's part of the target. A block whose genes are exactly the group's has
    it already (the target sums sorted values: the genes' order does not matter); a task
    computes the others'."""
    same = [p.target_part is not None and p.genes.equals(genes) for p in kept]
    if not all(same):
        same = [
            p.target_part is not None and len(p.genes) == len(genes) and set(p.genes) == set(genes)
            for p in kept
        ]
    redo = [p for p, ok in zip(kept, same) if not ok]
    computed = iter(gather(client, [submit(client, _target_part, p, genes) for p in redo]))
    return [p.target_part if ok else next(computed) for p, ok in zip(kept, same)]


def _group_order(kept: list[_Piece], order: dict[str, int]):
    """The group's samples in the request's order (as the in-memory path keeps them), and each
    block's rows in it."""
    samples = [s for p in kept for s in p.samples]
    final = sorted(range(len(samples)), key=lambda i: order[samples[i]])
    position = np.empty(len(samples), dtype=np.int64)
    position[final] = np.arange(len(samples))
    rows_of_block, first = [], 0
    for p in kept:
        rows_of_block.append(position[first : first + len(p.samples)])
        first += len(p.samples)
    return [samples[i] for i in final], rows_of_block


def _target(key: str, quantile_normalize: bool, shipped_target, parts, n_samples: int):
    """Step 3's end: the target (the source's, or the blocks' parts summed) and how it was
    made, for ``uns``; ``(None, None)`` without quantile normalization."""
    if not quantile_normalize:
        return None, None
    if shipped_target is not None:
        target, source_name = shipped_target
        how = f"target shipped by source {source_name} ({len(target)} values)"
        return target, {"target": "source", "target_description": how}
    total = sum(t for t, _ in parts)
    used = sum(u for _, u in parts)
    if used == 0:
        raise BuildError(f"Group {key}: no sample holds a value to normalize.")
    how = (
        f"computed from the group's {n_samples} samples (mean of their sorted values), summed "
        "over blocks on the cluster"
    )
    return np.sort(total / used), {"target": "computed", "target_description": how}


class _KsRows:
    """refine.bio's KS pairs on the group's order (none without quantile normalization, ``n``
    0), the rows of each block they test (``local``), and the check on those rows."""

    def __init__(self, n: int, rows_of_block) -> None:
        from .ks_check import ks_pairs

        self.pairs = ks_pairs(n, 100, 0) if n > 1 else []
        self.wanted = sorted({i for pair in self.pairs for i in pair})
        self.slot = {r: k for k, r in enumerate(self.wanted)}
        self.rows_of_block = rows_of_block
        self.local = [
            [j for j, r in enumerate(rows) if int(r) in self.slot] for rows in rows_of_block
        ]

    tested: list = []

    def check(self, ordered: list[str], n_genes: int) -> dict[str, Any]:
        """:func:`~.ks_check.ks_check` on the tested rows the blocks sent back (``tested``)."""
        tested = self.tested
        if not self.pairs:
            return ks_check(np.empty((1, 0)))
        X = np.empty((len(self.wanted), n_genes))
        for rows, mine, values in zip(self.rows_of_block, self.local, tested):
            X[[self.slot[int(rows[j])] for j in mine]] = values
        return ks_check(
            X,
            names=[ordered[i] for i in self.wanted],
            pairs=[(self.slot[i], self.slot[j]) for i, j in self.pairs],
        )


def _scale_and_write(client, zarr_path, gathered, rows_of_block, n_genes, scale_by) -> None:
    """Step 5: a task per block of :data:`GENE_BLOCK` genes (all samples) scales it and writes
    it into the group's zarr array."""
    n_samples = sum(len(rows) for rows in rows_of_block)
    _new_array(zarr_path, (n_samples, n_genes), (min(max(n_samples, 1), 4096), GENE_BLOCK))
    starts = range(0, n_genes, GENE_BLOCK)
    gather(
        client,
        [
            submit(
                client,
                _scale_genes,
                gathered,
                rows_of_block,
                n_samples,
                start,
                min(start + GENE_BLOCK, n_genes),
                scale_by,
                zarr_path,
            )
            for start in starts
        ],
    )


@contextlib.contextmanager
def _removed_on_error(run: Path):
    """Cancelled, or failed: nothing half-written is kept."""
    try:
        yield
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)
        raise


#: Genes assumed per sample when deciding whether a group fits in memory before reading it
#: (refine.bio's species matrices hold 15,000-45,000 genes after the join).
ESTIMATED_GENES = 25_000
#: The in-memory path's peak is about this many times the group's matrix (measured by
#: ``benchmarks/bench_build.py``: the read frames, the merged matrix and scaling's temporaries).
PEAK_FACTOR = 3


def needs_out_of_core(groups, catalog) -> str | None:
    """Why a local Dask cluster is needed (the biggest group's estimate against the budget), or
    None when every group fits in memory."""
    budget = memory_budget()
    worst = None
    for key, members in groups.items():
        bulk = sum(not catalog.is_single_cell(m.experiment) for m in members)
        need = bulk * ESTIMATED_GENES * 8 * PEAK_FACTOR
        if need > budget and (worst is None or need > worst[1]):
            worst = (key, need, bulk)
    if worst is None:
        return None
    key, need, bulk = worst
    return (
        f"group {key} has {bulk:,} samples: about {_size(need)} in memory "
        f"({ESTIMATED_GENES:,} genes each, {PEAK_FACTOR}x for the build's copies), more than "
        f"the {_size(budget)} budget (half the memory available, or ${BUDGET_ENV}); building "
        "out of core on a local Dask cluster"
    )


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
