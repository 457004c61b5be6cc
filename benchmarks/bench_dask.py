"""Benchmark: a species compendium bigger than memory, built out of core on Dask.

What is measured
----------------
Seeded synthetic human microarray data (log2 intensities, 20,000 genes), written on disk in
chunks as unzipped experiment-aggregated refine.bio downloads of 1,000 samples each (the
matrix TSV, its metadata, ``aggregated_metadata.json``), then one build: all samples,
``aggregate_by="SPECIES"``, quantile normalization, ``scale_by="STANDARD"``, into a zarr array.

- **out of core**: ``rw.build(ds, cat, client=client)`` on a local cluster of 2 worker
  processes (one thread each, 4 GB memory limit each): per-block reading, the join, the
  target's reduction, per-block normalization, per-gene-block scaling (see
  ``refinewidgets.core.out_of_core``); X stays on disk (zarr).
- **in memory**: ``rw.build(ds, cat)``, the whole group in memory, at the sizes where it fits.

Each runs in a fresh process (``_measure.py``): wall time, peak resident memory of the process
(the client) and, for Dask, the peak of each worker (``ru_maxrss`` read on every worker at the
end). Where both ways run, their results are checked to be equal to 1e-12.

Goal (the Dask issue): peak memory of any process below 4 GB whatever the number of samples,
and no slower per sample than the in-memory path.

Usage: ``python benchmarks/bench_dask.py --quick`` (10,000 samples, a few minutes), or
``--samples 10000 30000 100000`` (100,000 samples is 16 GB as float64: about 20 GB of text on
disk and an hour here); ``--in-memory-up-to N`` (default 10,000) limits the in-memory runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import refinewidgets as rw
except ImportError:  # running from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import refinewidgets as rw

from _measure import format_mb, measure

GENES = 20_000
CHUNK = 1_000
ORGANISM = "HOMO_SAPIENS"
PRELOAD = ("numpy", "pandas", "scipy.stats", "sklearn.preprocessing", "anndata", "refinewidgets")


# -- input (setup, not measured) ---------------------------------------------------------------
def write_chunk(folder: Path, index: int, genes: int, samples: int, seed: int) -> None:
    """One unzipped refine.bio download: experiment ``GSE9<index>`` of ``samples`` samples."""
    import polars as pl

    rng = np.random.default_rng(seed + index)
    exp = f"GSE9{index:05d}"
    accessions = [f"GSM9{index:05d}{j:04d}" for j in range(samples)]
    gene_ids = [f"ENSG9{g:010d}" for g in range(genes)]
    base = np.linspace(3.0, 14.0, genes)
    values = base[:, None] + rng.normal(0.0, 1.0, (genes, samples)) + rng.normal(0, 0.3, samples)
    root = folder / exp
    (root / exp).mkdir(parents=True)
    frame = pl.DataFrame({"Gene": gene_ids}).hstack(
        pl.DataFrame(np.round(values, 6), schema=accessions)
    )
    frame.write_csv(root / exp / f"{exp}.tsv", separator="\t")
    records = {
        a: {
            "refinebio_accession_code": a,
            "refinebio_organism": ORGANISM,
            "refinebio_platform": "Synthetic array [SYN-1]",
            "refinebio_processed": True,
            "refinebio_title": a,
        }
        for a in accessions
    }
    rows = ["refinebio_accession_code\texperiment_accession\trefinebio_organism"]
    rows += [f"{a}\t{exp}\t{ORGANISM}" for a in accessions]
    (root / exp / f"metadata_{exp}.tsv").write_text("\n".join(rows) + "\n")
    meta = {
        "aggregate_by": "EXPERIMENT",
        "scale_by": "NONE",
        "quantile_normalized": False,
        "experiments": {
            exp: {
                "accession_code": exp,
                "title": f"synthetic {exp}",
                "organisms": [ORGANISM],
                "technology": "MICROARRAY",
                "sample_accession_codes": accessions,
            }
        },
        "samples": records,
    }
    (root / "aggregated_metadata.json").write_text(json.dumps(meta))


# -- the ways (measured, each in a fresh process) ------------------------------------------------
def _dataset(folder: str):
    cat = rw.open_catalog(folder)
    data = {e: ["ALL"] for e in cat.experiment_ids}
    return rw.Dataset(data, aggregate_by="SPECIES", scale_by="STANDARD"), cat


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    import refinewidgets.core.out_of_core
    import refinewidgets.io.sources  # noqa: F401


def way_dask(folder: str, workdir: str, check: str | None) -> dict:
    import os

    from dask.distributed import Client, LocalCluster

    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    import dask

    from refinewidgets.core.out_of_core import WORKER_ENVIRON

    with dask.config.set(WORKER_ENVIRON):  # as the README advises
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="4GB", dashboard_address=":0"
        )
    client = Client(cluster)
    try:
        client.run(_preload)  # the workers import what the in-memory way has preloaded
        t0 = time.perf_counter()
        ds, cat = _dataset(folder)
        res = rw.build(ds, cat, client=client, workdir=workdir)
        seconds = time.perf_counter() - t0
        workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        X = res[ORGANISM].X
        out = {
            "seconds": seconds,
            "shape": tuple(X.shape),
            "worker_peaks_mb": sorted(kb / 1024 for kb in workers.values()),
            "steps": res[ORGANISM].uns["refinewidgets"]["out_of_core"]["seconds"],
        }
        if check:  # a sample of rows to compare with the in-memory result
            rows = np.linspace(0, X.shape[0] - 1, 20).astype(int)
            out["rows"] = np.asarray(X[rows].compute())
        return out
    finally:
        client.close()
        cluster.close()


def way_memory(folder: str) -> dict:
    import os

    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    os.environ["REFINEWIDGETS_MEMORY_BUDGET"] = str(1 << 45)  # stay in memory, whatever the size
    t0 = time.perf_counter()
    ds, cat = _dataset(folder)
    res = rw.build(ds, cat)
    seconds = time.perf_counter() - t0
    X = res[ORGANISM].X
    rows = np.linspace(0, X.shape[0] - 1, 20).astype(int)
    return {"seconds": seconds, "shape": X.shape, "rows": np.asarray(X[rows])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--genes", type=int, default=GENES)
    parser.add_argument("--in-memory-up-to", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="10,000 samples only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else sorted(args.samples)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        data = Path(tmp) / "downloads"
        written = 0
        for size in sizes:
            t = time.perf_counter()
            while written < size:
                write_chunk(data, written // CHUNK, args.genes, CHUNK, args.seed)
                written += CHUNK
            print(f"setup: {size:,} samples on disk ({time.perf_counter() - t:.0f} s)", flush=True)
            print(f"run: out of core, {size:,} samples ...", flush=True)
            dask_run = measure(way_dask, str(data), str(Path(tmp) / f"work-{size}"), "yes")
            mem_run = None
            if size <= args.in_memory_up_to:
                print(f"run: in memory, {size:,} samples ...", flush=True)
                mem_run = measure(way_memory, str(data), preload=PRELOAD)
                np.testing.assert_allclose(
                    dask_run["value"]["rows"], mem_run["value"]["rows"], rtol=1e-12, atol=1e-12
                )
            rows.append((size, dask_run, mem_run))
    print()
    print(f"{args.genes:,} genes; SPECIES + quantile normalization + STANDARD; 2 workers")
    print("| samples | way | wall s | s per 1,000 samples | peak MB client | peak MB workers |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, dask_run, mem_run in rows:
        v = dask_run["value"]
        print(
            f"| {size:,} | out of core | {v['seconds']:.1f} | {v['seconds'] / size * 1000:.2f} | "
            f"{format_mb(dask_run['peak_mb'])} | "
            f"{', '.join(format_mb(p) for p in v['worker_peaks_mb'])} |"
        )
        if mem_run is not None:
            m = mem_run["value"]
            print(
                f"| {size:,} | in memory | {m['seconds']:.1f} | {m['seconds'] / size * 1000:.2f} | "
                f"{format_mb(mem_run['peak_mb'])} | - |"
            )
    for size, dask_run, _ in rows:
        steps = "; ".join(f"{k} {v:.1f} s" for k, v in dask_run["value"]["steps"].items())
        print(f"- out of core, {size:,} samples: {steps}")
    worst = max(max(r[1]["peak_mb"], *r[1]["value"]["worker_peaks_mb"]) for r in rows)
    print(
        f"goal, every process below 4 GB: largest peak {format_mb(worst)} MB -> "
        f"{'met' if worst < 4096 else 'NOT met'}"
    )
    for size, dask_run, mem_run in rows:
        if mem_run is not None:
            ratio = dask_run["value"]["seconds"] / mem_run["value"]["seconds"]
            print(
                f"goal, no slower per sample than in memory ({size:,} samples): "
                f"{ratio:.2f}x its time -> {'met' if ratio <= 1 else 'NOT met'}"
            )
    if len(rows) > 1:
        (n0, d0, _), (n1, d1, _) = rows[0], rows[-1]
        exponent = np.log(d1["value"]["seconds"] / d0["value"]["seconds"]) / np.log(n1 / n0)
        print(f"growth from {n0:,} to {n1:,} samples: time ~ samples^{exponent:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
