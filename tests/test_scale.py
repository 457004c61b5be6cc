"""Per-gene scaling: blocked fitting equals scikit-learn on the whole matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from refinewidgets.core.scale import scale_rows

SCALERS = {"MINMAX": MinMaxScaler, "STANDARD": StandardScaler, "ROBUST": RobustScaler}


@pytest.mark.parametrize("scale_by", list(SCALERS))
@pytest.mark.parametrize("block", [1, 3, 2048])
@pytest.mark.parametrize("threads", [1, 3])
def test_blocks_match_sklearn_with_nan_constant_and_empty_genes(scale_by, block, threads):
    rng = np.random.default_rng(5)
    X = rng.normal(5, 2, (12, 10))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 4] = 3.0  # constant gene -> 0
    X[:, 7] = np.nan  # gene missing everywhere -> stays NaN
    expected = X.copy()
    keep = ~np.isnan(expected).all(axis=0)
    expected[:, keep] = SCALERS[scale_by]().fit_transform(expected[:, keep])
    got = scale_rows(X.copy(), scale_by, block=block, threads=threads)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isnan(got[:, 7]).all()
    assert (got[:, 4] == 0).all()


def test_none_is_identity():
    X = np.arange(6.0).reshape(2, 3)
    assert scale_rows(X, "NONE") is X


def test_threads_give_the_same_bits_on_a_wide_matrix():
    rng = np.random.default_rng(8)
    X = rng.normal(5, 2, (40, 3000))
    X[rng.random(X.shape) < 0.05] = np.nan
    one = scale_rows(X.copy(), "ROBUST", block=256)
    assert np.array_equal(scale_rows(X.copy(), "ROBUST", block=256, threads=2), one, equal_nan=True)


def test_an_unknown_option_is_refused():
    from refinewidgets.errors import DatasetSpecError

    with pytest.raises(DatasetSpecError, match="`scale_by` must be one of"):
        scale_rows(np.ones((2, 2)), "ZSCORE", threads=2)


@pytest.mark.parametrize("threads", [1, 2])
def test_standard_without_nan_equals_the_scaler_on_hard_columns(threads):
    """The NaN-free STANDARD path (numpy, not scikit-learn) against StandardScaler: constant,
    nearly constant at a large mean (the scaler's rounding bound), tiny and huge values."""
    rng = np.random.default_rng(11)
    X = rng.normal(5, 2, (300, 1500))
    X[:, 0] = 7.25  # constant: 0 after centering
    X[:, 1] = 1e8 + rng.normal(0, 1e-9, 300)  # variance within rounding of zero: scale 1
    X[:, 2] = 1e8 + rng.normal(0, 1e-3, 300)  # small but real variance: scaled
    X[:, 3] = rng.normal(0, 1e-150, 300)
    X[:, 4] = rng.normal(0, 1e150, 300)
    X[:, 5] = -3.0
    X[0, 5] = 4.0  # one sample differs
    expected = StandardScaler().fit_transform(X)
    got = scale_rows(X.copy(), "STANDARD", block=512, threads=threads)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (got[:, 0] == 0).all()
    np.testing.assert_array_equal(got[:, 1], expected[:, 1])  # the same constant decision
    assert abs(got[:, 2].std() - 1) < 1e-6
    assert got[0, 5] > 17 and np.allclose(got[1:, 5], got[1, 5])


def test_standard_refuses_infinity_as_the_scaler_does():
    X = np.ones((4, 3))
    X[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        scale_rows(X, "STANDARD")
