"""Quantile normalization (QN) against a target distribution (refine.bio's check after it:
:mod:`refinewidgets.core.ks_check`).

The semantics are those of R ``preprocessCore::normalize.quantiles.use.target`` (``src/qnorm.c``),
applied to each sample (a column of the genes x samples matrix, a row of the samples x genes
array used by the build):

1. the target is flattened, its NaNs removed, and sorted (length ``m``);
2. the sample's non-NaN values are ranked, ties get their average rank (as R's ``rank``);
3. a sample with no NaN and exactly ``m`` values gets ``target[rank - 1]``; a tied, fractional
   rank ``r`` (fraction > 0.4) gets the mean of ``target[floor(r) - 1]`` and ``target[floor(r)]``;
4. any other sample (some NaN, or another length: the usual case) is mapped by its sample
   percentile: ``p = (rank - 1) / (n - 1)`` with ``n`` its non-NaN count, position
   ``1 + (m - 1) * p`` in the target, linear interpolation between the two neighbouring values
   (a position within ``4 * DBL_EPSILON`` of an integer takes that value exactly, as in C; the
   interpolation is clipped to the two neighbours so that rounding never breaks monotonicity);
5. NaNs stay NaN.

Edge cases, our decisions (preprocessCore has no defined behaviour for them):

- a sample with a single non-NaN value (``n - 1 == 0``, a 0/0 in the C code) gets ``p = 0.5``,
  the target's median;
- an all-NaN sample stays all NaN;
- an empty target (no non-NaN value) or one holding an infinite value raises
  :class:`~refinewidgets.errors.DatasetSpecError`.

The target, when none is given, is the mean of the sorted columns
(``normalize.quantiles.determine.target``), see :func:`determine_target`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError, ExpressionValueError
from .threads import ordered_map

__all__ = ["determine_target", "quantile_normalize", "quantile_normalize_rows"]

#: preprocessCore's tolerance around integer positions (``4 * DOUBLE_EPS``).
_EPS4 = 4.0 * np.finfo(np.float64).eps


def _split_positions(pos, length):
    """Split 1-based fractional positions into gather indices and interpolation weights.

    Follows ``qnorm.c``: ``base = floor(pos + eps)``, a fraction within ``eps`` of 0 is 0, a
    fraction of exactly 1 moves to the next index, and positions outside ``1..length`` take the
    first or last value. ``length`` may be an array broadcasting against ``pos``.
    Returns ``(lo, hi, frac)``: the value is ``v[lo]`` blended towards ``v[hi]`` by ``frac``.
    """
    base = np.floor(pos + _EPS4)
    frac = pos - base
    frac[np.abs(frac) <= _EPS4] = 0.0
    whole = frac == 1.0
    if whole.any():
        base[whole] += 1.0
        frac[whole] = 0.0
    frac[(base >= length) | (base <= 0)] = 0.0
    lo = np.clip(base - 1.0, 0, np.asarray(length) - 1).astype(np.intp)
    hi = np.minimum(lo + 1, np.asarray(length) - 1)
    return lo, hi, frac


def _blend(a, b, frac):
    """Linear interpolation between sorted neighbours ``a <= b``, exactly ``a`` where ``frac == 0``.

    Computed as ``a + frac * (b - a)`` clipped to ``[a, b]``: equal to C's
    ``(1 - frac) * a + frac * b`` up to rounding, but never outside the two neighbours, so the
    result stays monotone in the position (C's form can exceed ``a == b`` by one ulp).
    """
    mixed = np.minimum(np.maximum(a + frac * (b - a), a), b)
    return np.where(frac == 0.0, a, mixed)


def _clean_target(target) -> np.ndarray:
    """The target as a sorted, NaN-free float64 vector; raise if it cannot be used."""
    try:
        t = np.asarray(target, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DatasetSpecError(
            f"The quantile-normalization target must be numbers; converting it failed: {exc}"
        ) from exc
    t = np.sort(t[~np.isnan(t)])
    if t.size == 0:
        raise DatasetSpecError(
            "The quantile-normalization target is empty (it holds no non-NaN value); "
            "pass a vector of numbers, or target=None to use the mean of the sorted samples."
        )
    if np.isinf(t[0]) or np.isinf(t[-1]):
        raise DatasetSpecError(
            "The quantile-normalization target holds an infinite value; every value of a "
            "target must be finite."
        )
    return t


def _values_same_length(ranks: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rule 3: ``t[r - 1]``; a tied rank with fraction > 0.4 takes the mean of two neighbours."""
    floor = np.floor(ranks)
    lo = floor.astype(np.intp) - 1
    a = t.take(lo)
    tied = (ranks - floor) > 0.4
    if not tied.any():
        return a
    b = t.take(np.minimum(lo + 1, t.size - 1))
    return np.where(tied, 0.5 * (a + b), a)


def _values_interpolated(ranks: np.ndarray, n_valid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rule 4: map each rank's sample percentile onto the target by linear interpolation."""
    n = n_valid.astype(np.float64)[:, None]
    single = n_valid == 1
    percentile = (ranks - 1.0) / np.where(n > 1, n - 1.0, 1.0)
    if single.any():
        percentile[single] = 0.5  # our rule: a lone value gets the target's median
    lo, hi, frac = _split_positions(1.0 + (t.size - 1.0) * percentile, t.size)
    return _blend(t.take(lo), t.take(hi), frac)


def quantile_normalize_rows(
    X, target=None, *, out=None, chunk_size=64, threads=1, sorted_rows=None
) -> np.ndarray:
    """Quantile-normalize each row (one sample) of a samples x genes array against a target.

    The low-level routine used by the build; see the module docstring for the rules. Rows are
    processed ``chunk_size`` at a time, vectorized within a chunk, the chunks on ``threads``
    threads (numpy sorts and gathers without holding the GIL). Without a ``target`` the target
    is :func:`determine_target`'s, computed from the same sort of each row that the
    normalization uses: each row is sorted once, its order kept (4 bytes a value) between the
    two passes.

    Parameters
    ----------
    X
        2-D array, samples x genes (each row is one column of the refine.bio matrix). NaN marks
        a missing value.
    target
        The target distribution: any array-like of numbers, flattened, NaNs dropped, sorted;
        any length. ``None``: the mean of the sorted rows (:func:`determine_target` of ``X.T``).
    out
        Where to write the result: ``None`` (a new array), ``X`` itself (in place), or another
        float64 array of the same shape that does not overlap ``X``.
    chunk_size
        Number of rows normalized together.
    threads
        Threads normalizing chunks side by side (the result does not depend on it).
    sorted_rows
        ``None``, or a dict whose keys are row positions: on return each of those keys maps to
        the row's normalized values sorted ascending, NaNs last (read-only; rows without ties
        and with the same count of NaNs share one array). QN computes them anyway:
        :func:`~refinewidgets.core.ks_check.ks_check` takes them instead of sorting the rows again.

    Returns
    -------
    The normalized float64 array (``out`` when given).

    Raises
    ------
    DatasetSpecError
        The target is empty or not finite, ``X`` is not 2-D, or ``out`` does not fit.

    Examples
    --------
    A sample of 3 values against a target of 4: positions 1, 4 and 2.5 in the target.

    >>> quantile_normalize_rows(np.array([[10.0, 30.0, 20.0]]), [0.0, 1.0, 2.0, 3.0])
    array([[0. , 3. , 1.5]])
    >>> quantile_normalize_rows(np.array([[1.0, 3.0], [4.0, 2.0]]))  # target: [1.5, 3.5]
    array([[1.5, 3.5],
           [3.5, 1.5]])
    """
    t = None if target is None else _clean_target(target)
    X = np.asarray(X)
    if X.ndim != 2:
        raise DatasetSpecError(
            f"quantile_normalize_rows expects a 2-D samples x genes array, got {X.ndim}-D."
        )
    if out is None:
        out = np.empty(X.shape, dtype=np.float64)
    elif not (isinstance(out, np.ndarray) and out.shape == X.shape and out.dtype == np.float64):
        raise DatasetSpecError(
            f"`out` must be a float64 array of shape {X.shape}; got "
            f"{getattr(out, 'dtype', type(out).__name__)} of shape {getattr(out, 'shape', None)}."
        )
    if int(chunk_size) < 1:
        raise DatasetSpecError(f"`chunk_size` must be a positive integer, got {chunk_size!r}.")
    n_samples, n_genes = X.shape
    if n_genes == 0:
        return out
    chunk_size = int(chunk_size)
    starts = range(0, n_samples, chunk_size)
    if t is not None:
        untied = _UntiedValues(t, n_genes)
        for _ in ordered_map(
            lambda start: _normalize_chunk(X, out, start, chunk_size, t, untied, None, sorted_rows),
            starts,
            threads,
        ):
            pass
        return out
    # one sort per row: the orders (int32 when the genes allow it) serve both passes
    orders = np.empty(X.shape, dtype=np.int32 if n_genes < 2**31 else np.intp)
    total, used = np.zeros(n_genes), 0
    for part, n in ordered_map(
        lambda start: _sort_chunk(X, orders, start, chunk_size), starts, threads
    ):
        total += part  # in the chunks' order whatever the threads: the same sum every time
        used += n
    if used == 0:
        raise DatasetSpecError(
            "Cannot determine a quantile-normalization target: the matrix holds no non-NaN "
            f"value (shape {X.shape}). Pass an explicit target or drop the empty samples."
        )
    t = np.sort(total / used)
    untied = _UntiedValues(t, n_genes)
    for _ in ordered_map(
        lambda start: _normalize_chunk(X, out, start, chunk_size, t, untied, orders, sorted_rows),
        starts,
        threads,
    ):
        pass
    return out


def _sort_chunk(X, orders, start: int, size: int) -> tuple[np.ndarray, int]:
    """Sort the rows ``start:start + size`` of ``X``, keep their orders in ``orders``, and
    return their share ``(sum, rows used)`` of the target (see :func:`target_sum`)."""
    chunk = np.asarray(X[start : start + size], dtype=np.float64)
    order = np.argsort(chunk, axis=1)  # NaNs sort last
    orders[start : start + size] = order
    s = _gather_rows(chunk, order)
    return _sorted_rows_sum(s)


def _gather_rows(chunk: np.ndarray, order: np.ndarray) -> np.ndarray:
    s = np.empty(chunk.shape)
    for r in range(len(chunk)):  # row by row: faster than take_along_axis
        np.take(chunk[r], order[r], out=s[r], mode="clip")  # "raise" buffers out
    return s


def _normalize_chunk(X, out, start: int, size: int, t, untied, orders=None, keep=None) -> None:
    """Normalize the rows ``start:start + size`` of ``X`` into ``out`` (sorting them unless
    their ``orders`` are given); the sorted results of the rows that are keys of ``keep`` are
    stored there."""
    chunk = np.asarray(X[start : start + size], dtype=np.float64)
    order = np.argsort(chunk, axis=1) if orders is None else orders[start : start + size]
    s = _gather_rows(chunk, order)
    n_genes = chunk.shape[1]
    n_valid = n_genes - np.isnan(s[:, -1:]).sum(axis=1)  # cheap test first: any NaN?
    if (n_valid < n_genes).any():
        n_valid = n_genes - np.isnan(s).sum(axis=1)
    tied = (s[:, 1:] == s[:, :-1]).any(axis=1)  # NaN != NaN: trailing NaNs are no tie
    # Everything of this chunk has been read: writing into X itself (out is X) is safe.
    target_rows = out[start : start + size]
    for r in np.flatnonzero(~tied):
        # Without ties a row's values depend on its count of non-NaN values only.
        values = untied.values(int(n_valid[r]))
        target_rows[r][order[r]] = values
        if keep is not None and start + r in keep:
            keep[start + r] = values
    for r in np.flatnonzero(tied):
        values = _tied_values(s[r], int(n_valid[r]), t)
        target_rows[r][order[r]] = values
        if keep is not None and start + r in keep:
            values.flags.writeable = False
            keep[start + r] = values


def _tied_values(s: np.ndarray, k: int, t: np.ndarray) -> np.ndarray:
    """The normalized values, in rank order, of one row with ties (``s`` sorted, NaNs last).

    Each run of equal values shares its average rank (as R's ``rank``), so rules 3 and 4 are
    computed once per run and repeated over it.
    """
    out = np.full(s.size, np.nan)
    starts = np.empty(k, dtype=bool)
    starts[0] = True
    np.not_equal(s[1:k], s[: k - 1], out=starts[1:])
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, k))
    ranks = ((2 * first + lengths - 1) * 0.5 + 1.0)[None, :]  # (first + last) / 2 + 1
    if k == s.size == t.size:
        values = _values_same_length(ranks, t)[0]
    else:
        values = _values_interpolated(ranks, np.array([k]), t)[0]
    out[:k] = np.repeat(values, lengths)
    return out


