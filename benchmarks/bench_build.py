"""Benchmark: build a species dataset with refinewidgets and the straightforward pandas way.

What is compared
----------------
Both ways build the same dataset from the same inputs, in the same run: ``--experiments``
experiment-aggregated refine.bio zips (seeded synthetic human data, microarray and RNA-seq
experiments on three platforms that each measure a different 90% of the genes), aggregated by
SPECIES, quantile-normalized, scaled by STANDARD (z-score per gene) and written as a
refine.bio zip.

- **refinewidgets**: ``rw.open_catalog(folder)``, ``rw.build(rw.Dataset({...: ["ALL"]},
  aggregate_by="SPECIES", scale_by="STANDARD"), cat)``, ``res.write_zip(out)``.
- **pandas** (refine.bio's smasher, in plain pandas): per zip, ``zipfile`` and
  ``pd.read_csv(sep="\\t", index_col=0)`` of the experiment matrix; one single-column frame
  per sample, RNA-seq samples get ``log2(x + 1)`` (the SPECIES rule); the frames are merged
  one at a time with ``pd.merge(..., left_index=True, right_index=True, how="inner")``;
  quantile normalization with a target that is the mean of the sorted columns, each column
  ranked by ``scipy.stats.rankdata`` and mapped onto the target by ``np.interp`` (a Python loop
  over the columns); ``sklearn.preprocessing.StandardScaler`` on the transposed frame;
  ``DataFrame.to_csv(sep="\\t")`` streamed into a ``zipfile`` deflate member (zlib's default
  level, as ``shutil.make_archive`` in refine.bio), plus the metadata TSV (``pd.concat`` of the
  inputs' metadata tables, ``to_csv``) and the JSON metadata. Gene ids are not sanitised (the
  inputs are clean) and no KS check runs after QN, so the pandas way does a little less work
  than refinewidgets.

Each build runs in a fresh process (see ``_measure.py``): the wall time excludes imports, and
the peak memory is the peak resident memory above the process's memory after its imports,
with the inputs already on disk. The outputs of both ways are then compared (same genes, same
samples, values equal within ``1e-6``). Last, ``rw.read_zip`` is compared with
``pd.read_csv`` of the matrix and metadata members of the same zip.

Goals (from the issue): end to end at least 5x faster than the pandas way, and a peak memory
under 3x the size of the final float64 matrix.

Usage
-----
``python benchmarks/bench_build.py`` (20,000 genes x 1,000 samples from 10 zips: about three
minutes on 2 cores, most of it the pandas way; under 1 GB of memory, 0.6 GB of temporary files)
or ``--quick`` (2,000 genes x 120 samples from 6 zips, a smoke run in about 15 s).
``--genes`` / ``--samples`` / ``--experiments`` change the size, ``--repeat N`` runs each way
N times, alternating, and shows the medians; ``--pandas-compresslevel 1`` gives the pandas way
refinewidgets' deflate level. Run from the repository root with the package importable
(installed, or ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.preprocessing import StandardScaler

try:
    import refinewidgets as rw
except ImportError:  # running from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import refinewidgets as rw
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium

from _measure import format_mb, measure

ORGANISM = "HOMO_SAPIENS"
TECHNOLOGIES = ("MICROARRAY", "RNA-SEQ")
GENE_COVERAGE = 0.9
#: Imported in every measured process before its baseline (refinewidgets imports some lazily).
PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "sklearn.preprocessing",
    "pyarrow.csv",
    "anndata",
    "refinewidgets",
    "refinewidgets.io.catalog_open",
)
#: Largest accepted difference between the two ways' z-scores.
ATOL = 1e-6


# -- inputs (setup, not measured) -----------------------------------------------------------
def _compendium(n_genes: int, n_experiments: int, per_experiment: int, seed: int):
    return synthetic_compendium(
        n_experiments=n_experiments,
        samples_per_experiment=per_experiment,
        n_genes=n_genes,
        organisms=(ORGANISM,),
        technologies=TECHNOLOGIES,
        gene_coverage=GENE_COVERAGE,
        seed=seed,
    )


def _joined_genes(comp) -> int:
    genes = None
    for frame in comp.values.values():
        genes = frame.index if genes is None else genes.intersection(frame.index)
    return len(genes)


def organism_genes_for(join_genes: int, n_experiments: int, seed: int) -> int:
    """The organism gene count whose inner join over all platforms is near ``join_genes``.

    Each platform measures its own random ``GENE_COVERAGE`` share of the genes; which genes
    does not depend on the number of samples, so a one-sample probe finds the join size.
    """
    n = math.ceil(join_genes / GENE_COVERAGE**3)
    for _ in range(2):
        joined = _joined_genes(_compendium(n, n_experiments, 1, seed))
        n = max(1, round(n * join_genes / max(joined, 1)))
    return n


def make_inputs(
    folder: Path, *, genes: int, samples: int, experiments: int, seed: int
) -> list[str]:
    """Write one experiment-aggregated refine.bio zip per experiment; return the accessions."""
    n_genes = organism_genes_for(genes, experiments, seed)
    comp = _compendium(n_genes, experiments, samples // experiments, seed)
    catalog = rw.Catalog([InMemorySource.from_compendium(comp)])
    accessions = list(comp.experiments)
    for i, exp in enumerate(accessions):
        result = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), catalog)
        result.write_zip(folder / f"{i:02d}_{exp}.zip")
    return accessions


# -- the refinewidgets way (measured) ----------------------------------------------------------
def build_refinewidgets(folder: str, experiments: list[str], out: str) -> dict:
    """Open the folder of zips, build SPECIES + QN + STANDARD, write the zip."""
    t0 = time.perf_counter()
    cat = rw.open_catalog(folder)
    t1 = time.perf_counter()
    dataset = rw.Dataset(
        {exp: ["ALL"] for exp in experiments}, aggregate_by="SPECIES", scale_by="STANDARD"
    )
    res = rw.build(dataset, cat)
    t2 = time.perf_counter()
    res.write_zip(out)
    t3 = time.perf_counter()
    adata = res[ORGANISM]
    return {
        "shape": (adata.n_vars, adata.n_obs),
        "steps": {
            "open_catalog": t1 - t0,
            "build (read, merge, QN, KS check, scale)": t2 - t1,
            "write_zip": t3 - t2,
        },
    }


# -- the pandas way (measured) -----------------------------------------------------------------
def _metadata_order(columns) -> list[str]:
    """refine.bio's metadata column order: accession, experiment, refinebio_* sorted, the rest."""
    head = ["refinebio_accession_code", "experiment_accession"]
    harmonized = sorted(c for c in columns if c.startswith("refinebio_") and c not in head)
    return head + harmonized + sorted(set(columns) - set(head) - set(harmonized))


