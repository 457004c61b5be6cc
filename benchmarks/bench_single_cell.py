"""Benchmark: select one cell type from a Bgee droplet H5AD file and build LOG1P_CPM.

What is compared
----------------
Three ways do the same task on the same file, in the same run: from a seeded synthetic Bgee
droplet file (``write_bgee_h5ad``, layout ``bgee15_0``; by default 200,000 cells x 20,000 genes,
about 1,000 stored values per cell, 10 cell types mixed over 8 libraries), keep the cells of the
cell type closest to 10% of the cells and normalize their counts to ``log(1 + CPM)``.

- **refinewidgets**: ``rw.open_catalog(path)``; ``rw.build(rw.Dataset({exp: ["ALL"]},
  quantile_normalize=False, counts_normalization="LOG1P_CPM", cell_filter={"cell_type":
  [type]}), cat)``; touch ``res[exp].X``. It reads ``obs``/``var`` and then only the stored
  values of the selected rows of ``X``.
- **anndata + scanpy** (full load): ``anndata.read_h5ad(path)`` (the whole matrix in memory);
  ``adata[adata.obs["cellTypeName"] == type].copy()``; ``sc.pp.normalize_total(sub,
  target_sum=1e6)``; ``sc.pp.log1p(sub)``.
- **anndata backed + scanpy** (the peer of issue 13): ``anndata.read_h5ad(path, backed="r")`` (obs in memory, X on
  disk); ``adata[mask].to_memory()`` reads the selected rows; ``normalize_total`` and ``log1p``.

Each way runs in a fresh process (see ``_measure.py``) with the same modules imported before
the baseline (numpy, scipy, pandas, h5py, anndata, scanpy, refinewidgets), and after running
once on a small file of the same layout (2,000 cells; the warm-up, as in a session where the
tools were used before: scanpy's ``normalize_total`` compiles with numba on first use, about
0.3 s): the wall time excludes imports and one-time start-up, and the peak memory is the peak
resident memory above the process's memory after them. The input file is written before
any way runs (not measured), so all read it from the page cache. The results are then compared
with refinewidgets': same cells in the same order, same genes, ``X`` allclose (float32
arithmetic, ``rtol=1e-5``, ``atol=1e-5``).

The backed way is anndata's own way to read a row subset without loading ``X`` (what its
documentation recommends for large files); it produces less than refinewidgets: ``X`` only, no
raw counts layer (keeping one would cost it a copy of the values), so the comparison favours it.

Output matrix
-------------
The bytes of the arrays of refinewidgets' result matrices, taken from the result itself (not
estimated) and each array counted once: ``X.data`` (float32), ``X.indices`` (int32),
``X.indptr``, and ``layers["counts"].data`` (float32); the counts layer shares ``X``'s
``indices`` and ``indptr`` (the benchmark asserts it), so they are not counted twice. What
surrounds the matrices (``obs``/``var`` of the result, the opened file's table of all its cells,
allocator and HDF5 caches) is not in the output but is in the peak, so the ratio "peak / output"
charges refinewidgets for all of it. The backed way's peak is also printed as a multiple of
its own output (its ``X``), for reference.

Goals: refinewidgets' peak memory under a fifth of the full-load way's, and refinewidgets not
slower than the full-load way (the single-cell issue); peak at most 1.3x the output matrix and
at least 1.5x faster than anndata's backed mode (issue 13). Each ratio is computed from the
medians of the same run.

Usage
-----
``python benchmarks/bench_single_cell.py`` (200,000 cells, about a minute on 2 cores, 3.5 GB
of memory at peak for the full-load way, a 1.6 GB temporary file) or ``--quick`` (20,000
cells, a smoke run in about 10 s). ``--cells`` / ``--genes`` change the size; ``--repeat N``
runs each way N times, alternating, and the table shows the medians (default 3, 1 with
``--quick``). Run from the repository root with the package importable
(installed, or ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

try:
    import refinewidgets as rw
except ImportError:  # running from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import refinewidgets as rw
from refinewidgets.io.anndata_elems import read_elem
from refinewidgets.testing.bgee_files import write_bgee_h5ad

from _measure import format_mb, measure

EXPERIMENT = "ERP000001"
FILE_NAME = f"Homo_sapiens_{EXPERIMENT}_droplet_based.h5ad"
VARIANT = "bgee15_0"
#: The obs column holding the cell type name in the ``bgee15_0`` layout.
CELL_TYPE_COLUMN = "cellTypeName"
CELL_TYPES = (
    "B cell",
    "T cell",
    "monocyte",
    "natural killer cell",
    "neuron",
    "hepatocyte",
    "epithelial cell",
    "dendritic cell",
    "endothelial cell",
    "fibroblast",
)
N_LIBRARIES = 8
#: Imported in every measured process before its baseline (the same list for both ways).
PRELOAD = (
    "numpy",
    "scipy.sparse",
    "pandas",
    "h5py",
    "anndata",
    "scanpy",
    "refinewidgets",
    "refinewidgets.io.catalog_open",
    "refinewidgets.io.bgee.source",
)
RTOL = ATOL = 1e-5
#: Cells of the small file each way runs on once before it is measured (the warm-up).
WARMUP_CELLS = 2_000


# -- input (setup, not measured) ------------------------------------------------------------
def density_for(nnz_per_cell: float, n_genes: int, n_types: int) -> float:
    """The ``density`` that gives about ``nnz_per_cell`` stored values per cell.

    ``write_bgee_h5ad`` detects a non-marker gene with probability ``density`` and a gene of the
    cell's marker block (``min(n_genes // (4 * n_types), 50)`` genes) with probability 0.8.
    """
    markers = min(max(1, n_genes // (4 * n_types)), 50)
    return min(1.0, max(1e-6, (nnz_per_cell - 0.8 * markers) / max(n_genes - markers, 1)))


def make_input(folder: Path, *, cells: int, genes: int, nnz_per_cell: float, seed: int) -> dict:
    """Write the file (and a small one of the same layout, ``WARMUP_CELLS`` cells, for the
    warm-up); return their paths, the chosen cell type and a few facts about the file."""
    path = folder / FILE_NAME
    density = density_for(nnz_per_cell, genes, len(CELL_TYPES))
    for where, n_cells in ((path, cells), (folder / "warmup" / FILE_NAME, WARMUP_CELLS)):
        where.parent.mkdir(parents=True, exist_ok=True)
        write_bgee_h5ad(
            where,
            variant=VARIANT,
            experiment=EXPERIMENT,
            n_cells=n_cells,
            n_genes=genes,
            n_libraries=N_LIBRARIES,
            density=density,
            cell_types=CELL_TYPES,
            seed=seed,
            overwrite=True,
        )
    with h5py.File(path, "r") as f:
        types = read_elem(f["obs"][CELL_TYPE_COLUMN])
        nnz = f["X/data"].shape[0]
    shares = pd.Series(np.asarray(types, dtype=object)).value_counts(normalize=True)
    chosen = str((shares - 0.10).abs().idxmin())
    return {
        "path": str(path),
        "warmup_path": str(folder / "warmup" / FILE_NAME),
        "cell_type": chosen,
        "share": float(shares[chosen]),
        "n_selected": int(round(shares[chosen] * cells)),
        "nnz_per_cell": nnz / cells,
        "density": density,
        "file_mb": path.stat().st_size / 2**20,
    }


# -- the two ways (measured, each in a fresh process) -----------------------------------------
def output_bytes(X, layers=None) -> dict[str, int]:
    """The bytes of a result's matrices, each array counted once (see "Output matrix")."""
    counted: dict[str, np.ndarray] = {}
    for name, m in [("X", X), *sorted((layers or {}).items())]:
        for part in ("data", "indices", "indptr"):
            a = getattr(m, part)
            if not any(np.shares_memory(a, b) for b in counted.values()):
                counted[f"{name}.{part}"] = a
    return {name: int(a.nbytes) for name, a in counted.items()}


