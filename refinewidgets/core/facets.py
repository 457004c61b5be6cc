"""The facets of a :class:`~refinewidgets.core.browse.TableIndex`: a column's values as
``(row, value code)`` pairs, so filtering and counting are ``numpy`` array operations.

A multi-valued column (``"HOMO_SAPIENS; MUS_MUSCULUS"``) is split once on :data:`SEPARATOR`;
an empty cell is the value :data:`MISSING`. The facets of :data:`TERM_FACETS` hold ontology
terms by label: :func:`with_broader_terms` lets a row holding a term count for, and be found
by, every broader term among the facet's values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .spec import LIBRARY_SUMMARY

__all__ = [
    "EXPERIMENT_FACETS",
    "MISSING",
    "MULTI_VALUED",
    "SAMPLE_FACETS",
    "SEPARATOR",
    "TERM_FACETS",
    "Facet",
    "column_facet",
    "with_broader_terms",
]

#: The facet value of an empty cell.
MISSING = "(missing)"
#: The separator of the values of a multi-valued column.
SEPARATOR = "; "
#: Facets of the experiment browser: facet name -> experiments column.
EXPERIMENT_FACETS = {
    "organism": "organisms",
    "technology": "technology",
    "platform": "platforms",
    "disease": "diseases",
    "tissue": "tissues",
    "cell type": "cell_types",
}
#: Facets of the sample picker: facet name -> samples column (single-cell ones are multi-valued).
SAMPLE_FACETS = {
    "sex": "refinebio_sex",
    "specimen part": "refinebio_specimen_part",
    "disease": "refinebio_disease",
    **{c.replace("_", " "): f for c, f in LIBRARY_SUMMARY.items() if c != "sex"},
}
#: The columns holding several values joined by :data:`SEPARATOR`.
MULTI_VALUED = {"organisms", "platforms", "diseases", *LIBRARY_SUMMARY.values()}
#: Facets whose values are ontology terms (by label): facet name -> ontology. A row holding a
#: term also counts for, and is found by, every broader term of that facet (:func:`with_broader_terms`).
TERM_FACETS = {"cell type": "CL", "tissue": "UBERON"}


@dataclass
class Facet:
    """One facet of a table: its distinct values and the ``(row, value code)`` pairs holding
    them (a row of a multi-valued column holds several values).

    Examples
    --------
    >>> f = column_facet(pd.Series(["A; B", "", "B"], name="organisms"), multi=True)
    >>> f.mask(["B"], 3).tolist(), f.counts(np.array([True, True, False])).tolist()
    ([True, False, True], [1, 1, 1])
    """

    column: str
    values: np.ndarray  # distinct values, sorted
    rows: np.ndarray  # one entry per (row, value) pair
    codes: np.ndarray
    name_rank: np.ndarray = field(init=False)  # case-insensitive name order, MISSING last
    search: list[str] = field(init=False)  # lower-cased value, and with "_" as spaces

    def __post_init__(self) -> None:
        names = [str(v).lower() for v in self.values]
        order = sorted(range(len(names)), key=lambda i: (self.values[i] == MISSING, names[i]))
        self.name_rank = np.empty(len(names), dtype=np.int64)
        self.name_rank[order] = np.arange(len(names))
        self.search = [f"{n} {n.replace('_', ' ')}" for n in names]

    def matching_values(self, text: str) -> np.ndarray:
        """A boolean per value: does it hold every word of ``text`` (case-insensitive)?"""
        words = str(text or "").lower().split()
        return np.fromiter(
            (all(w in s for w in words) for s in self.search), dtype=bool, count=len(self.search)
        )

    def mask(self, wanted: Iterable[str], n: int) -> np.ndarray:
        codes = np.flatnonzero(np.isin(self.values, list(wanted)))
        out = np.zeros(n, dtype=bool)
        out[self.rows[np.isin(self.codes, codes)]] = True
        return out

    def counts(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes[mask[self.rows]], minlength=len(self.values))

    #: Per value, the narrower values of the facet it also stands for (ontology facets only).
    narrower: dict[str, tuple[str, ...]] = field(default_factory=dict)


def with_broader_terms(facet: Facet, ontology) -> Facet:
    """``facet`` where a row holding a term also holds every broader term among the facet's
    values: choosing "T cell" finds the rows annotated "CD4-positive, alpha-beta T cell", and
    the count of "T cell" is that of the rows holding it or any term below it (each row once).

    Values the ontology does not know (``unknown``, an author's label) stay as they are.

    Parameters
    ----------
    facet
        The facet of a column of term labels (or ids).
    ontology
        An :class:`~refinewidgets.core.ontology.Ontology` knowing those terms.

    Examples
    --------
    >>> from refinewidgets.core.ontology import Ontology
    >>> cl = Ontology.from_lines("CL", ["id\\tlabel\\tparents", "CL:1\\tT cell\\t",
    ...     "CL:2\\tCD4-positive T cell\\tCL:1"])
    >>> f = column_facet(pd.Series(["T cell", "CD4-positive T cell", ""], name="cell_types"), False)
    >>> up = with_broader_terms(f, cl)
    >>> dict(zip(up.values, up.counts(np.ones(3, dtype=bool)).tolist())), up.narrower
    ({'(missing)': 1, 'CD4-positive T cell': 1, 'T cell': 2}, {'T cell': ('CD4-positive T cell',)})
    """
    broader = ontology.broader([str(v) for v in facet.values])
    if not broader:
        return facet
    up = [(i, j) for i, js in broader.items() for j in js]
    src, dst = np.array(up, dtype=np.int64).T
    order = np.argsort(facet.codes, kind="stable")  # the rows of each value, contiguous
    bounds = np.searchsorted(facet.codes[order], np.arange(len(facet.values) + 1))
    taken = [order[bounds[i] : bounds[i + 1]] for i in src]
    n_values = len(facet.values)
    pairs = np.unique(
        np.concatenate([facet.rows, *(facet.rows[t] for t in taken)]) * n_values
        + np.concatenate([facet.codes, *(np.full(len(t), j) for t, j in zip(taken, dst))])
    )
    narrower: dict[str, list[str]] = {}
    for i, j in zip(src, dst):
        narrower.setdefault(str(facet.values[j]), []).append(str(facet.values[i]))
    return Facet(
        facet.column,
        facet.values,
        pairs // n_values,
        pairs % n_values,
        narrower={k: tuple(sorted(v)) for k, v in narrower.items()},
    )


def column_facet(column: pd.Series, multi: bool) -> Facet:
    """The facet of ``column``: ``multi`` columns split on :data:`SEPARATOR`, empty cells are
    :data:`MISSING`, values sorted.

    Parameters
    ----------
    column
        One entry per row of the table, in table order.
    multi
        Whether a cell may hold several values joined by :data:`SEPARATOR`.

    Examples
    --------
    >>> f = column_facet(pd.Series(["A; B", "", "B"], name="organisms"), multi=True)
    >>> f.values.tolist(), f.rows.tolist(), f.codes.tolist()
    (['(missing)', 'A', 'B'], [0, 0, 1, 2], [1, 2, 0, 2])
    """
    text = pd.Series(column.fillna("").astype(str).to_numpy(), dtype=object)
    if multi:
        text = text.str.split(SEPARATOR).explode().str.strip()
    flat = np.where(text.to_numpy() == "", MISSING, text.to_numpy())
    codes, values = pd.factorize(flat, sort=True)
    rows = text.index.to_numpy(dtype=np.int64)
    return Facet(str(column.name), np.asarray(values, dtype=object), rows, codes.astype(np.int64))
