"""core/explore.py: distributions, PCA on data with known structure, cells per cell type."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core import explore
from refinewidgets.errors import DatasetSpecError, GeneOverlapError


def _adata(X, **obs):
    names = [f"S{i}" for i in range(X.shape[0])]
    frame = pd.DataFrame(obs, index=names) if obs else pd.DataFrame(index=names)
    return anndata.AnnData(
        X, obs=frame, var=pd.DataFrame(index=[f"G{j}" for j in range(X.shape[1])])
    )


@pytest.fixture
def two_groups():
    """20 samples x 200 genes: the second half of the samples is shifted by +4 on genes 0..29."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 200))
    X[10:, :30] += 4.0
    X[3, 50] = np.nan  # a gene with a missing value
    return _adata(X, group=["a"] * 10 + ["b"] * 10)


def test_pca_separates_known_groups_on_pc1(two_groups):
    res = explore.pca(two_groups, n_components=3)
    pc1 = res.coordinates["PC1"]
    assert (pc1.iloc[:10] < 0).all() and (pc1.iloc[10:] > 0).all()  # sign: largest loading positive
    assert res.explained_variance_ratio[0] > 0.4
    assert np.all(np.diff(res.explained_variance_ratio) <= 0)
    assert res.n_genes == 199 and res.n_genes_dropped == 1
    assert np.allclose(res.coordinates.mean(), 0.0)
    assert list(res.coordinates.columns) == ["PC1", "PC2", "PC3"]


def test_pca_agrees_with_scikit_learn_up_to_sign(two_groups):
    from sklearn.decomposition import PCA

    X = np.delete(two_groups.X, 50, axis=1)
    ref = PCA(n_components=2).fit(X)
    coords = ref.transform(X)
    res = explore.pca(two_groups)
    for k in range(2):
        ours = res.coordinates.iloc[:, k].to_numpy()
        assert np.allclose(np.abs(ours), np.abs(coords[:, k]), atol=1e-8)
    assert np.allclose(res.explained_variance_ratio, ref.explained_variance_ratio_)


def test_pca_subsamples_rows_and_refuses_degenerate_groups(two_groups):
    res = explore.pca(two_groups, max_rows=8, seed=1)
    assert len(res.coordinates) == 8 and res.coordinates.index.isin(two_groups.obs_names).all()
    with pytest.raises(DatasetSpecError, match="at least 2 samples"):
        explore.pca(two_groups[:1])
    X = np.ones((3, 2))
    X[0, 0] = X[1, 1] = np.nan
    with pytest.raises(GeneOverlapError, match="No gene has a value in all 3 samples"):
        explore.pca(_adata(X))


def test_sample_quantiles_and_histograms_ignore_nans(two_groups):
    q = explore.sample_quantiles(two_groups)
    assert q.shape == (20, len(explore.QUANTILES))
    expected = np.nanquantile(two_groups.X, explore.QUANTILES, axis=1).T
    assert np.allclose(q.to_numpy(), expected)
    edges, counts = explore.value_histograms(two_groups, bins=25)
    assert len(edges) == 26
    assert counts.sum(axis=1).tolist() == np.isfinite(two_groups.X).sum(axis=1).tolist()
    empty = _adata(np.full((2, 3), np.nan))
    assert explore.sample_quantiles(empty).isna().all().all()


def test_unnormalized_drops_every_normalization():
    ds = rw.Dataset({"E": ["ALL"]}, aggregate_by="SPECIES", scale_by="STANDARD")
    raw = explore.unnormalized(ds)
    assert (raw.quantile_normalize, raw.scale_by, raw.aggregate_by, raw.data) == (
        False,
        "NONE",
        "SPECIES",
        ds.data,
    )
    assert explore.unnormalized(raw) is None
    sc = rw.Dataset({"E": ["ALL"]}, quantile_normalize=False, counts_normalization="CPM")
    assert explore.unnormalized(sc).counts_normalization == "NONE"


def test_quantile_normalization_makes_sample_distributions_equal(demo_cat):
    ds = rw.Dataset({"GSE71102": ["ALL"], "GSE75037": ["ALL"]}, aggregate_by="ALL")
    after = rw.build(ds, demo_cat)["ALL"]
    before = rw.build(explore.unnormalized(ds), demo_cat)["ALL"]
    spread_before = explore.sample_quantiles(before)[0.5].std()
    spread_after = explore.sample_quantiles(after)[0.5].std()
    assert spread_after < spread_before / 10


def test_cells_per_cell_type_for_cells_and_pseudobulk():
    cells = _adata(np.zeros((4, 1)), cell_type=["T", "B", "T", "T"])
    assert explore.cells_per_cell_type(cells).to_dict() == {"T": 3, "B": 1}
    pseudo = _adata(
        np.zeros((3, 1)), pseudobulk_cell_type=["B", "T", "B"], pseudobulk_n_cells=[10, 50, 5]
    )
    assert explore.cells_per_cell_type(pseudo).to_dict() == {"T": 50, "B": 15}
    assert explore.cells_per_cell_type(_adata(np.zeros((2, 1)))).empty


def test_color_labels_and_columns():
    obs = pd.DataFrame(
        {
            "experiment_accession": ["E1"] * 6,
            "tissue": list("abcdef"),
            "sex": ["f", "m", "", "f", "f", "m"],
        }
    )
    labels = explore.color_labels(obs, "tissue", max_levels=3)
    assert labels.tolist() == ["a", "b", "other", "other", "other", "other"]
    assert explore.color_labels(obs, "sex").tolist() == ["f", "m", "(missing)", "f", "f", "m"]
    # a constant experiment goes last: a PCA coloured by it would be one colour
    assert explore.color_columns(obs, max_levels=5) == ["sex", "experiment_accession"]
    with pytest.raises(DatasetSpecError, match="colour"):
        explore.color_labels(obs, "nope")


def test_preview_is_the_corner_of_the_expression_frame(demo_cat):
    res = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), demo_cat)
    pd.testing.assert_frame_equal(
        explore.preview(res["SRP091833"], n_genes=5, n_samples=3),
        res.expression("SRP091833").iloc[:5, :3],
    )
    assert not rw.core.result.is_cell_group(res["SRP091833"])


def test_large_groups_get_a_randomized_pca_equal_to_the_exact_one():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(600, 2)) * [10.0, 4.0]  # two clear components plus noise
    X = scores @ rng.normal(size=(2, 800)) + rng.normal(scale=0.1, size=(600, 800))
    fast = explore.pca(anndata.AnnData(X), max_rows=None)
    exact_U, exact_S, exact_Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    signs = np.sign(exact_Vt[[0, 1], np.argmax(np.abs(exact_Vt[:2]), axis=1)])
    expected = exact_U[:, :2] * exact_S[:2] * signs
    np.testing.assert_allclose(fast.coordinates.to_numpy(), expected, rtol=1e-6, atol=1e-6)
    total = (exact_S**2).sum()
    np.testing.assert_allclose(fast.explained_variance_ratio, exact_S[:2] ** 2 / total, rtol=1e-9)