def _result(cells, genes, X, steps: dict, layers=None) -> dict:
    """What a way hands back for the comparison (sent after the measurement ends)."""
    X = X.tocsr()
    return {
        "output_bytes": output_bytes(X, layers),
        "cells": [str(c) for c in cells],
        "genes": [str(g) for g in genes],
        "data": np.asarray(X.data),
        "indices": np.asarray(X.indices),
        "indptr": np.asarray(X.indptr),
        "shape": tuple(X.shape),
        "dtype": str(X.dtype),
        "steps": steps,
    }


def way_refinewidgets(path: str, cell_type: str) -> dict:
    """refinewidgets: open the file (obs + var only), build the selected cells as LOG1P_CPM."""
    t0 = time.perf_counter()
    cat = rw.open_catalog(path)
    t1 = time.perf_counter()
    dataset = rw.Dataset(
        {EXPERIMENT: ["ALL"]},
        quantile_normalize=False,
        counts_normalization="LOG1P_CPM",
        cell_filter={"cell_type": [cell_type]},
    )
    res = rw.build(dataset, cat)
    adata = res[EXPERIMENT]
    X = adata.X
    assert X.nnz > 0 and np.isfinite(X.data).all()  # touch the values
    t2 = time.perf_counter()
    steps = {"open_catalog": t1 - t0, "build + touch X": t2 - t1}
    counts = adata.layers["counts"]
    assert np.shares_memory(counts.indices, X.indices)  # shared, so counted once
    assert np.shares_memory(counts.indptr, X.indptr)
    return _result(adata.obs_names, adata.var_names, X, steps, {"counts": counts})


