"""Regenerate the demo compendium shipped in refinewidgets/data/demo/ (seeded, offline).

    python scripts/make_demo.py

Writes experiment-aggregated refine.bio zips (not normalized, not scaled: what refine.bio gives
for a per-experiment download), a QN target for HOMO_SAPIENS, and Bgee-style droplet H5AD files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import anndata
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import refinewidgets as rw  # noqa: E402
from refinewidgets.core.sources import InMemorySource  # noqa: E402
from refinewidgets.testing import demo_compendium  # noqa: E402

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
            acc
            for acc, rec in comp.experiments.items()
            if rec["organisms"] == [organism] and rec["technology"] == technology
        ]
        ds = rw.Dataset({acc: ["ALL"] for acc in experiments}, quantile_normalize=False)
        res = rw.build(ds, catalog)
        res.aggregated_metadata["created_at"] = CREATED_AT
        res.write_zip(out / name, overwrite=True)
        print(
            f"{name}: {len(experiments)} experiments, {res.aggregated_metadata['num_samples']} samples"
        )
    for organism, target in comp.qn_targets.items():
        path = out / f"qn_target_{organism}.tsv"
        np.savetxt(path, np.round(target, 4), fmt="%.4f")
        print(f"{path.name}: {len(target)} values")


#: Bgee-style droplet experiments, each in another column-name variant of Bgee's writers.
SINGLE_CELL = [
    dict(
        variant="newest",
        organism="HOMO_SAPIENS",
        experiment="ERP900101",
        n_cells=1500,
        n_libraries=4,
        cell_types=("B cell", "T cell", "monocyte", "natural killer cell"),
    ),
    dict(
        variant="bgee15_0",
        organism="HOMO_SAPIENS",
        experiment="ERP900102",
        n_cells=1200,
        n_libraries=3,
        cell_types=("B cell", "T cell", "monocyte"),
    ),
    dict(
        variant="bgee15_2",
        organism="MUS_MUSCULUS",
        experiment="SRP900103",
        n_cells=1000,
        n_libraries=3,
        cell_types=("hepatocyte", "epithelial cell", "B cell"),
    ),
]
N_CELL_GENES = 1500


def write_single_cell(out: Path) -> None:
    from refinewidgets.core.merge import sanitize_gene_ids
    from refinewidgets.testing.bgee_files import write_bgee_h5ad

    comp = demo_compendium(SEED)
    folder = out / "bgee"
    folder.mkdir()
    for i, spec in enumerate(SINGLE_CELL):
        organism = spec["organism"]
        genes = sorted(
            set().union(
                *(
                    sanitize_gene_ids(comp.values[acc]).index
                    for acc, rec in comp.experiments.items()
                    if rec["organisms"] == [organism]
                )
            )
        )
        # share genes with the bulk demo, so pseudobulk can join bulk samples of the species
        rng = np.random.default_rng(SEED + i)
        chosen = sorted(rng.choice(genes, size=N_CELL_GENES, replace=False))
        name = f"{organism.capitalize()}_{spec['experiment']}_droplet_based.h5ad"
        path = write_bgee_h5ad(
            folder / name,
            n_genes=N_CELL_GENES,
            gene_ids=chosen,
            density=0.08,
            seed=SEED + i,
            overwrite=True,
            **spec,
        )
        anndata.read_h5ad(path).write_h5ad(path, compression="gzip")  # keeps the package small
        print(f"bgee/{name}: {spec['n_cells']} cells, variant {spec['variant']}")


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
