"""Numbers behind the result plots: value distributions, PCA, cells per cell type.

Computing never draws (the widgets draw). Every function takes one group of a
:class:`~refinewidgets.core.result.Result` (an AnnData, ``obs`` = samples or cells) and returns
plain numpy / pandas objects.

- :func:`sample_quantiles` and :func:`value_histograms`: the distribution of each sample's
  values, NaNs ignored; compare a built group with the same group built by
  :func:`unnormalized` (no quantile normalization, no scaling) to see what normalization did.
- :func:`pca`: principal components of the samples (numpy SVD of the centred samples x genes
  matrix; genes with a NaN in any sample are dropped), with the explained variance ratios.
- :func:`cells_per_cell_type`: cell counts per cell type (cells, or pseudobulk samples that
  record how many cells they sum).
- :func:`batch_scores` and :func:`batch_views`: how strongly rows group by batch, before and
  after a batch correction: the silhouette of the batch labels on the first principal
  components (scikit-learn's ``silhouette_score``: near 1 when batches form their own
  clusters, near 0 or below when they are mixed) and the fraction of the variance that the
  batch means explain; :func:`uncorrected` is the dataset to build for the "before" of ComBat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError, GeneOverlapError
from .spec import Dataset

__all__ = [
    "PCA",
    "QUANTILES",
    "BatchView",
    "batch_scores",
    "batch_views",
    "cells_per_cell_type",
    "color_columns",
    "color_labels",
    "pca",
    "preview",
    "sample_quantiles",
    "uncorrected",
    "unnormalized",
    "value_histograms",
]

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _dense(X) -> np.ndarray:
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=float)


def _rows(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def sample_quantiles(adata, quantiles: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """Per-sample quantiles of the values (NaNs ignored): one row per sample, one column per
    quantile. An all-NaN sample gets NaNs.

    Examples
    --------
    >>> import anndata
    >>> a = anndata.AnnData(np.array([[1.0, 2.0, 3.0], [10.0, np.nan, 30.0]]))
    >>> sample_quantiles(a, [0.0, 0.5, 1.0]).to_numpy().tolist()
    [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]
    """
    X = _dense(adata.X)
    out = np.full((X.shape[0], len(quantiles)), np.nan)
    has = ~np.isnan(X).all(axis=1)
    if has.any():
        out[has] = np.nanquantile(X[has], list(quantiles), axis=1).T
    return pd.DataFrame(out, index=adata.obs_names.copy(), columns=list(quantiles))


def value_histograms(
    adata, bins: int = 40, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Histogram of each sample's values on shared bins: ``(edges, counts)`` with ``counts``
    one row per sample. ``value_range`` defaults to the finite minimum and maximum.

    Examples
    --------
    >>> import anndata
    >>> edges, counts = value_histograms(anndata.AnnData(np.array([[0.0, 1.0], [1.0, 1.0]])), bins=2)
    >>> edges.tolist(), counts.to_numpy().tolist()
    ([0.0, 0.5, 1.0], [[1, 1], [0, 2]])
    """
    X = _dense(adata.X)
    finite = X[np.isfinite(X)]
    if value_range is None:
        value_range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if value_range[0] == value_range[1]:
        value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    counts = (
        np.stack([np.histogram(row[np.isfinite(row)], bins=edges)[0] for row in X])
        if len(X)
        else np.zeros((0, bins), dtype=int)
    )
    return edges, pd.DataFrame(counts, index=adata.obs_names.copy())


def unnormalized(dataset: Dataset) -> Dataset | None:
    """The same dataset without quantile normalization, scaling, counts normalization or batch
    correction, or None when ``dataset`` already has none of them (its values are the "before").

    Examples
    --------
    >>> ds = Dataset({"GSE1": ["ALL"]}, scale_by="STANDARD")
    >>> raw = unnormalized(ds)
    >>> raw.quantile_normalize, raw.scale_by, unnormalized(raw)
    (False, 'NONE', None)
    """
    if (
        not dataset.quantile_normalize
        and dataset.scale_by == "NONE"
        and dataset.counts_normalization == "NONE"
        and dataset.batch_correction is None
    ):
        return None
    return replace(
        dataset,
        quantile_normalize=False,
        scale_by="NONE",
        counts_normalization="NONE",
        batch_correction=None,
        batch_covariates=None,
    )


