"""Benchmark: read a refine.bio zip, from 250 to 16,000 samples, against its floor and pandas.

What is compared, for each size, in the same run, each call in a fresh process (``_measure.py``),
the ways interleaved (A, B, C, then rotated), ``--repeat`` times (default 3):

- **refinewidgets**: ``rw.read_zip(path)`` (the matrix, the metadata, an AnnData).
- **floor**: the fastest pieces measured on this machine, without any of the work of a reader
  (no batches, no copy into an array, no metadata): ISA-L inflate of the matrix member
  (streamed, the bytes kept) plus one ``polars.read_csv`` of the whole text already in memory.
  Floor wall = inflate seconds + parse seconds (the call's other work not counted); its CPU
  is the whole call's.
- **pandas**: ``zipfile`` + ``pd.read_csv(member, sep="\\t", index_col=0)`` of the matrix and
  of the metadata (up to ``--pandas-max`` samples).

Printed: min and median wall seconds, min and median CPU seconds (all threads), peak memory
above the baseline (and as a multiple of the float64 matrix), each way's multiple of the floor
(medians, and mins), the load average, and the exponent ``b`` of ``seconds ~ samples**b``
fitted over the sizes (1.0 is linear). polars' one-time start-up (its thread pool, about 20 MB)
happens before the baseline of the polars ways; imports happen before every baseline.

Goals (issue 26): at most 1.2x the floor at every size from 250 samples (the worse of the
median and the min ratio), exponent at most 1.05, peak at most 1.5x the matrix. The floor is
about 2.4x faster than ``pandas.read_csv`` on 2 cores: pandas' multiple is printed, not a goal.

Usage
-----
``python benchmarks/bench_read.py`` (19,944 genes; 250, 1,000, 4,000 and 16,000 samples: the
16,000-sample zip is 2.6 GB, its text 5.7 GB, about 15 GB of memory at the peak of the floor;
tens of minutes on 2 cores), ``--quick`` (2,000 genes, 100 to 800 samples, one run, a smoke run),
or ``--genes`` / ``--samples 250,1000,4000`` / ``--repeat N`` / ``--pandas-max N``.
"""

from __future__ import annotations

import argparse
import json
import os
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
from refinewidgets.io.containers.deflate import fast_deflate
from refinewidgets.io.refinebio.matrix import write_matrix

from _measure import exponent, format_mb, interleaved, load_average, measure, summary

KEY = "ALL"
MEMBER = f"{KEY}/{KEY}.tsv"
#: Imported before each measured call: every way's modules, read_zip's too (with
#: PYTHONDONTWRITEBYTECODE set, a module first imported inside the call is compiled there).
PRELOAD = (
    "numpy",
    "pandas",
    "polars",
    "pyarrow.csv",
    "anndata",
    "refinewidgets",
    "refinewidgets.io.refinebio.zip",
    "isal.isal_zlib",
)
NAN_SHARE = 0.001


# -- inputs (setup, not measured) ------------------------------------------------------------
def make_zip(path: Path, n_genes: int, n_samples: int, seed: int = 0) -> None:
    """A minimal refine.bio download: aggregated metadata, the matrix, one metadata row each."""
    rng = np.random.default_rng(seed)
    X = rng.normal(7.0, 2.0, size=(n_samples, n_genes))
    X[rng.random(X.shape) < NAN_SHARE] = np.nan
    genes = [f"ENSG{i:011d}" for i in range(n_genes)]
    samples = [f"GSM{i:07d}" for i in range(n_samples)]
    meta = {"aggregate_by": "ALL", "experiments": {}, "samples": {}}
    rows = "refinebio_accession_code\texperiment_accession\r\n" + "".join(
        f"{s}\tGSE1\r\n" for s in samples
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("aggregated_metadata.json", json.dumps(meta))
        with zf.open(MEMBER, "w", force_zip64=True) as fh:
            fast_deflate(fh)
            write_matrix(fh, genes, samples, X)
        zf.writestr(f"{KEY}/metadata_{KEY}.tsv", rows)


# -- the ways (measured) -----------------------------------------------------------------------
def warm_polars() -> None:
    """Start polars' thread pool (a one-time cost of the process, not of a read)."""
    import polars as pl

    pl.read_csv(b"a\t1\n", has_header=False, separator="\t")


def read_refinewidgets(path: str) -> tuple[int, int]:
    res = rw.read_zip(path)
    return res[KEY].shape


def read_pandas(path: str) -> tuple[int, int]:
    import pandas as pd

    with zipfile.ZipFile(path) as zf:
        matrix = pd.read_csv(zf.open(MEMBER), sep="\t", index_col=0)
        metadata = pd.read_csv(zf.open(f"{KEY}/metadata_{KEY}.tsv"), sep="\t")
    assert len(metadata) == matrix.shape[1]
    return matrix.shape[::-1]


def read_floor(path: str, member: str = MEMBER) -> dict:
    """ISA-L inflate of ``member`` (seconds), then polars' parse of the text (seconds)."""
    import polars as pl
    from isal import isal_zlib

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), dtype="<u2")
        fh.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
        inflater = isal_zlib.decompressobj(-15)
        parts, left = [], info.compress_size
        while left > 0:
            raw = fh.read(min(left, 1 << 20))
            left -= len(raw)
            parts.append(inflater.decompress(raw))
    text = b"".join(parts)
    del parts
    t1 = time.perf_counter()
    header = text[: text.index(b"\n")].decode().split("\t")
    schema = {name: pl.Float64 for name in header}
    schema[header[0]] = pl.String
    frame = pl.read_csv(
        text, has_header=True, separator="\t", schema=schema, null_values=["", "NA", "NaN"]
    )
    t2 = time.perf_counter()
    return {"inflate": t1 - t0, "parse": t2 - t1, "shape": frame.shape}


