"""Pseudobulk: the counts of each library's cells (or of each library's cells of one type)
summed into one bulk-like sample, and that sample's refine.bio-shaped record.

The sum is taken on raw counts, before any normalization, as scanpy's and decoupler's
pseudobulk functions take it; the number of cells of each pseudo-sample is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["pseudo_records", "pseudobulk"]


def pseudobulk(
    cells: pd.DataFrame, counts: sp.csr_matrix, by: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Sum counts per library (``by="sample"``) or per library and cell type (``"sample_cell_type"``).

    Returns ``(sums, groups)``: a pseudo-samples x genes float64 array and one row per
    pseudo-sample with ``accession``, ``library``, ``cell_type`` ("" for ``sample``) and
    ``n_cells``, in order of first appearance.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> cells = pd.DataFrame({"library": ["L1", "L1", "L2"], "cell_type": ["B", "T", "B"]})
    >>> sums, groups = pseudobulk(cells, sp.csr_matrix([[1.0, 0.0], [2.0, 1.0], [5.0, 5.0]]), "sample")
    >>> sums.tolist(), groups["n_cells"].tolist(), groups["accession"].tolist()
    ([[3.0, 1.0], [5.0, 5.0]], [2, 1], ['L1', 'L2'])
    """
    library = cells["library"].astype(str).to_numpy()
    if by == "sample_cell_type":
        cell_type = cells["cell_type"].astype(str).to_numpy()
        keys = pd.Series([f"{lib}:{ct}" for lib, ct in zip(library, cell_type)])
    else:
        cell_type = np.full(len(library), "", dtype=object)
        keys = pd.Series(library)
    codes, uniques = pd.factorize(keys, sort=False)
    indicator = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float64), (codes, np.arange(len(codes)))),
        shape=(len(uniques), len(codes)),
    )
    sums = np.asarray((indicator @ counts.astype(np.float64)).todense())
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    groups = pd.DataFrame(
        {
            "accession": list(uniques),
            "library": library[first],
            "cell_type": cell_type[first],
            "n_cells": np.bincount(codes, minlength=len(uniques)),
        }
    )
    return sums, groups


def pseudo_records(
    groups: pd.DataFrame,
    cells: pd.DataFrame,
    library_records: Mapping[str, Mapping[str, Any]],
    by: str,
) -> dict[str, dict[str, Any]]:
    """refine.bio-shaped sample records for pseudo-samples, with their library and cell counts."""
    records = {}
    library = cells["library"].astype(str).to_numpy()
    cell_type = cells["cell_type"].astype(str).to_numpy() if by == "sample_cell_type" else None
    for row in groups.itertuples(index=False):
        base = dict(library_records.get(row.library, {}))
        mask = library == row.library
        if cell_type is not None:
            mask &= cell_type == row.cell_type
        sub = cells.loc[mask]
        rec = {
            k: v
            for k, v in base.items()
            if k.startswith("refinebio_") and k != "refinebio_annotations"
        }
        what = f"{row.cell_type} cells" if row.cell_type else "cells"
        rec.update(
            {
                "refinebio_accession_code": row.accession,
                "refinebio_title": f"pseudobulk of {row.n_cells} {what} of library {row.library}",
                "refinebio_specimen_part": "; ".join(sorted(set(sub["tissue"].astype(str)) - {""})),
                "refinebio_sex": "; ".join(sorted(set(sub["sex"].astype(str)) - {""})),
                "refinebio_annotations": [
                    {
                        "pseudobulk_library": row.library,
                        "pseudobulk_cell_type": row.cell_type,
                        "pseudobulk_n_cells": int(row.n_cells),
                    }
                ],
            }
        )
        records[row.accession] = rec
    return records
