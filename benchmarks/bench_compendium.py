"""Benchmark: selections from a species compendium, parsed once against parsed for each.

What is compared
----------------
A refine.bio species compendium in create_compendia's layout (one zip, the matrix
``HOMO_SAPIENS.tsv`` at its root with an empty first header cell, ``aggregated_metadata.json``,
``HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv``), seeded synthetic log2 values, ``--genes`` x
``--samples`` (default 20,000 x 4,000: a 1.4 GB matrix member), the samples in experiments of
50. What its users do: build one selection (``--select`` samples, default 200, whole
experiments, SPECIES + QN), then another selection of *other* samples.

- **first build (parse once)**: ``open_catalog`` + ``build`` with an empty parsed-source cache:
  the member is streamed once, every sample stored as memory-mapped gene blocks
  (:mod:`refinewidgets.io.refinebio.parsed_cache`).
- **second selection (gathered)**: in a fresh process, ``open_catalog`` + ``build`` of the other
  samples: gathered from the stored blocks, nothing parsed.
- **no cache (parse each time)**: the second selection with the cache off: inflate the member
  and parse the columns asked (what every selection cost before).
- **expert floor of a selection**: ISA-L inflate of the member plus one ``polars.read_csv`` of
  only the columns asked (the least a reader of the text must do for each selection).

Each run is a fresh process (``_measure.py``); the ways run in turn in each round (first,
second, no cache, floor; the first build of each round has its own empty cache, and that
round's second selection reads it), ``--repeat`` rounds (at least 3), min and median of wall
and CPU seconds (all threads), peak resident memory above the process's baseline, and the
load average printed. The second selection's values are checked equal to the uncached build's.

Goals (issue 26): the second selection at most 0.2x the first build; the first build's peak
under 1 GiB whatever the member's size.

Usage: ``python benchmarks/bench_compendium.py`` (20,000 x 4,000, about 10 minutes on 2 cores,
5 GB of temporary disk) or ``--quick`` (2,000 x 400, a smoke run); ``--genes``, ``--samples``,
``--select``, ``--repeat``, ``--float32`` (the cache stores float32).
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
from bench_read import warm_polars
from expert_way import inflate_member

from refinewidgets.io.containers.deflate import fast_deflate
from refinewidgets.io.refinebio.matrix_tsv import format_matrix

from _measure import format_mb, load_average, measure, summary

ORGANISM = "HOMO_SAPIENS"
MEMBER = f"{ORGANISM}.tsv"
PER_EXPERIMENT = 50
PRELOAD = (
    "numpy",
    "pandas",
    "polars",
    "pyarrow.csv",
    "isal.isal_zlib",
    "scipy.stats",
    "sklearn.preprocessing",
    "anndata",
    "refinewidgets",
    "refinewidgets.io.catalog_open",
    "refinewidgets.io.refinebio.sources",
)


# -- input (setup, not measured) ---------------------------------------------------------------
def _experiments(n_samples: int) -> dict[str, list[str]]:
    samples = [f"GSM{9_000_000 + i}" for i in range(n_samples)]
    return {
        f"GSE{700_000 + k}": samples[start : start + PER_EXPERIMENT]
        for k, start in enumerate(range(0, n_samples, PER_EXPERIMENT))
    }


def make_compendium(path: Path, n_genes: int, n_samples: int, seed: int = 0) -> None:
    """A species compendium zip as create_compendia writes it, values streamed in gene blocks."""
    experiments = _experiments(n_samples)
    samples = [s for accs in experiments.values() for s in accs]
    genes = np.array([f"ENSG{i:011d}" for i in range(n_genes)], dtype=object)
    rng = np.random.default_rng(seed)
    records = {
        s: {
            "refinebio_accession_code": s,
            "refinebio_organism": ORGANISM,
            "refinebio_platform": "Affymetrix Human Genome U133 Plus 2.0 Array",
            "refinebio_processed": True,
            "refinebio_title": f"sample {s}",
        }
        for s in samples
    }
    meta = {
        "aggregate_by": "SPECIES",
        "compendium_version": 1,
        "experiments": {
            exp: {
                "accession_code": exp,
                "organisms": [ORGANISM],
                "sample_accession_codes": accs,
                "technology": "MICROARRAY",
                "title": f"Compendium experiment {exp}",
            }
            for exp, accs in experiments.items()
        },
        "num_experiments": len(experiments),
        "num_samples": len(samples),
        "quantile_normalized": True,
        "samples": records,
        "scale_by": "NONE",
    }
    rows = ["refinebio_accession_code\texperiment_accession\trefinebio_organism\trefinebio_title"]
    rows += [
        f"{s}\t{exp}\t{ORGANISM}\tsample {s}" for exp, accs in experiments.items() for s in accs
    ]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(MEMBER, "w", force_zip64=True) as fh:
            fast_deflate(fh)
            fh.write(("\t" + "\t".join(samples) + "\n").encode())
            step = max(1, (64 << 20) // (8 * n_samples))
            for start in range(0, n_genes, step):
                stop = min(n_genes, start + step)
                X = rng.normal(7.0, 2.0, size=(n_samples, stop - start))
                format_matrix(fh.write, genes[start:stop], samples, X)
        zf.writestr("aggregated_metadata.json", json.dumps(meta, indent=4))
        zf.writestr(f"{ORGANISM}/metadata_{ORGANISM}.tsv", "\n".join(rows) + "\n")
        species = {"samples": list(records.values())}
        zf.writestr(f"{ORGANISM}/metadata_{ORGANISM}.json", json.dumps(species, indent=4))


# -- the ways (measured) -----------------------------------------------------------------------
def _build(path: str, experiments: list[str], cache: str, max_bytes: str, float32: bool):
    os.environ["REFINEWIDGETS_CACHE"] = cache
    os.environ["REFINEWIDGETS_PARSED_CACHE_MAX_BYTES"] = max_bytes
    os.environ["REFINEWIDGETS_PARSED_CACHE_FLOAT32"] = "1" if float32 else "0"
    res = rw.build(
        rw.Dataset({e: ["ALL"] for e in experiments}, aggregate_by="SPECIES"),
        rw.open_catalog(path),
    )
    adata = res[ORGANISM]
    return {"shape": adata.shape, "X": np.asarray(adata.X), "samples": list(adata.obs_names)}


def build_cached(path: str, experiments: list[str], cache: str, float32: bool) -> dict:
    out = _build(path, experiments, cache, str(100 * 2**30), float32)
    out.pop("X")
    return out


def build_gathered(path: str, experiments: list[str], cache: str, float32: bool) -> dict:
    return _build(path, experiments, cache, str(100 * 2**30), float32)


def build_uncached(path: str, experiments: list[str], cache: str, float32: bool) -> dict:
    return _build(path, experiments, cache, "0", False)


def selection_floor(path: str, samples: list[str]) -> dict:
    """ISA-L inflate of the member, then polars' parse of the gene column and those asked."""
    import polars as pl

    text = inflate_member(Path(path), MEMBER)
    header = text[: text.index(b"\n")].decode().split("\t")
    columns = [0] + [header.index(s) for s in samples]
    frame = pl.read_csv(
        text,
        has_header=False,
        skip_rows=1,
        separator="\t",
        columns=columns,
        schema_overrides={f"column_{c + 1}": pl.Float64 for c in columns[1:]},
    )
    assert frame.shape[1] == len(columns)
    return {"shape": frame.shape}