@dataclass
class PCA:
    """Principal components of a group's samples (or of a sample of its cells)."""

    #: One row per sample (or cell), columns ``PC1``, ``PC2``...
    coordinates: pd.DataFrame
    #: The fraction of the total variance each component explains.
    explained_variance_ratio: np.ndarray
    #: Genes used (with a value in every sample) and genes dropped (a NaN somewhere).
    n_genes: int
    n_genes_dropped: int


#: Matrices with both sides at most this long get an exact SVD; larger ones a randomized one.
_EXACT_SVD_MAX = 200


def pca(adata, n_components: int = 2, *, max_rows: int | None = 2000, seed: int = 0) -> PCA:
    """PCA of the samples: SVD of the centred samples x genes matrix, NaN genes dropped.

    Only ``n_components`` are computed for large matrices (a seeded randomized SVD).

    Each component's sign makes its largest gene loading positive, so the result does not
    depend on the SVD routine. Groups of more than ``max_rows`` rows (cells) use a seeded
    random subset of that many rows.

    Examples
    --------
    >>> import anndata
    >>> X = np.array([[0.0, 0.0, 1.0], [0.0, 0.1, 1.0], [5.0, 0.0, np.nan], [5.0, 0.1, 2.0]])
    >>> res = pca(anndata.AnnData(X))
    >>> res.coordinates["PC1"].round(2).tolist(), res.n_genes_dropped
    ([-2.5, -2.5, 2.5, 2.5], 1)
    """
    rows = _rows(adata.n_obs, max_rows, seed)
    if len(rows) < 2:
        raise DatasetSpecError(f"A PCA needs at least 2 samples; this group has {adata.n_obs}.")
    X = _dense(adata.X[rows])
    keep = ~np.isnan(X).any(axis=0)
    if not keep.any():
        raise GeneOverlapError(
            f"No gene has a value in all {len(rows)} samples, so there is nothing to compute a PCA on: "
            "build with join='inner' to keep only shared genes."
        )
    Xc = X[:, keep] - X[:, keep].mean(axis=0)
    if min(Xc.shape) > _EXACT_SVD_MAX:
        # only the plotted components: a seeded randomized SVD (Halko et al.), as scanpy's arpack
        # and randomized solvers do; a full SVD of 1,500 x 1,500 costs 30x more for the same plot
        from sklearn.utils.extmath import randomized_svd

        U, S, Vt = randomized_svd(Xc, n_components, random_state=seed)
    else:
        U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    k = max(1, min(n_components, len(S)))
    signs = np.sign(Vt[np.arange(k), np.argmax(np.abs(Vt[:k]), axis=1)])
    signs[signs == 0] = 1
    coords = U[:, :k] * (S[:k] * signs)
    total = float(np.square(Xc).sum())  # the total variance, whatever the solver kept
    ratio = S[:k] ** 2 / total if total > 0 else np.zeros(k)
    frame = pd.DataFrame(
        coords, index=adata.obs_names[rows].copy(), columns=[f"PC{i + 1}" for i in range(k)]
    )
    return PCA(frame, ratio, int(keep.sum()), int((~keep).sum()))


def color_labels(obs: pd.DataFrame, column: str, max_levels: int = 10) -> pd.Series:
    """Labels to colour rows by: ``obs[column]`` as text, empty values as ``"(missing)"``, the
    values beyond the ``max_levels - 1`` most frequent as ``"other"``.

    Examples
    --------
    >>> obs = pd.DataFrame({"sex": ["f", "m", "", "f"]})
    >>> color_labels(obs, "sex").tolist()
    ['f', 'm', '(missing)', 'f']
    """
    if column not in obs.columns:
        raise DatasetSpecError(f"No column {column!r} to colour by; columns: {list(obs.columns)}.")
    labels = (
        obs[column].astype(str).replace({"": "(missing)", "nan": "(missing)", "None": "(missing)"})
    )
    top = labels.value_counts()
    if len(top) > max_levels:
        labels = labels.where(labels.isin(top.index[: max_levels - 1]), "other")
    return labels


