"""Benchmark: build a species dataset with refinewidgets, two pandas ways, and each step's floor.

What is compared
----------------
Every way builds the same dataset from the same inputs, in the same run, at each size of
``--samples`` (default 300, 1,000 and 4,000): experiment-aggregated refine.bio zips of
``--per-experiment`` samples (default 50: 6 zips at 300 samples; seeded synthetic human data,
microarray and RNA-seq experiments on three platforms that each measure a different 90% of the
genes), aggregated by SPECIES, quantile-normalized, scaled by STANDARD (z-score per gene) and
written as a refine.bio zip.

- **refinewidgets**: ``rw.open_catalog(folder)``, ``rw.build(rw.Dataset({...: ["ALL"]},
  aggregate_by="SPECIES", scale_by="STANDARD"), cat)``, ``res.write_zip(out)``.
- **expert polars/numpy** (the main peer, ``expert_way.py``): ISA-L inflate, one polars parse
  per zip, a gather per zip, QN with one argsort per sample on threads, z-scores on threads,
  polars formatting, ISA-L deflate on 2 threads (pigz's way).
- **pandas (competent)**: what a good pandas user writes: ``pd.read_csv`` of each matrix, log2
  of the whole frame, one ``pd.concat(..., axis=1, join="inner")``, vectorised QN (the target is
  the mean of the sorted columns, ``scipy.stats.rankdata`` over the whole array, one
  ``np.interp``), ``StandardScaler``, ``to_csv`` into a zip member at deflate level 1 (the zlib
  level whose size is closest to ours).
- **pandas (refine.bio's way)**: refine.bio's smasher in plain pandas: one single-column frame
  per sample merged one at a time with ``pd.merge(how="inner")``, QN a Python loop over the
  columns, ``to_csv`` at zlib's default level 6 (``shutil.make_archive`` in refine.bio); up to
  ``--refinebio-max`` samples (its merges grow quadratically).
- **steps and floors**: refinewidgets' steps timed one by one with the functions ``rw.build``
  calls (read, merge, QN, KS check, scale, write the matrix), beside the floor of each step:
  the fastest way measured here doing only that step's essential work (see :func:`floors`).
  Each step is printed as a multiple of its floor.

Each run is a fresh process (see ``_measure.py``), with refinewidgets' parsed-source cache off
(every way parses its inputs; ``bench_rebuild.py`` measures the cache): the wall time excludes
imports (and polars' one-time thread-pool start), CPU seconds count every thread, and the peak
memory is the peak resident memory above the process's memory before the call, with the inputs
already on disk. The ways (and the steps and floors) run interleaved, ``--repeat`` rounds
(default 3), the order rotated each round; tables give min and median wall and CPU seconds and
the load average. The outputs are compared (same genes, same samples, values equal within
``1e-6``). ``--read`` also compares ``rw.read_zip`` with ``pd.read_csv`` of the output
(``bench_read.py`` does this from 250 to 16,000 samples).

Goals (issue 26): build + write_zip CPU at most 0.7x and wall at most 0.8x the expert way
(medians) at 300 samples and at 1,000 to 4,000; growth exponent (wall min and CPU median) at
most 1.05.

Usage
-----
``python benchmarks/bench_build.py`` (20,000 genes x 300, 1,000 and 4,000 samples: 30 to 60
minutes on a loaded 2-core machine, most of it the pandas ways; about 6 GB of memory at 4,000)
or ``--quick`` (2,000 genes x 120 and 240 samples, one run, a smoke run).
``--genes`` / ``--samples 250,1000,4000,16000`` / ``--per-experiment`` change the sizes,
``--repeat N`` the rounds, ``--no-steps`` skips the steps and floors, ``--expert-only``
the two pandas ways, ``--pandas-compresslevel
1`` gives refine.bio's way the level of the competent way. Run from the repository root with the package importable
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
import zlib
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
from bench_read import warm_polars
from expert_way import _quantile_normalize, _standardize, build_expert

from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium

from _measure import exponent, format_mb, interleaved, load_average, measure, summary

ORGANISM = "HOMO_SAPIENS"
TECHNOLOGIES = ("MICROARRAY", "RNA-SEQ")
GENE_COVERAGE = 0.9
#: Imported in every measured process before its baseline (refinewidgets imports some lazily):
#: every way's modules, ours too (the build's and write_zip's; with PYTHONDONTWRITEBYTECODE set,
#: as on the CI machine, a module first imported inside the call is compiled there, 0.3 s).
PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "sklearn.preprocessing",
    "pyarrow.csv",
    "polars",
    "isal.isal_zlib",
    "anndata",
    "refinewidgets",
    "refinewidgets.io.catalog_open",
    "refinewidgets.core.build",
    "refinewidgets.io.refinebio.zip",
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


# -- the refinewidgets steps, one by one (measured) -----------------------------------------
def steps_refinewidgets(folder: str, experiments: list[str], out: str) -> dict:
    """The build's steps timed one at a time, with the functions ``rw.build`` calls."""
    from refinewidgets.core.ks_check import ks_check, ks_pairs
    from refinewidgets.core.merge import merge_group
    from refinewidgets.core.quantile import quantile_normalize_rows
    from refinewidgets.core.scale import scale_rows
    from refinewidgets.core.threads import thread_count
    from refinewidgets.io.containers.deflate import fast_deflate
    from refinewidgets.io.refinebio.matrix import write_matrix

    steps = {}
    threads = thread_count()
    t = time.perf_counter()
    cat = rw.open_catalog(folder)
    accessions = [a for exp in experiments for a in cat.experiment_samples(exp)]
    frames = [
        (src.read_matrix(matrix_id, accs), matrix_id)
        for (src, matrix_id), accs in cat.by_matrix(accessions).items()
    ]
    now = time.perf_counter()
    steps["open + read"], t = now - t, now
    technology = {
        a: cat.technology(exp) for exp in experiments for a in cat.experiment_samples(exp)
    }
    log_rnaseq = {a: not cat.locate(a)[0].log_scale for a in accessions}
    t = time.perf_counter()
    gm = merge_group(iter(frames), technology, log_rnaseq=log_rnaseq, threads=threads)
    del frames
    now = time.perf_counter()
    steps["merge"], t = now - t, now
    pairs = ks_pairs(len(gm.samples), 100, 0)  # as rw.build: QN keeps the tested rows sorted
    tested = {i: None for pair in pairs for i in pair}
    quantile_normalize_rows(gm.X, out=gm.X, threads=threads, sorted_rows=tested)  # one sort
    now = time.perf_counter()
    steps["QN"], t = now - t, now
    ks_check(gm.X, names=gm.samples, pairs=pairs, sorted_rows=tested)
    now = time.perf_counter()
    steps["KS check"], t = now - t, now
    scale_rows(gm.X, "STANDARD", threads=threads)
    now = time.perf_counter()
    steps["scale"], t = now - t, now
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{ORGANISM}/{ORGANISM}.tsv", "w", force_zip64=True) as fh:
            fast_deflate(fh)
            write_matrix(fh, gm.genes.to_numpy(), gm.samples, gm.X)
    steps["write (format + deflate)"] = time.perf_counter() - t
    return {"shape": (len(gm.genes), len(gm.samples)), "steps": steps}


