"""Benchmark: pairing matrix columns with metadata rows by accession code, five ways.

What is compared
----------------
A refine.bio matrix's columns are paired with the rows of its metadata file by accession code,
at ``--sizes`` samples (1,000 / 5,000 / 20,000 by default). The data is seeded: the metadata
rows are a random permutation of the matrix columns, except that 1% of the matrix columns have
no metadata row and 1% of the metadata rows have no matrix column (so the mismatch paths run;
each side holds ``samples`` accessions). All ways run on the same data, in the same run:

- **refinewidgets align_samples**: ``align_samples(columns, rows, matrix="m", metadata="md")``
  (``refinewidgets.io.refinebio.download``), the reference of the ratio column.
- **refinewidgets read_zip, end to end**: ``rw.read_zip(path)`` of a real zip holding
  ``<KEY>/<KEY>.tsv`` (20 genes, so the time is metadata and alignment, not values),
  ``<KEY>/metadata_<KEY>.tsv`` (CRLF line ends, as refine.bio writes them) and
  ``aggregated_metadata.json``, inside ``warnings.catch_warnings()`` (it warns about the 1%
  mismatches, as designed). Includes opening the zip, parsing both files and building the AnnData.
- **previous check (quadratic)**: the check refinewidgets had before ``align_samples``,
  reimplemented here: ``[s for s in matrix_samples if s not in set(rows)]`` and the same the
  other way round, the set rebuilt for every element. Run up to 5,000 samples only; above, the
  table shows an estimate extrapolated from the 1,000 and 5,000 timings with exponent 2.
- **pandas set_index + reindex**: ``meta.set_index("refinebio_accession_code")``, then
  ``.reindex(columns)`` and ``meta_index.difference(columns)``, on the metadata already read
  into a DataFrame (``pd.read_csv`` of the zip's metadata member, not timed).
- **floor: dict + set difference**: ``{acc: i for i, acc in enumerate(rows)}``, a list
  comprehension of ``.get(c, -1)`` over the columns, and ``set(rows) - set(columns)``.

Wall time (``time.perf_counter``) in this process, the best of ``--repeat`` runs for the fast
ways and of 3 for ``read_zip`` and the quadratic check. The script asserts that align_samples,
pandas and the floor give the same pairing (same metadata row for every column, same
columns without metadata, same metadata rows without a column), and that the quadratic
check finds the same mismatches.

Usage
-----
``python benchmarks/bench_alignment.py`` (about 5 seconds on 2 cores) or ``--quick``
(200 / 1,000 samples, a few seconds). ``--sizes 1000 5000 20000 100000`` changes the sizes,
``--repeat N`` the runs of the fast ways. Run from the repository root with the package
importable (installed, or ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import refinewidgets as rw
except ImportError:  # running from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import refinewidgets as rw
from refinewidgets.io.refinebio.download import align_samples

KEY = "SRP000001"
ACCESSION = "refinebio_accession_code"
GENES = 20
#: The quadratic check runs up to this many samples; above, its time is extrapolated.
QUADRATIC_MAX = 5_000
MISMATCH = 0.01


# -- inputs (setup, not measured) -----------------------------------------------------------
def make_accessions(samples: int, seed: int) -> tuple[list[str], list[str]]:
    """Matrix columns and metadata rows: a permutation, plus 1% only on each side."""
    rng = np.random.default_rng(seed)
    extra = max(1, round(samples * MISMATCH))
    numbers = rng.choice(10_000_000, size=samples + extra, replace=False)
    pool = [f"GSM{n:07d}" for n in numbers]
    columns = pool[:samples]  # the last `extra` columns have no metadata row
    shared = columns[: samples - extra]
    rows = shared + pool[samples:]  # `extra` rows have no matrix column
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return columns, rows


def write_zip(path: Path, columns: list[str], rows: list[str], seed: int) -> None:
    """A refine.bio experiment download: matrix (20 genes), CRLF metadata, aggregated JSON."""
    rng = np.random.default_rng(seed + 1)
    values = rng.normal(8.0, 2.0, size=(GENES, len(columns)))
    matrix = io.StringIO()
    matrix.write("Gene\t" + "\t".join(columns) + "\n")
    for g in range(GENES):
        matrix.write(f"ENSG{g:011d}\t" + "\t".join(f"{v:.6f}" for v in values[g]) + "\n")
    header = [
        ACCESSION,
        "experiment_accession",
        "refinebio_title",
        "refinebio_organism",
        "refinebio_platform",
        "refinebio_source_database",
        "refinebio_processed",
        "refinebio_sex",
    ]
    lines = ["\t".join(header)]
    for i, acc in enumerate(rows):
        lines.append(
            "\t".join(
                [
                    acc,
                    KEY,
                    f"sample {acc} of {KEY}",
                    "HOMO_SAPIENS",
                    "Illumina HiSeq 2500",
                    "SRA",
                    "True",
                    "female" if i % 2 else "male",
                ]
            )
        )
    metadata = "\r\n".join(lines) + "\r\n"
    aggregated = {"aggregate_by": "EXPERIMENT", "experiments": {}, "samples": {}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("aggregated_metadata.json", json.dumps(aggregated, indent=4))
        zf.writestr(f"{KEY}/{KEY}.tsv", matrix.getvalue())
        zf.writestr(f"{KEY}/metadata_{KEY}.tsv", metadata)


def read_metadata_frame(path: Path) -> pd.DataFrame:
    with zipfile.ZipFile(path) as zf:
        return pd.read_csv(
            zf.open(f"{KEY}/metadata_{KEY}.tsv"), sep="\t", dtype=str, keep_default_na=False
        )


# -- the ways (measured) -------------------------------------------------------------------
def way_align_samples(columns: list[str], rows: list[str]):
    return align_samples(columns, rows, matrix="m", metadata="md")


def way_read_zip(path: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rw.read_zip(path)


def way_quadratic(matrix_samples: list[str], rows: list[str]) -> tuple[list[str], list[str]]:
    in_matrix = [s for s in matrix_samples if s not in set(rows)]
    in_meta = [s for s in rows if s not in set(matrix_samples)]
    return in_matrix, in_meta


def way_pandas(meta: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.Index]:
    indexed = meta.set_index(ACCESSION)
    paired = indexed.reindex(columns)
    no_values = indexed.index.difference(columns)
    return paired, no_values


def way_floor(columns: list[str], rows: list[str]) -> tuple[list[int], set[str]]:
    position = {acc: i for i, acc in enumerate(rows)}
    paired = [position.get(c, -1) for c in columns]
    no_values = set(rows) - set(columns)
    return paired, no_values


def best_of(repeat: int, fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """The shortest wall time of ``repeat`` calls, and the last call's result."""
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, value


