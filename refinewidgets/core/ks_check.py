"""refine.bio's check after quantile normalization: Kolmogorov-Smirnov tests between pairs of
samples (:func:`ks_check`, on the pairs :func:`ks_pairs` chooses).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from ..errors import DatasetSpecError

__all__ = ["ks_check", "ks_pairs"]

#: refine.bio's thresholds: a pair fails when statistic > _KS_MAX_STAT or p-value < _KS_MIN_P.
_KS_MAX_STAT = 0.001
_KS_MIN_P = 0.8
#: Above this many samples refine.bio draws disjoint random pairs instead of using all pairs.
_KS_ALL_PAIRS_MAX_SAMPLES = 200


def ks_pairs(n_samples: int, max_pairs: int, seed) -> list[tuple[int, int]]:
    """refine.bio's sample pairs for :func:`ks_check` (row positions).

    Parameters
    ----------
    n_samples
        The number of samples.
    max_pairs
        The most pairs (refine.bio: 100).
    seed
        Seed of the random choice above 200 samples.

    Examples
    --------
    >>> ks_pairs(4, 100, 0)
    [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    >>> len(ks_pairs(1000, 100, 0)), len({i for pair in ks_pairs(1000, 100, 0) for i in pair})
    (100, 200)
    """
    if n_samples <= _KS_ALL_PAIRS_MAX_SAMPLES:
        return list(itertools.islice(itertools.combinations(range(n_samples), 2), max_pairs))
    perm = np.random.default_rng(seed).permutation(n_samples)
    half = min(max_pairs, n_samples // 2)
    return [(int(perm[i]), int(perm[half + i])) for i in range(half)]


def ks_check(X, *, max_pairs=100, seed=0, names=None, pairs=None, sorted_rows=None) -> dict:
    """refine.bio's check after quantile normalization: KS tests between pairs of samples.

    Pairs, as refine.bio chooses them: up to 200 samples, the first ``max_pairs`` pairs in
    lexicographic order of the sample positions, ``(0, 1), (0, 2), ...`` (every pair up to 14
    samples); above 200 samples, ``min(max_pairs, n // 2)`` disjoint pairs from a random
    permutation, seeded so that the result is reproducible.

    For each pair, each sample keeps its non-NaN values strictly above its median (this drops
    the zeros of RNA-seq) and :func:`scipy.stats.ks_2samp` compares them. A pair fails when the
    statistic is > 0.001 or the p-value < 0.8. A pair where a sample has no value above its
    median (for example a constant sample) is skipped. Never raises on data. ``names`` (one per
    row) name the samples in the warning; by default rows are named by their index.

    Cheaper, not different: the tested rows are sorted once (or taken sorted from
    ``sorted_rows``, as :func:`~refinewidgets.core.quantile.quantile_normalize_rows` gives them), the values above the
    median are then a tail of each, and a pair whose two tails are equal (the usual case after
    quantile normalization) has statistic 0 and p-value 1, as :func:`scipy.stats.ks_2samp`
    gives for two equal samples, without calling it; only the other pairs are passed to it.

    Parameters
    ----------
    X
        2-D array, samples x genes, after quantile normalization.
    max_pairs
        The most pairs tested (refine.bio: 100).
    seed
        Seed of the random choice of pairs.
    names
        One name per row of ``X``, for the warning.
    pairs
        Row positions to test instead of refine.bio's choice (an out-of-core build holding
        only the chosen rows passes that choice mapped onto them).
    sorted_rows
        Optional ``{row: that row's values sorted ascending, NaNs last}`` for the tested rows
        (see :func:`~refinewidgets.core.quantile.quantile_normalize_rows`); rows missing from it are sorted here.

    Returns
    -------
    ``{"ks_statistic", "ks_pvalue", "ks_warning", "ks_distributions_differ"}``: the statistic
    and p-value of the last tested pair (floats); a message when any pair failed or no pair
    could be tested, else ``None``; and whether the failure is real (some p-value below 0.8)
    rather than only refine.bio's strict statistic threshold tripping on tiny differences.
    With fewer than 2 samples every value is ``None``.

    Examples
    --------
    >>> ks_check(np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]))
    {'ks_statistic': 0.0, 'ks_pvalue': 1.0, 'ks_warning': None, 'ks_distributions_differ': False}
    >>> ks_check(np.array([[1.0, 2.0, 3.0]]))
    {'ks_statistic': None, 'ks_pvalue': None, 'ks_warning': None, 'ks_distributions_differ': None}
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DatasetSpecError(f"ks_check expects a 2-D samples x genes array, got {X.ndim}-D.")
    if int(max_pairs) < 1:
        raise DatasetSpecError(f"`max_pairs` must be a positive integer, got {max_pairs!r}.")
    result = {
        "ks_statistic": None,
        "ks_pvalue": None,
        "ks_warning": None,
        "ks_distributions_differ": None,
    }
    if X.shape[0] < 2:
        return result
    # ``pairs`` (row positions in ``X``): a caller holding only the rows refine.bio's choice
    # tests (an out-of-core build) passes that choice mapped onto them
    pairs = ks_pairs(X.shape[0], int(max_pairs), seed) if pairs is None else list(pairs)
    upper = _upper_tails(X, sorted({i for pair in pairs for i in pair}), sorted_rows or {})
    tested, failed, worst, min_p = 0, 0, None, 1.0
    for i, j in pairs:
        if upper[i].size == 0 or upper[j].size == 0:
            continue
        statistic, pvalue = _ks_2samp(upper[i], upper[j])
        tested += 1
        result["ks_statistic"], result["ks_pvalue"] = statistic, pvalue
        if statistic > _KS_MAX_STAT or pvalue < _KS_MIN_P:
            failed += 1
            min_p = min(min_p, pvalue)
            if worst is None or statistic > worst[2]:
                worst = (i, j, statistic, pvalue)
    result["ks_distributions_differ"] = tested == 0 or min_p < _KS_MIN_P
    if tested == 0:
        result["ks_warning"] = (
            f"The Kolmogorov-Smirnov check after quantile normalization could not run: in each "
            f"of the {len(pairs)} sample pairs a sample has no value above its median "
            "(constant or empty samples)."
        )
    elif failed:
        i, j, statistic, pvalue = worst
        if names is not None:
            i, j = names[i], names[j]
        result["ks_warning"] = (
            f"Failed Kolmogorov-Smirnov test after quantile normalization for {failed} of "
            f"{tested} sample pairs (statistic > {_KS_MAX_STAT} or p-value < {_KS_MIN_P}); "
            f"worst pair: samples {i} and {j}, statistic {statistic:.4g}, p-value {pvalue:.3g}. "
        )
        if min_p >= _KS_MIN_P:
            result["ks_warning"] += (
                f"Every p-value is at least {_KS_MIN_P}: the differences are small, as ties and a "
                "target of another length give; only refine.bio's strict statistic threshold flags them."
            )
        else:
            result["ks_warning"] += (
                "The normalized samples do not share one distribution, usually because some "
                "samples have many NaNs or ties."
            )
    return result


