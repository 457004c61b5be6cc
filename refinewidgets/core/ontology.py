"""Ontology terms in cell filters: a cell type or tissue matches its descendants.

"T cell" in a cell filter keeps the cells annotated "T cell" and those annotated with any of its
descendants in the Cell Ontology ("CD4-positive, alpha-beta T cell"...); "lymph node" in UBERON
likewise. Bgee's files carry the terms' ids (``cellTypeId``, ``anatEntityId``: the unified
``cell_type_id`` and ``tissue_id`` columns), so a cell is matched by its id; a cell whose id the
ontology lacks still matches by its label. A value may be a label (compared ignoring case) or an
id (``CL:0000084``, or Bgee's ``CL_0000084``); a value the ontology does not know (``unknown``,
an author's label) matches that label only. ``exact=True`` (a :class:`Dataset` option) turns
this off: labels only, as before.

The terms are the trimmed tables under ``refinewidgets/data/ontology/`` (id, label, direct
parents), built by ``scripts/make_ontology_tables.py`` from the CL and UBERON releases that the
PyPI package ``cellxgene-ontology-guide`` ships; the release is their first line, and a build
records it in ``uns["refinewidgets"]["ontology"]``. This module holds the pure logic; the tables
are read by :mod:`refinewidgets.io.ontology_tables`.

Examples
--------
>>> cl = Ontology.from_lines("CL", [
...     "# CL test", "id\\tlabel\\tparents", "CL:1\\tcell\\t", "CL:2\\tT cell\\tCL:1",
...     "CL:3\\tCD4-positive T cell\\tCL:2", "CL:4\\tB cell\\tCL:1"])
>>> sorted(cl.descendants("CL:2"))
['CL:2', 'CL:3']
>>> import pandas as pd
>>> cells = pd.DataFrame({"cell_type": ["T cell", "CD4-positive T cell", "B cell"],
...                       "cell_type_id": ["CL:2", "CL_3", "CL:4"]})
>>> TermMatcher({"CL": cl}).mask(cells, "cell_type", ["T cell"]).tolist()
[True, True, False]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cell_query import text_isin

__all__ = ["TERM_COLUMNS", "Ontology", "TermMatcher", "normal_id"]

#: Unified column -> (the column of its term ids, the ontology of its terms).
TERM_COLUMNS = {
    "cell_type": ("cell_type_id", "CL"),
    "tissue": ("tissue_id", "UBERON"),
    "cell_type_id": ("cell_type_id", "CL"),
    "tissue_id": ("tissue_id", "UBERON"),
}
_ID = re.compile(r"([A-Za-z]+)[_:](\d+)")


def normal_id(value) -> str:
    """A term id as ontologies write it (``CL:0000084``), from Bgee's ``CL_0000084`` too.

    >>> normal_id(" CL_0000084"), normal_id("B cell")
    ('CL:0000084', 'B cell')
    """
    text = str(value).strip()
    match = _ID.fullmatch(text)
    return f"{match.group(1).upper()}:{match.group(2)}" if match else text


@dataclass
class Ontology:
    """Terms of one ontology: labels and direct parents; descendants computed on demand."""

    name: str
    version: str
    labels: dict[str, str]
    parents: dict[str, tuple[str, ...]]
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _by_label: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for term, parents in self.parents.items():
            for parent in parents:
                self._children.setdefault(parent, []).append(term)
        for term, label in self.labels.items():
            self._by_label.setdefault(label.lower(), []).append(term)

    @classmethod
    def from_lines(cls, name: str, lines: Iterable[str]) -> Ontology:
        """Read a table written by ``scripts/make_ontology_tables.py``: a ``# NAME version``
        line, a header, then ``id<TAB>label<TAB>parent;parent`` lines."""
        version, labels, parents = "unknown", {}, {}
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("#"):
                version = line[1:].strip().removeprefix(name).strip() or version
                continue
            if not line or line.startswith("id\t"):
                continue
            term, label, up = (line.split("\t") + ["", ""])[:3]
            labels[term] = label
            parents[term] = tuple(p for p in up.split(";") if p)
        return cls(name, version, labels, parents)

    def resolve(self, value) -> list[str]:
        """The terms a filter value names: an id the ontology has, or the terms of that label
        (ignoring case); empty when it names none."""
        term = normal_id(value)
        if term in self.labels:
            return [term]
        return list(self._by_label.get(str(value).strip().lower(), ()))

    def ancestors(self, term: str) -> set[str]:
        """``term`` and every term above it."""
        return _reachable(term, self.parents)

    def broader(self, values: Sequence[str]) -> dict[int, list[int]]:
        """For each of ``values`` (labels or ids), the positions of the other ``values`` that
        name a term above one of its terms: ``{i: [j, ...]}`` for the values that have any.

        >>> cl = Ontology.from_lines("CL", ["id\\tlabel\\tparents", "CL:1\\tcell\\t",
        ...     "CL:2\\tT cell\\tCL:1", "CL:3\\tCD4-positive T cell\\tCL:2"])
        >>> cl.broader(["CD4-positive T cell", "T cell", "neuron", "cell"])
        {0: [1, 3], 1: [3]}
        """
        terms = [set(self.resolve(v)) for v in values]
        named: dict[str, list[int]] = {}
        for j, ts in enumerate(terms):
            for t in ts:
                named.setdefault(t, []).append(j)
        out: dict[int, list[int]] = {}
        for i, ts in enumerate(terms):
            above = set().union(*(self.ancestors(t) for t in ts)) - ts if ts else set()
            found = sorted({j for t in above for j in named.get(t, ()) if j != i})
            if found:
                out[i] = found
        return out

    def descendants(self, term: str) -> set[str]:
        """``term`` and every term below it."""
        return _reachable(term, self._children)


def _reachable(term: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    """``term`` and every term reached from it through ``edges`` (parents, or children)."""
    seen, todo = {term}, [term]
    while todo:
        for other in edges.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


class TermMatcher:
    """Matches cell-filter values on :data:`TERM_COLUMNS` by term and descendants.

    ``ontologies`` maps an ontology name (``"CL"``, ``"UBERON"``) to its :class:`Ontology`.
    """

    def __init__(self, ontologies: Mapping[str, Ontology]) -> None:
        self.ontologies = dict(ontologies)

    def handles(self, column: str) -> bool:
        spec = TERM_COLUMNS.get(column)
        return spec is not None and spec[1] in self.ontologies

    def id_columns(self, columns: Iterable[str]) -> list[str]:
        """The id columns a table needs for conditions on ``columns``."""
        return list(dict.fromkeys(TERM_COLUMNS[c][0] for c in columns if self.handles(c)))

    @property
    def versions(self) -> dict[str, str]:
        return {name: o.version for name, o in self.ontologies.items()}

    def mask(self, table: pd.DataFrame, column: str, values: Sequence) -> np.ndarray | None:
        """Rows whose term is one of ``values`` or below one (None: not a term column)."""
        if not self.handles(column):
            return None
        id_column, name = TERM_COLUMNS[column]
        ontology = self.ontologies[name]
        wanted: set[str] = set()
        for value in values:
            for term in ontology.resolve(value):
                wanted |= ontology.descendants(term)
        hit = text_isin(table[column], values, strip=True)
        if wanted and id_column in table.columns:
            ids = table[id_column]
            if isinstance(ids.dtype, pd.CategoricalDtype):  # per category, not per cell
                categories = ids.cat.categories.astype(str)
                chosen = np.array([normal_id(c) in wanted for c in categories], dtype=bool)
                codes = ids.cat.codes.to_numpy()
                hit |= np.where(codes >= 0, chosen[np.maximum(codes, 0)], False)
            else:
                hit |= np.array([normal_id(v) in wanted for v in ids.astype(str)], dtype=bool)
        return hit
