"""Benchmark: a rebuild with other options, with and without the parsed-source cache.

What is compared
----------------
The same refine.bio downloads (seeded synthetic human data: four experiment-aggregated zips,
19,944 genes x 1,000 samples in all by default) and the same two builds, in the same run:
first ``aggregate_by="SPECIES"`` with quantile normalization, then the **rebuild**: the same
samples with ``scale_by="STANDARD"`` (what a user does in the app when changing an option).

- **rebuild, warm cache**: the first build parsed the zips and stored the parsed values
  (:mod:`refinewidgets.io.refinebio.parsed_cache`); the rebuild, in a fresh process with a fresh
  ``open_catalog``, loads them back.
- **rebuild, no cache**: the same rebuild with the cache off (what every rebuild cost before):
  inflate and parse every matrix again.
- **first build, cold cache**: the first build, which parses and stores.
- **floor: compute only**: the rebuild on the same values already in memory
  (``InMemorySource``): merge, quantile normalization, KS check and scaling, no reading at all.

Each runs in a fresh process (``_measure.py``); the times are the build's own (``open_catalog``
+ ``build``), the peak memory the process's above its baseline. The results of the warm and the
uncached rebuilds are compared (equal values). Also measured: loading one parsed matrix back
from ``.npy`` (memory-mapped) and from Arrow IPC, the two forms the cache could use.

Goal (the speed issue): the warm rebuild at most 2x the compute floor.

Usage: ``python benchmarks/bench_rebuild.py`` (1,000 samples, a minute or two) or ``--quick``
(200 samples, a few seconds); ``--samples``/``--genes`` change the size.
"""

from __future__ import annotations

import argparse
import os
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
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium

from _measure import format_mb, measure

ORGANISM = "HOMO_SAPIENS"
PRELOAD = (
    "numpy",
    "pandas",
    "scipy",
    "scipy.stats",
    "sklearn.preprocessing",
    "anndata",
    "refinewidgets",
    "refinewidgets.io.refinebio.sources",
)


def make_inputs(folder: Path, *, genes: int, samples: int, experiments: int, seed: int) -> list:
    comp = synthetic_compendium(
        n_experiments=experiments,
        samples_per_experiment=samples // experiments,
        n_genes=genes,
        organisms=(ORGANISM,),
        technologies=("MICROARRAY", "RNA-SEQ"),
        gene_coverage=1.0,
        seed=seed,
    )
    catalog = rw.Catalog([InMemorySource.from_compendium(comp)])
    for i, exp in enumerate(comp.experiments):
        res = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), catalog)
        res.write_zip(folder / f"{i:02d}_{exp}.zip")
    return list(comp.experiments)


def _dataset(experiments, scale_by):
    return rw.Dataset({e: ["ALL"] for e in experiments}, aggregate_by="SPECIES", scale_by=scale_by)


def _warm() -> None:
    """A tiny build first, not timed: lazy imports and first-call costs are not measured."""
    comp = synthetic_compendium(
        n_experiments=2, samples_per_experiment=4, n_genes=200, organisms=(ORGANISM,), seed=1
    )
    catalog = rw.Catalog([InMemorySource.from_compendium(comp)])
    rw.build(_dataset(list(comp.experiments), "STANDARD"), catalog)


def _timed_build(folder: str, experiments: list, scale_by: str, cache: str, max_bytes: str):
    _warm()
    os.environ["REFINEWIDGETS_CACHE"] = cache
    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = max_bytes
    t0 = time.perf_counter()
    cat = rw.open_catalog(folder)
    res = rw.build(_dataset(experiments, scale_by), cat)
    seconds = time.perf_counter() - t0
    X = np.asarray(res[ORGANISM].X)
    return {"seconds": seconds, "shape": X.shape, "checksum": float(np.nansum(X)), "X": X}


def first_build(folder, experiments, cache):
    out = _timed_build(folder, experiments, "NONE", cache, str(10 * 2**30))
    out.pop("X")
    return out


def rebuild_warm(folder, experiments, cache):
    return _timed_build(folder, experiments, "STANDARD", cache, str(10 * 2**30))


def rebuild_uncached(folder, experiments, cache):
    return _timed_build(folder, experiments, "STANDARD", cache, "0")


