"""Benchmark: an out-of-core result written as H5AD and zarr without holding its matrix.

What is measured
----------------
Setup (not measured): seeded synthetic human microarray downloads (20,000 genes, unzipped
refine.bio folders of 1,000 samples, as ``bench_dask.py`` writes them), built once out of core
on a local Dask cluster of 2 workers (``aggregate_by="SPECIES"``, quantile normalization,
``scale_by="STANDARD"``): the result's ``X`` is a Dask array over the zarr array in the work
folder. The result (its Dask graph, ``obs``, ``uns``; not its values) is pickled for the
measured processes.

Each way then runs in a fresh process (``_measure.py``: wall and CPU seconds, peak resident
memory above the process after its imports), interleaved over ``--repeat`` rounds:

- ``res.write_h5ad(path)``: gzip, the default (anndata's ``write_elem`` stores the Dask array one
  chunk at a time);
- ``res.write_h5ad(path, compression=None)``;
- ``res.write_zarr(path)``: the zarr store gets the Dask array's chunks;
- the materializing way (the peer a user would write without out-of-core support):
  ``adata.X = np.asarray(adata.X)`` then ``adata.write_h5ad(path)`` (no compression).

After each write a seeded sample of 20 rows of the file is compared with the same rows of the
zarr array (exactly equal). Goal (issue 26 item 4): each of our writes' peak well under the
matrix's size (at most a quarter).

Usage: ``python benchmarks/bench_ooc_write.py`` (16,000 samples: a 2.4 GiB matrix; the setup's
build takes several minutes), ``--samples N``, ``--quick`` (2,000 samples), ``--repeat``.
Disk: the inputs (about 2.5x the matrix as text), the zarr array and one written file at a time.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
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

from bench_dask import CHUNK, GENES, ORGANISM, write_chunk

from _measure import format_mb, interleaved, load_average, measure, summary

PRELOAD = ("numpy", "pandas", "h5py", "zarr", "dask.array", "anndata", "refinewidgets")


def build_out_of_core(data: Path, work: Path, pickled: Path) -> tuple[int, int]:
    """The setup's build on a local cluster; the result pickled to ``pickled``."""
    import dask
    from dask.distributed import Client, LocalCluster

    from refinewidgets.core.out_of_core import WORKER_ENVIRON

    with dask.config.set(WORKER_ENVIRON):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="4GB", dashboard_address=":0"
        )
    try:
        with Client(cluster) as client:
            cat = rw.open_catalog(data)
            ds = rw.Dataset(
                {e: ["ALL"] for e in cat.experiment_ids},
                aggregate_by="SPECIES",
                scale_by="STANDARD",
            )
            res = rw.build(ds, cat, client=client, workdir=work)
    finally:
        cluster.close()
    pickled.write_bytes(pickle.dumps(res))
    return tuple(res[ORGANISM].shape)


def _load(pickled: str):
    return pickle.loads(Path(pickled).read_bytes())


def _check(path: str, rows: list[int], zarr_path: str) -> bool:
    """The written file's ``rows`` equal the zarr array's, exactly."""
    import anndata
    import zarr

    expected = zarr.open_array(zarr_path, mode="r").get_orthogonal_selection((rows, slice(None)))
    if path.endswith(".zarr"):
        X = zarr.open_group(path, mode="r")["X"]
        got = X.get_orthogonal_selection((rows, slice(None)))
    else:
        back = anndata.read_h5ad(path, backed="r")
        got = back.X[rows]
        back.file.close()
    return bool(np.array_equal(got, expected))


def way_h5ad_gzip(pickled: str, out: str) -> str:
    _load(pickled).write_h5ad(out, overwrite=True)
    return out


def way_h5ad(pickled: str, out: str) -> str:
    _load(pickled).write_h5ad(out, overwrite=True, compression=None)
    return out


def way_zarr(pickled: str, out: str) -> str:
    _load(pickled).write_zarr(out, overwrite=True)
    return out


def way_materialized(pickled: str, out: str) -> str:
    adata = _load(pickled)[ORGANISM]
    adata.X = np.asarray(adata.X)
    adata.write_h5ad(out)
    return out


WAYS = {
    "write_h5ad (gzip)": (way_h5ad_gzip, "out.h5ad"),
    "write_h5ad (no compression)": (way_h5ad, "plain.h5ad"),
    "write_zarr": (way_zarr, "out.zarr"),
    "materialized + anndata write_h5ad (peer)": (way_materialized, "peer.h5ad"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16_000)
    parser.add_argument("--genes", type=int, default=GENES)
    parser.add_argument("--quick", action="store_true", help="2,000 samples, one round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    samples, repeat = (2_000, 1) if args.quick else (args.samples, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-ooc-write-") as tmp:
        tmp = Path(tmp)
        data, work, pickled = tmp / "downloads", tmp / "work", tmp / "result.pickle"
        t = time.perf_counter()
        for index in range(-(-samples // CHUNK)):
            write_chunk(data, index, args.genes, CHUNK, args.seed, zipped=False)
        print(f"setup: {samples:,} samples on disk ({time.perf_counter() - t:.0f} s)", flush=True)
        t = time.perf_counter()
        shape = build_out_of_core(data, work, pickled)
        shutil.rmtree(data)  # disk for the written files
        print(f"setup: built out of core {shape} ({time.perf_counter() - t:.0f} s)", flush=True)
        zarr_path = str(next(work.rglob("*.zarr")))
        rows = sorted(np.random.default_rng(args.seed).choice(shape[0], 20, replace=False))
        rows = [int(r) for r in rows]
        matrix_mb = shape[0] * shape[1] * 8 / 2**20

        def run(name: str) -> dict:
            fn, file_name = WAYS[name]
            out = tmp / file_name
            result = measure(fn, str(pickled), str(out), preload=PRELOAD)
            size = sum(p.stat().st_size for p in out.rglob("*")) if out.is_dir() else None
            result["bytes"] = size if size is not None else out.stat().st_size
            if not _check(str(out), rows, zarr_path):
                raise AssertionError(f"{name}: the written rows differ from the zarr array")
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            print(f"  {name}: {result['seconds']:.1f} s, {result['peak_mb']:.0f} MB", flush=True)
            return result

        runs = interleaved({name: (lambda n=name: run(n)) for name in WAYS}, repeat)
    print()
    print(
        f"{shape[0]:,} samples x {shape[1]:,} genes out of core: matrix {format_mb(matrix_mb)} MB "
        f"as float64; {repeat} run(s) each, interleaved; {load_average()}"
    )
    print("| way | wall s min / median | CPU s min / median | peak MB | peak / matrix | file GB |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name, results in runs.items():
        s = summary(results)
        ratio = s["peak_mb"] / matrix_mb
        if not name.endswith("(peer)"):
            worst = max(worst, ratio)
        print(
            f"| {name} | {s['min']:.1f} / {s['median']:.1f} | {s['cpu_min']:.1f} / "
            f"{s['cpu_median']:.1f} | {format_mb(s['peak_mb'])} | {ratio:.2f} | "
            f"{results[0]['bytes'] / 1e9:.2f} |"
        )
    print(
        f"goal, each write's peak at most 0.25x the matrix: largest {worst:.2f}x -> "
        f"{'met' if worst <= 0.25 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