def _upper_tails(X: np.ndarray, rows: list[int], sorted_rows) -> dict[int, np.ndarray]:
    """Each row's non-NaN values strictly above its median, sorted (a tail of the sorted row).

    The median is numpy's: the middle value, or the mean of the two middle values. Rows
    sharing one sorted array (``sorted_rows`` of rows without ties) share one tail.
    """
    missing = [i for i in rows if sorted_rows.get(i) is None]
    computed = dict(zip(missing, np.sort(X[missing], axis=1))) if missing else {}  # NaNs last
    tails: dict[int, np.ndarray] = {}
    by_id: dict[int, np.ndarray] = {}
    for i in rows:
        s = computed[i] if i in computed else sorted_rows[i]
        tail = by_id.get(id(s))
        if tail is None:
            n = s.size - int(np.isnan(s).sum()) if s.size and np.isnan(s[-1]) else s.size
            if n == 0:
                tail = s[:0]
            else:
                median = s[(n - 1) // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0
                tail = s[int(np.searchsorted(s[:n], median, side="right")) : n]
            by_id[id(s)] = tail
        tails[i] = tail
    return tails


def _ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.ks_2samp(a, b)``'s statistic and p-value (two-sided, method "auto").

    Two equal samples (the same sorted values) give statistic 0 and p-value 1 in scipy (its
    empirical distributions never differ); that case is answered without it.
    """
    if a is b or (a.size == b.size and np.array_equal(a, b)):
        return 0.0, 1.0
    from scipy import stats  # imported here: scipy.stats is slow to import and only this needs it

    with warnings.catch_warnings():
        # scipy falls back to the asymptotic p-value when the exact one fails (ties); say nothing
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)