# -- the floors (measured) -------------------------------------------------------------------
def floors(folder: str, experiments: list[str], out: str) -> dict:
    """The fastest way measured here for each step, doing only that step's essential work.

    read: ISA-L inflate + one polars parse per zip; merge: one intersection of the gene ids,
    one gather per block, log2; QN: one argsort per sample for the target and the scatter, on
    threads; scale: numpy mean and standard deviation per gene, in blocks, on threads; format:
    polars' ``write_csv`` of the whole matrix to memory; deflate: ISA-L at our level (one
    thread: the floor of the work, not of the wall). The size of the
    same text deflated by zlib at level 1 is measured too (not timed).
    """
    import polars as pl
    from bench_read import read_floor
    from isal import isal_zlib

    from refinewidgets.io.containers.deflate import DEFLATE_LEVEL

    steps = {}
    blocks = []
    read_s = 0.0
    cpu = {"open + read": 0.0}  # CPU seconds (all threads) of each timed piece
    for path in sorted(Path(folder).glob("*.zip")):
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("aggregated_metadata.json"))
        (exp,) = meta["experiments"]
        member = f"{exp}/{exp}.tsv"
        with zipfile.ZipFile(path) as zf:
            frame = pl.read_csv(zf.read(member), separator="\t")  # untimed: values to gather
        c = time.process_time()
        floor = read_floor(str(path), member)
        cpu["open + read"] += time.process_time() - c
        read_s += floor["inflate"] + floor["parse"]
        values = frame.drop(frame.columns[0]).to_numpy().T.copy()  # samples x genes
        rnaseq = meta["experiments"][exp]["technology"] == "RNA-SEQ"
        blocks.append((pd.Index(frame.get_column(frame.columns[0]).to_list()), values, rnaseq))
        del frame
    steps["open + read"] = read_s

    t, c = time.perf_counter(), time.process_time()
    genes = blocks[0][0]
    for ids, _, _ in blocks[1:]:
        genes = genes.intersection(ids)
    genes = genes.sort_values()
    X = np.empty((sum(b[1].shape[0] for b in blocks), len(genes)))
    row = 0
    for ids, values, rnaseq in blocks:
        rows = X[row : row + values.shape[0]]
        np.take(values, ids.get_indexer(genes), axis=1, out=rows)
        if rnaseq:
            np.log2(rows + 1.0, out=rows)
        row += values.shape[0]
    steps["merge"], cpu["merge"] = time.perf_counter() - t, time.process_time() - c
    del blocks

    t, c = time.perf_counter(), time.process_time()
    _quantile_normalize(X)  # one argsort per sample, on threads
    steps["QN"], cpu["QN"] = time.perf_counter() - t, time.process_time() - c
    steps["KS check"] = 0.0

    t, c = time.perf_counter(), time.process_time()
    _standardize(X)  # numpy mean and standard deviation per gene block, on threads
    steps["scale"], cpu["scale"] = time.perf_counter() - t, time.process_time() - c

    frame = pl.DataFrame({"Gene": genes.to_numpy().astype(str)}).hstack(
        pl.from_numpy(X.T, schema=[f"c{i}" for i in range(X.shape[0])], orient="row")
    )
    del X
    t, c = time.perf_counter(), time.process_time()
    text = frame.write_csv(None, separator="\t", include_header=False).encode()
    format_s, format_cpu = time.perf_counter() - t, time.process_time() - c
    del frame
    t, c = time.perf_counter(), time.process_time()
    compressor = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
    size = len(compressor.compress(text)) + len(compressor.flush())
    deflate_s = time.perf_counter() - t
    cpu["write (format + deflate)"] = format_cpu + time.process_time() - c
    steps["write (format + deflate)"] = format_s + deflate_s
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    zlib_size = len(compressor.compress(text)) + len(compressor.flush())
    return {
        "steps": steps,
        "cpu": cpu,
        "format": format_s,
        "deflate": deflate_s,
        "deflated_bytes": size,
        "zlib1_bytes": zlib_size,
        "text_bytes": len(text),
    }