def way_anndata(path: str, cell_type: str) -> dict:
    """anndata + scanpy: load the whole file, boolean subset, normalize_total, log1p."""
    import anndata
    import scanpy as sc

    t0 = time.perf_counter()
    adata = anndata.read_h5ad(path)
    t1 = time.perf_counter()
    sub = adata[adata.obs[CELL_TYPE_COLUMN] == cell_type].copy()
    t2 = time.perf_counter()
    sc.pp.normalize_total(sub, target_sum=1e6)
    sc.pp.log1p(sub)
    t3 = time.perf_counter()
    steps = {"read_h5ad": t1 - t0, "subset + copy": t2 - t1, "normalize_total + log1p": t3 - t2}
    return _result(sub.obs_names, sub.var_names, sub.X, steps)


def way_anndata_backed(path: str, cell_type: str) -> dict:
    """anndata's backed mode + scanpy: obs in memory, X on disk; the selected rows read into
    memory (``adata[mask].to_memory()``), then normalize_total and log1p."""
    import anndata
    import scanpy as sc

    t0 = time.perf_counter()
    adata = anndata.read_h5ad(path, backed="r")
    t1 = time.perf_counter()
    sub = adata[(adata.obs[CELL_TYPE_COLUMN] == cell_type).to_numpy()].to_memory()
    adata.file.close()
    t2 = time.perf_counter()
    sc.pp.normalize_total(sub, target_sum=1e6)
    sc.pp.log1p(sub)
    t3 = time.perf_counter()
    steps = {
        "read_h5ad(backed='r')": t1 - t0,
        "subset rows to memory": t2 - t1,
        "normalize_total + log1p": t3 - t2,
    }
    return _result(sub.obs_names, sub.var_names, sub.X, steps)


RW = "refinewidgets (select, read rows, LOG1P_CPM, counts layer)"
BACKED = "anndata backed='r' + row subset + scanpy"
FULL_LOAD = "anndata.read_h5ad (full load) + subset + scanpy"
WAYS = {RW: way_refinewidgets, BACKED: way_anndata_backed, FULL_LOAD: way_anndata}


