"""Fast queries over the experiments and samples of a catalog: search, facets, sort, pages.

A :class:`TableIndex` is built once over a table (one row per experiment, or per sample) and
then answers each query (a keystroke in a search box, a facet click, a page change) without
touching the table again:

- **text**: every word of the query must be a substring of the row's text (its key and its text
  columns, lower-cased once at build time);
- **facets**: ``{facet: [values]}`` keeps rows having one of the values (OR within a facet, AND
  across facets). Multi-valued columns (``"HOMO_SAPIENS; MUS_MUSCULUS"``) are split once into
  ``(row, value code)`` pairs, so filtering and counting are ``numpy`` array operations. Empty
  values are the value :data:`MISSING`;
- **facet counts** are disjunctive, as in most search pages: the counts of a facet are computed
  with every filter except that facet's own, so they tell what choosing one more value gives;
- **sort** orders are computed once per column and direction, then a page is a slice of the
  matching rows in that order. Only the rows of the page are taken out of the table.

:func:`experiment_index` and :func:`sample_index` configure it for a catalog
(``refinewidgets.testing.synthetic_listing`` makes a large listing for the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError
from .spec import LIBRARY_SUMMARY

__all__ = ["MISSING", "Page", "TableIndex", "experiment_index", "sample_index"]

#: The facet value of an empty cell.
MISSING = "(missing)"
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
MULTI_VALUED = {"organisms", "platforms", "diseases", *LIBRARY_SUMMARY.values()}


@dataclass
class _Facet:
    column: str
    values: np.ndarray  # distinct values, sorted
    rows: np.ndarray  # one entry per (row, value) pair
    codes: np.ndarray

    def mask(self, wanted: Iterable[str], n: int) -> np.ndarray:
        codes = np.flatnonzero(np.isin(self.values, list(wanted)))
        out = np.zeros(n, dtype=bool)
        out[self.rows[np.isin(self.codes, codes)]] = True
        return out

    def counts(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes[mask[self.rows]], minlength=len(self.values))


def _facet(column: pd.Series, multi: bool) -> _Facet:
    text = pd.Series(column.fillna("").astype(str).to_numpy(), dtype=object)
    if multi:
        text = text.str.split(SEPARATOR).explode().str.strip()
    flat = np.where(text.to_numpy() == "", MISSING, text.to_numpy())
    codes, values = pd.factorize(flat, sort=True)
    rows = text.index.to_numpy(dtype=np.int64)
    return _Facet(str(column.name), np.asarray(values, dtype=object), rows, codes.astype(np.int64))


@dataclass
class Page:
    """One page of a query: its rows, the number of matches, and the facet counts."""

    rows: pd.DataFrame
    total: int
    page: int
    page_size: int
    facets: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def n_pages(self) -> int:
        """The number of pages (at least 1, so that "page 1 of 1" reads right when empty)."""
        return max(1, -(-self.total // self.page_size))


class TableIndex:
    """A precomputed query object over one table.

    Parameters
    ----------
    table
        One row per item, indexed by its key (an accession).
    text_columns
        Columns searched by the text query (the key is always searched).
    facets
        ``{facet name: column}``; columns missing from ``table`` are skipped.
    multi_valued
        Columns holding ``"; "``-joined values.

    Examples
    --------
    >>> t = pd.DataFrame({"title": ["Breast tumour", "Lung", "Breast normal"],
    ...                   "organisms": ["HOMO_SAPIENS", "MUS_MUSCULUS", "HOMO_SAPIENS; MUS_MUSCULUS"]},
    ...                  index=["E1", "E2", "E3"])
    >>> idx = TableIndex(t, text_columns=["title"], facets={"organism": "organisms"},
    ...                  multi_valued=["organisms"])
    >>> page = idx.query("breast", {"organism": ["MUS_MUSCULUS"]})
    >>> list(page.rows.index), page.facets["organism"].to_dict()
    (['E3'], {'HOMO_SAPIENS': 2, 'MUS_MUSCULUS': 1})
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        text_columns: Sequence[str] = (),
        facets: Mapping[str, str] | None = None,
        multi_valued: Iterable[str] = MULTI_VALUED,
    ) -> None:
        self.table = table
        self.n = len(table)
        text = pd.Series(table.index.astype(str), index=table.index)
        for c in text_columns:
            if c in table.columns:
                text = text + " | " + table[c].fillna("").astype(str)
        self._text: list[str] = text.str.lower().tolist()
        multi = set(multi_valued)
        self.facets: dict[str, _Facet] = {
            name: _facet(table[col], col in multi)
            for name, col in (facets or {}).items()
            if col in table.columns
        }
        self._orders: dict[tuple[str, bool], np.ndarray] = {}

    # -- matching ---------------------------------------------------------------------------
    def text_mask(self, text: str | None) -> np.ndarray:
        """Rows whose text holds every word of ``text`` (case-insensitive)."""
        mask = np.ones(self.n, dtype=bool)
        rows = None
        for word in str(text or "").lower().split():
            hay = self._text if rows is None else [self._text[i] for i in rows]
            hit = np.fromiter((word in t for t in hay), dtype=bool, count=len(hay))
            rows = np.flatnonzero(hit) if rows is None else rows[hit]
        if rows is not None:
            mask[:] = False
            mask[rows] = True
        return mask

    def _facet_masks(self, filters: Mapping[str, Iterable[str]] | None) -> dict[str, np.ndarray]:
        masks = {}
        for name, wanted in (filters or {}).items():
            if name not in self.facets:
                raise DatasetSpecError(
                    f"No facet {name!r} to filter on; facets: {list(self.facets)}."
                )
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            if wanted:
                masks[name] = self.facets[name].mask(wanted, self.n)
        return masks

    def _match(self, text, filters) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        text_mask, masks = self.text_mask(text), self._facet_masks(filters)
        mask = text_mask.copy()
        for m in masks.values():
            mask &= m
        return text_mask, masks, mask

    def mask(
        self, text: str | None = None, filters: Mapping[str, Iterable[str]] | None = None
    ) -> np.ndarray:
        """A boolean array: the rows matching ``text`` and every facet filter."""
        return self._match(text, filters)[2]

    def order(self, column: str | None, ascending: bool = True) -> np.ndarray:
        """Row positions sorted by ``column`` (None: table order); empty values go last."""
        if column is None:
            return np.arange(self.n)
        key = (column, bool(ascending))
        if key not in self._orders:
            if column not in self.table.columns and column != self.table.index.name:
                raise DatasetSpecError(
                    f"Cannot sort by {column!r}: no such column; columns: {list(self.table.columns)}."
                )
            col = (
                self.table[column] if column in self.table.columns else self.table.index.to_series()
            )
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                values = col.to_numpy(dtype=float)
                missing = np.isnan(values)
                codes = pd.factorize(values, sort=True)[0]
            else:
                lowered = col.fillna("").astype(str).str.lower()
                missing = (lowered == "").to_numpy()
                codes = pd.factorize(lowered, sort=True)[0]
            rank = np.where(missing, np.iinfo(np.int64).max, codes if ascending else -codes)
            self._orders[key] = np.argsort(rank, kind="stable")
        return self._orders[key]

    def facet_counts(
        self,
        text: str | None = None,
        filters: Mapping[str, Iterable[str]] | None = None,
        *,
        limit: int | None = None,
    ) -> dict[str, pd.Series]:
        """``{facet: Series(value -> count)}`` for the rows matching everything but that facet.

        Values with a count of 0 are left out unless they are selected; the most frequent come
        first (ties by value), at most ``limit`` of them plus the selected ones.
        """
        return self._counts(self.text_mask(text), self._facet_masks(filters), filters or {}, limit)

    def _counts(self, text_mask, masks, filters, limit) -> dict[str, pd.Series]:
        out = {}
        for name, facet in self.facets.items():
            mask = text_mask.copy()
            for other, m in masks.items():
                if other != name:
                    mask &= m
            counts = facet.counts(mask)
            selected = np.isin(facet.values, list(filters.get(name, ())))
            keep = np.flatnonzero((counts > 0) | selected)
            keep = keep[np.lexsort((keep, -counts[keep]))]
            if limit is not None and len(keep) > limit:
                keep = np.concatenate(
                    [keep[:limit], [k for k in keep[limit:] if selected[k]]]
                ).astype(int)
            out[name] = pd.Series(
                counts[keep], index=pd.Index(facet.values[keep], name=name), name="count"
            )
        return out

    def query(
        self,
        text: str | None = None,
        filters: Mapping[str, Iterable[str]] | None = None,
        *,
        sort: str | None = None,
        ascending: bool = True,
        page: int = 0,
        page_size: int = 20,
        facet_limit: int | None = None,
    ) -> Page:
        """The ``page``-th page (from 0; clipped to the last page) of the matching rows."""
        text_mask, masks, mask = self._match(text, filters)
        order = self.order(sort, ascending)
        matched = order[mask[order]]
        page_size = max(1, int(page_size))
        n_pages = max(1, -(-len(matched) // page_size))
        page = min(max(0, int(page)), n_pages - 1)
        rows = self.table.iloc[matched[page * page_size : (page + 1) * page_size]]
        facets = self._counts(text_mask, masks, filters or {}, facet_limit)
        return Page(rows, int(len(matched)), page, page_size, facets)

    def keys(
        self,
        text: str | None = None,
        filters: Mapping[str, Iterable[str]] | None = None,
        *,
        sort: str | None = None,
        ascending: bool = True,
    ) -> list[str]:
        """Every matching key, in sort order (for "select all")."""
        order = self.order(sort, ascending)
        return self.table.index[order[self.mask(text, filters)[order]]].astype(str).tolist()


#: Experiment columns listing the distinct values of their samples' columns (for search and
#: facets before any experiment is ticked).
SAMPLE_SUMMARY = {
    "organisms": ("refinebio_organism",),
    "platforms": ("refinebio_platform",),
    "diseases": ("refinebio_disease",),
    "tissues": ("refinebio_specimen_part", "tissues"),
    "cell_types": ("cell_types",),
}


def _distinct(by_exp: pd.Series, columns: list[pd.Series], index: pd.Index) -> np.ndarray:
    """Per experiment, the sorted distinct non-empty values of ``columns`` joined by ``"; "``."""
    parts = []
    for col in columns:
        values = col.fillna("").astype(str).str.split(SEPARATOR.strip())
        pairs = pd.DataFrame({"e": by_exp.to_numpy(), "v": values.to_numpy()}).explode("v")
        parts.append(pairs)
    pairs = pd.concat(parts, ignore_index=True)
    pairs["v"] = pairs["v"].astype(str).str.strip()
    pairs = pairs[pairs["v"] != ""].drop_duplicates().sort_values("v")
    joined = pairs.groupby("e", sort=False)["v"].agg(SEPARATOR.join)
    return joined.reindex(index.astype(str)).fillna("").to_numpy()


def _experiment_table(catalog) -> pd.DataFrame:
    exps = catalog.experiments.copy()
    missing = [c for c in ("title", "description", "technology") if c not in exps.columns]
    for c in missing:
        exps[c] = ""
    samples = catalog.samples
    by_exp = samples["experiment_accession"].astype(str)
    if "num_samples" not in exps.columns:
        exps["num_samples"] = (
            by_exp.value_counts().reindex(exps.index.astype(str), fill_value=0).to_numpy()
        )
    for out, cols in SAMPLE_SUMMARY.items():
        present = [samples[c] for c in cols if c in samples.columns]
        if present and out not in exps.columns:
            exps[out] = _distinct(by_exp, present, exps.index)
    # sample accessions and titles, searchable from the experiment list
    text = samples.index.astype(str).to_series(index=samples.index)
    if "refinebio_title" in samples:
        text = text + " " + samples["refinebio_title"].fillna("").astype(str)
    frame = pd.DataFrame({"e": by_exp.to_numpy(), "t": text.to_numpy()})
    joined = frame.groupby("e", sort=False)["t"].agg(" | ".join)
    exps["sample_text"] = joined.reindex(exps.index.astype(str)).fillna("").to_numpy()
    return exps


def experiment_index(catalog) -> TableIndex:
    """The experiment browser's index: text over the experiment (accession, title, description)
    and its samples (accessions, titles, diseases, tissues, cell types, platforms, organisms);
    facets organism, technology, platform, disease, tissue and cell type, with counts over the
    whole catalog before any experiment is ticked.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> idx = experiment_index(rw.open_catalog())
    >>> page = idx.query("breast", {"technology": ["RNA-SEQ"]})
    >>> list(page.rows.index)
    ['SRP091833']
    >>> sorted(idx.query("breast cancer").rows.index)  # a disease of their samples
    ['GSE71102', 'SRP091833']
    """
    text = ("title", "description", *SAMPLE_SUMMARY, "sample_text")
    return TableIndex(_experiment_table(catalog), text_columns=text, facets=EXPERIMENT_FACETS)


def sample_index(catalog, experiments: Sequence[str]) -> TableIndex:
    """The sample picker's index over the samples of ``experiments`` (in that order).

    Each row's ``experiment_accession`` is the chosen experiment listing it (a sample listed by
    two chosen experiments appears once, under the first). Text covers the sample accession,
    title and experiment; facets are sex, specimen part and disease, and for single-cell
    libraries cell type, tissue and stage.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> idx = sample_index(rw.open_catalog(), ["GSE71102"])
    >>> idx.n, sorted(idx.facet_counts()["disease"].index)
    (24, ['breast cancer', 'normal'])
    """
    samples = catalog.samples
    keys, owners = [], []
    seen: set[str] = set()
    for exp in experiments:
        for s in catalog.experiment_samples(exp):
            if s not in seen:
                seen.add(s)
                keys.append(s)
                owners.append(exp)
    table = samples.loc[keys].copy() if keys else samples.iloc[:0].copy()
    table["experiment_accession"] = owners
    facets = {
        name: col
        for name, col in SAMPLE_FACETS.items()
        if col in table.columns and (table[col].fillna("").astype(str) != "").any()
    }
    return TableIndex(
        table, text_columns=("refinebio_title", "experiment_accession"), facets=facets
    )