# -- the pandas ways (measured) ----------------------------------------------------------------
def _metadata_order(columns) -> list[str]:
    """refine.bio's metadata column order: accession, experiment, refinebio_* sorted, the rest."""
    head = ["refinebio_accession_code", "experiment_accession"]
    harmonized = sorted(c for c in columns if c.startswith("refinebio_") and c not in head)
    return head + harmonized + sorted(set(columns) - set(head) - set(harmonized))


def _read_inputs(folder: str):
    """Every input zip: ``(matrix, technology)`` pairs, metadata tables, experiment and sample
    records."""
    matrices, metadata, experiment_records, sample_records = [], [], {}, {}
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
        matrices.append((matrix, meta["experiments"][exp]["technology"]))
    return matrices, metadata, experiment_records, sample_records


def _write_output(out, result, metadata, experiment_records, sample_records, compresslevel):
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


def build_pandas(
    folder: str, experiments: list[str], out: str, compresslevel: int | None = None
) -> dict:
    """refine.bio's way in plain pandas: per-sample frames merged one at a time.

    The zips are read in file-name order, which is the order of ``experiments`` (the same
    signature as :func:`build_refinewidgets`). ``compresslevel`` is the deflate level of the
    zip (None: zlib's default, refine.bio's).
    """
    steps = {}
    t = time.perf_counter()
    matrices, metadata, experiment_records, sample_records = _read_inputs(folder)
    frames = []
    for matrix, technology in matrices:
        for sample in matrix.columns:
            frame = matrix[[sample]]
            if technology == "RNA-SEQ":
                frame = np.log2(frame + 1.0)
            elif technology == "MICROARRAY" and frame[sample].max() > 100:
                frame = np.log2(frame)
            frames.append(frame)
    del matrices, matrix
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

    _write_output(out, result, metadata, experiment_records, sample_records, compresslevel)
    steps["to_csv into the zip"] = time.perf_counter() - t
    return {"shape": result.shape, "steps": steps}