# -- checks and report ---------------------------------------------------------------------
def check_pairings(columns, rows, meta, aligned, pandas_result, floor, quadratic, read) -> None:
    """Assert align_samples, pandas, the floor (and the quadratic check, read_zip) agree."""
    pos = aligned.rows
    extra = max(1, round(len(columns) * MISMATCH))
    assert list(aligned.no_metadata) == columns[-extra:], "align_samples: wrong matrix-only columns"
    assert len(aligned.no_values) == extra, "align_samples: wrong number of metadata-only rows"
    assert all(rows[p] == c for p, c in zip(pos, columns) if p >= 0), "align_samples mispaired"
    # The floor: the same position for every column, the same metadata-only rows.
    floor_rows, floor_no_values = floor
    assert floor_rows == pos.tolist(), "floor and align_samples pair differently"
    assert floor_no_values == set(aligned.no_values), "floor: different metadata-only rows"
    # pandas: each column's row is the metadata row align_samples chose, NaN where none.
    paired, no_values = pandas_result
    assert list(paired.index) == columns
    found = pos >= 0
    expected = meta.drop(columns=ACCESSION).iloc[pos[found]].to_numpy()
    assert (paired.to_numpy()[found] == expected).all(), "pandas and align_samples pair differently"
    assert paired[~found].isna().all(axis=None), "pandas: a column without metadata got a row"
    assert list(paired.index[paired.isna().all(axis=1)]) == aligned.no_metadata
    assert set(no_values) == set(aligned.no_values), "pandas: different metadata-only rows"
    if quadratic is not None:
        assert quadratic == (aligned.no_metadata, aligned.no_values), "quadratic check differs"
    adata = read[KEY]
    assert list(adata.obs_names) == columns, "read_zip: samples not in matrix order"
    titles = adata.obs["refinebio_title"].astype(str).to_numpy()
    assert (titles[found] == [f"sample {c} of {KEY}" for c in np.asarray(columns)[found]]).all()
    assert set(read.filtered_samples["accession"]) == set(aligned.no_values)


