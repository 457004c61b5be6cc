"""Tests of refinewidgets.core.quantile: preprocessCore semantics, properties, the KS check."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from refinewidgets.core.ks_check import ks_check, ks_pairs
from refinewidgets.core.quantile import (
    determine_target,
    quantile_normalize,
    quantile_normalize_rows,
)
from refinewidgets.errors import DatasetSpecError

EPS4 = 4 * np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# A slow reference written from the rules, one value at a time
# --------------------------------------------------------------------------------------------


def reference_row(row, target):
    """normalize.quantiles.use.target for one sample, literally, in plain Python."""
    t = sorted(float(v) for v in target if not math.isnan(v))
    m = len(t)
    present = [float(v) for v in row if not math.isnan(v)]
    n = len(present)
    out = []
    for v in row:
        if math.isnan(v):
            out.append(math.nan)
            continue
        below = sum(1 for w in present if w < v)
        equal = sum(1 for w in present if w == v)
        rank = below + (equal + 1) / 2  # average rank of the tie group, 1-based
        if n == len(row) and n == m:  # rule 3
            k = math.floor(rank)
            if rank - k > 0.4:
                out.append(0.5 * (t[k - 1] + t[k]))
            else:
                out.append(t[k - 1])
            continue
        p = 0.5 if n == 1 else (rank - 1) / (n - 1)  # rule 4 (our rule for n == 1)
        pos = 1 + (m - 1) * p
        base = math.floor(pos + EPS4)
        frac = pos - base
        if abs(frac) <= EPS4:
            frac = 0.0
        if frac == 0.0:
            out.append(t[base - 1])
        elif base >= m:
            out.append(t[m - 1])
        elif base <= 0:
            out.append(t[0])
        else:
            out.append((1 - frac) * t[base - 1] + frac * t[base])
    return out


def reference(X, target):
    return np.array([reference_row(list(r), list(np.ravel(target))) for r in X], dtype=float)


# --------------------------------------------------------------------------------------------
# Hand-computed examples
# --------------------------------------------------------------------------------------------


def test_rule3_same_length_no_nan():
    target = [30.0, 10.0, 20.0, 40.0]  # sorted: 10 20 30 40
    X = np.array([[0.4, 0.1, 0.3, 0.2]])
    np.testing.assert_array_equal(quantile_normalize_rows(X, target), [[40.0, 10.0, 30.0, 20.0]])


def test_rule3_tie_fraction_half_takes_mean_of_neighbours():
    # values 5, 5 tie at ranks 2 and 3 -> average rank 2.5 -> mean of target[1] and target[2]
    X = np.array([[1.0, 5.0, 5.0, 9.0]])
    out = quantile_normalize_rows(X, [10.0, 20.0, 30.0, 40.0])
    np.testing.assert_array_equal(out, [[10.0, 25.0, 25.0, 40.0]])


def test_rule3_three_way_tie_has_integer_rank():
    # three equal values at ranks 1, 2, 3 -> average rank 2 (fraction 0) -> target[1]
    out = quantile_normalize_rows(np.array([[7.0, 7.0, 7.0, 8.0]]), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(out, [[2.0, 2.0, 2.0, 4.0]])


def test_rule3_is_exact_lookup_not_interpolation():
    # with equal lengths rule 4 would give the same values only up to rounding: rule 3 is exact
    rng = np.random.default_rng(10)
    target = rng.normal(size=1000)
    out = quantile_normalize_rows(rng.normal(size=(2, 1000)), target)
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(target)[None, :].repeat(2, 0))
    # a tie takes 0.5 * (a + b) exactly (0.39999999999999997 here, not 0.4)
    out = quantile_normalize_rows(np.array([[3.0, 3.0]]), [0.7, 0.1])
    assert out.tolist() == [[0.5 * (0.1 + 0.7)] * 2]


def test_rule4_shorter_sample_interpolates():
    # n = 4 values, target of 7: positions 1 + 6 * (r - 1) / 3 = 1, 3, 5, 7
    target = [0.0, 1.0, 4.0, 9.0, 16.0, 25.0, 36.0]
    out = quantile_normalize_rows(np.array([[3.0, 1.0, 4.0, 2.0]]), target)
    np.testing.assert_array_equal(out, [[16.0, 0.0, 36.0, 4.0]])


def test_rule4_fractional_positions():
    # n = 3 values, target of 4 (sorted 0 10 20 40): positions 1, 2.5, 4
    out = quantile_normalize_rows(np.array([[2.0, 1.0, 3.0]]), [40.0, 0.0, 10.0, 20.0])
    np.testing.assert_array_equal(out, [[15.0, 0.0, 40.0]])
    # n = 4, target of 3 (0 10 20): positions 1, 1 + 2/3, 1 + 4/3, 3
    out = quantile_normalize_rows(np.array([[1.0, 2.0, 3.0, 4.0]]), [0.0, 10.0, 20.0])
    np.testing.assert_allclose(out, [[0.0, 20.0 / 3.0, 40.0 / 3.0, 20.0]], rtol=1e-14)


def test_rule4_nan_in_sample_of_target_length_interpolates_and_keeps_nan():
    # 4 genes, target of 4, but one NaN -> n = 3, positions 1, 2.5, 4
    X = np.array([[5.0, np.nan, 1.0, 3.0]])
    out = quantile_normalize_rows(X, [0.0, 10.0, 20.0, 40.0])
    np.testing.assert_array_equal(out, [[40.0, np.nan, 0.0, 15.0]])


def test_rule4_tie_with_interpolation():
    # n = 3 with a tie at ranks 1 and 2 -> rank 1.5 -> p = 0.25 -> position 1.75 of (0, 8, 16)
    out = quantile_normalize_rows(np.array([[2.0, 2.0, 6.0]]), [0.0, 8.0, 16.0, 24.0, 32.0])
    # target of 5: position 1 + 4 * 0.25 = 2 -> 8; rank 3 -> position 5 -> 32
    np.testing.assert_array_equal(out, [[8.0, 8.0, 32.0]])


def test_target_nans_are_dropped_and_target_is_flattened():
    a = quantile_normalize_rows(np.array([[3.0, 1.0, 2.0]]), [np.nan, 3.0, 1.0, np.nan, 2.0])
    np.testing.assert_array_equal(a, [[3.0, 1.0, 2.0]])
    b = quantile_normalize_rows(np.array([[3.0, 1.0, 2.0]]), pd.DataFrame([3.0, 1.0, 2.0]))
    np.testing.assert_array_equal(b, [[3.0, 1.0, 2.0]])


def test_single_value_sample_gets_target_median():
    X = np.array([[np.nan, 4.0, np.nan], [np.nan, np.nan, np.nan]])
    out = quantile_normalize_rows(X, [1.0, 2.0, 10.0, 20.0])
    np.testing.assert_array_equal(out[0], [np.nan, 6.0, np.nan])  # median of 1 2 10 20
    assert np.isnan(out[1]).all()  # an all-NaN sample stays all NaN


@pytest.mark.parametrize("target", [[], [np.nan, np.nan], np.array([[np.nan]])])
def test_empty_target_raises(target):
    with pytest.raises(DatasetSpecError, match="target is empty"):
        quantile_normalize_rows(np.ones((2, 3)), target)
    with pytest.raises(ValueError):  # also a ValueError for callers that do not know us
        quantile_normalize(np.ones((3, 2)), target=target)


def test_infinite_target_raises():
    with pytest.raises(DatasetSpecError, match="infinite"):
        quantile_normalize_rows(np.ones((1, 3)), [1.0, np.inf, 2.0])


def test_bad_shapes_raise():
    with pytest.raises(DatasetSpecError, match="2-D"):
        quantile_normalize_rows(np.ones(3), [1.0])
    with pytest.raises(DatasetSpecError, match="out"):
        quantile_normalize_rows(np.ones((2, 3)), [1.0], out=np.empty((3, 2)))
    with pytest.raises(DatasetSpecError, match="chunk_size"):
        quantile_normalize_rows(np.ones((2, 3)), [1.0], chunk_size=0)


def test_in_place_and_out_argument():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 9))
    target = rng.normal(size=12)
    expected = reference(X, target)
    out = np.empty_like(X)
    assert quantile_normalize_rows(X, target, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    Y = X.copy()
    assert quantile_normalize_rows(Y, target, out=Y, chunk_size=2) is Y
    np.testing.assert_allclose(Y, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Fast implementation == slow reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_genes,target_len", [(40, 40), (40, 57), (40, 23), (1, 5), (3, 1)])
def test_matches_reference_on_random_data_with_ties_and_nans(n_genes, target_len):
    rng = np.random.default_rng(n_genes * 1000 + target_len)
    X = rng.integers(0, 12, size=(30, n_genes)).astype(float)  # many ties
    X[rng.random(X.shape) < 0.1] = np.nan
    X[0] = rng.normal(size=n_genes)  # a sample without NaN nor ties
    X[1] = np.round(rng.normal(size=n_genes), 1)  # no NaN, some ties
    X[2] = np.nan
    if n_genes > 1:
        X[3] = np.nan
        X[3, 0] = 1.0  # a single value
    target = rng.normal(size=target_len) * 3
    target[rng.random(target_len) < 0.1] = np.nan
    if np.isnan(target).all():
        target[0] = 1.0
    expected = reference(X, target)
    for chunk_size in (1, 7, 64):
        got = quantile_normalize_rows(X, target, chunk_size=chunk_size)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
with_ties_and_nans = st.one_of(
    st.just(np.nan), st.integers(-3, 3).map(float), st.floats(-1e3, 1e3, allow_subnormal=False)
)
matrices = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=with_ties_and_nans
)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_property_sorted_output_equals_sorted_target(data, n):
    row = data.draw(hnp.arrays(np.float64, n, elements=finite, unique=True))
    target = data.draw(hnp.arrays(np.float64, n, elements=finite))
    out = quantile_normalize_rows(row[None, :], target)[0]
    np.testing.assert_array_equal(np.sort(out), np.sort(target))


@settings(max_examples=80, deadline=None)
@given(
    X=matrices,
    target=hnp.arrays(np.float64, st.integers(1, 15), elements=finite),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_sample_order_does_not_matter(X, target, seed):
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    a = quantile_normalize_rows(X, target)
    b = quantile_normalize_rows(X[perm], target, chunk_size=2)
    np.testing.assert_array_equal(a[perm], b)
    # the same through the genes x samples API: permuting columns permutes the result's columns
    frame = pd.DataFrame(X.T, columns=[f"s{i}" for i in range(X.shape[0])])
    full = quantile_normalize(frame, target=target)
    shuffled = quantile_normalize(frame.iloc[:, perm], target=target)
    pd.testing.assert_frame_equal(full.iloc[:, perm], shuffled)


@settings(max_examples=80, deadline=None)
@given(
    X=matrices,
    target=hnp.arrays(np.float64, st.integers(1, 15), elements=finite),
)
def test_property_nans_stay_where_they_were(X, target):
    out = quantile_normalize_rows(X, target)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(X))


@settings(max_examples=100, deadline=None)
@given(
    row=hnp.arrays(np.float64, st.integers(1, 25), elements=with_ties_and_nans),
    target=hnp.arrays(np.float64, st.integers(1, 30), elements=finite),
)
def test_property_monotone_within_a_sample(row, target):
    out = quantile_normalize_rows(row[None, :], target)[0]
    ok = ~np.isnan(row)
    x, y = row[ok], out[ok]
    for i in range(x.size):
        for j in range(x.size):
            if x[i] < x[j]:
                assert y[i] <= y[j]
            elif x[i] == x[j]:
                assert y[i] == y[j]
    if y.size:  # and the values stay within the target's range
        t = np.sort(target)
        assert t[0] - 1e-9 * (1 + abs(t[0])) <= y.min()
        assert y.max() <= t[-1] + 1e-9 * (1 + abs(t[-1]))


# --------------------------------------------------------------------------------------------
# determine_target
# --------------------------------------------------------------------------------------------


def test_determine_target_is_mean_of_sorted_columns_without_nan():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 7)) * rng.uniform(1, 5, size=7)
    expected = np.sort(values, axis=0).mean(axis=1)
    got = determine_target(values)
    assert got.dtype == np.float64 and got.shape == (50,)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    assert np.all(np.diff(got) >= 0)


def test_determine_target_many_columns_chunked():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(20, 150))  # more columns than one internal chunk
    np.testing.assert_allclose(
        determine_target(pd.DataFrame(values)), np.sort(values, axis=0).mean(axis=1), rtol=1e-12
    )


def test_determine_target_interpolates_columns_with_nan():
    # column 1 (k = 3 of 5): positions 1 + 2 * i / 4 = 1, 1.5, 2, 2.5, 3 over (2, 4, 8)
    # -> 2, 3, 4, 6, 8; column 2 sorted: 0 10 20 30 40; column 3 all NaN is left out
    values = np.array(
        [
            [8.0, 40.0, np.nan],
            [np.nan, 0.0, np.nan],
            [2.0, 20.0, np.nan],
            [np.nan, 10.0, np.nan],
            [4.0, 30.0, np.nan],
        ]
    )
    np.testing.assert_array_equal(determine_target(values), [1.0, 6.5, 12.0, 18.0, 24.0])


def test_determine_target_single_value_column_is_constant():
    values = np.array([[np.nan, 0.0], [5.0, 2.0], [np.nan, 4.0]])
    np.testing.assert_array_equal(determine_target(values), [2.5, 3.5, 4.5])


def test_determine_target_errors():
    with pytest.raises(DatasetSpecError, match="no non-NaN"):
        determine_target(np.full((3, 2), np.nan))
    with pytest.raises(DatasetSpecError, match="2-D"):
        determine_target(np.ones(4))


# --------------------------------------------------------------------------------------------
# quantile_normalize (genes x samples)
# --------------------------------------------------------------------------------------------


def test_quantile_normalize_keeps_labels_and_returns_new_frame():
    frame = pd.DataFrame(
        {"GSM1": [5.0, 2.0, np.nan, 3.0], "GSM2": [4.0, 1.0, 6.0, 0.5]},
        index=pd.Index(["ENSG1", "ENSG2", "ENSG3", "ENSG4"], name="Gene"),
    )
    before = frame.copy()
    out = quantile_normalize(frame, target=[1.0, 2.0, 3.0, 4.0])
    assert out is not frame
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    assert out.index.equals(frame.index) and out.index.name == "Gene"
    assert list(out.columns) == ["GSM1", "GSM2"]
    # GSM2: no NaN, length 4 -> rule 3; GSM1: 3 values -> positions 1, 2.5, 4
    np.testing.assert_array_equal(out["GSM2"], [3.0, 2.0, 4.0, 1.0])
    np.testing.assert_array_equal(out["GSM1"], [4.0, 1.0, np.nan, 2.5])


def test_quantile_normalize_default_target_and_ndarray():
    values = np.array([[5.0, 4.0], [2.0, 1.0], [3.0, 6.0]])
    out = quantile_normalize(values)
    assert isinstance(out, np.ndarray) and out.shape == (3, 2)
    # target = mean of sorted columns = 1.5, 3.5, 5.5; ranks (3, 1, 2) and (2, 1, 3)
    np.testing.assert_array_equal(out, [[5.5, 3.5], [1.5, 1.5], [3.5, 5.5]])
    np.testing.assert_array_equal(values, [[5.0, 4.0], [2.0, 1.0], [3.0, 6.0]])  # untouched


def test_quantile_normalize_never_writes_into_a_fortran_ordered_input():
    values = np.asfortranarray(np.array([[5.0, 4.0], [2.0, 1.0], [3.0, 6.0]]))
    frame = pd.DataFrame(values.copy(order="F"))
    quantile_normalize(values, target=[0.0, 1.0, 2.0])
    quantile_normalize(frame, target=[0.0, 1.0, 2.0])
    np.testing.assert_array_equal(values, [[5.0, 4.0], [2.0, 1.0], [3.0, 6.0]])
    np.testing.assert_array_equal(frame.to_numpy(), [[5.0, 4.0], [2.0, 1.0], [3.0, 6.0]])


def test_quantile_normalize_after_normalizing_every_sample_has_the_target():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.lognormal(size=(200, 6)))
    out = quantile_normalize(frame)
    sorted_cols = np.sort(out.to_numpy(), axis=0)
    for j in range(1, 6):
        np.testing.assert_array_equal(sorted_cols[:, j], sorted_cols[:, 0])


def test_quantile_normalize_rejects_bad_input_and_passes_empty():
    with pytest.raises(DatasetSpecError, match="numeric"):
        quantile_normalize(pd.DataFrame({"a": ["x", "y"]}))
    with pytest.raises(DatasetSpecError, match="2-D"):
        quantile_normalize(np.ones(3))
    empty = pd.DataFrame(index=["g1", "g2"], columns=[], dtype=float)
    assert quantile_normalize(empty).shape == (2, 0)


# --------------------------------------------------------------------------------------------
# ks_check
# --------------------------------------------------------------------------------------------


def test_ks_identical_distributions_no_warning():
    rng = np.random.default_rng(6)
    base = rng.normal(size=500)
    X = np.array([rng.permutation(base) for _ in range(8)])
    res = ks_check(X)
    assert res == {
        "ks_statistic": 0.0,
        "ks_pvalue": 1.0,
        "ks_warning": None,
        "ks_distributions_differ": False,
    }


def test_ks_after_quantile_normalization_passes():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 300)) * np.arange(1, 7)[:, None] + np.arange(6)[:, None]
    res = ks_check(quantile_normalize_rows(X, rng.normal(size=300)))
    assert res["ks_warning"] is None and res["ks_statistic"] == 0.0


def test_ks_different_distributions_warn():
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(size=400), rng.normal(size=400) * 5 + 10])
    res = ks_check(X)
    assert isinstance(res["ks_warning"], str)
    assert "1 of 1 sample pairs" in res["ks_warning"]
    assert res["ks_statistic"] > 0.9 and res["ks_pvalue"] < 1e-6
    assert res["ks_distributions_differ"] is True


def test_ks_threshold_is_strict():
    # same distribution, slightly different draws: p-value high, but statistic > 0.001 fails
    rng = np.random.default_rng(14)
    X = rng.normal(size=(2, 4000))
    res = ks_check(X)
    assert 0.001 < res["ks_statistic"] < 0.1 and res["ks_pvalue"] > 0.8
    assert res["ks_warning"] is not None and "statistic" in res["ks_warning"]
    assert res["ks_distributions_differ"] is False  # only the strict statistic threshold trips


def test_ks_fewer_than_two_samples():
    none = {
        "ks_statistic": None,
        "ks_pvalue": None,
        "ks_warning": None,
        "ks_distributions_differ": None,
    }
    assert ks_check(np.ones((1, 10))) == none
    assert ks_check(np.empty((0, 10))) == none


@pytest.mark.parametrize("n_samples,n_pairs", [(5, 10), (15, 100), (250, 100)])
def test_ks_pair_counts(n_samples, n_pairs):
    rng = np.random.default_rng(n_samples)
    X = rng.normal(size=(n_samples, 40)) + np.arange(n_samples)[:, None]  # every pair differs
    res = ks_check(X)
    assert f"{n_pairs} of {n_pairs} sample pairs" in res["ks_warning"]
    assert ks_check(X) == res  # seeded: reproducible


@pytest.mark.parametrize(
    "n_samples,expected",
    [
        (4, [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]),
        (14, list(itertools.combinations(range(14), 2))),  # 91 pairs: all of them
        (15, list(itertools.combinations(range(15), 2))[:100]),  # first 100 lexicographic
        (200, [(0, j) for j in range(1, 101)]),
    ],
)
def test_ks_pairs_are_refinebios(n_samples, expected):
    assert ks_pairs(n_samples, 100, 0) == expected


def test_ks_pairs_above_200_are_disjoint_random_pairs():
    pairs = ks_pairs(250, 100, 0)
    flat = [i for p in pairs for i in p]
    assert len(pairs) == 100 and len(set(flat)) == 200 and max(flat) < 250
    assert ks_pairs(250, 100, 0) == pairs and ks_pairs(250, 100, 1) != pairs


def test_ks_last_pair_is_reported_and_nans_ignored():
    # all pairs (0,1), (0,2), (1,2): the last pair is (1, 2)
    rng = np.random.default_rng(9)
    a, b, c = rng.normal(size=(3, 101))
    X = np.vstack([a, b, c])
    X[1, :5] = np.nan
    res = ks_check(X)
    bb = X[1][~np.isnan(X[1])]
    expected = stats.ks_2samp(bb[bb > np.median(bb)], c[c > np.median(c)])
    assert res["ks_statistic"] == pytest.approx(expected.statistic)
    assert res["ks_pvalue"] == pytest.approx(expected.pvalue)


def test_ks_constant_samples_cannot_be_tested():
    res = ks_check(np.ones((3, 10)))
    assert res["ks_statistic"] is None and "could not run" in res["ks_warning"]


def test_ks_message_tells_small_differences_from_real_ones():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 4000)
    close = np.vstack([a, a + rng.normal(0, 0.01, a.size)])  # statistic > 0.001, p-value ~1
    message = ks_check(close, names=["S1", "S2"])["ks_warning"]
    assert "samples S1 and S2" in message
    assert "Every p-value is at least 0.8" in message and "do not share" not in message
    far = np.vstack([a, a * 3 + 2])
    message = ks_check(far)["ks_warning"]
    assert "do not share one distribution" in message and "Every p-value" not in message


def plain_ks_check(X, pairs):
    """refine.bio's check written plainly: every pair through scipy, row by row (the oracle)."""
    tested, failed, last = 0, 0, (None, None)
    for i, j in pairs:
        tails = []
        for row in (X[i], X[j]):
            row = row[~np.isnan(row)]
            tails.append(row[row > np.median(row)] if row.size else row)
        if tails[0].size == 0 or tails[1].size == 0:
            continue
        res = stats.ks_2samp(*tails)
        tested += 1
        last = (float(res.statistic), float(res.pvalue))
        failed += res.statistic > 0.001 or res.pvalue < 0.8
    return tested, failed, last


