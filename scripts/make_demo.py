"""Regenerate the demo compendium shipped in refinewidgets/data/demo/ (seeded, offline).

    python scripts/make_demo.py

Writes experiment-aggregated refine.bio zips (not normalized, not scaled: what refine.bio gives
for a per-experiment download), a QN target for HOMO_SAPIENS, and Bgee-style droplet H5AD files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import refinewidgets as rw  # noqa: E402
from refinewidgets.core.sources import InMemorySource  # noqa: E402
from refinewidgets.core.synthetic import demo_compendium  # noqa: E402

SEED = 20261121
CREATED_AT = "2026-11-21T00:00:00"
OUT = ROOT / "refinewidgets" / "data" / "demo"

#: Which experiments go in which zip: several sources, as a user's downloads folder would hold.
BUNDLES = {
    ("HOMO_SAPIENS", "MICROARRAY"): "refinebio_human_microarray.zip",
    ("HOMO_SAPIENS", "RNA-SEQ"): "refinebio_human_rnaseq.zip",
    ("MUS_MUSCULUS", "MICROARRAY"): "refinebio_mouse_microarray.zip",
    ("MUS_MUSCULUS", "RNA-SEQ"): "refinebio_mouse_rnaseq.zip",
}


def write_bulk(out: Path) -> None:
    comp = demo_compendium(SEED)
    comp.values = {k: v.round(3) for k, v in comp.values.items()}  # keeps the package small
    catalog = rw.Catalog([InMemorySource.from_compendium(comp, name="demo")])
    for (organism, technology), name in BUNDLES.items():
        experiments = [
            acc for acc, rec in comp.experiments.items()
            if rec["organisms"] == [organism] and rec["technology"] == technology
        ]
        ds = rw.Dataset({acc: ["ALL"] for acc in experiments}, quantile_normalize=False)
        res = rw.build(ds, catalog)
        res.aggregated_metadata["created_at"] = CREATED_AT
        res.write_zip(out / name, overwrite=True)
        print(f"{name}: {len(experiments)} experiments, {res.aggregated_metadata['num_samples']} samples")
    for organism, target in comp.qn_targets.items():
        path = out / f"qn_target_{organism}.tsv"
        np.savetxt(path, np.round(target, 4), fmt="%.4f")
        print(f"{path.name}: {len(target)} values")


def write_single_cell(out: Path) -> None:
    try:
        from refinewidgets.io.bgee_synthetic import write_demo_files
    except ImportError:
        return
    for path in write_demo_files(out / "bgee", seed=SEED):
        print(f"bgee/{path.name}")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    write_bulk(OUT)
    write_single_cell(OUT)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"demo: {size / 1e6:.2f} MB in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