class _UntiedValues:
    """The normalized values, in rank order, of a row without ties, by its non-NaN count.

    Without ties the ranks are ``1..k``; rule 3 or 4 then gives one vector per ``k`` (NaN
    beyond ``k``), computed once and shared by every such row.
    """

    def __init__(self, t: np.ndarray, n_genes: int) -> None:
        self.t, self.n_genes = t, n_genes
        self._cache: dict[int, np.ndarray] = {}

    def values(self, k: int) -> np.ndarray:
        vector = self._cache.get(k)
        if vector is None:
            vector = np.full(self.n_genes, np.nan)
            ranks = np.arange(1.0, k + 1.0)[None, :]
            if k == self.n_genes == self.t.size:
                vector[:] = _values_same_length(ranks, self.t)[0]
            elif k > 0:
                vector[:k] = _values_interpolated(ranks, np.array([k]), self.t)[0]
            vector.flags.writeable = False  # shared by rows and by ``sorted_rows``
            self._cache[k] = vector
        return vector


def target_sum(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """``(sum of the sorted columns, number of columns summed)`` of a genes x samples array,
    each column with NaNs interpolated onto the full length (see :func:`determine_target`).

    The target is ``sum / count``; sums of blocks of columns add up to the whole's (an
    out-of-core build sums them over blocks).
    """
    n_genes, n_samples = arr.shape
    total = np.zeros(n_genes)
    used = 0
    step = 64
    for start in range(0, n_samples, step):
        s = np.sort(arr[:, start : start + step], axis=0).T  # NaNs sort last
        part, n = _sorted_rows_sum(s)
        total += part
        used += n
    return total, used


def _sorted_rows_sum(s: np.ndarray) -> tuple[np.ndarray, int]:
    """``(sum, rows summed)`` of sorted rows (samples x genes, NaNs last), each row with NaNs
    interpolated onto the full length first; all-NaN rows are left out."""
    n_genes = s.shape[1]
    total = np.zeros(n_genes)
    k = n_genes - np.isnan(s).sum(axis=1)
    full = k == n_genes
    partial = (k > 0) & ~full
    if full.all():
        total += s.sum(axis=0)
    elif full.any():
        total += s[full].sum(axis=0)
    if partial.any():
        sp = s[partial]
        kp = k[partial][:, None]
        fraction = np.arange(n_genes) / max(n_genes - 1, 1)
        lo, hi, frac = _split_positions(1.0 + (kp - 1.0) * fraction[None, :], kp)
        a = np.take_along_axis(sp, lo, axis=1)
        b = np.take_along_axis(sp, hi, axis=1)
        total += _blend(a, b, frac).sum(axis=0)
    return total, int(full.sum() + partial.sum())


def determine_target(values) -> np.ndarray:
    """The mean of the sorted columns of a genes x samples matrix: a quantile-normalization target.

    As ``preprocessCore::normalize.quantiles.determine.target``: a column with NaNs has its
    sorted non-NaN values interpolated onto the full length (``n_genes``) first, at positions
    ``1 + (k - 1) * i / (n_genes - 1)`` with ``k`` its non-NaN count. Columns that are entirely
    NaN are left out of the mean (the C code reads garbage for them).

    Parameters
    ----------
    values
        2-D array-like (or DataFrame), genes x samples. NaN marks a missing value.

    Returns
    -------
    A sorted 1-D float64 array of length ``n_genes``.

    Raises
    ------
    DatasetSpecError
        ``values`` is not 2-D, or no column holds a non-NaN value.

    Examples
    --------
    >>> determine_target(np.array([[1.0, 4.0], [3.0, 2.0]]))
    array([1.5, 3.5])
    >>> determine_target(np.array([[1.0, 0.0], [np.nan, 10.0], [3.0, 20.0]]))
    array([ 0.5,  6. , 11.5])
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise DatasetSpecError(
            f"determine_target expects a 2-D genes x samples array, got {arr.ndim}-D."
        )
    total, used = target_sum(arr)
    n_genes = arr.shape[0]
    if used == 0 or n_genes == 0:
        raise DatasetSpecError(
            "Cannot determine a quantile-normalization target: the matrix holds no non-NaN "
            f"value (shape {arr.shape}). Pass an explicit target or drop the empty samples."
        )
    return np.sort(total / used)


def quantile_normalize(frame, *, target=None):
    """Quantile-normalize each sample (column) of a genes x samples matrix against a target.

    Parameters
    ----------
    frame
        A genes x samples DataFrame or 2-D array of numbers; NaN marks a missing value.
    target
        The target distribution: any array-like of numbers, NaNs dropped, any length. ``None``
        uses :func:`determine_target` of ``frame`` (the mean of its sorted columns).

    Returns
    -------
    A new object of the same kind and shape (a DataFrame keeps index and columns) with float64
    values; ``frame`` is not modified. An empty matrix is returned as a copy.

    Raises
    ------
    DatasetSpecError
        The values are not numeric or not 2-D, or the target is empty or not finite.
    ExpressionValueError
        The values hold an infinite value.

    Examples
    --------
    >>> frame = pd.DataFrame({"s1": [5.0, 2.0, 3.0], "s2": [4.0, 1.0, 6.0]},
    ...                      index=["g1", "g2", "g3"])
    >>> quantile_normalize(frame, target=[1.0, 2.0, 3.0])
         s1   s2
    g1  3.0  2.0
    g2  1.0  1.0
    g3  2.0  3.0
    >>> quantile_normalize(frame).loc["g1"].tolist()  # target: mean of sorted columns
    [5.5, 3.5]
    """
    is_frame = isinstance(frame, pd.DataFrame)
    try:
        if is_frame:
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(frame, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetSpecError(
            f"quantile_normalize needs numeric values (genes x samples); converting failed: {exc}"
        ) from exc
    if values.ndim != 2:
        raise DatasetSpecError(
            f"quantile_normalize expects a 2-D genes x samples matrix, got {values.ndim}-D."
        )
    infinite = np.isinf(values)
    if infinite.any():
        gene, sample = (int(i[0]) for i in np.nonzero(infinite))
        if is_frame:
            gene, sample = frame.index[gene], frame.columns[sample]
        raise ExpressionValueError(
            f"The values hold {int(infinite.sum())} infinite value(s) (first: gene {gene!r}, "
            f"sample {sample!r}): quantile normalization ranks finite numbers. Replace them with "
            "NaN (missing) or leave those samples out."
        )
    if values.size == 0:
        result = values.copy()
    else:
        if target is None:
            target = determine_target(values)
        rows = np.array(values.T, dtype=np.float64, order="C", copy=True)  # never a view of frame
        result = quantile_normalize_rows(rows, target, out=rows).T
    if is_frame:
        return pd.DataFrame(result, index=frame.index.copy(), columns=frame.columns.copy())
    return result
