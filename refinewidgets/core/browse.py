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
  matching rows in that order. Only the rows of the page are taken out of the table;
- **ranking** (:data:`BEST_MATCH`): an index that knows the members of its rows (the samples of
  each experiment, :class:`MemberText`) counts, for a text query, how many members of each row
  hold every word in their text or their row's (for experiments: the samples
  ``Catalog.search`` finds) -- the ``matching_samples`` column of a page -- and puts the rows
  with the most matching members first, then those whose title holds every word.

:func:`experiment_index` and :func:`sample_index` configure it for a catalog
(``refinewidgets.testing.synthetic_listing`` makes a large listing for the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError
from .facets import (
    EXPERIMENT_FACETS,
    MISSING,
    MULTI_VALUED,
    SAMPLE_FACETS,
    SEPARATOR,
    TERM_FACETS,
    Facet,
    column_facet,
    with_broader_terms,
)
from .member_text import MemberText, find_bytes, lower_bytes

__all__ = [
    "BEST_MATCH",
    "MATCHING",
    "MISSING",
    "MemberText",
    "Page",
    "TableIndex",
    "experiment_index",
    "sample_index",
    "shown_columns",
]

#: The sort order "most matching members first, then title matches, then table order".
BEST_MATCH = "(best match)"
#: The column of a page giving each row's number of members matching the text query.
MATCHING = "matching_samples"


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
    members, title_column
        The text of each row's members and the row's title, for ranking (:data:`BEST_MATCH`)
        and the :data:`MATCHING` column of a text query's pages.
    extra_text
        More searchable text per row (aligned on ``table``'s index), not shown as a column.
    ontologies
        ``{"CL": Ontology, "UBERON": Ontology}``: the facets of :data:`~refinewidgets.core.facets.TERM_FACETS` count and
        find a row under every broader term among their values (:func:`~refinewidgets.core.facets.with_broader_terms`).

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
        members: MemberText | None = None,
        title_column: str | None = None,
        extra_text: pd.Series | None = None,
        ontologies: Mapping[str, object] | None = None,
    ) -> None:
        self.table = table
        self.members = members
        self._titles = lower_bytes(table[title_column]) if title_column in table.columns else None
        self._ranked: tuple[tuple, np.ndarray, np.ndarray] | None = None  # (key, counts, order)
        self.n = len(table)
        text = pd.Series(table.index.astype(str), index=table.index)
        for c in text_columns:
            if c in table.columns:
                text = text + " | " + table[c].fillna("").astype(str)
        if extra_text is not None:
            text = text + " | " + extra_text.reindex(table.index).fillna("").astype(str)
        self._text: list[str] = text.str.lower().tolist()
        multi = set(multi_valued)
        self.facets: dict[str, Facet] = {
            name: column_facet(table[col], col in multi)
            for name, col in (facets or {}).items()
            if col in table.columns
        }
        for name, onto in TERM_FACETS.items():
            if name in self.facets and onto in (ontologies or {}):
                self.facets[name] = with_broader_terms(self.facets[name], ontologies[onto])
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

    def matching(self, text: str | None, rows: np.ndarray | None = None) -> np.ndarray | None:
        """Per row, its members holding every word of ``text`` (None: no words, or no members).

        Only rows matching ``text`` (and in ``rows``, a boolean per row, when given) are counted;
        the others count 0.
        """
        words = tuple(str(text or "").lower().split())
        if not words or self.members is None:
            return None
        return self._rank(words, self._within(text, rows))[0]

    def _within(self, text: str | None, rows: np.ndarray | None) -> np.ndarray:
        mask = self.text_mask(text)
        return mask if rows is None else mask & rows

    def _rank(self, words: tuple[str, ...], mask: np.ndarray):
        """(matching members per row, row positions best match first), counted in the rows of
        ``mask`` (rows matching ``words``); cached for the last query."""
        key = (words, hash(mask.tobytes()))
        if self._ranked is None or self._ranked[0] != key:
            if self.members is not None:
                counts = self.members.counts(" ".join(words), self.n, mask)
            else:
                counts = np.zeros(self.n, dtype=np.int64)
            titled = np.zeros(self.n, dtype=bool)
            if self._titles is not None:
                hits = np.flatnonzero(mask)
                for word in words:
                    hits = hits[find_bytes(self._titles[hits], word.encode()) >= 0]
                titled[hits] = True
            order = np.lexsort((np.arange(self.n), ~titled, -counts))
            self._ranked = (key, counts, order)
        return self._ranked[1], self._ranked[2]

    def order(
        self,
        column: str | None,
        ascending: bool = True,
        text: str | None = None,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Row positions sorted by ``column`` (None: table order); empty values go last.

        :data:`BEST_MATCH` ranks the rows for ``text``: most matching members first, then rows
        whose title holds every word, then table order (``ascending`` is ignored);
        :data:`MATCHING` sorts by the number of matching members. Without words both are the
        table order. ``rows`` (a boolean per row) limits the counting to those rows.
        """
        return self._order(column, ascending, text, rows)

    def _order(self, column, ascending, text, rows=None, *, matched=False) -> np.ndarray:
        """:meth:`order`; ``matched``: ``rows`` already holds only rows matching ``text``."""
        if column in (BEST_MATCH, MATCHING):
            words = tuple(str(text or "").lower().split())
            if not words:
                return np.arange(self.n)
            counts, best = self._rank(words, rows if matched else self._within(text, rows))
            if column == BEST_MATCH:
                return best
            return np.lexsort((np.arange(self.n), counts if ascending else -counts))
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
        facet_text: Mapping[str, str] | None = None,
    ) -> dict[str, pd.Series]:
        """``{facet: Series(value -> count)}`` for the rows matching everything but that facet.

        Values with a count of 0 are left out unless they are selected; the most frequent come
        first (ties by name, case-insensitive, :data:`MISSING` last), at most ``limit`` of them
        plus the selected ones. ``facet_text`` keeps, per facet, the values holding every word
        of its text (organism codes also match with spaces: ``"homo sapiens"``).
        """
        return self._counts(
            self.text_mask(text), self._facet_masks(filters), filters or {}, limit, facet_text
        )

    def _counts(self, text_mask, masks, filters, limit, facet_text=None) -> dict[str, pd.Series]:
        out = {}
        for name, facet in self.facets.items():
            mask = text_mask.copy()
            for other, m in masks.items():
                if other != name:
                    mask &= m
            counts = facet.counts(mask)
            chosen = filters.get(name, ())
            selected = np.isin(facet.values, [chosen] if isinstance(chosen, str) else list(chosen))
            listed = counts > 0
            if (facet_text or {}).get(name):
                listed &= facet.matching_values(facet_text[name])
            keep = np.flatnonzero(listed | selected)
            keep = keep[np.lexsort((facet.name_rank[keep], -counts[keep]))]
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
        facet_text: Mapping[str, str] | None = None,
    ) -> Page:
        """The ``page``-th page (from 0; clipped to the last page) of the matching rows.

        With a text query and members, the rows get a :data:`MATCHING` column. ``facet_text``
        (``{facet: text}``) lists only the values of a facet holding every word of its text
        (and the chosen ones), before ``facet_limit``.
        """
        text_mask, masks, mask = self._match(text, filters)
        order = self._order(sort, ascending, text, mask, matched=True)
        matched = order[mask[order]]
        page_size = max(1, int(page_size))
        n_pages = max(1, -(-len(matched) // page_size))
        page = min(max(0, int(page)), n_pages - 1)
        shown = matched[page * page_size : (page + 1) * page_size]
        rows = self.table.iloc[shown]
        words = tuple(str(text or "").lower().split())
        if words and self.members is not None:
            counts = self._rank(words, mask)[0]
            rows = rows.assign(**{MATCHING: counts[shown]})
        facets = self._counts(text_mask, masks, filters or {}, facet_limit, facet_text)
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
        mask = self.mask(text, filters)
        order = self._order(sort, ascending, text, mask, matched=True)
        return self.table.index[order[mask[order]]].astype(str).tolist()


#: Experiment columns listing the distinct values of their samples' columns (for search and
#: facets before any experiment is ticked).
SAMPLE_SUMMARY = {
    "organisms": ("refinebio_organism",),
    "platforms": ("refinebio_platform",),
    "diseases": ("refinebio_disease",),
    "tissues": ("refinebio_specimen_part", "tissues"),
    "cell_types": ("cell_types",),
}

#: The sample columns a sample matches a search by, with its accession and its experiment's
#: accession, title and description: those of ``Catalog.search`` and those its experiment is
#: found by.
MEMBER_TEXT = (
    "refinebio_title",
    "refinebio_cell_line",
    *(c for cols in SAMPLE_SUMMARY.values() for c in cols),
)


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


_SHIPPED = object()


def _ontologies(given) -> Mapping[str, object]:
    """``given``, or the shipped CL and UBERON tables (read by io once per process)."""
    if given is not _SHIPPED:
        return given or {}
    from ..io.ontology_tables import ONTOLOGY_NAMES, load_ontology  # io reads the tables

    return {name: load_ontology(name) for name in ONTOLOGY_NAMES}


def experiment_index(catalog, *, ontologies=_SHIPPED) -> TableIndex:
    """The experiment browser's index: text over the experiment (accession, title, description)
    and its samples (accessions, titles, diseases, tissues, cell types, platforms, organisms);
    facets organism, technology, platform, disease, tissue and cell type, with counts over the
    whole catalog before any experiment is ticked. Cell types and tissues are ontology terms
    (``ontologies``: the shipped Cell Ontology and UBERON unless given; ``{}`` for labels only):
    "T cell" counts and finds the experiments with "CD4-positive, alpha-beta T cell" too.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> idx = experiment_index(rw.open_catalog())
    >>> page = idx.query("breast", {"technology": ["RNA-SEQ"]})
    >>> list(page.rows.index)
    ['SRP091833']
    >>> sorted(idx.query("breast cancer").rows.index)  # a disease of their samples
    ['GSE71102', 'SRP091833']

    Ranked by their samples matching the search (:data:`BEST_MATCH`):

    >>> idx.query("breast cancer", sort=BEST_MATCH).rows[MATCHING].to_dict()
    {'GSE71102': 16, 'SRP091833': 12}
    """
    table = _experiment_table(catalog)
    samples = catalog.samples
    owner = table.index.astype(str).get_indexer(samples["experiment_accession"].astype(str))
    columns = [pd.Series(samples.index.astype(str), index=samples.index)]
    columns += [samples[c] for c in MEMBER_TEXT if c in samples.columns]
    own = [table.index.to_series().astype(str), table["title"], table["description"]]
    return TableIndex(
        table,
        text_columns=("title", "description", *SAMPLE_SUMMARY, "sample_text"),
        facets=EXPERIMENT_FACETS,
        members=MemberText(owner, columns, own),
        title_column="title",
        ontologies=_ontologies(ontologies),
    )


def sample_index(catalog, experiments: Sequence[str], *, ontologies=_SHIPPED) -> TableIndex:
    """The sample picker's index over the samples of ``experiments`` (in that order).

    Each row's ``experiment_accession`` is the chosen experiment listing it (a sample listed by
    two chosen experiments appears once, under the first). Text covers what the experiment
    browser's search finds a sample by (:data:`MEMBER_TEXT`: its accession, title, cell line,
    organism, platform, disease, tissues, cell types; its experiment's accession, title and
    description), so that the experiment search carried to the sample list shows the samples
    it counted; facets are sex, specimen part and disease, and for single-cell libraries cell
    type, tissue and stage.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> idx = sample_index(rw.open_catalog(), ["GSE71102"])
    >>> idx.n, sorted(idx.facet_counts()["disease"].index)
    (24, ['breast cancer', 'normal'])
    >>> len(idx.keys("breast cancer"))  # the browser's "Matching samples" of GSE71102
    16
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
    exps = catalog.experiments
    own = pd.Series("", index=table.index, dtype=object)
    for column in ("title", "description"):
        if column in exps.columns:
            values = exps[column].reindex(pd.Index(owners, dtype=object)).fillna("").astype(str)
            own = own + " | " + values.to_numpy()
    text_columns = ("experiment_accession", *(c for c in MEMBER_TEXT if c in table.columns))
    return TableIndex(
        table,
        text_columns=text_columns,
        facets=facets,
        extra_text=own,
        ontologies=_ontologies(ontologies),
    )


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` holding at least one non-empty value, in table order (the
    metadata columns worth offering in a table).

    Examples
    --------
    >>> t = pd.DataFrame({"sex": ["", None], "disease": ["normal", ""], "n": [1, 2]})
    >>> shown_columns(t)
    ['disease', 'n']
    """
    out = []
    for name in table.columns:
        col = table[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            filled = col.notna().any()
        else:
            filled = (col.fillna("").astype(str).str.strip() != "").any()
        if filled:
            out.append(str(name))
    return out