def build_pandas_competent(folder: str, experiments: list[str], out: str) -> dict:
    """What a good pandas user writes: whole-matrix log2, one ``pd.concat`` inner join,
    vectorised QN (``rankdata`` over the whole array, one ``np.interp``), ``StandardScaler``,
    ``to_csv`` into a zip at deflate level 1 (the zlib level closest to ours in size)."""
    steps = {}
    t = time.perf_counter()
    matrices, metadata, experiment_records, sample_records = _read_inputs(folder)
    frames = []
    for matrix, technology in matrices:
        if technology == "RNA-SEQ":
            matrix = np.log2(matrix + 1.0)
        elif technology == "MICROARRAY":
            unlogged = matrix.columns[matrix.max() > 100]
            matrix[unlogged] = np.log2(matrix[unlogged])
        frames.append(matrix)
    del matrices
    now = time.perf_counter()
    steps["read zips, log2"], t = now - t, now

    merged = pd.concat(frames, axis=1, join="inner")
    del frames
    now = time.perf_counter()
    steps["one pd.concat inner join"], t = now - t, now

    values = merged.to_numpy()
    target = np.sort(values, axis=0).mean(axis=1)
    percentile = (stats.rankdata(values, axis=0) - 1.0) / (values.shape[0] - 1.0)
    positions = np.arange(1, len(target) + 1, dtype=float)
    normalized = np.interp(1.0 + (len(target) - 1.0) * percentile, positions, target)
    del values, percentile
    now = time.perf_counter()
    steps["vectorised QN"], t = now - t, now

    scaled = StandardScaler().fit_transform(normalized.T)
    result = pd.DataFrame(scaled.T, index=merged.index, columns=merged.columns)
    result.index.name = "Gene"
    del normalized, scaled, merged
    now = time.perf_counter()
    steps["StandardScaler"], t = now - t, now

    _write_output(out, result, metadata, experiment_records, sample_records, 1)
    steps["to_csv into the zip (level 1)"] = time.perf_counter() - t
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


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"


EXPERT = "expert polars/numpy"
COMPETENT = "pandas (competent)"
REFINEBIO = "pandas (refine.bio's way)"
STEPS = "refinewidgets steps, one by one"
FLOORS = "floors, one by one"
WAYS = ("refinewidgets", EXPERT, COMPETENT, REFINEBIO)


