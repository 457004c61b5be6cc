"""A seeded listing of a whole repository (experiments and samples tables) for browsing tests
and benchmarks: it has the columns and value spread of refine.bio's listings, not real data."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["single_cell_tables", "synthetic_listing"]


#: Vocabulary of the synthetic listing ("|"-separated choices).
_WORDS = {
    "assay": "Transcriptome|Expression profiling|RNA-seq|Gene expression|Microarray analysis",
    "tissue": "breast|lung|liver|brain|kidney|heart|colon|skin|blood|muscle|pancreas|prostate|"
    "bone marrow|spleen|retina",
    "state": "cancer|tumours|normal tissue|fibrosis|inflammation|development|aging|infection|"
    "diabetes|Alzheimer's disease|steatohepatitis|response to treatment",
    "organism": "HOMO_SAPIENS|MUS_MUSCULUS|RATTUS_NORVEGICUS|DANIO_RERIO|DROSOPHILA_MELANOGASTER",
    "technology": "MICROARRAY|RNA-SEQ|SINGLE-CELL",
    "MICROARRAY": "Affymetrix Human Genome U133 Plus 2.0 Array|Illumina HumanHT-12 V4.0 expression "
    "beadchip|Affymetrix Mouse Genome 430 2.0 Array|Agilent Whole Genome 4x44K",
    "RNA-SEQ": "Illumina HiSeq 2500|Illumina NovaSeq 6000|Illumina NextSeq 500",
    "SINGLE-CELL": "10x Chromium v2|10x Chromium v3",
    "sex": "female|male|",
    "disease": "normal|cancer||fibrosis|diabetes",
}


def synthetic_listing(
    n_experiments: int = 50_000, n_samples: int = 1_000_000, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A large, seeded listing of ``(experiments, samples)`` for :meth:`Catalog.from_tables`.

    Titles and descriptions are drawn from a small vocabulary; organisms, technologies,
    platforms, sex, specimen part and disease are random per experiment or sample.

    Examples
    --------
    >>> exps, samples = synthetic_listing(100, 1000)
    >>> len(exps), len(samples), int(exps["num_samples"].sum())
    (100, 1000, 1000)
    """
    rng = np.random.default_rng(seed)
    w = {k: np.array(v.split("|"), dtype=object) for k, v in _WORDS.items()}

    def pick(name, n, p=None):
        return w[name][rng.choice(len(w[name]), size=n, p=p)]

    acc = pd.Index([f"SYN{i:07d}" for i in range(n_experiments)], name="accession")
    tissue, state = pick("tissue", n_experiments), pick("state", n_experiments)
    title = pick("assay", n_experiments) + " of " + tissue + " " + state
    donors, controls = pick("state", n_experiments), pick("tissue", n_experiments)
    description = (
        "Samples of " + tissue + " from donors with " + donors + "; " + controls + " controls."
    )
    organism = pick("organism", n_experiments, p=[0.5, 0.3, 0.1, 0.05, 0.05])
    technology = pick("technology", n_experiments, p=[0.55, 0.4, 0.05])
    platform = np.empty(n_experiments, dtype=object)
    for tech in w["technology"]:
        on = technology == tech
        platform[on] = pick(tech, int(on.sum()))
    sizes = (
        rng.multinomial(n_samples - n_experiments, np.full(n_experiments, 1 / n_experiments)) + 1
    )
    exps = pd.DataFrame(
        {
            "title": title,
            "description": description,
            "technology": technology,
            "organisms": organism,
            "platforms": platform,
            "num_samples": sizes,
        },
        index=acc,
    )
    owner = np.repeat(np.arange(n_experiments), sizes)
    samples = pd.DataFrame(
        {
            "experiment_accession": acc.to_numpy()[owner],
            "refinebio_title": "sample " + pd.Series(np.arange(n_samples)).astype(str).to_numpy(),
            "refinebio_organism": organism[owner],
            "refinebio_platform": platform[owner],
            "technology": technology[owner],
            "refinebio_sex": pick("sex", n_samples),
            "refinebio_specimen_part": tissue[owner],
            "refinebio_disease": pick("disease", n_samples),
        },
        index=pd.Index([f"SYNS{i:08d}" for i in range(n_samples)], name="accession"),
    )
    return exps, samples


def single_cell_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A browse-only listing with one single-cell and one bulk experiment (browse, selection and widget tests)."""
    exps = pd.DataFrame(
        {
            "title": ["Blood atlas", "Liver bulk"],
            "description": ["cells", "bulk"],
            "technology": ["SINGLE-CELL", "RNA-SEQ"],
            "organisms": ["HOMO_SAPIENS", "HOMO_SAPIENS"],
            "platforms": ["10x", "HiSeq"],
            "num_samples": [2, 2],
        },
        index=pd.Index(["SC1", "B1"], name="accession"),
    )
    samples = pd.DataFrame(
        {
            "experiment_accession": ["SC1", "SC1", "B1", "B1"],
            "refinebio_title": ["lib 1", "lib 2", "liver 1", "liver 2"],
            "refinebio_organism": ["HOMO_SAPIENS"] * 4,
            "refinebio_sex": ["female", "male", "female", ""],
            "refinebio_specimen_part": ["blood", "spleen", "liver", "liver"],
            "refinebio_disease": ["", "", "", ""],
            "technology": ["SINGLE-CELL", "SINGLE-CELL", "RNA-SEQ", "RNA-SEQ"],
            "n_cells": ["300", "200", "", ""],
            "cell_types": ["B cell", "B cell; T cell", "", ""],
            "tissues": ["blood", "spleen", "", ""],
            "stages": ["adult", "adult", "", ""],
            "sexes": ["female", "male", "", ""],
        },
        index=pd.Index(["L1", "L2", "S1", "S2"], name="accession"),
    )
    return exps, samples