def _qn_inputs(seed, n_samples, n_genes):
    """Rows with ties (RNA-seq zeros, rounded values), NaNs and different lengths."""
    rng = np.random.default_rng(seed)
    X = rng.lognormal(size=(n_samples, n_genes))
    X[rng.random(X.shape) < 0.3] = 0.0  # tied zeros
    X[::3] = np.round(X[::3], 1)  # more ties, above the median too
    X[1::4, : n_genes // 10] = np.nan  # a tenth missing in some rows
    X[2, :] = 7.0  # a constant row: no value above its median
    return X


@pytest.mark.parametrize(
    "seed,n_samples,n_genes,target",
    [(0, 12, 200, None), (1, 30, 501, "other"), (2, 260, 120, None), (3, 6, 2001, None)],
)
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
def test_ks_check_equals_plain_scipy_check(seed, n_samples, n_genes, target):
    # cheaper, not different: QN's sorted rows, or rows sorted here, give the plain check's
    # counts and exactly its last statistic and p-value (equal tails answered without scipy)
    X = _qn_inputs(seed, n_samples, n_genes)
    t = None if target is None else np.random.default_rng(seed).normal(size=n_genes + 7)
    pairs = ks_pairs(n_samples, 100, 0)
    kept = {i: None for pair in pairs for i in pair}
    Y = quantile_normalize_rows(X, t, sorted_rows=kept, threads=2, chunk_size=5)
    for i, s in kept.items():
        np.testing.assert_array_equal(s, np.sort(Y[i]))  # QN's sorted rows are the rows sorted
        assert not s.flags.writeable
    tested, failed, (statistic, pvalue) = plain_ks_check(Y, pairs)
    assert tested > 0 and tested < len(pairs)  # the constant row's pairs are skipped
    for res in (ks_check(Y), ks_check(Y, pairs=pairs, sorted_rows=kept)):
        assert res["ks_statistic"] == statistic and res["ks_pvalue"] == pvalue
        if failed:
            assert f"for {failed} of {tested} sample pairs" in res["ks_warning"]
        else:
            assert res["ks_warning"] is None


def test_ks_check_unequal_rows_still_use_scipy():
    # rows of different distributions: every pair goes to scipy, values exactly its own
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5, 3000)) * np.arange(1, 6)[:, None]
    X[0, :100] = np.nan
    pairs = ks_pairs(5, 100, 0)
    tested, failed, (statistic, pvalue) = plain_ks_check(X, pairs)
    res = ks_check(X)
    assert (tested, failed) == (10, 10)
    assert res["ks_statistic"] == statistic and res["ks_pvalue"] == pvalue
    assert "for 10 of 10 sample pairs" in res["ks_warning"]