# -- report ------------------------------------------------------------------------------------
def _floor_run(path: str) -> dict:
    run = measure(read_floor, path, preload=PRELOAD, warmup=[warm_polars])
    run["seconds"] = run["value"]["inflate"] + run["value"]["parse"]  # the pieces alone
    return run


def run_size(work: Path, n_genes: int, n_samples: int, repeat: int, pandas_max: int) -> dict:
    path = work / f"read_{n_samples}.zip"
    if not path.exists():
        make_zip(path, n_genes, n_samples)
    ways = {
        "refinewidgets": lambda: measure(
            read_refinewidgets, str(path), preload=PRELOAD, warmup=[warm_polars]
        ),
        "floor": lambda: _floor_run(str(path)),
    }
    if n_samples <= pandas_max:
        ways["pandas"] = lambda: measure(read_pandas, str(path), preload=PRELOAD)
    runs = interleaved(ways, repeat, label=f"{n_samples}: ")
    out = {way: summary(r) for way, r in runs.items()}
    parts = [r["value"] for r in runs["floor"]]
    out["floor_parts"] = (min(p["inflate"] for p in parts), min(p["parse"] for p in parts))
    out["matrix_mb"] = n_genes * n_samples * 8 / 2**20
    out["zip_mb"] = path.stat().st_size / 2**20
    path.unlink()
    return out


def report(n_genes: int, sizes: list[int], rows: list[dict], repeat: int) -> None:
    print(
        f"reading a refine.bio zip of {n_genes:,} genes (matrix + metadata); {repeat} "
        f"interleaved runs of each way, each in a fresh process; {load_average()} at the end"
    )
    print()
    print(
        "| samples | zip MB | way | wall min s | wall median s | CPU min s | CPU median s "
        "| peak MB | peak / matrix | median / floor | min / floor | CPU median / floor's |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in zip(sizes, rows):
        f = r["floor"]
        for way in ("refinewidgets", "floor", "pandas"):
            if way not in r:
                continue
            w = r[way]
            name = way
            if way == "floor":
                name = "floor (inflate {:.2f} + parse {:.2f}, mins)".format(*r["floor_parts"])
            print(
                f"| {n:,} | {r['zip_mb']:,.0f} | {name} | {w['min']:.2f} | {w['median']:.2f} | "
                f"{w['cpu_min']:.2f} | {w['cpu_median']:.2f} | {format_mb(w['peak_mb'])} | "
                f"{w['peak_mb'] / r['matrix_mb']:.2f}x | {w['median'] / f['median']:.2f}x | "
                f"{w['min'] / f['min']:.2f}x | {w['cpu_median'] / f['cpu_median']:.2f}x |"
            )
    print()
    fits = {
        way: exponent(
            [n for n, r in zip(sizes, rows) if way in r], [r[way]["min"] for r in rows if way in r]
        )
        for way in ("refinewidgets", "floor", "pandas")
    }
    print(
        "exponent b of seconds ~ samples**b (wall min): "
        + ", ".join(f"{way} {b:.2f}" for way, b in fits.items())
    )
    floor = max(
        max(
            r["refinewidgets"]["median"] / r["floor"]["median"],
            r["refinewidgets"]["min"] / r["floor"]["min"],
        )
        for r in rows
    )
    memory = max(r["refinewidgets"]["peak_mb"] / r["matrix_mb"] for r in rows)
    with_pandas = [r for r in rows if "pandas" in r]
    if with_pandas:
        speed = min(r["pandas"]["median"] / r["refinewidgets"]["median"] for r in with_pandas)
        print(f"pandas.read_csv / refinewidgets (medians), worst size: {speed:.1f}x")
    for text, ok in (
        (
            f"at most 1.2x the floor at every size (worse of median and min): {floor:.2f}x",
            floor <= 1.2,
        ),
        (f"exponent at most 1.05: {fits['refinewidgets']:.2f}", fits["refinewidgets"] <= 1.05),
        (f"peak at most 1.5x the matrix: worst {memory:.2f}x", memory <= 1.5),
    ):
        print(f"goal, {text} -> {'met' if ok else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=19_944)
    parser.add_argument("--samples", default="250,1000,4000,16000", help="sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each way")
    parser.add_argument(
        "--pandas-max", type=int, default=4000, help="largest size pandas.read_csv runs at"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 genes, 100 to 800 samples")
    parser.add_argument("--workdir", type=Path, help="where the zips go (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.samples, args.repeat = 2_000, "100,200,400,800", 1
    sizes = sorted(int(s) for s in args.samples.split(","))
    # Every way parses its inputs: refinewidgets' parsed-source cache is off in the measured
    # processes (they inherit the environment); bench_rebuild.py measures the cache.
    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = "0"
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in sizes:
            t = time.perf_counter()
            rows.append(run_size(work, args.genes, n, args.repeat, args.pandas_max))
            print(f"{n:,} samples done in {time.perf_counter() - t:.0f} s", flush=True)
        print()
        report(args.genes, sizes, rows, args.repeat)
        if args.quick:
            print("(--quick is a smoke run: the goals are meant for the full size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
