"""A filter as text, in the syntax of CZ CELLxGENE Census' value filters.

``"cell_type == 'B cell' or tissue in ['spleen']"`` keeps the B cells and every cell of the
spleen. The grammar is the one Census' ``obs_value_filter`` / ``var_value_filter`` take (it is
TileDB-SOMA's query condition): comparisons ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
``in [...]``, ``not in [...]`` of a column with a value (a quoted text or a number), joined by
``and``, ``or``, ``not`` and parentheses (``&``, ``|`` and ``~`` are accepted for them too). A
column whose name is not a Python name is written ``attr("my column")``. Chained comparisons
(``500 <= total_counts <= 5000``) mean each comparison holds.

The text is read with Python's :mod:`ast` parser into a tree of the nodes above only (anything
else, a call, an attribute, arithmetic, is refused with the position it starts at); it is never
evaluated as Python.

Values are compared as text (``sex`` ignoring case, as the dict form does), except that an
order comparison, or an equality or ``in`` with numbers, compares the column's values as
numbers; an order comparison on a column holding no number is an error. A missing value (NaN)
meets ``!=`` and ``not in`` only, as in pandas.

Examples
--------
>>> import pandas as pd
>>> cells = pd.DataFrame({"cell_type": ["B cell", "T cell", "T cell"],
...                       "tissue": ["blood", "spleen", "blood"], "total_counts": [900, 300, 1500]})
>>> q = parse_query("cell_type == 'B cell' or tissue in ['spleen']")
>>> q.mask(cells, "f.h5ad").tolist()
[True, True, False]
>>> parse_query("not (total_counts < 500) and cell_type != 'B cell'").mask(cells, "f").tolist()
[False, False, True]
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError

__all__ = ["And", "Compare", "Not", "Or", "Query", "parse_query", "table_column", "text_isin"]

#: The longest filter text read (a guard against pathological input, far above any real one).
MAX_LENGTH = 10_000
#: Columns compared ignoring case (as in :mod:`.cell_filter`).
CASELESS = ("sex",)
_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
#: An operator with the value on the left turned round: ``500 < x`` is ``x > 500``.
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ORDER = ("<", "<=", ">", ">=")
#: A single ``=`` (not part of ``==``, ``!=``, ``<=``, ``>=``): a comparison written as SQL does.
_LONE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")


@dataclass(frozen=True)
class Compare:
    """``column op value``; ``value`` is a text, a number or (for ``in``) a tuple of them."""

    column: str
    op: str
    value: object


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: object


class _Error(Exception):
    """A problem and where it starts: ``chars`` (a SyntaxError's offset) or a node's
    ``col_offset`` (which counts UTF-8 bytes)."""

    def __init__(self, message: str, node: ast.AST | None = None, chars: int | None = None):
        super().__init__(message)
        self.message = message
        self.chars = chars
        self.node_bytes = None if node is None else getattr(node, "col_offset", None)

    def where(self, text: str) -> str:
        chars = self.chars
        if self.node_bytes is not None:
            chars = len(text.encode("utf-8")[: self.node_bytes].decode("utf-8", errors="ignore"))
        if chars is None:
            return ""
        chars = max(0, min(chars, len(text)))
        return f" at character {chars + 1}:\n    {text}\n    {' ' * chars}^"


def _scalar(node: ast.AST, what: str):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _scalar(node.operand, what)
        if isinstance(value, str):
            raise _Error("a minus sign before a text", node)
        return -value
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None or isinstance(value, (bytes, complex)):
            raise _Error(f"{what} must be a quoted text or a number, not {value!r}", node)
        if isinstance(value, float) and math.isnan(value):
            raise _Error(f"{what} is NaN", node)
        return value
    if isinstance(node, ast.Name):
        raise _Error(
            f"{node.id!r} is taken as a column, but a value is expected here: quote a text "
            f"value ('{node.id}')",
            node,
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        raise _Error(
            f"{what} must be a quoted text or a number (with & and |, put each comparison in "
            "parentheses, or write and / or)",
            node,
        )
    raise _Error(f"{what} must be a quoted text or a number", node)


_KINDS = {
    ast.Call: "a function call",
    ast.Attribute: "an attribute",
    ast.BinOp: "arithmetic",
    ast.Subscript: "an index",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "an assignment",
}


def _kind(node: ast.AST) -> str:
    return _KINDS.get(type(node), type(node).__name__.lower())


def _column(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "attr"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.strip()
    ):
        return node.args[0].value
    return None


def _comparison(left: ast.AST, op: ast.cmpop, right: ast.AST, at: ast.AST) -> Compare:
    name = _OPS.get(type(op))
    if name is None:  # `is`, `is not`
        raise _Error("only ==, !=, <, <=, >, >=, in and not in compare", at)
    column = _column(left)
    if column is None:
        if name in ("in", "not in"):
            raise _Error(f"the left of {name!r} must be a column", left)
        column = _column(right)
        if column is None:
            culprit = left if not isinstance(left, ast.Constant) else right
            raise _Error(
                f"a comparison needs a column on one side ({_kind(culprit)} is not part of the "
                "filter language)",
                culprit,
            )
        name, left, right = _FLIPPED[name], right, left
    elif _column(right) is not None and not isinstance(right, ast.Name):
        raise _Error("a comparison needs a value on one side, not two columns", right)
    if name in ("in", "not in"):
        if not isinstance(right, (ast.List, ast.Tuple, ast.Set)):
            raise _Error(f"{name!r} takes a list of values, such as ['a', 'b']", right)
        if not right.elts:
            raise _Error(f"{name!r} takes a non-empty list of values", right)
        return Compare(column, name, tuple(_scalar(e, "a list item") for e in right.elts))
    if isinstance(right, (ast.List, ast.Tuple, ast.Set)):
        raise _Error(f"{name!r} compares with one value; use 'in' for a list", right)
    value = _scalar(right, "the value")
    if name in _ORDER and isinstance(value, str):
        raise _Error(f"{name!r} compares numbers; {value!r} is a text", right)
    return Compare(column, name, value)


def _tree(node: ast.AST):
    if isinstance(node, ast.BoolOp):
        kind = And if isinstance(node.op, ast.And) else Or
        return kind(tuple(_tree(v) for v in node.values))
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        kind = And if isinstance(node.op, ast.BitAnd) else Or
        return kind((_tree(node.left), _tree(node.right)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        return Not(_tree(node.operand))
    if isinstance(node, ast.Compare):
        parts, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            parts.append(_comparison(left, op, right, node))
            left = right
        return parts[0] if len(parts) == 1 else And(tuple(parts))
    if isinstance(node, (ast.Name, ast.Constant)):
        raise _Error(
            "a condition is expected here (such as cell_type == 'B cell'), not a lone "
            + ("column" if isinstance(node, ast.Name) else "value"),
            node,
        )
    raise _Error(f"{_kind(node)} is not part of the filter language", node)


def _ends_early(text: str) -> bool:
    """Whether ``text`` is the start of an expression that only lacks its last operand
    (``"cell_type == 'B cell' and"``, ``"total_counts >="``)."""
    try:
        ast.parse(f"{text} _", mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return False
    return True


def parse_query(text: str, *, what: str = "cell filter", unit: str = "cell") -> Query:
    """Read a filter text into a :class:`Query`, never evaluating it.

    ``what`` names the filter in messages, ``unit`` its rows (``"gene"`` for a var filter).
    Raises :class:`DatasetSpecError` naming the problem and the character it is at.

    >>> parse_query("cell_type == 'B cell' and total_counts >= 500").columns
    ('cell_type', 'total_counts')
    >>> parse_query("cell_type = 'B cell'")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.DatasetSpecError: The cell filter "cell_type = 'B cell'" cannot be read: invalid syntax (compare with ==, not =) at character 11:...
    """
    if not isinstance(text, str) or not text.strip():
        raise DatasetSpecError(f"A {what} text must be a non-empty string, got {text!r}.")
    if len(text) > MAX_LENGTH:
        raise DatasetSpecError(
            f"The {what} text is {len(text)} characters long; at most {MAX_LENGTH} are read."
        )
    if "\x00" in text:
        raise DatasetSpecError(f"The {what} text holds a NUL character; remove it.")
    flat = " ".join(text.split("\n")).replace("\r", " ").replace("\t", " ").strip()
    shown = flat if len(flat) <= 60 else flat[:57] + "..."
    try:
        try:
            body = ast.parse(flat, mode="eval").body
        except SyntaxError as exc:
            problem = (exc.msg or "invalid syntax").replace("invalid syntax. ", "")
            chars = None if exc.offset is None else exc.offset - 1
            if _LONE_EQUALS.search(flat):
                problem += " (compare with ==, not =)"
            elif (chars or 0) <= 0 and _ends_early(flat):  # Python points before the start
                problem, chars = "it ends early: a value or a comparison is missing", len(flat)
            raise _Error(problem, chars=chars) from None
        except (RecursionError, MemoryError, ValueError):
            raise _Error("too deeply nested") from None
        tree = _tree(body)
    except _Error as exc:
        raise DatasetSpecError(
            f"The {what} {shown!r} cannot be read: {exc.message}{exc.where(flat)}"
        ) from None
    except RecursionError:
        raise DatasetSpecError(f"The {what} {shown!r} is too deeply nested.") from None
    return Query(flat, tree, unit)


def _leaves(node) -> Iterable[Compare]:
    if isinstance(node, Compare):
        yield node
    elif isinstance(node, Not):
        yield from _leaves(node.item)
    else:
        for item in node.items:
            yield from _leaves(item)


def _present(series: pd.Series) -> list[str]:
    values = sorted(set(series.astype(str)))
    return values[:30] + ([f"... ({len(values)} in all)"] if len(values) > 30 else [])


@dataclass(frozen=True)
class Query:
    """A filter read by :func:`parse_query`: its text (one line) and its tree."""

    text: str
    tree: object
    #: What a row is, for messages (``"cell"``, ``"gene"``).
    unit: str = "cell"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the filter uses, in order of first use."""
        return tuple(dict.fromkeys(leaf.column for leaf in _leaves(self.tree)))

    def renamed(self, names: dict[str, str]) -> Query:
        """The same filter with columns renamed (``{old: new}``)."""

        def walk(node):
            if isinstance(node, Compare):
                return Compare(names.get(node.column, node.column), node.op, node.value)
            if isinstance(node, Not):
                return Not(walk(node.item))
            return type(node)(tuple(walk(i) for i in node.items))

        return Query(self.text, walk(self.tree), self.unit)

    def mask(self, table: pd.DataFrame, where: str, *, terms=None) -> np.ndarray:
        """The rows of ``table`` meeting the filter (a boolean array).

        Raises :class:`DatasetSpecError` for a column ``table`` lacks (listing its columns), an
        order comparison on a column holding no number, or no row meeting the filter (naming
        the values asked for that no row has). ``terms`` (a
        :class:`~refinewidgets.core.ontology.TermMatcher`) matches cell types and tissues with
        their descendants.
        """
        mask = self._mask(table, where, unknown=(), terms=terms)[0]
        if not mask.any() and len(table):
            raise DatasetSpecError(self.no_match_message(table, where, terms=terms))
        return mask

    def possible(
        self, table: pd.DataFrame, where: str, unknown: Iterable[str], *, terms=None
    ) -> np.ndarray:
        """The rows that may meet the filter once the ``unknown`` columns are known (they are
        not in ``table``): each comparison on them counts as maybe (three-valued logic)."""
        return self._mask(table, where, unknown=tuple(unknown), terms=terms)[1]

    def _mask(self, table, where, unknown, terms=None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows sure to match, rows that may match)``."""
        n = len(table)

        def walk(node):
            if isinstance(node, Compare):
                if node.column in unknown:
                    return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
                hit = _compare(table, node, where, terms)
                return hit, hit
            if isinstance(node, Not):
                sure, maybe = walk(node.item)
                return ~maybe, ~sure
            parts = [walk(i) for i in node.items]
            combine = np.logical_and if isinstance(node, And) else np.logical_or
            return (
                combine.reduce([p[0] for p in parts]),
                combine.reduce([p[1] for p in parts]),
            )

        return walk(self.tree)

    def no_match_message(self, table: pd.DataFrame, where: str, *, terms=None) -> str:
        """Why no row of ``table`` meets the filter: the values asked for that no row has."""
        absent = []
        for leaf in _leaves(self.tree):
            if leaf.op in ("==", "in") and leaf.column in table.columns:
                if not _compare(table, leaf, where, terms).any():
                    absent.append(
                        f"{leaf.column} {leaf.op} {leaf.value!r} matches none (values present: "
                        f"{_present(table[leaf.column])})"
                    )
        hint = f"; {'; '.join(absent)}" if absent else ": loosen it"
        return f"no {self.unit} of {where} meets the filter {self.text!r}{hint}"


def table_column(table: pd.DataFrame, column: str, where: str, what: str = "filter") -> pd.Series:
    """``table[column]``, or an error naming the columns there are (and the nearest ones);
    ``what`` names the filter in the message (``"cell filter"``, ``"filter"``)."""
    if column in table.columns:
        return table[column]
    found = [str(c) for c in table.columns]
    close = difflib.get_close_matches(column, found, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise DatasetSpecError(
        f"{what} column {column!r}{hint} is not in {where}; its columns: {found}"
    )


def _numbers(series: pd.Series, leaf: Compare, where: str, *, strict: bool) -> np.ndarray | None:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float)
    numbers = pd.to_numeric(pd.Series(np.asarray(series, dtype=object)), errors="coerce")
    if numbers.isna().all() and len(series):
        if strict:
            raise DatasetSpecError(
                f"filter {leaf.column} {leaf.op} {leaf.value!r}: {leaf.op} compares numbers, but "
                f"{where} holds text in {leaf.column!r} (values present: {_present(series)})"
            )
        return None
    return numbers.to_numpy(dtype=float)


def _compare(table: pd.DataFrame, leaf: Compare, where: str, terms=None) -> np.ndarray:
    series = table_column(table, leaf.column, where)
    if terms is not None and leaf.op not in _ORDER and terms.handles(leaf.column):
        values = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
        hit = terms.mask(table, leaf.column, [_text(v) for v in values])
        return ~hit if leaf.op in ("!=", "not in") else hit
    values = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
    numeric = all(isinstance(v, (int, float)) for v in values)
    if leaf.op in _ORDER or numeric:
        numbers = _numbers(series, leaf, where, strict=leaf.op in _ORDER)
        if numbers is not None:
            if leaf.op in _ORDER:
                with np.errstate(invalid="ignore"):
                    return {
                        "<": np.less,
                        "<=": np.less_equal,
                        ">": np.greater,
                        ">=": np.greater_equal,
                    }[leaf.op](numbers, leaf.value)
            hit = np.isin(numbers, np.asarray(values, dtype=float))
            return ~hit if leaf.op in ("!=", "not in") else hit
    hit = text_isin(series, [_text(v) for v in values], caseless=leaf.column in CASELESS)
    return ~hit if leaf.op in ("!=", "not in") else hit


def text_isin(series, wanted, *, caseless: bool = False, strip: bool = False) -> np.ndarray:
    """Which values of ``series``, as text, are among ``wanted``: worked out once per distinct
    value (a categorical's categories), not per cell.

    >>> text_isin(pd.Series(pd.Categorical(["Male", "female", "male"])), ["male"], caseless=True)
    array([ True, False,  True])
    """
    if isinstance(getattr(series, "dtype", None), pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes if hasattr(series, "cat") else series.codes)
        uniques = series.cat.categories if hasattr(series, "cat") else series.categories
    else:
        codes, uniques = pd.factorize(pd.Series(np.asarray(series, dtype=object)))
    labels = pd.Index(uniques).astype(str)
    wanted = [str(w) for w in wanted]
    if strip:
        labels, wanted = labels.str.strip(), [w.strip() for w in wanted]
    if caseless:
        labels, wanted = labels.str.lower(), [w.lower() for w in wanted]
    chosen = np.asarray(labels.isin(wanted), dtype=bool)
    missing = "nan" in wanted  # a missing value reads "nan" as text, as pandas writes it
    if not len(chosen):
        return np.full(len(codes), missing, dtype=bool)
    return np.where(codes >= 0, chosen[np.maximum(codes, 0)], missing)


def _text(value) -> str:
    """A value as the text form of a column: ``5.0`` as ``5``, as files write whole numbers."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