# -- check and report --------------------------------------------------------------------------
def compare(a: dict, b: dict) -> float:
    """Assert both results hold the same cells, genes and (allclose) values; the largest gap."""
    import scipy.sparse as sp

    assert a["cells"] == b["cells"], (
        f"the cells differ: {len(a['cells']):,} vs {len(b['cells']):,}, "
        f"{len(set(a['cells']) ^ set(b['cells'])):,} not in both (or not in the same order)"
    )
    assert a["genes"] == b["genes"], (
        f"the genes differ: {len(a['genes']):,} vs {len(b['genes']):,}, "
        f"{len(set(a['genes']) ^ set(b['genes'])):,} not in both (or not in the same order)"
    )
    X, Y = (sp.csr_matrix((r["data"], r["indices"], r["indptr"]), shape=r["shape"]) for r in (a, b))
    assert X.shape == Y.shape, f"shapes differ: {X.shape} vs {Y.shape}"
    X.sort_indices()
    Y.sort_indices()
    if np.array_equal(X.indptr, Y.indptr) and np.array_equal(X.indices, Y.indices):
        x, y = X.data.astype(np.float64), Y.data.astype(np.float64)
    else:  # different sparsity (explicit zeros?): compare on the union of the stored positions
        rows, cols = (X != 0).maximum(Y != 0).nonzero()
        x = np.asarray(X[rows, cols], dtype=np.float64).ravel()
        y = np.asarray(Y[rows, cols], dtype=np.float64).ravel()
    gap = float(np.abs(x - y).max()) if x.size else 0.0
    assert np.allclose(x, y, rtol=RTOL, atol=ATOL), (
        f"X differs by up to {gap:.3g} (rtol {RTOL}, atol {ATOL})"
    )
    return gap


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(
    runs: dict[str, list[dict]],
    setup: dict,
    shape: tuple[int, int],
    gap: float,
    outputs: dict[str, dict[str, int]],
) -> bool:
    """Print the table and the goal lines; return whether all four goals are met."""
    full_s, full_mb = _median(runs[FULL_LOAD], "seconds"), _median(runs[FULL_LOAD], "peak_mb")
    print("| way | wall s | peak MB (above baseline) | ratio vs full-load (wall / peak) |")
    print("|---|---:|---:|---:|")
    for way, rs in runs.items():
        s, mb = _median(rs, "seconds"), _median(rs, "peak_mb")
        print(f"| {way} | {s:.2f} | {format_mb(mb)} | {s / full_s:.2f}x / {mb / full_mb:.3f}x |")
    print()
    for way, rs in runs.items():
        r = sorted(rs, key=lambda run: run["seconds"])[len(rs) // 2]  # the median run
        steps = "; ".join(f"{k} {v:.2f} s" for k, v in r["steps"].items())
        every = ""
        if len(rs) > 1:
            walls = ", ".join(f"{run['seconds']:.2f}" for run in rs)
            peaks = ", ".join(format_mb(run["peak_mb"]) for run in rs)
            every = f"; all runs: {walls} s, {peaks} MB"
        print(
            f"- {way}: {steps} (median run: CPU {r['cpu_seconds']:.1f} s for {r['seconds']:.2f} s "
            f"wall; baseline {format_mb(r['baseline_mb'])} MB; memory by {r['memory_method']}{every})"
        )
    rw_s, rw_mb = _median(runs[RW], "seconds"), _median(runs[RW], "peak_mb")
    backed_s = _median(runs[BACKED], "seconds")
    memory_ok, speed_ok = rw_mb < full_mb / 5, rw_s <= full_s
    out = outputs[RW]
    output_mb = sum(out.values()) / 2**20
    backed_out_mb = sum(outputs[BACKED].values()) / 2**20
    print()
    print(
        f"selection: {shape[0]:,} cells ({setup['share']:.1%}, cell type {setup['cell_type']!r}) x "
        f"{shape[1]:,} genes; largest difference between the results: {gap:.2g}"
    )
    print(
        "output matrix of refinewidgets (the bytes of its arrays, each counted once: X's data, "
        "indices and indptr, and the counts layer's data, which shares X's indices and indptr): "
        + " + ".join(f"{k} {format_mb(v / 2**20)}" for k, v in out.items())
        + f" = {format_mb(output_mb)} MB"
    )
    print(
        f"peak memory per output byte: refinewidgets {rw_mb / output_mb:.2f}x; anndata backed "
        f"{_median(runs[BACKED], 'peak_mb') / backed_out_mb:.2f}x of its own output (X only, "
        f"{format_mb(backed_out_mb)} MB, no counts layer)"
    )
    print(
        f"goal 1, refinewidgets peak < 1/5 of the full-load way: {format_mb(rw_mb)} MB vs "
        f"{format_mb(full_mb)} / 5 = {format_mb(full_mb / 5)} MB ({rw_mb / full_mb:.1%} of it) "
        f"-> {'met' if memory_ok else 'NOT met'}"
    )
    print(
        f"goal 2, refinewidgets not slower than the full-load way: {rw_s:.2f} s vs {full_s:.2f} s "
        f"({full_s / rw_s:.1f}x faster) -> {'met' if speed_ok else 'NOT met'}"
        if rw_s <= full_s
        else f"goal 2, refinewidgets not slower than the full-load way: {rw_s:.2f} s vs {full_s:.2f} s "
        f"({rw_s / full_s:.2f}x the time) -> NOT met"
    )
    # the speed issue's goals: peak within 1.3x of the output matrix, at least 1.5x faster
    # than backed mode
    print(
        f"goal 3, refinewidgets peak at most 1.3x its output matrix ({format_mb(output_mb)} MB): "
        f"{format_mb(rw_mb)} MB = {rw_mb / output_mb:.2f}x -> "
        f"{'met' if rw_mb <= 1.3 * output_mb else 'NOT met'}"
    )
    print(
        f"goal 4, refinewidgets at least 1.5x faster than anndata's backed mode: {rw_s:.2f} s vs "
        f"{backed_s:.2f} s ({backed_s / rw_s:.2f}x) -> {'met' if backed_s >= 1.5 * rw_s else 'NOT met'}"
    )
    return memory_ok and speed_ok and rw_mb <= 1.3 * output_mb and backed_s >= 1.5 * rw_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument(
        "--nnz-per-cell",
        type=float,
        default=1_000.0,
        help="stored values per cell (sets write_bgee_h5ad's density)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs of each way, medians shown (default 3; "
        "1 with --quick): the machine may be shared, wall times vary",
    )
    parser.add_argument("--quick", action="store_true", help="20,000 cells: a smoke run")
    parser.add_argument(
        "--workdir", type=Path, help="keep the input file here (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cells = 20_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.cells < 10 * len(CELL_TYPES) or args.genes < 1 or args.repeat < 1:
        parser.error(f"need --cells >= {10 * len(CELL_TYPES)}, --genes >= 1, --repeat >= 1")

    with tempfile.TemporaryDirectory(prefix="bench_single_cell_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"setup: {args.cells:,} cells x {args.genes:,} genes, about {args.nnz_per_cell:,.0f} "
            f"values per cell, {len(CELL_TYPES)} cell types over {N_LIBRARIES} libraries "
            f"(variant {VARIANT}, seed {args.seed}) ...",
            flush=True,
        )
        t = time.perf_counter()
        setup = make_input(
            work, cells=args.cells, genes=args.genes, nnz_per_cell=args.nnz_per_cell, seed=args.seed
        )
        print(
            f"setup done in {time.perf_counter() - t:.1f} s: {setup['file_mb']:,.0f} MB file, "
            f"{setup['nnz_per_cell']:,.0f} stored values per cell (density {setup['density']:.4f}); "
            f"selecting {setup['cell_type']!r} ({setup['share']:.1%} of the cells)",
            flush=True,
        )

        runs: dict[str, list[dict]] = {way: [] for way in WAYS}
        results: dict[str, dict] = {}  # the last result of each way (its matrix), to compare
        for i in range(args.repeat):
            for way, fn in WAYS.items():
                print(f"run {i + 1}/{args.repeat}: {way} ...", flush=True)
                results.pop(way, None)
                # each way first runs once on the small file (not measured): one-time costs
                # (scanpy's numba compilation, about 0.3 s; lazy imports) are not counted
                warm = functools.partial(fn, setup["warmup_path"], setup["cell_type"])
                run = measure(fn, setup["path"], setup["cell_type"], preload=PRELOAD, warmup=[warm])
                results[way] = run.pop("value")
                run["steps"] = results[way]["steps"]
                runs[way].append(run)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"load average (1, 5, 15 min) after the runs: {load} on {os.cpu_count()} CPUs",
            flush=True,
        )
        gap = max(compare(results[RW], results[FULL_LOAD]), compare(results[RW], results[BACKED]))
        shape = results[RW]["shape"]
        outputs = {way: r["output_bytes"] for way, r in results.items()}
        del results
        print()
        report(runs, setup, shape, gap, outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
