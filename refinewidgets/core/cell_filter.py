"""Which cells to keep: the ``cell_filter`` of a :class:`~refinewidgets.core.spec.Dataset`.

A cell filter is a dict from a column of the cell table to a condition; a cell is kept when it
meets every condition. A column is one of the unified columns (``cell_type``, ``tissue``,
``stage``, ``sex``, ``strain``, ``library`` and their ``*_id`` columns), any column of the file's
own ``obs`` by its own name (author annotations such as ``cellTypeAuthorAnnotation``, Bgee's
``bgeeSex``), or a per-cell QC value computed from the counts read (:data:`QC_COLUMNS`).

A condition is one of:

- a list of values (or one value): keep cells whose value is one of them;
- ``{"in": [...]}`` (the same), ``{"not_in": [...]}`` (drop cells with these values), or both;
- ``{"min": a, "max": b}`` (either bound alone too): a numeric range, bounds included.

Values are compared as text (``sex`` case-insensitively); ranges need a numeric column.

A filter can also be a text in CELLxGENE Census' syntax, such as
``"cell_type == 'B cell' or tissue in ['spleen']"`` (``and``, ``or``, ``not``, ``in``,
comparisons on QC values): see :mod:`refinewidgets.core.cell_query`. It is kept as its text.

Examples
--------
>>> import pandas as pd
>>> cells = pd.DataFrame({"cell_type": ["B cell", "T cell", "B cell"], "sex": ["male", "female", "unknown"],
...                       "total_counts": [900.0, 300.0, 1500.0]})
>>> cf = parse_cell_filter({"cell_type": "B cell", "sex": {"not_in": ["unknown"]}})
>>> match_cells(cells, cf, "f.h5ad").tolist()
[True, False, False]
>>> match_cells(cells, {"total_counts": {"min": 500}}, "f.h5ad").tolist()
[True, False, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError
from .cell_query import Query, parse_query, table_column, text_isin

__all__ = [
    "QC_COLUMNS",
    "describe_filter",
    "filter_columns",
    "freeze_cell_filter",
    "match_cells",
    "parse_cell_filter",
    "qc_keep",
    "qc_table_columns",
    "qc_values",
    "split_qc",
    "thaw_cell_filter",
]

#: Per-cell QC values computed from the counts read (scanpy's names): the sum of a cell's
#: counts and its number of genes with a count, over the genes kept (intergenic features
#: excluded unless kept). They shadow file columns of the same name.
QC_COLUMNS = ("total_counts", "n_genes_by_counts")
_SET_KEYS = ("in", "not_in")
_RANGE_KEYS = ("min", "max")
#: Columns compared case-insensitively.
CASELESS = ("sex",)

#: A filter's normal form: a dict of conditions, or a filter text (see :mod:`.cell_query`).
CellFilter = dict[str, Any] | str


def _texts(column: str, key: str, values: Any) -> list[str]:
    if isinstance(values, (str, bytes, int, float, np.integer, np.floating)):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise DatasetSpecError(
            f"`cell_filter[{column!r}]`{'' if key == 'in' else f'[{key!r}]'} must be a non-empty "
            f"list of values, got {values!r}."
        )
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _bound(column: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DatasetSpecError(
            f"`cell_filter[{column!r}][{key!r}]` must be a number, got {value!r}: e.g. "
            f"{{{column!r}: {{'min': 500}}}}."
        )
    value = float(value)
    if math.isnan(value):
        raise DatasetSpecError(f"`cell_filter[{column!r}][{key!r}]` is NaN; give a number.")
    return value


def parse_cell_filter(cell_filter: Any) -> CellFilter | None:
    """The filter in its normal form (lists of strings, ``in``/``not_in`` lists, float
    bounds; a filter text on one line), or None for no filter; a :class:`DatasetSpecError`
    naming what is wrong (for a text, the character it is at)."""
    if cell_filter is None or (isinstance(cell_filter, Mapping) and not cell_filter):
        return None
    if isinstance(cell_filter, str):
        return None if not cell_filter.strip() else parse_query(cell_filter).text
    if not isinstance(cell_filter, Mapping):
        raise DatasetSpecError(
            "`cell_filter` must be a dict such as {'cell_type': ['B cell']}, "
            f"{{'sex': {{'not_in': ['unknown']}}}} or {{'total_counts': {{'min': 500}}}}, or a "
            f"text such as \"cell_type == 'B cell' or tissue in ['spleen']\"; got {cell_filter!r}."
        )
    clean: CellFilter = {}
    for column, condition in cell_filter.items():
        if not isinstance(column, str) or not column.strip():
            raise DatasetSpecError(
                f"`cell_filter` columns must be non-empty strings, got {column!r}."
            )
        if not isinstance(condition, Mapping):
            clean[column] = _texts(column, "in", condition)
            continue
        unknown = sorted(set(condition) - {*_SET_KEYS, *_RANGE_KEYS})
        if unknown or not condition:
            raise DatasetSpecError(
                f"`cell_filter[{column!r}]` has unknown key(s) {unknown or '(none given)'}: use "
                "'in' / 'not_in' (lists of values) or 'min' / 'max' (numbers)."
            )
        if set(condition) & set(_SET_KEYS) and set(condition) & set(_RANGE_KEYS):
            raise DatasetSpecError(
                f"`cell_filter[{column!r}]` mixes a value list and a numeric range; give one."
            )
        out: dict[str, Any] = {}
        for key in _SET_KEYS:
            if key in condition:
                out[key] = _texts(column, key, condition[key])
        for key in _RANGE_KEYS:
            if key in condition and condition[key] is not None:
                out[key] = _bound(column, key, condition[key])
        if "min" in out and "max" in out and out["min"] > out["max"]:
            raise DatasetSpecError(
                f"`cell_filter[{column!r}]` has min {out['min']:g} above max {out['max']:g}."
            )
        if not out:
            raise DatasetSpecError(f"`cell_filter[{column!r}]` gives no bound.")
        clean[column] = out
    return clean


def freeze_cell_filter(cell_filter: CellFilter | None):
    """A hashable form of a normal-form filter (for immutable selections)."""
    if not cell_filter:
        return None
    if isinstance(cell_filter, str):
        return cell_filter
    frozen = []
    for column, cond in cell_filter.items():
        if isinstance(cond, Mapping):
            items = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cond.items())
            frozen.append((column, ("", items)))
        else:
            frozen.append((column, tuple(cond)))
    return tuple(frozen)


def thaw_cell_filter(frozen) -> CellFilter | None:
    """The filter back from :func:`freeze_cell_filter`."""
    if not frozen:
        return None
    if isinstance(frozen, str):
        return frozen
    out: CellFilter = {}
    for column, cond in frozen:
        if len(cond) == 2 and cond[0] == "" and isinstance(cond[1], tuple):
            out[column] = {k: list(v) if isinstance(v, tuple) else v for k, v in cond[1]}
        else:
            out[column] = list(cond)
    return out


def split_qc(cell_filter: CellFilter | None) -> tuple[CellFilter, CellFilter]:
    """``(conditions on the cell table, conditions on QC values)`` of a dict filter (a filter
    text is not split: see :meth:`~refinewidgets.core.cell_query.Query.possible`)."""
    if isinstance(cell_filter, str):
        raise TypeError("a filter text is not split; use cell_query.Query.possible")
    cf = cell_filter or {}
    return (
        {k: v for k, v in cf.items() if k not in QC_COLUMNS},
        {k: v for k, v in cf.items() if k in QC_COLUMNS},
    )


def filter_columns(cell_filter) -> list[str]:
    """The columns a filter (dict or text) uses.

    >>> filter_columns("cell_type == 'B' or total_counts > 5"), filter_columns({"sex": ["f"]})
    (['cell_type', 'total_counts'], ['sex'])
    """
    cell_filter = parse_cell_filter(cell_filter)
    if isinstance(cell_filter, str):
        return list(parse_query(cell_filter).columns)
    return list(cell_filter or {})


def describe_filter(cell_filter: CellFilter | None) -> str:
    """One line for messages, e.g. ``cell_type in ['B cell']; total_counts >= 500``."""
    if isinstance(cell_filter, str):
        return cell_filter
    parts = []
    for column, cond in (cell_filter or {}).items():
        if not isinstance(cond, Mapping):
            parts.append(f"{column} in {cond}")
            continue
        if "in" in cond:
            parts.append(f"{column} in {cond['in']}")
        if "not_in" in cond:
            parts.append(f"{column} not in {cond['not_in']}")
        if "min" in cond:
            parts.append(f"{column} >= {cond['min']:g}")
        if "max" in cond:
            parts.append(f"{column} <= {cond['max']:g}")
    return "; ".join(parts) or "none"


def _present(series: pd.Series) -> list[str]:
    values = sorted(set(series.astype(str)))
    return values[:30] + ([f"... ({len(values)} in all)"] if len(values) > 30 else [])


def match_cells(
    table: pd.DataFrame,
    cell_filter: Mapping[str, Any] | str | Query | None,
    where: str,
    *,
    terms: Any = None,
) -> np.ndarray:
    """A boolean mask of the rows of ``table`` meeting every condition of ``cell_filter``
    (or meeting a filter text).

    Raises :class:`DatasetSpecError` for a column ``table`` lacks (listing its columns), a value
    list matching no row (listing the values present), a range on a non-numeric column, or
    conditions that each match but never together. ``where`` names the table in messages.
    ``terms`` (a :class:`~refinewidgets.core.ontology.TermMatcher`) matches cell types and
    tissues with their descendants (the table then needs their ``*_id`` columns).
    """
    if isinstance(cell_filter, str):
        cell_filter = parse_query(cell_filter)
    if isinstance(cell_filter, Query):
        return cell_filter.mask(table, where, terms=terms)
    mask = np.ones(len(table), dtype=bool)
    conditions = parse_cell_filter(dict(cell_filter or {})) or {}
    for column, cond in conditions.items():
        series = table_column(table, column, where, "cell filter")
        if not isinstance(cond, Mapping):
            cond = {"in": cond}
        if "min" in cond or "max" in cond:
            mask &= _range_hit(series, column, cond, where)
        else:
            mask &= _value_hit(table, series, column, cond, where, terms)
    if not mask.any():
        raise DatasetSpecError(
            f"no cell of {where} meets all of ({describe_filter(conditions)}) together (each "
            "condition alone matches some cells): loosen one of them"
        )
    return mask


def _range_hit(series: pd.Series, column: str, cond: Mapping[str, Any], where: str) -> np.ndarray:
    """The rows whose number in ``series`` is within ``cond``'s ``min``/``max``; refuses a text
    column and a range no row meets."""
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.isna().all() and len(series):
        raise DatasetSpecError(
            f"cell filter {column!r}: a numeric range needs numbers, but {where} holds "
            f"text there (values present: {_present(series)})"
        )
    values = numbers.to_numpy(dtype=float)
    hit = ~np.isnan(values)
    if "min" in cond:
        hit &= values >= cond["min"]
    if "max" in cond:
        hit &= values <= cond["max"]
    if not hit.any():
        raise DatasetSpecError(
            f"cell filter {column!r}: no cell of {where} is in "
            f"[{cond.get('min', '-inf')}, {cond.get('max', 'inf')}] (its values range "
            f"{np.nanmin(values) if hit.size and not np.isnan(values).all() else 'n/a'}"
            f"..{np.nanmax(values) if hit.size and not np.isnan(values).all() else 'n/a'})"
        )
    return hit


def _value_hit(table, series, column: str, cond: Mapping[str, Any], where: str, terms):
    """The rows whose value is one of ``cond["in"]`` and none of ``cond["not_in"]`` (ontology
    terms with their descendants when ``terms`` handles the column); refuses a condition no
    row meets."""
    caseless = column in CASELESS
    hit = np.ones(len(table), dtype=bool)
    by_term = terms is not None and terms.handles(column)
    if "in" in cond:
        wanted = cond["in"]
        hit &= (
            terms.mask(table, column, wanted)
            if by_term
            else text_isin(series, wanted, caseless=caseless)
        )
        if not hit.any():
            raise DatasetSpecError(
                f"cell filter {column!r}: no cell of {where} has {cond['in']}; values "
                f"present: {_present(series)}"
            )
    if "not_in" in cond:
        dropped = cond["not_in"]
        hit &= ~(
            terms.mask(table, column, dropped)
            if by_term
            else text_isin(series, dropped, caseless=caseless)
        )
        if not hit.any():
            raise DatasetSpecError(
                f"cell filter {column!r}: every cell of {where} has one of {cond['not_in']}"
            )
    return hit


def qc_values(counts) -> pd.DataFrame:
    """:data:`QC_COLUMNS` of a cells x genes CSR matrix of counts."""
    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    detected = np.diff(counts.indptr) if counts.nnz == 0 or (counts.data > 0).all() else None
    if detected is None:
        detected = np.add.reduceat(
            np.concatenate([(counts.data > 0).astype(np.int64), [0]]), counts.indptr[:-1]
        )
        detected[np.diff(counts.indptr) == 0] = 0
    return pd.DataFrame({"total_counts": totals, "n_genes_by_counts": detected.astype(np.int64)})


def qc_table_columns(cell_filter, renamed: Mapping[str, str] | None = None) -> list[str]:
    """The cell-table columns a QC pass of ``cell_filter`` needs beside the QC values: those of
    a filter text using a QC value (renamed by ``renamed``, ``{unified: the file's own name}``),
    else none (a dict filter's QC conditions need only the QC values).

    >>> qc_table_columns("cell_type == 'B cell' and total_counts > 500")
    ['cell_type']
    >>> qc_table_columns("cell_type == 'B cell'"), qc_table_columns({"total_counts": {"min": 5}})
    ([], [])
    """
    cell_filter = parse_cell_filter(cell_filter)
    if not isinstance(cell_filter, str):
        return []
    query = parse_query(cell_filter).renamed(dict(renamed or {}))
    if not set(query.columns) & set(QC_COLUMNS):
        return []
    return [c for c in query.columns if c not in QC_COLUMNS]


def qc_keep(
    cell_filter,
    qc: pd.DataFrame,
    where: str,
    *,
    table: pd.DataFrame | None = None,
    renamed: Mapping[str, str] | None = None,
    terms: Any = None,
) -> np.ndarray | None:
    """Which cells meet ``cell_filter`` once their QC values are known: a boolean mask over the
    rows of ``qc`` (:data:`QC_COLUMNS`, from :func:`qc_values`), or None when the filter uses
    no QC value.

    The cells were chosen on their other columns already; a filter text is evaluated again as a
    whole, on ``table`` (its :func:`qc_table_columns` for the same cells, in the same order)
    with the QC values added. ``renamed`` and ``terms`` (an ontology matcher) are those the
    choice used; ``where`` names the file in messages.

    Examples
    --------
    >>> import pandas as pd
    >>> qc = pd.DataFrame({"total_counts": [100.0, 900.0], "n_genes_by_counts": [50, 300]})
    >>> qc_keep({"total_counts": {"min": 500}}, qc, "f.h5ad").tolist()
    [False, True]
    >>> cells = pd.DataFrame({"cell_type": ["B cell", "T cell"]})
    >>> qc_keep("cell_type == 'T cell' or total_counts < 200", qc, "f.h5ad", table=cells).tolist()
    [True, True]
    >>> qc_keep({"cell_type": ["B cell"]}, qc, "f.h5ad") is None
    True
    """
    cell_filter = parse_cell_filter(cell_filter)
    if isinstance(cell_filter, str):
        query = parse_query(cell_filter).renamed(dict(renamed or {}))
        if not set(query.columns) & set(QC_COLUMNS):
            return None
        values = pd.DataFrame(index=pd.RangeIndex(len(qc))) if table is None else table.copy()
        for column in QC_COLUMNS:
            values[column] = qc[column].to_numpy()
        return query.mask(values, where, terms=terms)
    _, qc_filter = split_qc(cell_filter)
    if not qc_filter:
        return None
    return match_cells(qc.reset_index(drop=True), qc_filter, where)