def build_pandas(
    folder: str, experiments: list[str], out: str, compresslevel: int | None = None
) -> dict:
    """The same build the straightforward way: per-sample frames merged one at a time.

    The zips are read in file-name order, which is the order of ``experiments`` (the same
    signature as :func:`build_refinewidgets`). ``compresslevel`` is the deflate level of the
    zip (None: zlib's default, refine.bio's).
    """
    steps = {}
    t = time.perf_counter()
    frames, metadata, experiment_records, sample_records = [], [], {}, {}
    for path in sorted(Path(folder).glob("*.zip")):
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("aggregated_metadata.json"))
            (exp,) = meta["experiments"]
            matrix = pd.read_csv(zf.open(f"{exp}/{exp}.tsv"), sep="\t", index_col=0)
            metadata.append(
                pd.read_csv(
                    zf.open(f"{exp}/metadata_{exp}.tsv"), sep="\t", dtype=str, keep_default_na=False
                )
            )
        experiment_records.update(meta["experiments"])
        sample_records.update(meta["samples"])
        technology = meta["experiments"][exp]["technology"]
        for sample in matrix.columns:
            frame = matrix[[sample]]
            if technology == "RNA-SEQ":
                frame = np.log2(frame + 1.0)
            elif technology == "MICROARRAY" and frame[sample].max() > 100:
                frame = np.log2(frame)
            frames.append(frame)
    del matrix
    now = time.perf_counter()
    steps["read zips, split per sample, log2"], t = now - t, now

    merged = frames[0]
    for frame in frames[1:]:
        merged = pd.merge(merged, frame, left_index=True, right_index=True, how="inner")
    del frames
    now = time.perf_counter()
    steps["merge one sample at a time"], t = now - t, now

    target = np.sort(merged.to_numpy(), axis=0).mean(axis=1)
    positions = np.arange(1, len(target) + 1, dtype=float)
    normalized = {}
    for sample in merged.columns:
        ranks = stats.rankdata(merged[sample].to_numpy())  # average ranks for ties
        percentile = (ranks - 1.0) / (len(ranks) - 1.0)
        normalized[sample] = np.interp(1.0 + (len(target) - 1.0) * percentile, positions, target)
    normalized = pd.DataFrame(normalized, index=merged.index)
    del merged
    now = time.perf_counter()
    steps["quantile normalization"], t = now - t, now

    scaled = StandardScaler().fit_transform(normalized.T)
    result = pd.DataFrame(scaled.T, index=normalized.index, columns=normalized.columns)
    result.index.name = "Gene"
    del normalized, scaled
    now = time.perf_counter()
    steps["StandardScaler"], t = now - t, now

    table = pd.concat(metadata, ignore_index=True).fillna("")
    table = table.set_index("refinebio_accession_code", drop=False).loc[list(result.columns)]
    table = table[_metadata_order(table.columns)]
    samples = {s: sample_records[s] for s in result.columns}
    aggregated = {
        "aggregate_by": "SPECIES",
        "experiments": experiment_records,
        "num_experiments": len(experiment_records),
        "num_samples": len(samples),
        "quantile_normalized": True,
        "samples": samples,
        "scale_by": "STANDARD",
    }
    with zipfile.ZipFile(
        out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as zf:
        zf.writestr("aggregated_metadata.json", json.dumps(aggregated, indent=4, sort_keys=True))
        with zf.open(f"{ORGANISM}/{ORGANISM}.tsv", "w", force_zip64=True) as raw:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                result.to_csv(fh, sep="\t")
        zf.writestr(f"{ORGANISM}/metadata_{ORGANISM}.tsv", table.to_csv(sep="\t", index=False))
        species = {"species": ORGANISM, "samples": list(samples.values())}
        zf.writestr(
            f"{ORGANISM}/metadata_{ORGANISM}.json", json.dumps(species, indent=4, sort_keys=True)
        )
    steps["to_csv into the zip"] = time.perf_counter() - t
    return {"shape": result.shape, "steps": steps}


# -- reading the zip (measured) ----------------------------------------------------------------
def read_refinewidgets(path: str) -> tuple[int, int]:
    res = rw.read_zip(path)
    return res[ORGANISM].shape


def read_pandas(path: str) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        matrix = pd.read_csv(zf.open(f"{ORGANISM}/{ORGANISM}.tsv"), sep="\t", index_col=0)
        metadata = pd.read_csv(zf.open(f"{ORGANISM}/metadata_{ORGANISM}.tsv"), sep="\t")
    assert len(metadata) == matrix.shape[1]
    return matrix.shape[::-1]


# -- checks and report ---------------------------------------------------------------------
def _matrix_and_metadata(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with zipfile.ZipFile(path) as zf:
        matrix = pd.read_csv(zf.open(f"{ORGANISM}/{ORGANISM}.tsv"), sep="\t", index_col=0)
        metadata = pd.read_csv(zf.open(f"{ORGANISM}/metadata_{ORGANISM}.tsv"), sep="\t", dtype=str)
    return matrix, metadata


def compare_outputs(rw_zip: Path, pandas_zip: Path) -> float:
    """Assert both zips hold the same genes, samples and (within ATOL) values; the largest gap."""
    a, meta_a = _matrix_and_metadata(rw_zip)
    b, meta_b = _matrix_and_metadata(pandas_zip)
    assert a.index.is_unique and b.index.is_unique
    only_rw, only_pd = a.index.difference(b.index), b.index.difference(a.index)
    assert not len(only_rw) and not len(only_pd), (
        f"gene sets differ: {len(only_rw)} genes only in refinewidgets' output "
        f"(e.g. {list(only_rw[:3])}), {len(only_pd)} only in the pandas output (e.g. {list(only_pd[:3])})"
    )
    assert set(a.columns) == set(b.columns), "the two outputs hold different samples"
    assert list(meta_a["refinebio_accession_code"]) == list(a.columns), (
        "rw metadata rows != matrix columns"
    )
    assert list(meta_b["refinebio_accession_code"]) == list(b.columns), (
        "pandas metadata rows != matrix columns"
    )
    gap = float(np.nanmax(np.abs(a.to_numpy() - b.loc[a.index, a.columns].to_numpy())))
    assert gap <= ATOL, f"the two outputs differ by up to {gap:.3g} (tolerance {ATOL})"
    return gap


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with the median peak memory of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "peak_mb": float(np.median([r["peak_mb"] for r in runs])),
    }


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator > 0 else "n/a"


def report(build: dict, read: dict, shape: tuple[int, int], gap: float) -> bool:
    """Print the tables; return whether both goals are met."""
    rows = [
        ("build: open + SPECIES + QN + STANDARD + write zip", build),
        ("read the zip (matrix + metadata)", read),
    ]
    print(
        "| step | refinewidgets s | pandas s | speed ratio (pandas / rw) | refinewidgets peak MB "
        "| pandas peak MB | memory ratio (pandas / rw) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        w, p = r["refinewidgets"], r["pandas"]
        print(
            f"| {name} | {w['seconds']:.2f} | {p['seconds']:.2f} | {_ratio(p['seconds'], w['seconds'])} "
            f"| {format_mb(w['peak_mb'])} | {format_mb(p['peak_mb'])} | {_ratio(p['peak_mb'], w['peak_mb'])} |"
        )
    print()
    for way in ("refinewidgets", "pandas"):
        steps = build[way]["value"]["steps"]
        print(
            f"{way} build steps: "
            + "; ".join(f"{k} {v:.2f} s" for k, v in steps.items())
            + f" (CPU {build[way]['cpu_seconds']:.1f} s for {build[way]['seconds']:.1f} s wall)"
        )
    matrix_mb = shape[0] * shape[1] * 8 / 2**20
    speed = build["pandas"]["seconds"] / build["refinewidgets"]["seconds"]
    memory = build["refinewidgets"]["peak_mb"] / matrix_mb
    speed_ok, memory_ok = speed >= 5.0, memory < 3.0
    print()
    print(
        f"final matrix: {shape[0]:,} genes x {shape[1]:,} samples = {format_mb(matrix_mb)} MB as float64; "
        f"largest difference between the two outputs: {gap:.2g}"
    )
    print(
        f"goal 1, end to end >= 5x faster than pandas: {speed:.1f}x -> {'met' if speed_ok else 'NOT met'}"
    )
    print(
        f"goal 2, refinewidgets peak < 3x the matrix: {build['refinewidgets']['peak_mb']:.1f} MB = "
        f"{memory:.2f}x -> {'met' if memory_ok else 'NOT met'}"
    )
    return speed_ok and memory_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=20_000, help="genes left after the inner join")
    parser.add_argument("--samples", type=int, default=1_000, help="samples in all")
    parser.add_argument(
        "--experiments", type=int, default=10, help="input zips (one experiment each)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each way, alternating; the table shows the medians",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 genes x 120 samples from 6 zips"
    )
    parser.add_argument(
        "--pandas-compresslevel",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="deflate level of the pandas way's zip (default: zlib's default, 6, as "
        "refine.bio; refinewidgets writes level 1)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep inputs and outputs here (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.samples, args.experiments = 2_000, 120, 6
    if args.samples < 2 * args.experiments:
        parser.error("--samples must be at least twice --experiments")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="bench_build_") as tmp:
        work = args.workdir or Path(tmp)
        inputs, outputs = work / "inputs", work / "outputs"
        inputs.mkdir(parents=True, exist_ok=True)
        outputs.mkdir(parents=True, exist_ok=True)
        for old in [*inputs.glob("*.zip"), *outputs.glob("*.zip")]:
            old.unlink()
        print(
            f"setup: {args.experiments} experiment zips, {args.samples // args.experiments} samples "
            f"each, about {args.genes:,} genes after the join (seed {args.seed}) ...",
            flush=True,
        )
        t = time.perf_counter()
        experiments = make_inputs(
            inputs,
            genes=args.genes,
            samples=args.samples,
            experiments=args.experiments,
            seed=args.seed,
        )
        size = sum(p.stat().st_size for p in inputs.glob("*.zip")) / 2**20
        print(f"setup done in {time.perf_counter() - t:.1f} s ({size:.1f} MB of zips)", flush=True)

        rw_zip, pd_zip = outputs / "refinewidgets.zip", outputs / "pandas.zip"
        runs = {"refinewidgets": [], "pandas": []}
        for i in range(args.repeat):
            for way in runs:
                print(
                    f"building the {way} way, run {i + 1}/{args.repeat} (load average "
                    f"{os.getloadavg()[0]:.1f}) ...",
                    flush=True,
                )
                (rw_zip if way == "refinewidgets" else pd_zip).unlink(missing_ok=True)
                if way == "refinewidgets":
                    r = measure(
                        build_refinewidgets, str(inputs), experiments, str(rw_zip), preload=PRELOAD
                    )
                else:
                    r = measure(
                        build_pandas,
                        str(inputs),
                        experiments,
                        str(pd_zip),
                        args.pandas_compresslevel,
                        preload=PRELOAD,
                    )
                runs[way].append(r)
        build = {way: _median_run(r) for way, r in runs.items()}
        shapes = {way: tuple(r["value"]["shape"]) for way, r in build.items()}
        assert shapes["refinewidgets"] == shapes["pandas"], f"shapes differ: {shapes}"
        gap = compare_outputs(rw_zip, pd_zip)
        print("reading the zip ...", flush=True)
        runs = {"refinewidgets": [], "pandas": []}
        for _ in range(args.repeat):
            runs["refinewidgets"].append(measure(read_refinewidgets, str(rw_zip), preload=PRELOAD))
            runs["pandas"].append(measure(read_pandas, str(rw_zip), preload=PRELOAD))
        read = {way: _median_run(r) for way, r in runs.items()}
        print()
        report(build, read, shapes["refinewidgets"], gap)
        if args.quick:
            print("(--quick is a smoke run: the goals are meant for the full size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