def run_size(work: Path, args, n_samples: int) -> dict:
    """Inputs for ``n_samples``, every way interleaved ``args.repeat`` times; the runs."""
    n_exp = max(1, round(n_samples / args.per_experiment))
    inputs, outputs = work / f"inputs_{n_samples}", work / f"outputs_{n_samples}"
    inputs.mkdir(parents=True, exist_ok=True)
    outputs.mkdir(parents=True, exist_ok=True)
    for old in [*inputs.glob("*.zip"), *outputs.glob("*.zip")]:
        old.unlink()
    print(
        f"setup: {n_exp} experiment zips of {n_samples // n_exp} samples, about "
        f"{args.genes:,} genes after the join (seed {args.seed}) ...",
        flush=True,
    )
    t = time.perf_counter()
    experiments = make_inputs(
        inputs, genes=args.genes, samples=n_samples, experiments=n_exp, seed=args.seed
    )
    size = sum(p.stat().st_size for p in inputs.glob("*.zip")) / 2**20
    print(f"setup done in {time.perf_counter() - t:.1f} s ({size:.1f} MB of zips)", flush=True)
    calls = {"refinewidgets": (build_refinewidgets, ()), EXPERT: (build_expert, ())}
    if not args.expert_only:
        calls[COMPETENT] = (build_pandas_competent, ())
    if n_samples <= args.refinebio_max and not args.expert_only:
        calls[REFINEBIO] = (build_pandas, (args.pandas_compresslevel,))
    if not args.no_steps:
        calls[STEPS] = (steps_refinewidgets, ())
        calls[FLOORS] = (floors, ())
    zips = {way: outputs / f"{i}.zip" for i, way in enumerate(calls)}

    def way(name):
        def run():
            zips[name].unlink(missing_ok=True)
            fn, extra = calls[name]
            return measure(
                fn,
                str(inputs),
                experiments,
                str(zips[name]),
                *extra,
                preload=PRELOAD,
                warmup=[warm_polars],
            )

        return run

    runs = interleaved({name: way(name) for name in calls}, args.repeat, label=f"{n_samples}: ")
    shapes = {w: tuple(runs[w][-1]["value"]["shape"]) for w in calls if w in WAYS}
    assert len(set(shapes.values())) == 1, f"shapes differ: {shapes}"
    gaps = {
        w: compare_outputs(zips["refinewidgets"], zips[w]) for w in shapes if w != "refinewidgets"
    }
    read = None
    if args.read:
        read = interleaved(
            {
                "rw.read_zip": lambda: measure(
                    read_refinewidgets,
                    str(zips["refinewidgets"]),
                    preload=PRELOAD,
                    warmup=[warm_polars],
                ),
                "pandas.read_csv": lambda: measure(
                    read_pandas, str(zips["refinewidgets"]), preload=PRELOAD
                ),
            },
            args.repeat,
            label=f"{n_samples} read: ",
        )
    for folder in (inputs, outputs):
        for old in folder.glob("*.zip"):
            old.unlink()
    return {"runs": runs, "shape": shapes["refinewidgets"], "gaps": gaps, "read": read}


