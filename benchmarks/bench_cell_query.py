"""Benchmark: selecting cells with a filter text, against pandas and a numpy floor.

What is compared
----------------
A seeded cell table of ``--sizes`` cells (100,000 and 1,000,000 by default) with the unified
columns a Bgee file gives (``cell_type`` and ``cell_type_id`` categorical over 8 Cell Ontology
terms, ``tissue`` over 4, ``sex`` over 3) and a ``total_counts`` QC value. The condition is
``(cell_type == 'B cell' or tissue in ['spleen', 'bone marrow']) and sex != 'unknown' and
total_counts >= 500``. All ways run on the same table, in the same process:

- **refinewidgets text**: ``match_cells(table, TEXT, "t")`` (parse with ``ast`` + masks), the
  reference of the ratio column;
- **refinewidgets text, ontology**: the same with the ``TermMatcher`` of the shipped CL and
  UBERON tables (``cell_type == 'B cell'`` then keeps B cell descendants, by id); the tables
  are loaded before timing (they load once per process, about 0.2 s);
- **refinewidgets dict**: the nearest dict form, ``{"cell_type": [...], "sex": {"not_in":
  [...]}, "total_counts": {"min": 500}}`` (no ``or`` across columns: the dict form cannot say
  it, so it keeps B cells only);
- **pandas DataFrame.eval**: ``table.eval(TEXT, engine="python")``, the plain way;
- **floor: numpy on codes**: boolean arrays from the categories' codes and the QC array,
  combined by hand.

Wall time (``time.perf_counter``), the best of ``--repeat`` runs. The script asserts that the
text, pandas and the floor select the same cells.

Usage
-----
``python benchmarks/bench_cell_query.py`` (about 20 seconds on 2 cores) or ``--quick``
(10,000 / 100,000 cells). Run from the repository root with the package importable.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from refinewidgets.core.cell_filter import match_cells
from refinewidgets.io.ontology_tables import term_matcher

TEXT = (
    "(cell_type == 'B cell' or tissue in ['spleen', 'bone marrow']) and sex != 'unknown' "
    "and total_counts >= 500"
)
DICT = {
    "cell_type": ["B cell"],
    "sex": {"not_in": ["unknown"]},
    "total_counts": {"min": 500},
}
TYPES = {
    "B cell": "CL:0000236",
    "naive B cell": "CL:0000788",
    "T cell": "CL:0000084",
    "CD4-positive, alpha-beta T cell": "CL:0000624",
    "monocyte": "CL:0000576",
    "natural killer cell": "CL:0000623",
    "macrophage": "CL:0000235",
    "unknown": "unknown",
}
TISSUES = ["blood", "spleen", "bone marrow", "liver"]


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(TYPES), n)
    return pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(codes, list(TYPES)),
            "cell_type_id": pd.Categorical.from_codes(codes, list(TYPES.values())),
            "tissue": pd.Categorical.from_codes(rng.integers(0, 4, n), TISSUES),
            "sex": pd.Categorical.from_codes(rng.integers(0, 3, n), ["female", "male", "unknown"]),
            "total_counts": rng.gamma(2.0, 400.0, n),
        }
    )


def floor(t: pd.DataFrame) -> np.ndarray:
    types = t["cell_type"].cat
    tissues = t["tissue"].cat
    b = types.codes.to_numpy() == list(types.categories).index("B cell")
    tissue_codes = tissues.codes.to_numpy()
    wanted = [list(tissues.categories).index(x) for x in ("spleen", "bone marrow")]
    sex = t["sex"].cat
    known = sex.codes.to_numpy() != list(sex.categories).index("unknown")
    return (b | np.isin(tissue_codes, wanted)) & known & (t["total_counts"].to_numpy() >= 500)


def best(fn, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else args.sizes
    terms = term_matcher()
    print(f"condition: {TEXT}\n")
    print("| cells | way | seconds | ratio to refinewidgets text | cells kept |")
    print("|---:|---|---:|---:|---:|")
    for n in sizes:
        t = table(n)
        ways = {
            "refinewidgets text": lambda t=t: match_cells(t, TEXT, "t"),
            "refinewidgets text, ontology": lambda t=t: match_cells(t, TEXT, "t", terms=terms),
            "refinewidgets dict (B cells only)": lambda t=t: match_cells(t, DICT, "t"),
            "pandas DataFrame.eval": lambda t=t: t.eval(TEXT, engine="python").to_numpy(),
            "floor: numpy on codes": lambda t=t: floor(t),
        }
        results = {name: best(fn, args.repeat) for name, fn in ways.items()}
        reference = results["refinewidgets text"]
        np.testing.assert_array_equal(reference[1], results["pandas DataFrame.eval"][1])
        np.testing.assert_array_equal(reference[1], results["floor: numpy on codes"][1])
        for name, (seconds, mask) in results.items():
            print(
                f"| {n:,} | {name} | {seconds:.4f} | {seconds / reference[0]:.2f} | "
                f"{int(np.sum(mask)):,} |"
            )


if __name__ == "__main__":
    main()
