"""Benchmark: a species compendium bigger than memory, built out of core on Dask.

What is measured
----------------
Seeded synthetic human microarray data (log2 intensities, 20,000 genes), written on disk in
chunks as experiment-aggregated refine.bio downloads of 1,000 samples each (zips as refine.bio
ships them, or unzipped folders with ``--unzipped``: the matrix TSV, its metadata,
``aggregated_metadata.json``), then one build: all samples, ``aggregate_by="SPECIES"``,
quantile normalization, ``scale_by="STANDARD"``, then the result written as a refine.bio zip
(``res.write_zip``; skipped with ``--no-zip``).

- **out of core**: ``rw.build(ds, cat, client=client)`` on a local cluster of 2 worker
  processes (one thread each, 4 GB memory limit each): per-block reading, the join, the
  target's reduction, per-block normalization, per-gene-block scaling (see
  ``refinewidgets.core.out_of_core``); X stays on disk (zarr), and the zip's matrix is
  formatted from it one 512-gene chunk of all samples at a time.
- **in memory**: ``rw.build(ds, cat)``, the whole group in memory, at the sizes where it fits.

Each runs in a fresh process (``_measure.py``): wall time of the build and of the zip, peak
resident memory of the process (the client) during the build and during the zip, and, for
Dask, the peak of each worker (``ru_maxrss`` read on every worker after the build). Where both
ways run, their results are checked to be equal to 1e-12.

Goal (the Dask issue): peak memory of any process below 4 GB whatever the number of samples,
and no slower per sample than the in-memory path.

Usage: ``python benchmarks/bench_dask.py --quick`` (10,000 samples, a few minutes), or
``--samples 10000 30000 100000``; ``--in-memory-up-to N`` (default 10,000) limits the
in-memory runs. 100,000 samples is 16 GB as float64; on disk it takes about 8 GB of input zips,
16 GB of zarr and 17 GB of output zip at once: check the free space first.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import zipfile
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
def write_chunk(
    folder: Path, index: int, genes: int, samples: int, seed: int, zipped: bool = True
) -> None:
    """One refine.bio download (a zip, or unzipped): experiment ``GSE9<index>`` of ``samples``
    samples."""
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
    if zipped:  # as refine.bio ships it: one zip per download (a third of the text on disk)
        _zip_folder(root, folder / f"{exp}.zip")
        shutil.rmtree(root)


def _zip_folder(root: Path, path: Path) -> None:
    from refinewidgets.io.containers.deflate import fast_deflate

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member in sorted(p for p in root.rglob("*") if p.is_file()):
            with zf.open(member.relative_to(root).as_posix(), "w", force_zip64=True) as fh:
                fast_deflate(fh)
                with member.open("rb") as src:
                    shutil.copyfileobj(src, fh, 16 << 20)


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
    import refinewidgets.io.refinebio.sources  # noqa: F401


def _hwm_kb() -> float:
    from _measure import _status_kb

    return _status_kb("VmHWM") or 0.0


def _write_zip(res, folder: str, baseline: float) -> dict:
    """Write ``res`` as a refine.bio zip: its seconds and size, the peak before (the build's)
    and during it (the high-water mark is reset in between), in MB above ``baseline`` KB."""
    from _measure import _reset_high_water_mark, _status_kb

    build_peak = (_hwm_kb() - baseline) / 1024
    _reset_high_water_mark()
    path = Path(folder) / "out.zip"
    t0 = time.perf_counter()
    res.write_zip(path, overwrite=True)
    seconds = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return {
        "build_peak_mb": build_peak,
        "zip_seconds": seconds,
        "zip_peak_mb": ((_status_kb("VmHWM") or 0.0) - baseline) / 1024,
        "zip_bytes": size,
    }


def way_dask(folder: str, workdir: str, check: str | None, zip_too: bool = True) -> dict:
    import os

    from _measure import rss_mb

    baseline = rss_mb() * 1024

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
        if zip_too:
            zip_out = _write_zip(res, workdir, baseline)
        else:
            zip_out = {"build_peak_mb": (_hwm_kb() - baseline) / 1024}
        X = res[ORGANISM].X
        out = {
            **zip_out,
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


def way_memory(folder: str, workdir: str, zip_too: bool = True) -> dict:
    import os

    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    os.environ["REFINEWIDGETS_MEMORY_BUDGET"] = str(1 << 45)  # stay in memory, whatever the size
    from _measure import rss_mb

    baseline = rss_mb() * 1024
    t0 = time.perf_counter()
    ds, cat = _dataset(folder)
    res = rw.build(ds, cat)
    seconds = time.perf_counter() - t0
    if zip_too:
        zip_out = _write_zip(res, workdir, baseline)
    else:
        zip_out = {"build_peak_mb": (_hwm_kb() - baseline) / 1024}
    X = res[ORGANISM].X
    rows = np.linspace(0, X.shape[0] - 1, 20).astype(int)
    return {"seconds": seconds, "shape": X.shape, "rows": np.asarray(X[rows]), **zip_out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--genes", type=int, default=GENES)
    parser.add_argument("--in-memory-up-to", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="10,000 samples only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-zip", action="store_true", help="build only, no zip written")
    parser.add_argument(
        "--unzipped", action="store_true", help="inputs as unzipped folders, not zips"
    )
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else sorted(args.samples)
    zip_too = not args.no_zip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        data = Path(tmp) / "downloads"
        written = 0
        for size in sizes:
            t = time.perf_counter()
            while written < size:
                write_chunk(data, written // CHUNK, args.genes, CHUNK, args.seed, not args.unzipped)
                written += CHUNK
            print(f"setup: {size:,} samples on disk ({time.perf_counter() - t:.0f} s)", flush=True)
            print(f"run: out of core, {size:,} samples ...", flush=True)
            work = Path(tmp) / f"work-{size}"
            dask_run = measure(way_dask, str(data), str(work), "yes", zip_too)
            mem_run = None
            if size <= args.in_memory_up_to:
                print(f"run: in memory, {size:,} samples ...", flush=True)
                mem_run = measure(way_memory, str(data), str(work), zip_too, preload=PRELOAD)
                np.testing.assert_allclose(
                    dask_run["value"]["rows"], mem_run["value"]["rows"], rtol=1e-12, atol=1e-12
                )
            rows.append((size, dask_run, mem_run))
            shutil.rmtree(work, ignore_errors=True)  # disk for the next size
    print()
    print(
        f"{args.genes:,} genes; SPECIES + quantile normalization + STANDARD; 2 workers; "
        "build = to zarr (out of core) or to memory; zip = res.write_zip afterwards"
    )
    print(
        "| samples | way | build s | build s per 1,000 samples | zip s | zip GB | "
        "peak MB client (build / zip) | peak MB workers |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")

    def line(size, way, run, workers):
        v = run["value"]
        zs = f"{v['zip_seconds']:.1f}" if "zip_seconds" in v else "-"
        zb = f"{v['zip_bytes'] / 1e9:.2f}" if "zip_bytes" in v else "-"
        peaks = format_mb(v["build_peak_mb"])
        if "zip_peak_mb" in v:
            peaks += f" / {format_mb(v['zip_peak_mb'])}"
        print(
            f"| {size:,} | {way} | {v['seconds']:.1f} | {v['seconds'] / size * 1000:.2f} | "
            f"{zs} | {zb} | {peaks} | {workers} |"
        )

    for size, dask_run, mem_run in rows:
        workers = ", ".join(format_mb(p) for p in dask_run["value"]["worker_peaks_mb"])
        line(size, "out of core", dask_run, workers)
        if mem_run is not None:
            line(size, "in memory", mem_run, "-")
    for size, dask_run, _ in rows:
        steps = "; ".join(f"{k} {v:.1f} s" for k, v in dask_run["value"]["steps"].items())
        print(f"- out of core, {size:,} samples: {steps}")
    worst = max(
        max(r[1]["peak_mb"], *r[1]["value"]["worker_peaks_mb"]) for r in rows
    )  # the client's whole call (build and zip) and each worker
    print(
        f"goal, every process below 4 GB: largest peak {format_mb(worst)} MB -> "
        f"{'met' if worst < 4096 else 'NOT met'}"
    )
    for size, dask_run, mem_run in rows:
        if mem_run is not None:
            d, m = dask_run["value"], mem_run["value"]
            ratio = d["seconds"] / m["seconds"]
            print(
                f"goal, no slower per sample than in memory ({size:,} samples): build "
                f"{ratio:.2f}x its time -> {'met' if ratio <= 1 else 'NOT met'}"
            )
            if "zip_seconds" in d:
                print(f"  zip: {d['zip_seconds'] / m['zip_seconds']:.2f}x the in-memory result's")
    if len(rows) > 1:
        (n0, d0, _), (n1, d1, _) = rows[0], rows[-1]
        for what in ("seconds", "zip_seconds"):
            if what in d0["value"]:
                ratio = d1["value"][what] / d0["value"][what]
                exponent = np.log(ratio) / np.log(n1 / n0)
                name = "build" if what == "seconds" else "zip"
                print(f"growth from {n0:,} to {n1:,} samples: {name} time ~ samples^{exponent:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