def color_columns(obs: pd.DataFrame, max_levels: int = 30) -> list[str]:
    """Columns worth colouring by: the experiment and the cell type first when they vary, then
    every column with 2 to ``max_levels`` distinct values, then the experiment and cell type
    when they do not vary (a one-experiment PCA coloured by its one experiment is one colour).

    Examples
    --------
    >>> obs = pd.DataFrame({"experiment_accession": ["E1", "E2"], "sex": ["f", "f"], "age": [1, 2]})
    >>> color_columns(obs)
    ['experiment_accession', 'age']
    >>> color_columns(obs.assign(experiment_accession="E1"))
    ['age', 'experiment_accession']
    """
    first = [
        c for c in ("experiment_accession", "cell_type", "pseudobulk_cell_type") if c in obs.columns
    ]
    levels = {c: obs[c].astype(str).nunique() for c in obs.columns}
    varying = [c for c in first if levels[c] >= 2]
    out = varying + [str(c) for c in obs.columns if c not in first and 2 <= levels[c] <= max_levels]
    return out + [c for c in first if c not in varying]


def cells_per_cell_type(adata) -> pd.Series:
    """Cells per cell type, most frequent first (empty when the group records no cell type).

    Works for a group of cells (``obs["cell_type"]``) and for pseudobulk samples per cell type
    (``obs["pseudobulk_cell_type"]`` weighted by ``obs["pseudobulk_n_cells"]``).

    Examples
    --------
    >>> import anndata
    >>> a = anndata.AnnData(np.zeros((3, 1)), obs=pd.DataFrame({"cell_type": ["B", "T", "B"]}, index=["a", "b", "c"]))
    >>> cells_per_cell_type(a).to_dict()
    {'B': 2, 'T': 1}
    """
    obs = adata.obs
    if "cell_type" in obs.columns:
        counts = obs["cell_type"].astype(str).value_counts()
    elif "pseudobulk_cell_type" in obs.columns and "pseudobulk_n_cells" in obs.columns:
        n = pd.to_numeric(obs["pseudobulk_n_cells"], errors="coerce").fillna(0).astype(int)
        counts = n.groupby(obs["pseudobulk_cell_type"].astype(str).to_numpy()).sum()
    else:
        return pd.Series(dtype=int, name="cells")
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return counts.rename("cells").rename_axis("cell_type")


def preview(adata, n_genes: int = 8, n_samples: int = 6) -> pd.DataFrame:
    """The first genes x samples of a group, in refine.bio's orientation (genes as rows), with
    the genes' symbols first when the group has them (``var["gene_symbol"]``).

    Examples
    --------
    >>> import anndata
    >>> preview(anndata.AnnData(np.arange(6.0).reshape(2, 3)), n_genes=2).shape
    (2, 2)
    >>> a = anndata.AnnData(np.ones((2, 2)), var=pd.DataFrame({"gene_symbol": ["TP53", ""]},
    ...                     index=["ENSG00000141510", "G2"]))
    >>> preview(a)["Symbol"].tolist()
    ['TP53', '']
    """
    part = adata[:n_samples, :n_genes]
    frame = pd.DataFrame(
        _dense(part.X).T, index=part.var_names.copy(), columns=part.obs_names.copy()
    )
    if "gene_symbol" in part.var.columns:
        frame.insert(0, "Symbol", part.var["gene_symbol"].astype(str).to_numpy())
    frame.index.name = "Gene"
    return frame


#: Principal components the batch silhouette is computed on.
BATCH_PCS = 10


def uncorrected(dataset: Dataset) -> Dataset | None:
    """The same dataset without batch correction (what ComBat started from), or None when it
    has no ComBat (Harmony keeps its "before" in ``obsm["X_pca"]``).

    Examples
    --------
    >>> ds = Dataset({"GSE1": ["ALL"]}, aggregate_by="ALL", batch_correction="combat")
    >>> uncorrected(ds).batch_correction, uncorrected(uncorrected(ds))
    (None, None)
    """
    if dataset.batch_correction != "combat":
        return None
    return replace(dataset, batch_correction=None, batch_covariates=None)


