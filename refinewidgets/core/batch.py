"""Batch correction: ComBat on a group's values, Harmony on its PCA embedding.

ComBat is the parametric empirical Bayes location/scale adjustment of Johnson, Li and Rabinovic
(Biostatistics 8:118, 2007) as Bioconductor's ``sva::ComBat`` computes it (``par.prior=TRUE``,
``mean.only=FALSE``, no reference batch): a per-gene linear model of batch indicators and
covariates, data standardized by the pooled variance, per-batch location and scale estimates
shrunk towards priors fitted across genes (normal for the location, inverse gamma for the
scale), iterated to convergence (relative change below 1e-4), then removed. As in sva, a gene
with no variance within one batch is left as it is, and missing values are handled gene by gene
(least squares on the values present; the pooled variance then has n - 1 in its denominator, as
sva's ``rowVars``). Where sva quietly switches to the mean-only model (a batch of one sample)
we refuse instead: one sample gives no variance to adjust.

Why not scanpy's ``pp.combat`` (measured by ``benchmarks/bench_batch.py`` on the demo's two
breast-cancer experiments, quantile-normalized): without covariates it is within 4.5e-5 of
``sva::ComBat`` once the one gene constant within a batch is left out, but with that gene (sva
leaves it as it is) it divides by its zero variance and the priors shift every gene by up to
1.3e-3; with a categorical covariate it fails (a singular matrix); and it takes no missing
values (an outer join has them). This module is within 1e-14 of sva on those inputs, and
within 1e-4 with missing values (``tests/test_batch.py``).

Covariates are columns of the samples' metadata whose effect must be kept: a text column
becomes indicator columns (its first level, in sorted order, the baseline, as R's
``model.matrix``), a numeric column is used as it is.

Harmony (Korsunsky et al., Nature Methods 16:1289, 2019) corrects a PCA embedding, not the
values; :func:`harmony_embedding` runs the ``harmonypy`` package on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError
from .spec import BATCH_CORRECTION

__all__ = [
    "BATCH_CORRECTION",
    "BatchDesign",
    "batch_design",
    "combat",
    "harmony_embedding",
    "pca_embedding",
    "unadjustable_genes",
]

#: sva's convergence threshold of the iterative EB solution (``it.sol``'s ``conv``).
_CONVERGENCE = 1e-4


@dataclass(frozen=True)
class BatchDesign:
    """The model ComBat fits: one indicator column per batch, then the covariates' columns.

    ``samples`` names the rows (in the order of the values), ``batches`` the batch of each row,
    ``levels`` the batches in column order and ``columns`` every column's name.
    """

    samples: list[str]
    batches: np.ndarray
    levels: list[str]
    matrix: np.ndarray
    columns: list[str]

    @property
    def n_batch(self) -> int:
        return len(self.levels)


def _labels(obs: pd.DataFrame, column: str, what: str) -> pd.Series:
    if column not in obs.columns:
        raise DatasetSpecError(
            f"The {what} {column!r} is not a column of the samples' metadata; choose one of "
            f"{sorted(map(str, obs.columns))[:20]}."
        )
    return obs[column]


def _missing(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.isna().to_numpy()
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def batch_design(
    obs: pd.DataFrame, batch_key: str, covariates: Sequence[str] = (), *, group: str = ""
) -> BatchDesign:
    """The design of a batch correction, with refusals for what cannot be corrected.

    Parameters
    ----------
    obs
        The samples' metadata, one row per sample, indexed by accession.
    batch_key
        The column naming each sample's batch (e.g. ``experiment_accession``).
    covariates
        Columns whose effect is kept (e.g. ``refinebio_disease``).
    group
        The group's key, named in the messages.

    Returns
    -------
    A :class:`BatchDesign`.

    Raises
    ------
    DatasetSpecError
        A column is unknown or has empty values, there is one batch only, a batch has one
        sample, a covariate has one value, or a covariate is confounded with the batch.

    Examples
    --------
    >>> obs = pd.DataFrame({"experiment_accession": ["E1", "E1", "E2", "E2"],
    ...                     "refinebio_disease": ["tumor", "normal", "tumor", "normal"]},
    ...                    index=["S1", "S2", "S3", "S4"])
    >>> d = batch_design(obs, "experiment_accession", ["refinebio_disease"])
    >>> d.levels, d.columns
    (['E1', 'E2'], ['E1', 'E2', 'refinebio_disease[tumor]'])
    """
    where = f" in group {group}" if group else ""
    batches, levels = _batches(obs, batch_key, where)
    columns = list(levels)
    parts = [(batches[:, None] == np.array(levels)[None, :]).astype(float)]
    for name in dict.fromkeys(covariates):
        col, names = _covariate_columns(obs, name, batch_key, where)
        parts.append(col)
        columns += names
    matrix = np.hstack(parts)
    _check_full_rank(matrix, len(levels), batches, obs, batch_key, covariates, where)
    return BatchDesign([str(s) for s in obs.index], batches, levels, matrix, columns)


def _batches(obs: pd.DataFrame, batch_key: str, where: str) -> tuple[np.ndarray, list[str]]:
    """Each sample's batch and the sorted batches; refuses a sample without one, a single
    batch, and a batch of one sample."""
    labels = _labels(obs, batch_key, "batch key")
    empty = obs.index[_missing(labels)].tolist()
    if empty:
        raise DatasetSpecError(
            f"Batch correction{where}: {len(empty)} sample(s) have no {batch_key!r}: "
            f"{', '.join(map(str, empty[:10]))}. Choose a batch key every sample has."
        )
    batches = labels.astype(str).to_numpy()
    levels = sorted(set(batches))
    if len(levels) < 2:
        raise DatasetSpecError(
            f"Batch correction{where}: every sample has {batch_key} = {levels[0]!r}, one batch "
            "only, so there is nothing to correct. Combine experiments in one group "
            '(aggregate_by="SPECIES" or "ALL") or choose another batch key.'
        )
    sizes = pd.Series(batches).value_counts()
    single = sorted(sizes.index[sizes < 2])
    if single:
        lone = [f"{b} ({obs.index[batches == b][0]})" for b in single]
        raise DatasetSpecError(
            f"Batch correction{where}: batch(es) with a single sample: {', '.join(lone)}. One "
            "sample has no variance to adjust: add samples to that batch or leave it out."
        )
    return batches, levels


def _covariate_columns(
    obs: pd.DataFrame, name: str, batch_key: str, where: str
) -> tuple[np.ndarray, list[str]]:
    """A covariate's design columns and their names: a numeric covariate as is, a categorical
    one as indicators of its levels but the first; refuses the batch key, empty values and a
    constant covariate."""
    if name == batch_key:
        raise DatasetSpecError(
            f"The covariate {name!r} is the batch key itself: a covariate's effect is kept, "
            "the batch's removed. Remove it from batch_covariates."
        )
    values = _labels(obs, name, "covariate")
    empty = obs.index[_missing(values)].tolist()
    if empty:
        raise DatasetSpecError(
            f"Batch correction{where}: the covariate {name!r} is empty for {len(empty)} "
            f"sample(s): {', '.join(map(str, empty[:10]))}. Leave those samples out or "
            "choose another covariate."
        )
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        col = values.to_numpy(dtype=float)[:, None]
        names = [name]
        constant = np.ptp(col) == 0
    else:
        text = values.astype(str).to_numpy()
        cov_levels = sorted(set(text))
        col = (text[:, None] == np.array(cov_levels[1:])[None, :]).astype(float)
        names = [f"{name}[{lv}]" for lv in cov_levels[1:]]
        constant = len(cov_levels) < 2
    if constant:
        raise DatasetSpecError(
            f"Batch correction{where}: the covariate {name!r} has the same value for every "
            "sample, so there is no effect to keep. Remove it from batch_covariates."
        )
    return col, names


def _check_full_rank(matrix, n_batch, batches, obs, batch_key, covariates, where) -> None:
    """Refuse a design whose covariates are confounded with each other or with the batch."""
    if np.linalg.matrix_rank(matrix) >= matrix.shape[1]:
        return
    cov_only = matrix[:, n_batch:]
    if len(covariates) > 1 and np.linalg.matrix_rank(cov_only) < cov_only.shape[1]:
        raise DatasetSpecError(
            f"Batch correction{where}: the covariates {list(covariates)} are confounded with "
            "each other (one is determined by the others). Remove one of them."
        )
    raise DatasetSpecError(
        f"Batch correction{where}: the covariate(s) {list(covariates)} are confounded with "
        f"the batch {batch_key!r}: {_confounding(batches, obs, covariates)}. Their effect "
        "cannot be told apart from the batch's; remove them from batch_covariates, or add "
        "samples that break the confounding."
    )


def _confounding(batches: np.ndarray, obs: pd.DataFrame, covariates: Sequence[str]) -> str:
    """Each batch's values of the covariates, to show why they are confounded."""
    parts = []
    for b in sorted(set(batches)):
        rows = obs.loc[batches == b, list(covariates)]
        values = sorted({", ".join(map(str, r)) for r in rows.itertuples(index=False)})
        parts.append(f"{b}: {'; '.join(values[:3])}{' ...' if len(values) > 3 else ''}")
    return " | ".join(parts)