def _ratio(seconds: float, reference: float) -> str:
    r = seconds / reference
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def _seconds(s: float) -> str:
    return f"{s:.2e}" if s < 0.01 else f"{s:.3f}"


def _estimate(measured: dict[int, float], n: int, reference: float) -> tuple[str, str]:
    """The seconds and ratio cells of a skipped quadratic run: t(m) * (n / m)^2 from each m."""
    if not measured:
        return "skipped (quadratic)", "-"
    guesses = sorted(t * (n / m) ** 2 for m, t in measured.items())
    basis = " and ".join(f"{m:,}" for m in sorted(measured))
    lo, hi = guesses[0], guesses[-1]
    span = f"{lo:.1f}" if len(guesses) == 1 else f"{lo:.1f} to {hi:.1f}"
    ratio = (
        _ratio(lo, reference)
        if len(guesses) == 1
        else f"{_ratio(lo, reference)} to {_ratio(hi, reference)}"
    )
    label = f"(ESTIMATE from the {basis} timings, exponent 2)"
    return f"skipped (quadratic); ~{span} {label}", f"~{ratio} (estimate)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 5_000, 20_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of the fast ways (best of); slow ways: 3"
    )
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [200, 1_000]
    if min(args.sizes) < 100:
        parser.error("--sizes must be at least 100 (1% of them are mismatches)")

    print(
        f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f}; "
        f"best of {args.repeat} runs (fast ways) or 3 (read_zip, quadratic); seed {args.seed}",
        flush=True,
    )
    table: list[tuple[int, str, str, str]] = []
    quadratic_times: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_alignment_") as tmp:
        for n in sorted(args.sizes):
            columns, rows = make_accessions(n, args.seed)
            path = Path(tmp) / f"{KEY}_{n}.zip"
            write_zip(path, columns, rows, args.seed)
            meta = read_metadata_frame(path)
            assert meta[ACCESSION].tolist() == rows

            t_align, aligned = best_of(args.repeat, way_align_samples, columns, rows)
            t_read, read = best_of(3, way_read_zip, str(path))
            quadratic = None
            if n <= QUADRATIC_MAX:
                t_quad, quadratic = best_of(3, way_quadratic, columns, rows)
                quadratic_times[n] = t_quad
            t_pandas, pandas_result = best_of(args.repeat, way_pandas, meta, columns)
            t_floor, floor = best_of(args.repeat, way_floor, columns, rows)
            check_pairings(columns, rows, meta, aligned, pandas_result, floor, quadratic, read)

            table.append((n, "refinewidgets align_samples", _seconds(t_align), "1.00x"))
            table.append(
                (n, "refinewidgets read_zip, end to end", _seconds(t_read), _ratio(t_read, t_align))
            )
            if quadratic is not None:
                table.append(
                    (n, "previous check (quadratic)", _seconds(t_quad), _ratio(t_quad, t_align))
                )
            else:
                table.append(
                    (n, "previous check (quadratic)", *_estimate(quadratic_times, n, t_align))
                )
            table.append(
                (n, "pandas set_index + reindex", _seconds(t_pandas), _ratio(t_pandas, t_align))
            )
            table.append(
                (n, "floor: dict + set difference", _seconds(t_floor), _ratio(t_floor, t_align))
            )
            print(f"{n:,} samples done (load average {os.getloadavg()[0]:.1f})", flush=True)

    print()
    print("| samples | way | seconds | ratio to refinewidgets align_samples |")
    print("|---:|---|---:|---:|")
    for n, way, seconds, ratio in table:
        print(f"| {n:,} | {way} | {seconds} | {ratio} |")
    known = sorted(quadratic_times)
    if len(known) >= 2:
        a, b = known[0], known[-1]
        exponent = np.log(quadratic_times[b] / quadratic_times[a]) / np.log(b / a)
        print()
        print(
            f"previous check, measured growth from {a:,} to {b:,} samples: exponent {exponent:.2f} "
            "(2 = quadratic); the estimates above use exponent 2."
        )
    print(
        "All ways paired the same columns with the same metadata rows "
        "(align_samples, pandas, floor; quadratic check and read_zip found the same mismatches)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