def report(sizes: list[int], rows: list[dict], repeat: int) -> bool:
    """Print the tables; return whether the goals are met."""
    print(
        f"build SPECIES + QN + STANDARD + write the zip; {repeat} interleaved runs of each way, "
        f"each in a fresh process; CPU = user + system of all threads; {load_average()} at "
        "the end"
    )
    print()
    print(
        "| samples | way | wall min s | wall median s | CPU min s | CPU median s | peak MB "
        "| wall / expert (medians) | CPU / expert (medians) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    stats = []
    for n, row in zip(sizes, rows):
        st = {w: summary(r) for w, r in row["runs"].items()}
        stats.append(st)
        ex = st[EXPERT]
        for w, x in st.items():
            if w in (STEPS, FLOORS):
                continue
            print(
                f"| {n:,} | {w} | {x['min']:.2f} | {x['median']:.2f} | {x['cpu_min']:.2f} | "
                f"{x['cpu_median']:.2f} | {format_mb(x['peak_mb'])} | "
                f"{_ratio(x['median'], ex['median'])} | {_ratio(x['cpu_median'], ex['cpu_median'])} |"
            )
    print()
    for n, row in zip(sizes, rows):
        if STEPS not in row["runs"]:
            continue
        ours = [r["value"]["steps"] for r in row["runs"][STEPS]]
        floor = [r["value"]["steps"] for r in row["runs"][FLOORS]]
        print(
            f"{n:,} samples, {row['shape'][0]:,} genes: each step (min of the runs) and its floor"
        )
        print()
        print("| step | refinewidgets s | floor s | multiple of the floor |")
        print("|---|---:|---:|---:|")
        for name in ours[0]:
            a = min(o[name] for o in ours)
            b = min(f.get(name, 0.0) for f in floor)
            print(f"| {name} | {a:.2f} | {b:.2f} | {_ratio(a, b)} |")
        a = min(sum(o.values()) for o in ours)
        b = min(sum(f.values()) for f in floor)
        print(f"| sum of the steps | {a:.2f} | {b:.2f} | {_ratio(a, b)} |")
        print()
        expert_cpu = summary(row["runs"][EXPERT])["cpu_median"]
        floor_cpu = min(sum(r["value"]["cpu"].values()) for r in row["runs"][FLOORS])
        print(
            f"the floors' CPU seconds (all threads, min of the runs) add up to {floor_cpu:.2f} s, "
            f"{_ratio(floor_cpu, expert_cpu)} the expert way's CPU median ({expert_cpu:.2f} s): "
            "above 0.7x, the CPU goal would need steps below their floors"
        )
        print()
    for n, row in zip(sizes, rows):
        if row["read"] is None:
            continue
        r = {w: summary(x) for w, x in row["read"].items()}
        w, pd_ = r["rw.read_zip"], r["pandas.read_csv"]
        print(
            f"{n:,} samples, read the output zip: rw.read_zip {w['min']:.2f} / {w['median']:.2f} s "
            f"(min / median, CPU {w['cpu_median']:.2f} s), pandas.read_csv {pd_['min']:.2f} / "
            f"{pd_['median']:.2f} s (CPU {pd_['cpu_median']:.2f} s): pandas / rw "
            f"{_ratio(pd_['median'], w['median'])}"
        )
    print()
    for n, row in zip(sizes, rows):
        print(
            f"{n:,} samples: {row['shape'][0]:,} genes; largest difference from refinewidgets' "
            "output: " + ", ".join(f"{w} {g:.2g}" for w, g in row["gaps"].items())
        )
    fits = {}
    if len(sizes) > 1:
        for w in WAYS:
            pts = [(n, st[w]) for n, st in zip(sizes, stats) if w in st]
            if len(pts) > 1:
                fits[w] = (
                    exponent([n for n, _ in pts], [x["min"] for _, x in pts]),
                    exponent([n for n, _ in pts], [x["cpu_median"] for _, x in pts]),
                )
        print(
            "growth exponent b of seconds ~ samples**b (wall min, CPU median): "
            + "; ".join(f"{w} {a:.2f}, {b:.2f}" for w, (a, b) in fits.items())
        )
    goals = []
    for n, st in zip(sizes, stats):
        if n <= 300 or 1000 <= n <= 4000:
            cpu = st["refinewidgets"]["cpu_median"] / st[EXPERT]["cpu_median"]
            wall = st["refinewidgets"]["median"] / st[EXPERT]["median"]
            goals.append(
                (f"{n:,} samples: CPU at most 0.7x the expert way: {cpu:.2f}x", cpu <= 0.7)
            )
            goals.append(
                (f"{n:,} samples: wall at most 0.8x the expert way: {wall:.2f}x", wall <= 0.8)
            )
    if "refinewidgets" in fits:
        a, b = fits["refinewidgets"]
        worst = max(a, b)
        goals.append(
            (f"growth exponent at most 1.05: {a:.2f} (wall), {b:.2f} (CPU)", worst <= 1.05)
        )
    for text, ok in goals:
        print(f"goal, {text} -> {'met' if ok else 'NOT met'}")
    return all(ok for _, ok in goals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=20_000, help="genes left after the inner join")
    parser.add_argument(
        "--samples", default="300,1000,4000", help="sizes, comma-separated (samples in all)"
    )
    parser.add_argument(
        "--per-experiment", type=int, default=50, help="samples per input zip (300: 6 zips)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each way")
    parser.add_argument(
        "--refinebio-max",
        type=int,
        default=1000,
        help="largest size at which refine.bio's way (one merge per sample) runs",
    )
    parser.add_argument("--no-steps", action="store_true", help="skip the steps and floors")
    parser.add_argument(
        "--expert-only",
        action="store_true",
        help="compare with the expert way only (the goals' peer): skip the two pandas ways",
    )
    parser.add_argument("--read", action="store_true", help="also read the output zip back")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 genes, 120 and 240 samples, 1 run"
    )
    parser.add_argument(
        "--pandas-compresslevel",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="deflate level of refine.bio's way (default: zlib's default, 6, as refine.bio; the "
        "competent pandas way always writes level 1)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep inputs and outputs here (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.samples, args.per_experiment, args.repeat = 2_000, "120,240", 20, 1
    sizes = sorted(int(x) for x in args.samples.split(","))
    if min(sizes) < 2 * args.per_experiment and min(sizes) < 2:
        parser.error("each size needs at least two samples")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    # Every way parses its inputs: refinewidgets' parsed-source cache is off in the measured
    # processes (they inherit the environment); bench_rebuild.py measures the cache.
    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    with tempfile.TemporaryDirectory(prefix="bench_build_") as tmp:
        work = args.workdir or Path(tmp)
        rows = [run_size(work, args, n) for n in sizes]
        print()
        report(sizes, rows, args.repeat)
        if args.quick:
            print("(--quick is a smoke run: the goals are meant for the full size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