def floor_compute(folder, experiments, cache):
    """The rebuild on values already in memory: only the build's computation is timed."""
    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    sources = []
    for src in rw.open_catalog(folder).sources:  # read everything first, not timed
        values = {m: src.read_matrix(m, cols) for m, cols in src.matrices().items()}
        sources.append(
            InMemorySource(
                src.experiments, src.samples, values, name=src.name, log_scale=src.log_scale
            )
        )
    _warm()
    t0 = time.perf_counter()
    res = rw.build(_dataset(experiments, "STANDARD"), rw.Catalog(sources))
    seconds = time.perf_counter() - t0
    X = np.asarray(res[ORGANISM].X)
    return {"seconds": seconds, "shape": X.shape, "checksum": float(np.nansum(X)), "X": X}


def load_forms(path_npy: str, path_arrow: str) -> dict:
    """Load one parsed matrix back from each form (a copy in memory, as a build uses it)."""
    import pyarrow as pa

    out = {}
    t0 = time.perf_counter()
    values = np.array(np.load(path_npy, mmap_mode="r"))
    out[".npy (memory-mapped, copied)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with pa.memory_map(path_arrow) as source:
        table = pa.ipc.open_file(source).read_all()
        arrow_values = np.column_stack([c.to_numpy() for c in table.columns])
    out["Arrow IPC (memory-mapped, to numpy)"] = time.perf_counter() - t0
    assert np.array_equal(values, arrow_values)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--genes", type=int, default=19944)
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = 200
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        folder, cache = Path(tmp) / "downloads", Path(tmp) / "cache"
        folder.mkdir()
        t = time.perf_counter()
        print(f"setup: {args.genes:,} genes x {args.samples:,} samples ...", flush=True)
        experiments = make_inputs(
            folder,
            genes=args.genes,
            samples=args.samples,
            experiments=args.experiments,
            seed=args.seed,
        )
        print(f"setup done in {time.perf_counter() - t:.1f} s", flush=True)
        runs = {}
        for name, fn in [
            ("first build, cold cache (parse + store)", first_build),
            ("rebuild, warm cache", rebuild_warm),
            ("rebuild, no cache (parse again)", rebuild_uncached),
            ("floor: compute only (values in memory)", floor_compute),
        ]:
            print(f"run: {name} ...", flush=True)
            runs[name] = measure(fn, str(folder), experiments, str(cache), preload=PRELOAD)
        warm = runs["rebuild, warm cache"]["value"]
        uncached = runs["rebuild, no cache (parse again)"]["value"]
        floor = runs["floor: compute only (values in memory)"]["value"]
        np.testing.assert_array_equal(warm["X"], uncached["X"])
        np.testing.assert_allclose(warm["X"], floor["X"], rtol=1e-12, atol=1e-12)
        shape = warm["shape"]
        # the two forms, on the largest entry of the cache
        entry = max((cache / "parsed").iterdir(), key=lambda p: (p / "values.npy").stat().st_size)
        values = np.load(entry / "values.npy")
        import pyarrow as pa

        table = pa.table({str(i): values[:, i] for i in range(values.shape[1])})
        arrow = Path(tmp) / "values.arrow"
        with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        forms = measure(load_forms, str(entry / "values.npy"), str(arrow), preload=PRELOAD)
        floor_s = floor["seconds"]
        print()
        print(f"matrix: {shape[1]:,} genes x {shape[0]:,} samples (SPECIES, QN, then STANDARD)")
        print("| way | build s | peak MB | x floor |")
        print("|---|---:|---:|---:|")
        for name, run in runs.items():
            s = run["value"]["seconds"]
            print(f"| {name} | {s:.2f} | {format_mb(run['peak_mb'])} | {s / floor_s:.2f}x |")
        print()
        print(f"load one cached matrix back ({values.nbytes / 2**20:,.0f} MB, {values.shape}):")
        for form, s in forms["value"].items():
            print(f"- {form}: {s:.3f} s")
        ratio = warm["seconds"] / floor_s
        print(
            f"goal, warm rebuild at most 2x the compute floor: {ratio:.2f}x -> "
            f"{'met' if ratio <= 2 else 'NOT met'}; the cache saves "
            f"{uncached['seconds'] - warm['seconds']:.2f} s of "
            f"{uncached['seconds']:.2f} s per rebuild"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
