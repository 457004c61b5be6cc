"""Benchmark: read a refine.bio zip, from 250 to 4,000 samples, against pandas and the floor.

What is compared, for each size, in the same run, each call in a fresh process (``_measure.py``):

- **refinewidgets**: ``rw.read_zip(path)`` (the matrix, the metadata, an AnnData).
- **pandas**: ``zipfile`` + ``pd.read_csv(member, sep="\\t", index_col=0)`` of the matrix (the C
  engine, pandas' default float parser) and of the metadata.
- **floor**: the fastest pieces measured on this machine, without any of the work of a reader
  (no batches, no copy into an array, no metadata): ISA-L inflate of the matrix member
  (streamed, the bytes kept) plus one ``polars.read_csv`` of the whole text already in memory.
  Floor = inflate seconds + parse seconds.

Printed: seconds of each way, refinewidgets' speed-up over pandas and its multiple of the
floor, refinewidgets' peak memory above its baseline as a multiple of the float64 matrix, and
the exponent ``b`` of ``seconds ~ samples**b`` fitted over the sizes (1.0 is linear). polars'
one-time start-up (its thread pool, about 20 MB) happens before the baseline of the polars
ways; imports happen before every baseline.

Goals (issue 13): read at least 3x pandas.read_csv, at most 1.3x the floor, exponent at most
1.05 from 250 to 4,000 samples, peak at most 1.5x the matrix.

Usage
-----
``python benchmarks/bench_read.py`` (19,944 genes; 250, 500, 1,000, 2,000 and 4,000 samples:
about 4 minutes on 2 cores, 3 GB of temporary files), ``--quick`` (2,000 genes, 100 to 800
samples, a smoke run of about 30 s), or ``--genes`` / ``--samples 250,1000`` / ``--repeat N``
(medians of N runs, alternating the ways).
"""

from __future__ import annotations

import argparse
import json
import math
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
from refinewidgets.io.archive import write_matrix
from refinewidgets.io.deflate import fast_deflate

from _measure import format_mb, measure

KEY = "ALL"
MEMBER = f"{KEY}/{KEY}.tsv"
PRELOAD = ("numpy", "pandas", "polars", "pyarrow.csv", "anndata", "refinewidgets", "isal.isal_zlib")
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
def exponent(sizes: list[int], seconds: list[float]) -> float:
    """``b`` of the least-squares fit ``log(seconds) = a + b * log(samples)``."""
    if len(sizes) < 2:
        return math.nan
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def _median(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "peak_mb": float(np.median([r["peak_mb"] for r in runs])),
    }


def run_size(work: Path, n_genes: int, n_samples: int, repeat: int) -> dict:
    path = work / f"read_{n_samples}.zip"
    if not path.exists():
        make_zip(path, n_genes, n_samples)
    runs: dict[str, list[dict]] = {"refinewidgets": [], "pandas": [], "floor": []}
    for _ in range(repeat):
        runs["refinewidgets"].append(
            measure(read_refinewidgets, str(path), preload=PRELOAD, warmup=[warm_polars])
        )
        runs["pandas"].append(measure(read_pandas, str(path), preload=PRELOAD))
        floor = measure(read_floor, str(path), preload=PRELOAD, warmup=[warm_polars])
        value = floor["value"]
        floor["seconds"] = value["inflate"] + value["parse"]
        runs["floor"].append(floor)
    out = {way: _median(r) for way, r in runs.items()}
    out["matrix_mb"] = n_genes * n_samples * 8 / 2**20
    out["zip_mb"] = path.stat().st_size / 2**20
    path.unlink()
    return out


def report(n_genes: int, sizes: list[int], rows: list[dict]) -> None:
    print(f"reading a refine.bio zip of {n_genes:,} genes (matrix + metadata); seconds, same run")
    print()
    print(
        "| samples | zip MB | refinewidgets s | pandas s | floor s (inflate + parse) "
        "| pandas / rw | rw / floor | rw peak MB | rw peak / matrix | pandas peak / matrix |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in zip(sizes, rows):
        w, p, f = r["refinewidgets"], r["pandas"], r["floor"]
        parts = f["value"]
        print(
            f"| {n:,} | {r['zip_mb']:,.0f} | {w['seconds']:.2f} | {p['seconds']:.2f} | "
            f"{f['seconds']:.2f} ({parts['inflate']:.2f} + {parts['parse']:.2f}) | "
            f"{p['seconds'] / w['seconds']:.1f}x | {w['seconds'] / f['seconds']:.2f}x | "
            f"{format_mb(w['peak_mb'])} | {w['peak_mb'] / r['matrix_mb']:.2f}x | "
            f"{p['peak_mb'] / r['matrix_mb']:.2f}x |"
        )
    print()
    fits = {
        way: exponent(sizes, [r[way]["seconds"] for r in rows])
        for way in ("refinewidgets", "pandas", "floor")
    }
    print(
        "exponent b of seconds ~ samples**b: "
        + ", ".join(f"{way} {b:.2f}" for way, b in fits.items())
    )
    speed = min(r["pandas"]["seconds"] / r["refinewidgets"]["seconds"] for r in rows)
    floor = max(r["refinewidgets"]["seconds"] / r["floor"]["seconds"] for r in rows)
    memory = max(r["refinewidgets"]["peak_mb"] / r["matrix_mb"] for r in rows)
    for text, ok in (
        (f"at least 3x pandas.read_csv at every size: worst {speed:.1f}x", speed >= 3),
        (f"at most 1.3x the floor at every size: worst {floor:.2f}x", floor <= 1.3),
        (f"exponent at most 1.05: {fits['refinewidgets']:.2f}", fits["refinewidgets"] <= 1.05),
        (f"peak at most 1.5x the matrix: worst {memory:.2f}x", memory <= 1.5),
    ):
        print(f"goal, {text} -> {'met' if ok else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=19_944)
    parser.add_argument("--samples", default="250,500,1000,2000,4000", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way; medians shown")
    parser.add_argument("--quick", action="store_true", help="2,000 genes, 100 to 800 samples")
    parser.add_argument("--workdir", type=Path, help="where the zips go (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.samples = 2_000, "100,200,400,800"
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
            rows.append(run_size(work, args.genes, n, args.repeat))
            print(f"{n:,} samples done in {time.perf_counter() - t:.0f} s", flush=True)
        print()
        report(args.genes, sizes, rows)
        if args.quick:
            print("(--quick is a smoke run: the goals are meant for the full size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
