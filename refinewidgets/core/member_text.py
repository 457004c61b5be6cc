"""The searchable text of the members of each row of a
:class:`~refinewidgets.core.browse.TableIndex` (the samples of each experiment), counted per row
for the ranking :data:`~refinewidgets.core.browse.BEST_MATCH`.

Text is held as lower-cased UTF-8 bytes (numpy ``S``) so that a word is looked for with one
vectorized substring search (:data:`find_bytes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["MemberText", "find_bytes", "lower_bytes"]

#: ``find_bytes(haystack, needle)``: per element, the position of ``needle`` or -1.
find_bytes = getattr(np, "strings", np.char).find  # numpy >= 2: a vectorized ufunc


def lower_bytes(values: pd.Series) -> np.ndarray:
    """Lower-cased UTF-8 bytes (numpy ``S``), for vectorized substring search."""
    return np.array([v.encode() for v in values.fillna("").astype(str).str.lower()], dtype="S")


class MemberText:
    """The searchable text of the members of each row (the samples of each experiment).

    A member matches a word held by one of its columns or by one of its row's own columns (a
    sample matches the words of its experiment's title, as in ``Catalog.search``). Each column
    is factorized once, so a word is looked for in the distinct values of a column (a few
    hundred diseases, platforms...) rather than in every member.

    Parameters
    ----------
    owner
        For each member, the position of its row in the table (-1: not in the table).
    columns
        The members' text columns (one entry per member in each).
    row_columns
        The rows' own text columns (one entry per row in each).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> text = MemberText(np.array([0, 0, 1]),
    ...                   [pd.Series(["breast cancer", "normal", "breast cancer"])])
    >>> text.counts("breast", 2).tolist()
    [1, 1]
    """

    def __init__(
        self,
        owner: np.ndarray,
        columns: Sequence[pd.Series],
        row_columns: Sequence[pd.Series] = (),
    ) -> None:
        owner = np.asarray(owner, dtype=np.int64)
        keep = np.flatnonzero(owner >= 0)
        self.owner = owner[keep]
        self.columns: list[tuple[np.ndarray, np.ndarray]] = []
        for col in columns:
            values = pd.Series(np.asarray(col, dtype=object)[keep]).fillna("").astype(str)
            codes, uniques = pd.factorize(values)
            self.columns.append(
                (codes.astype(np.int64), lower_bytes(pd.Series(uniques, dtype=object)))
            )
        self.row_columns = [
            lower_bytes(pd.Series(np.asarray(c, dtype=object))) for c in row_columns
        ]

    def counts(self, text: str | None, n_rows: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Per row, how many of its members hold every word of ``text`` in one of their columns.

        ``rows`` (a boolean per row) limits the count to those rows (the others count 0).
        """
        members = np.arange(len(self.owner)) if rows is None else np.flatnonzero(rows[self.owner])
        for word in str(text or "").lower().split():
            needle = word.encode()
            hit = np.zeros(len(members), dtype=bool)
            for row_text in self.row_columns:
                hit |= (find_bytes(row_text, needle) >= 0)[self.owner[members]]
            for codes, uniques in self.columns:
                mine = codes[members]
                if len(members) < len(uniques):  # fewer members left than distinct values
                    hit |= find_bytes(uniques[mine], needle) >= 0
                else:
                    hit |= (find_bytes(uniques, needle) >= 0)[mine]
            members = members[hit]
        return np.bincount(self.owner[members], minlength=n_rows)