def _solve(design: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (columns of ``design``) x genes for the columns of ``Y``.

    Genes with missing values are fitted on the samples they have (sva's ``Beta.NA``).
    """
    missing = np.isnan(Y)
    if not missing.any():
        return np.linalg.solve(design.T @ design, design.T @ Y)
    B = np.empty((design.shape[1], Y.shape[1]))
    for j in range(Y.shape[1]):
        keep = ~missing[:, j]
        d = design[keep]
        B[:, j] = np.linalg.solve(d.T @ d, d.T @ Y[keep, j])
    return B


def _it_sol(sdat, g_hat, d_hat, g_bar, t2, a, b):
    """sva's ``it.sol``: the posterior location and scale of one batch, iterated to convergence."""
    n = (~np.isnan(sdat)).sum(axis=0)
    g_old, d_old = g_hat, d_hat
    change = 1.0
    while change > _CONVERGENCE:
        g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
        sum2 = np.nansum((sdat - g_new[None, :]) ** 2, axis=0)
        d_new = (0.5 * sum2 + b) / (n / 2 + a - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.nanmax(
                np.concatenate([np.abs(g_new - g_old) / g_old, np.abs(d_new - d_old) / d_old])
            )
        g_old, d_old = g_new, d_new
    return g_new, d_new


def unadjustable_genes(X: np.ndarray, design: BatchDesign) -> np.ndarray:
    """Which genes ComBat leaves as they are.

    As sva: genes with no variance within some batch (a batch with a missing value does not
    count as without variance: sva's variance is then NA). Where sva fails (an error, or NaN
    for every gene): genes with fewer than 2 values in some batch, and genes whose present
    values cannot separate the design's columns (e.g. every value of one covariate level
    missing), both of which only happen with missing values (an outer join).

    Examples
    --------
    >>> obs = pd.DataFrame({"b": ["x", "x", "y", "y"]})
    >>> X = np.array([[1.0, 1, 1], [1, 2, np.nan], [3, 5, 2], [4, 6, 3]])
    >>> unadjustable_genes(X, batch_design(obs, "b"))
    array([ True, False,  True])
    """
    X = np.asarray(X, dtype=float)
    missing = np.isnan(X)
    out = np.zeros(X.shape[1], dtype=bool)
    for b in design.levels:
        rows = design.batches == b
        part = X[rows]
        out |= part.max(axis=0) == part.min(axis=0)  # NaN compares unequal
        out |= (~missing[rows]).sum(axis=0) < 2
    gaps = np.flatnonzero(missing.any(axis=0) & ~out)
    if gaps.size:
        patterns, inverse = np.unique(missing[:, gaps].T, axis=0, return_inverse=True)
        for i, pattern in enumerate(patterns):
            d = design.matrix[~pattern]
            if np.linalg.matrix_rank(d) < d.shape[1]:
                out[gaps[inverse.ravel() == i]] = True
    return out


def combat(X: np.ndarray, design: BatchDesign) -> np.ndarray:
    """ComBat-adjusted values: batch effects removed, covariate effects kept (``sva::ComBat``).

    Parameters
    ----------
    X
        Samples x genes values (log scale), rows in ``design.samples`` order; NaN for missing.
    design
        From :func:`batch_design`.

    Returns
    -------
    A new samples x genes array; genes with no variance within a batch are unchanged, missing
    values stay missing.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"batch": ["a"] * 4 + ["b"] * 4}, index=[f"S{i}" for i in range(8)])
    >>> X = rng.normal(size=(8, 50)) + np.r_[[0.0] * 4, [3.0] * 4][:, None]
    >>> Y = combat(X, batch_design(obs, "batch"))
    >>> bool(abs(Y[:4].mean() - Y[4:].mean()) < 0.2), bool(abs(X[:4].mean() - X[4:].mean()) > 2)
    (True, True)
    """
    X = np.asarray(X, dtype=float)
    if X.shape[0] != len(design.samples):
        raise ValueError(
            f"{X.shape[0]} rows of values for a design of {len(design.samples)} samples."
        )
    out = X.copy()
    batch_rows = [np.flatnonzero(design.batches == b) for b in design.levels]
    keep = np.flatnonzero(~unadjustable_genes(X, design))  # as sva: left as they are
    if keep.size == 0:
        return out
    dat = X[:, keep]
    D = design.matrix
    n_batch, n_array = design.n_batch, X.shape[0]
    n_batches = np.array([len(r) for r in batch_rows], dtype=float)
    nas = bool(np.isnan(dat).any())
    B_hat = _solve(D, dat)
    grand_mean = (n_batches / n_array) @ B_hat[:n_batch]
    resid = dat - D @ B_hat
    var_pooled = np.nanvar(resid, axis=0, ddof=1) if nas else (resid**2).mean(axis=0)
    covariate_part = D.copy()
    covariate_part[:, :n_batch] = 0
    stand_mean = grand_mean[None, :] + covariate_part @ B_hat
    s_data = (dat - stand_mean) / np.sqrt(var_pooled)[None, :]
    batch_design_ = D[:, :n_batch]
    gamma_hat = _solve(batch_design_, s_data)
    delta_hat = np.vstack([np.nanvar(s_data[rows], axis=0, ddof=1) for rows in batch_rows])
    gamma_bar = gamma_hat.mean(axis=1)
    t2 = gamma_hat.var(axis=1, ddof=1)
    m, s2 = delta_hat.mean(axis=1), delta_hat.var(axis=1, ddof=1)
    a_prior = (2 * s2 + m**2) / s2
    b_prior = (m * s2 + m**3) / s2
    adjusted = s_data.copy()
    for i, rows in enumerate(batch_rows):
        g_star, d_star = _it_sol(
            s_data[rows], gamma_hat[i], delta_hat[i], gamma_bar[i], t2[i], a_prior[i], b_prior[i]
        )
        adjusted[rows] = (s_data[rows] - g_star[None, :]) / np.sqrt(d_star)[None, :]
    out[:, keep] = adjusted * np.sqrt(var_pooled)[None, :] + stand_mean
    return out


def pca_embedding(X: np.ndarray, n_comps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The PCA embedding of samples x genes values and each component's share of the variance.

    Genes with a missing value are left out (PCA needs complete columns), as are constant ones.
    ``n_comps`` is capped at ``min(n_samples, n_genes) - 1``. A sparse matrix (cells) stays
    sparse (ARPACK, centering implicit).

    Examples
    --------
    >>> emb, ratio = pca_embedding(np.random.default_rng(0).normal(size=(10, 30)), n_comps=3)
    >>> emb.shape, bool(ratio[0] >= ratio[1] >= ratio[2])
    ((10, 3), True)
    """
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        cols = (
            np.asarray(X.max(axis=0).todense()).ravel()
            > np.asarray(X.min(axis=0).todense()).ravel()
        )
        solver = "arpack"
    else:
        X = np.asarray(X, dtype=float)
        with np.errstate(invalid="ignore"):
            cols = X.max(axis=0) > X.min(axis=0)  # False for a column with NaN
        solver = "full"
    values = X[:, cols]
    k = min(n_comps, values.shape[0] - 1, values.shape[1] - 1)
    if k < 1:
        raise DatasetSpecError(
            f"A PCA needs at least 2 samples and 2 varying genes without missing values; these "
            f"values have {values.shape[0]} sample(s) and {values.shape[1]} such gene(s)."
        )
    pca = PCA(n_components=k, svd_solver=solver, random_state=0)
    return pca.fit_transform(values), pca.explained_variance_ratio_


def harmony_embedding(
    embedding: np.ndarray, obs: pd.DataFrame, batch_key: str, *, seed: int = 0, **kwargs: Any
) -> np.ndarray:
    """Harmony's correction of a PCA embedding (samples or cells x components).

    Runs the ``harmonypy`` package (``pip install harmonypy``) with its defaults and ``seed``;
    ``kwargs`` go to ``harmonypy.run_harmony``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(40, 5)) + np.r_[[0.0] * 20, [4.0] * 20][:, None]
    >>> obs = pd.DataFrame({"batch": ["a"] * 20 + ["b"] * 20})
    >>> harmony_embedding(emb, obs, "batch").shape
    (40, 5)
    """
    try:
        import harmonypy
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            'batch_correction="harmony" needs the harmonypy package: pip install '
            '"refinewidgets[batch]" (or pip install harmonypy).'
        ) from exc
    labels = _labels(obs, batch_key, "batch key")
    meta = pd.DataFrame({"batch": labels.astype(str).to_numpy()})
    emb = np.asarray(embedding, dtype=float)
    # components x rows: harmonypy takes that orientation first, so a square input is not
    # mistaken; it returns rows x components (older releases the transpose)
    ho = harmonypy.run_harmony(
        np.ascontiguousarray(emb.T), meta, ["batch"], random_state=seed, verbose=False, **kwargs
    )
    Z = np.asarray(ho.Z_corr)
    return Z if Z.shape == emb.shape else Z.T