def batch_scores(
    values: np.ndarray, labels: Sequence[str], embedding: np.ndarray | None = None
) -> dict[str, float]:
    """How much rows group by batch: ``silhouette`` and ``variance_explained``.

    ``silhouette`` is scikit-learn's silhouette score of ``labels`` on the first
    :data:`BATCH_PCS` columns of ``embedding`` (a PCA; computed from ``values`` when None; up to
    5,000 rows, a seeded subset beyond). ``variance_explained`` is the share of the total
    variance of ``values`` (columns with a NaN left out) that the batch means explain: the
    between-batch sum of squares over the total.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 30)) + np.r_[[0.0] * 10, [5.0] * 10][:, None]
    >>> s = batch_scores(X, ["a"] * 10 + ["b"] * 10)
    >>> bool(s["silhouette"] > 0.5), bool(s["variance_explained"] > 0.8)
    (True, True)
    """
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels, dtype=str)
    X = _dense(values)
    X = X[:, ~np.isnan(X).any(axis=0)]
    centred = X - X.mean(axis=0)
    total = float(np.square(centred).sum())
    between = 0.0
    for b in np.unique(labels):
        rows = labels == b
        between += rows.sum() * float(np.square(centred[rows].mean(axis=0)).sum())
    if embedding is None:
        embedding = pca(_Plain(X), n_components=BATCH_PCS, max_rows=None).coordinates.to_numpy()
    emb = np.asarray(embedding, dtype=float)[:, :BATCH_PCS]
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels < len(labels):
        raise DatasetSpecError(
            f"A batch score needs 2 or more batches and fewer batches than rows; got {n_labels} "
            f"batch(es) for {len(labels)} row(s)."
        )
    silhouette = silhouette_score(emb, labels, sample_size=min(5000, len(labels)), random_state=0)
    return {
        "silhouette": float(silhouette),
        "variance_explained": float(between / total) if total > 0 else 0.0,
    }


class _Plain:
    """The bits of an AnnData :func:`pca` reads, over a bare matrix."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self.n_obs = X.shape[0]
        self.obs_names = pd.Index([str(i) for i in range(X.shape[0])])


@dataclass
class BatchView:
    """One side of the before/after view: the PCA coordinates and the batch scores."""

    #: ``"before"`` or ``"after"``.
    label: str
    #: One row per sample (or cell), columns ``PC1``, ``PC2``; indexed like ``obs``.
    coordinates: pd.DataFrame
    #: :func:`batch_scores` of this side.
    scores: dict[str, float]
    #: What the coordinates are (e.g. ``"PCA of the values"``, ``"Harmony embedding"``).
    what: str


def batch_views(adata, before=None, *, batch_key: str | None = None) -> list[BatchView]:
    """The before and after of a group's batch correction, as PCA coordinates and scores.

    For Harmony, both sides come from ``adata.obsm`` (``X_pca``, ``X_pca_harmony``; the
    variance share is of the embeddings). For ComBat, ``before`` is the same group built
    without correction (:func:`uncorrected`); the sides are PCAs of the values. ``batch_key``
    defaults to the one the build recorded.

    Examples
    --------
    >>> import anndata
    >>> rng = np.random.default_rng(0)
    >>> a = anndata.AnnData(rng.normal(size=(8, 5)),
    ...                     obs=pd.DataFrame({"b": list("aaaabbbb")}, index=list("ABCDEFGH")))
    >>> a.obsm["X_pca"] = a.X + np.r_[[0.0] * 4, [9.0] * 4][:, None]
    >>> a.obsm["X_pca_harmony"] = a.X
    >>> [round(v.scores["silhouette"], 1) > 0.5 for v in batch_views(a, batch_key="b")]
    [True, False]
    """
    info = adata.uns.get("refinewidgets", {}).get("batch_correction", {})
    batch_key = batch_key or info.get("batch_key") or "experiment_accession"
    labels = adata.obs[batch_key].astype(str).to_numpy()
    if "X_pca_harmony" in adata.obsm and before is None:
        views = []
        for label, name, what in (
            ("before", "X_pca", "PCA"),
            ("after", "X_pca_harmony", "Harmony embedding"),
        ):
            emb = np.asarray(adata.obsm[name], dtype=float)
            coords = pd.DataFrame(emb[:, :2], index=adata.obs_names.copy(), columns=["PC1", "PC2"])
            views.append(BatchView(label, coords, batch_scores(emb, labels, emb), what))
        return views
    if before is None:
        raise DatasetSpecError(
            "No batch correction to show: pass the group built without it (before=...), or "
            'build with batch_correction="harmony".'
        )
    views = []
    for label, group in (("before", before), ("after", adata)):
        group = group[adata.obs_names]  # the same samples, aligned by accession
        p = pca(group, n_components=BATCH_PCS, max_rows=None)
        scores = batch_scores(group.X, labels, p.coordinates.to_numpy())
        views.append(BatchView(label, p.coordinates.iloc[:, :2], scores, "PCA of the values"))
    return views
