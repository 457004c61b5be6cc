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
from .merge import GroupMatrix, _Block, _clean, _join_genes
from .quantile import ks_check, quantile_normalize_rows, target_sum
from .scale import scale_rows

__all__ = ["BLOCK_SAMPLES", "DaskGroup", "GENE_BLOCK", "dask_group", "default_workdir"]

#: Samples per reading task (20,000 genes x 2,000 samples is 320 MB as float64); a matrix of
#: up to this many samples is read once.
BLOCK_SAMPLES = 2000
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


# -- warnings raised on the workers -------------------------------------------------------------
def _with_warnings(fn, args, kwargs):
    """Run ``fn`` on a worker, keeping the warnings it raises: ``(value, [(category, text)])``.
    A worker's warnings go to its own log otherwise, never to the user."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return value, [(w.category, str(w.message)) for w in caught]


def submit(client, fn, *args, **kwargs):
    """``client.submit(fn, *args, **kwargs, pure=False)``, keeping the task's warnings for
    :func:`gather`."""
    return client.submit(_with_warnings, fn, args, kwargs, pure=False)


def gather(client, futures) -> list:
    """The values of :func:`submit`'s futures; each distinct warning the tasks raised is raised
    again here, in the user's process (the same text from several tasks once)."""
    import warnings

    values, seen = [], set()
    for value, caught in client.gather(list(futures)):
        values.append(value)
        for category, text in caught:
            if (category, text) not in seen:
                seen.add((category, text))
                warnings.warn(text, category, stacklevel=3)
    return values


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
    """Read, join, quantile-normalize and scale one bulk group on ``client``'s workers.

    ``block_samples`` (default ``$REFINEWIDGETS_BLOCK_SAMPLES``, else :data:`BLOCK_SAMPLES`)
    samples are read per task. ``step(message)`` is called between the steps (it may raise
    to cancel: the work folder is then removed)."""
    if block_samples is None:
        block_samples = int(os.environ.get("REFINEWIDGETS_BLOCK_SAMPLES") or BLOCK_SAMPLES)
    run = Path(workdir) / f"{key}-{uuid.uuid4().hex[:8]}"
    run.mkdir(parents=True)
    with _removed_on_error(run):
        import dask.array as da

        dashboard = getattr(client, "dashboard_link", None)
        seconds: dict[str, float] = {}
        clock = [time.perf_counter(), None]

        def timed(message: str, name: str) -> None:  # each step's wall time, for uns
            now = time.perf_counter()
            if clock[1] is not None:
                seconds[clock[1]] = round(now - clock[0], 3)
            clock[:] = [now, name]
            step(message)

        timed(
            f"{key}: reading on the Dask cluster" + (f" ({dashboard})" if dashboard else ""), "read"
        )

        blocks = list(_blocks(by_matrix, block_samples))
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
                quantile_normalize and shipped_target is None,
            )
            for i, (src, matrix_id, accessions) in enumerate(blocks)
        ]
        pieces: list[_Piece] = gather(client, futures)
        filtered = [f for p in pieces for f in p.filtered]
        transforms = {k: v for p in pieces for k, v in p.transforms.items()}
        kept = [p for p in pieces if p.samples]
        if not kept:
            shutil.rmtree(run, ignore_errors=True)
            gm = GroupMatrix(np.empty((0, 0)), [], pd.Index([]), filtered)
            return DaskGroup(gm, "")
        stand_ins = [_Block(p.genes, np.empty((0, 0)), p.samples, [], p.logs) for p in kept]
        genes, union = _join_genes(stand_ins, join)
        genes = pd.Index(genes, dtype=object)
        timed(f"{key}: joining {len(genes):,} genes", "target")
        gathered = [str(run / f"rows-{i}") for i in range(len(kept))]
        parts = []
        if quantile_normalize and shipped_target is None:
            # a block whose genes are exactly the group's has its part already (the target
            # sums sorted values: the genes' order does not matter); the others compute it
            same = [p.target_part is not None and p.genes.equals(genes) for p in kept]
            if not all(same):
                same = [
                    p.target_part is not None
                    and len(p.genes) == len(genes)
                    and set(p.genes) == set(genes)
                    for p in kept
                ]
            redo = [p for p, ok in zip(kept, same) if not ok]
            computed = iter(gather(client, [submit(client, _target_part, p, genes) for p in redo]))
            parts = [p.target_part if ok else next(computed) for p, ok in zip(kept, same)]
        samples = [s for p in kept for s in p.samples]
        # the group's order (the request's), as the in-memory path keeps it
        final = sorted(range(len(samples)), key=lambda i: order[samples[i]])
        position = np.empty(len(samples), dtype=np.int64)
        position[final] = np.arange(len(samples))
        rows_of_block, first = [], 0
        for p in kept:
            rows_of_block.append(position[first : first + len(p.samples)])
            first += len(p.samples)
        ordered = [samples[i] for i in final]
        info: dict[str, Any] = {
            "out_of_core": {
                "workdir": str(run),
                "blocks": len(blocks),
                "dashboard": dashboard or "",
            }
        }
        if quantile_normalize:
            timed(
                f"{key}: quantile-normalizing on the Dask cluster", "quantile-normalize and split"
            )
            if shipped_target is not None:
                target, source_name = shipped_target
                kind = "source"
                how = f"target shipped by source {source_name} ({len(target)} values)"
            else:
                total = sum(t for t, _ in parts)
                used = sum(u for _, u in parts)
                if used == 0:
                    raise BuildError(f"Group {key}: no sample holds a value to normalize.")
                target = np.sort(total / used)
                kind = "computed"
                how = (
                    f"computed from the group's {len(samples)} samples (mean of their sorted "
                    "values), summed over blocks on the cluster"
                )
        else:
            target = None
            timed(f"{key}: splitting by gene block", "split")
        # refine.bio's KS pairs (on the group's order), and the rows of each block they test
        from .quantile import _ks_pairs

        pairs = _ks_pairs(len(samples), 100, 0) if quantile_normalize and len(samples) > 1 else []
        wanted = sorted({i for pair in pairs for i in pair})
        slot = {r: k for k, r in enumerate(wanted)}
        local = [[j for j, r in enumerate(rows) if int(r) in slot] for rows in rows_of_block]
        starts = list(range(0, len(genes), GENE_BLOCK))
        tested = gather(
            client,
            [
                submit(client, _finish_block, p, genes, path, target, mine, starts)
                for p, path, mine in zip(kept, gathered, local)
            ],
        )
        if quantile_normalize:
            if pairs:
                X = np.empty((len(wanted), len(genes)))
                for rows, mine, values in zip(rows_of_block, local, tested):
                    X[[slot[int(rows[j])] for j in mine]] = values
                ks = ks_check(
                    X,
                    names=[ordered[i] for i in wanted],
                    pairs=[(slot[i], slot[j]) for i, j in pairs],
                )
            else:
                ks = ks_check(np.empty((1, 0)))
            info["quantile_normalization"] = {"target": kind, "target_description": how, **ks}
        timed(
            f"{key}: scaling and writing" if scale_by != "NONE" else f"{key}: writing",
            "scale and write",
        )
        zarr_path = str(run / f"{key}.zarr")
        rows_chunk = min(max(len(samples), 1), 4096)
        _new_array(zarr_path, (len(samples), len(genes)), (rows_chunk, GENE_BLOCK))
        gather(
            client,
            [
                submit(
                    client,
                    _scale_genes,
                    gathered,
                    rows_of_block,
                    len(samples),
                    start,
                    min(start + GENE_BLOCK, len(genes)),
                    scale_by,
                    zarr_path,
                )
                for start in starts
            ],
        )
        timed(f"{key}: written", "")
        info["out_of_core"]["seconds"] = seconds
        gm = GroupMatrix(
            X=da.from_zarr(zarr_path),
            samples=ordered,
            genes=genes,
            filtered=filtered,
            genes_per_sample={s: len(p.genes) for p in kept for s in p.samples},
            genes_dropped=int(len(union) - len(genes)),
            transforms=transforms,
            block_genes=[(list(p.samples), p.genes) for p in kept],
        )
        return DaskGroup(gm, zarr_path, info)


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
BUDGET_ENV = "REFINEWIDGETS_MEMORY_BUDGET"
#: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it turns off
#: glibc's adaptive mmap threshold, so every allocation above 128 KiB is a fresh ``mmap`` and
#: its pages fault in again each time (measured: numpy's temporaries made a block's quantile
#: normalization 3x slower on a worker than in a plain process). Our workers allocate large
#: blocks and free them whole: they keep the trim threshold high and allocations below 64 MiB
#: on the heap. Give a cluster of your own the same with ``dask.config.set(WORKER_ENVIRON)``
#: before creating it.
WORKER_ENVIRON = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 64 * 2**20,
}


def memory_budget() -> int:
    """Bytes a build may use: ``$REFINEWIDGETS_MEMORY_BUDGET``, else half the memory available."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        try:
            return int(float(text))
        except ValueError:
            raise BuildError(f"${BUDGET_ENV} must be a number of bytes, got {text!r}.") from None
    from .single_cell import _available_memory

    return _available_memory() // 2


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


def local_client(reason: str):
    """A client of a local cluster sized to the machine (a worker per core, the budget shared
    among them), after an :class:`~refinewidgets.errors.OutOfCoreWarning` giving ``reason``."""
    import warnings

    from ..errors import OutOfCoreWarning

    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BuildError(
            f"{reason[0].upper()}{reason[1:]}, but Dask is not installed: "
            'pip install "refinewidgets[dask]", or build fewer samples per group.'
        ) from None
    workers = max(1, min(os.cpu_count() or 1, 8))
    warnings.warn(
        f"{reason[0].upper()}{reason[1:]} ({workers} workers).", OutOfCoreWarning, stacklevel=4
    )
    with dask.config.set(WORKER_ENVIRON):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=max(memory_budget() // workers, 2**30),
            dashboard_address=":0",
        )
    return Client(cluster)
