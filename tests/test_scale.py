"""Per-gene scaling: blocked fitting equals scikit-learn on the whole matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from refinewidgets.core.scale import scale_rows

SCALERS = {"MINMAX": MinMaxScaler, "STANDARD": StandardScaler, "ROBUST": RobustScaler}


@pytest.mark.parametrize("scale_by", list(SCALERS))
@pytest.mark.parametrize("block", [1, 3, 2048])
def test_blocks_match_sklearn_with_nan_constant_and_empty_genes(scale_by, block):
    rng = np.random.default_rng(5)
    X = rng.normal(5, 2, (12, 10))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 4] = 3.0  # constant gene -> 0
    X[:, 7] = np.nan  # gene missing everywhere -> stays NaN
    expected = X.copy()
    keep = ~np.isnan(expected).all(axis=0)
    expected[:, keep] = SCALERS[scale_by]().fit_transform(expected[:, keep])
    got = scale_rows(X.copy(), scale_by, block=block)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert np.isnan(got[:, 7]).all()
    assert (got[:, 4] == 0).all()


def test_none_is_identity():
    X = np.arange(6.0).reshape(2, 3)
    assert scale_rows(X, "NONE") is X