# -- report ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=4_000)
    parser.add_argument("--select", type=int, default=200, help="samples of each selection")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (at least 3 for a table)")
    parser.add_argument("--float32", action="store_true", help="the cache stores float32")
    parser.add_argument("--quick", action="store_true", help="2,000 genes x 400 samples")
    parser.add_argument("--workdir", type=Path, help="where the zip and caches go")
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.samples, args.select = 2_000, 400, 100
    if args.select < PER_EXPERIMENT or 2 * args.select > args.samples:
        parser.error(f"--select must be from {PER_EXPERIMENT} to half of --samples")
    with tempfile.TemporaryDirectory(prefix="bench_compendium_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"compendium_{ORGANISM}.zip"
        print(f"setup: {args.genes:,} genes x {args.samples:,} samples ...", flush=True)
        t = time.perf_counter()
        make_compendium(path, args.genes, args.samples)
        with zipfile.ZipFile(path) as zf:
            text_mb = zf.getinfo(MEMBER).file_size / 2**20
        print(
            f"setup done in {time.perf_counter() - t:.0f} s: member {text_mb:,.0f} MB of text, "
            f"zip {path.stat().st_size / 2**20:,.0f} MB",
            flush=True,
        )
        experiments = list(_experiments(args.samples))
        k = args.select // PER_EXPERIMENT
        first = experiments[:k]
        other = experiments[len(experiments) // 2 : len(experiments) // 2 + k]
        other_samples = [s for e in other for s in _experiments(args.samples)[e]]
        rounds = iter(range(10**6))
        current = {"cache": ""}

        def first_way():
            current["cache"] = str(work / f"cache{next(rounds)}")
            return measure(
                build_cached, str(path), first, current["cache"], args.float32, preload=PRELOAD
            )

        def second_way():
            return measure(
                build_gathered, str(path), other, current["cache"], args.float32, preload=PRELOAD
            )

        def uncached_way():
            return measure(
                build_uncached, str(path), other, str(work / "nocache"), False, preload=PRELOAD
            )

        def floor_way():
            return measure(
                selection_floor, str(path), other_samples, preload=PRELOAD, warmup=[warm_polars]
            )

        ways = {
            "first build (parse once, store every sample)": first_way,
            "second selection (gathered from the store)": second_way,
            "second selection, no cache (parse each time)": uncached_way,
            "expert floor of a selection (ISA-L inflate + polars parse of its columns)": floor_way,
        }
        # the first build must come before its round's second selection: no rotation here
        runs = {name: [] for name in ways}
        for i in range(args.repeat):
            for name, way in ways.items():
                print(f"{name}, run {i + 1}/{args.repeat} ({load_average()}) ...", flush=True)
                runs[name].append(way())
        gathered = runs["second selection (gathered from the store)"][-1]["value"]
        plain = runs["second selection, no cache (parse each time)"][-1]["value"]
        assert gathered["samples"] == plain["samples"] == other_samples
        if args.float32:
            np.testing.assert_allclose(gathered["X"], plain["X"], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(gathered["X"], plain["X"], rtol=0, atol=1e-12)
        stats = {name: summary(r) for name, r in runs.items()}
        print()
        print(
            f"compendium {args.genes:,} genes x {args.samples:,} samples ({text_mb:,.0f} MB of "
            f"text), selections of {args.select} samples, SPECIES + QN; {args.repeat} rounds; "
            f"{'float32' if args.float32 else 'float64'} store; {load_average()} at the end"
        )
        print()
        print(
            "| way | wall min s | wall median s | CPU min s | CPU median s | peak MB "
            "| median / first build |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        first_s = stats["first build (parse once, store every sample)"]["median"]
        for name, s in stats.items():
            print(
                f"| {name} | {s['min']:.2f} | {s['median']:.2f} | {s['cpu_min']:.2f} | "
                f"{s['cpu_median']:.2f} | {format_mb(s['peak_mb'])} | "
                f"{s['median'] / first_s:.3f}x |"
            )
        store = work / "cache0" / "parsed"
        size = sum(f.stat().st_size for f in store.rglob("*.npy")) / 2**20
        print()
        print(f"stored form: {size:,.0f} MB of .npy gene blocks for the whole member")
        second = stats["second selection (gathered from the store)"]
        first_stats = stats["first build (parse once, store every sample)"]
        ratio = second["median"] / first_stats["median"]
        peak = first_stats["peak_mb"]
        for text, ok in (
            (f"second selection at most 0.2x the first build: {ratio:.3f}x", ratio <= 0.2),
            (f"first build's peak under 1 GiB: {format_mb(peak)} MB", peak < 1024),
        ):
            print(f"goal, {text} -> {'met' if ok else 'NOT met'}")
        if args.quick:
            print("(--quick is a smoke run: the goals are meant for the full size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