# --------------------------------------------------------------------------------------------
# R's preprocessCore as the oracle (Debian's r-bioc-preprocesscore, installed by .ci/run)
# --------------------------------------------------------------------------------------------

_ORACLE_SCRIPT = """
suppressPackageStartupMessages(library(preprocessCore))
args <- commandArgs(trailingOnly = TRUE)
dims <- as.integer(strsplit(args[2], ",")[[1]])
m <- matrix(readBin(args[1], "double", n = prod(dims)), nrow = dims[1], ncol = dims[2])
m[is.nan(m)] <- NA  # NaN as R's NA: preprocessCore's missing values (refinebio-format.md 6.5)
if (args[3] == "") {
  out <- normalize.quantiles(m)
} else {
  out <- normalize.quantiles.use.target(m, readBin(args[3], "double", n = as.integer(args[4])))
}
writeBin(as.vector(out), args[5])
"""


def _preprocesscore(tmp_path, X, target=None) -> np.ndarray:
    """R's ``normalize.quantiles`` (``target`` None) or ``normalize.quantiles.use.target`` of a
    genes x samples matrix, exchanged as raw float64 (no text rounding)."""
    import os
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        message = "R (Rscript) is not installed: apt-get install r-base-core r-bioc-preprocesscore"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script = tmp_path / "qn.R"
    script.write_text(_ORACLE_SCRIPT)
    values, out = tmp_path / "m.bin", tmp_path / "out.bin"
    np.asarray(X, dtype="<f8").ravel(order="F").tofile(values)
    target_path = ""
    if target is not None:
        target_path = str(tmp_path / "t.bin")
        np.asarray(target, dtype="<f8").tofile(target_path)
    done = subprocess.run(
        [
            "Rscript",
            str(script),
            str(values),
            f"{X.shape[0]},{X.shape[1]}",
            target_path,
            str(0 if target is None else len(target)),
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if "there is no package called" in done.stderr:
        message = "R's preprocessCore is not installed: apt-get install r-bioc-preprocesscore"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert done.returncode == 0, done.stderr
    result = np.fromfile(out, dtype="<f8")
    assert result.size == X.size
    return result.reshape(X.shape, order="F")


def _oracle_matrix(seed, n_genes, n_samples, *, ties, nan_share):
    rng = np.random.default_rng(seed)
    X = rng.lognormal(2.0, 1.0, size=(n_genes, n_samples))
    if ties:  # integer counts: many ties, runs of two to dozens of equal values
        X = np.floor(X)
    if nan_share:
        X[rng.random(X.shape) < nan_share] = np.nan
        X[:2] = rng.random((2, n_samples))  # every sample keeps at least two values
    return X


@pytest.mark.parametrize(
    "seed,n_genes,n_samples,ties,nan_share",
    [
        (0, 500, 8, False, 0.0),  # rule 3 only: target[rank - 1]
        (1, 500, 8, True, 0.0),  # rule 3 with tied ranks (fraction 0.5: mean of neighbours)
        (2, 400, 6, False, 0.15),  # rule 4: percentiles of the non-NaN values
        (3, 400, 6, True, 0.15),  # rule 4 with ties
        (4, 300, 30, True, 0.02),  # many samples, a few NaNs
    ],
)
def test_normalize_quantiles_equals_preprocesscore(
    tmp_path, seed, n_genes, n_samples, ties, nan_share
):
    """Our target (determine_target) and normalization against R's normalize.quantiles."""
    X = _oracle_matrix(seed, n_genes, n_samples, ties=ties, nan_share=nan_share)
    expected = _preprocesscore(tmp_path, X)
    ours = quantile_normalize(X)
    assert np.array_equal(np.isnan(ours), np.isnan(X))  # NaNs stay where they were
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    "seed,target_len,ties,nan_share",
    [
        (10, 500, False, 0.0),  # same length, no NaN: rule 3
        (11, 500, True, 0.0),  # same length with ties
        (12, 800, False, 0.0),  # a longer target: rule 4
        (13, 173, True, 0.0),  # a shorter target, ties
        (14, 500, True, 0.2),  # NaNs: rule 4 even at the target's length
        (15, 650, True, 0.1),
    ],
)
def test_normalize_quantiles_use_target_equals_preprocesscore(
    tmp_path, seed, target_len, ties, nan_share
):
    X = _oracle_matrix(seed, 500, 7, ties=ties, nan_share=nan_share)
    rng = np.random.default_rng(seed + 100)
    target = rng.normal(7.0, 2.0, size=target_len)
    if ties:
        target = np.round(target, 1)  # a target with ties of its own
    expected = _preprocesscore(tmp_path, X, target)
    ours = quantile_normalize(X, target=target)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    rows = quantile_normalize_rows(np.ascontiguousarray(X.T), target)  # the build's routine
    np.testing.assert_allclose(rows.T, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_preprocesscore_oracle_sees_a_wrong_value(tmp_path):
    """The comparison can fail: one changed value is noticed."""
    X = _oracle_matrix(20, 50, 3, ties=False, nan_share=0.0)
    expected = _preprocesscore(tmp_path, X, np.arange(50.0))
    ours = quantile_normalize(X, target=np.arange(50.0))
    ours[7, 1] += 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_one_sort_for_target_and_normalization_equals_the_two_steps(threads, chunk_size):
    """Without a target, each row is sorted once for both passes: the values equal those of
    determine_target followed by the normalization (1e-12), whatever the threads and chunks."""
    rng = np.random.default_rng(5)
    X = np.log2(rng.lognormal(2.0, 1.0, size=(150, 900)) + 1.0)
    X[::3, :200] = 0.0  # ties: RNA-seq zeros
    X[1::7, 5:40] = np.nan
    X[4] = np.nan  # an all-NaN sample stays NaN and is left out of the target
    expected = quantile_normalize_rows(X, determine_target(X.T))
    ours = quantile_normalize_rows(X, None, chunk_size=chunk_size, threads=threads)
    assert np.array_equal(np.isnan(ours), np.isnan(X))
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.array_equal(
        ours, quantile_normalize_rows(X, None, chunk_size=chunk_size), equal_nan=True
    )  # the threads never change a bit
    in_place = X.copy()
    quantile_normalize_rows(in_place, None, out=in_place, chunk_size=chunk_size, threads=threads)
    assert np.array_equal(in_place, ours, equal_nan=True)


def test_one_sort_refuses_a_matrix_without_values():
    with pytest.raises(DatasetSpecError, match="holds no non-NaN value"):
        quantile_normalize_rows(np.full((3, 4), np.nan), None)
