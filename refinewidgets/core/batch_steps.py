"""The batch-correction steps of a build (:mod:`.build`), over the math of :mod:`.batch`.

- :func:`check_batch_correction`: refuse, before anything is read, a correction that cannot
  be done;
- :func:`combat_group`: ComBat on a sample group's values, after quantile normalization and
  before scaling;
- :func:`harmony_samples`, :func:`harmony_cells`: the PCA of a sample group's values or of a
  cell group's log1p CPM, and its Harmony correction (``obsm``; X is not changed).

Each correction step returns what was done, for the group's provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import DatasetSpecError
from .batch import batch_design, combat, harmony_embedding, pca_embedding, unadjustable_genes
from .merge import GroupMatrix
from .single_cell import normalize_counts

__all__ = ["check_batch_correction", "combat_group", "harmony_cells", "harmony_samples"]


def check_batch_correction(dataset, groups: Mapping[str, list], catalog) -> None:
    """Refuse, before reading anything, a batch correction that cannot be done: one batch per
    group (``aggregate_by="EXPERIMENT"`` by experiment), or ComBat on single cells.

    ``groups`` maps each group key to its resolved samples (with their ``experiment``).
    """
    ds = dataset
    if ds.batch_correction is None:
        return
    if ds.aggregate_by == "EXPERIMENT" and ds.batch_key == "experiment_accession":
        raise DatasetSpecError(
            f'batch_correction="{ds.batch_correction}" with aggregate_by="EXPERIMENT": each '
            "group holds one experiment, so there is one batch per group and nothing to correct. "
            'Use aggregate_by="SPECIES" or "ALL" to combine experiments in a group, or choose '
            "a batch_key that varies inside an experiment."
        )
    if ds.batch_correction == "combat" and ds.pseudobulk is None:
        cells = [
            m.experiment
            for members in groups.values()
            for m in members
            if catalog.is_single_cell(m.experiment)
        ]
        if cells:
            raise DatasetSpecError(
                f"ComBat adjusts samples' values, not single cells (experiment(s) "
                f'{", ".join(dict.fromkeys(cells))}): use batch_correction="harmony" for '
                'cells (their PCA embedding is corrected), or pseudobulk="sample" to correct '
                "pseudo-samples with ComBat."
            )


def _batch_sizes(design) -> dict[str, int]:
    """The number of rows in each batch of ``design``."""
    return {b: int((design.batches == b).sum()) for b in design.levels}


def combat_group(gm: GroupMatrix, obs: pd.DataFrame, dataset, key: str) -> dict[str, Any]:
    """ComBat on the group's values (after QN, before scaling); what was done, for provenance.

    ``obs`` holds the samples' metadata, by accession, in the row order of ``gm.X``.
    """
    ds = dataset
    design = batch_design(obs, ds.batch_key, ds.batch_covariates or (), group=key)
    unadjusted = int(unadjustable_genes(gm.X, design).sum())
    gm.X = combat(gm.X, design).astype(gm.X.dtype, copy=False)
    return {
        "method": "combat",
        "description": "parametric empirical Bayes ComBat (as sva::ComBat, par.prior=TRUE), "
        "after quantile normalization and before scaling",
        "batch_key": ds.batch_key,
        "batches": _batch_sizes(design),
        "covariates": list(ds.batch_covariates or []),
        "design_columns": design.columns,
        "genes_unadjusted": unadjusted,
    }


def _harmony_info(method_values: str, batch_key: str, batches: dict[str, int], n_comps: int):
    """What Harmony did, for the provenance."""
    return {
        "method": "harmony",
        "description": f"Harmony (harmonypy) on the first {n_comps} principal components of "
        f"{method_values}; X is not changed",
        "batch_key": batch_key,
        "batches": batches,
        "n_comps": n_comps,
        "obsm": ["X_pca", "X_pca_harmony"],
    }


def harmony_samples(gm: GroupMatrix, obs: pd.DataFrame, dataset, key: str):
    """PCA of the group's final values and its Harmony correction, as ``obsm`` entries, and
    what was done (``obs``: the samples' metadata in the row order of ``gm.X``)."""
    ds = dataset
    design = batch_design(obs, ds.batch_key, group=key)  # the same refusals as ComBat's
    emb, _ = pca_embedding(gm.X)
    corrected = harmony_embedding(emb, obs, ds.batch_key)
    info = _harmony_info("the group's values", ds.batch_key, _batch_sizes(design), emb.shape[1])
    return {"X_pca": emb, "X_pca_harmony": corrected}, info


def harmony_cells(matrix, dataset, key: str):
    """PCA of the cells' log1p CPM (from their counts) and its Harmony correction, as ``obsm``
    entries, and what was done (``matrix``: a cell group's ``(X, cells, genes, layers)``)."""
    X, cells, _genes, layers = matrix
    counts = layers.get("counts", X)
    batch_key = dataset.batch_key
    if batch_key not in cells.columns and batch_key == "experiment_accession":
        batch_key = "experiment"  # a cell's experiment column
    design = batch_design(cells, batch_key, group=key)
    emb, _ = pca_embedding(normalize_counts(counts, "LOG1P_CPM", copy=True))
    corrected = harmony_embedding(emb, cells, batch_key)
    info = _harmony_info("the cells' log1p CPM", batch_key, _batch_sizes(design), emb.shape[1])
    return {"X_pca": emb, "X_pca_harmony": corrected}, info
