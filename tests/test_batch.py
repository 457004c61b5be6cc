"""Batch correction (issue 25): ComBat against R's sva::ComBat, Harmony, refusals, records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.batch import batch_design, combat
from refinewidgets.core.explore import batch_views, uncorrected
from refinewidgets.core.url_state import dataset_from_query, dataset_query
from refinewidgets.errors import DatasetSpecError

# the demo's breast-cancer experiments, as refine.bio lays them out: a microarray series and an
# RNA-seq project of tumours and normal tissue, with a batch effect between them
BREAST = {"GSE71102": ["ALL"], "SRP091833": ["ALL"]}
#: ComBat across the two experiments, keeping the disease's effect
COMBAT_DISEASE = rw.Dataset(
    BREAST,
    aggregate_by="SPECIES",
    batch_correction="combat",
    batch_covariates=["refinebio_disease"],
)


def _sva_or_skip() -> None:
    """R with Bioconductor's sva (Debian's r-bioc-sva, installed by .ci/run)."""
    message = "R's sva is not installed: apt-get install r-bioc-sva"
    if shutil.which("Rscript") is not None:
        done = subprocess.run(
            ["Rscript", "-e", "suppressMessages(library(sva))"], capture_output=True, text=True
        )
        if done.returncode == 0:
            return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _r_combat(tmp_path, cases):
    """sva::ComBat of each case ``(X, obs, batch_key, covariates)`` in one R session.

    ``X`` is samples x genes with rows named by ``obs.index``; the answers come back as samples
    x genes by accession.
    """
    script = ["suppressMessages(library(sva))"]
    for i, (X, obs, batch_key, covariates) in enumerate(cases):
        genes = [f"G{j}" for j in range(X.shape[1])]
        # the matrix goes in refine.bio's orientation, its columns shuffled: R aligns the
        # metadata rows to the matrix columns by accession
        order = np.random.default_rng(i).permutation(X.shape[0])
        frame = pd.DataFrame(X[order].T, index=genes, columns=obs.index[order])
        frame.to_csv(tmp_path / f"x{i}.tsv", sep="\t", float_format="%.17g", na_rep="NA")
        obs[[batch_key, *covariates]].to_csv(tmp_path / f"obs{i}.tsv", sep="\t")
        terms = "+".join(f"`{c}`" for c in covariates)
        mod = f"model.matrix(~{terms}, data=obs)" if covariates else "NULL"
        script.append(f"""
x <- as.matrix(read.delim('{tmp_path}/x{i}.tsv', row.names=1, check.names=FALSE))
obs <- read.delim('{tmp_path}/obs{i}.tsv', row.names=1, check.names=FALSE)
obs <- obs[colnames(x), , drop=FALSE]
y <- suppressMessages(ComBat(x, obs[['{batch_key}']], mod={mod}))
write.table(trimws(format(y, digits=17)), '{tmp_path}/y{i}.tsv', sep='\\t', quote=FALSE,
            col.names=NA)""")
    done = subprocess.run(["Rscript", "-e", "\n".join(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = []
    for i, (X, obs, _, _) in enumerate(cases):
        y = pd.read_csv(tmp_path / f"y{i}.tsv", sep="\t", index_col=0, na_values=["NA"])
        genes = [f"G{j}" for j in range(X.shape[1])]
        out.append(y.loc[genes, list(obs.index)].to_numpy(dtype=float).T)  # by accession
    return out


@pytest.fixture(scope="module")
def breast(demo_cat):
    """The two experiments aggregated by species, quantile normalized, not corrected."""
    return rw.build(rw.Dataset(BREAST, aggregate_by="SPECIES"), demo_cat)["HOMO_SAPIENS"]


# -- ComBat equals sva::ComBat ------------------------------------------------------------
def test_combat_equals_sva_on_two_real_layout_experiments(breast, tmp_path):
    _sva_or_skip()
    X = np.asarray(breast.X, dtype=float)
    with_nan = X.copy()
    rng = np.random.default_rng(3)
    with_nan[rng.integers(0, X.shape[0], 60), rng.integers(0, X.shape[1], 60)] = np.nan
    key, disease = "experiment_accession", ["refinebio_disease"]
    cases = [(X, breast.obs, key, []), (X, breast.obs, key, disease)]
    cases.append((with_nan, breast.obs, key, disease))  # sva's per-gene fit of missing values
    answers = _r_combat(tmp_path, cases)
    for (values, obs, _, covariates), theirs in zip(cases, answers):
        ours = combat(values, batch_design(obs, key, covariates))
        assert np.array_equal(np.isnan(ours), np.isnan(values))
        assert np.nanmax(np.abs(ours - theirs)) < 1e-4, covariates
        assert np.nanmax(np.abs(ours - values)) > 0.5  # it did correct something
    # one gene is constant within a batch: sva leaves it as it is, and so do we
    ours = combat(X, batch_design(breast.obs, key))
    same = np.all(ours == X, axis=0)
    assert same.sum() == 1 and np.all(answers[0][:, same] == X[:, same])


def test_the_build_corrects_after_qn_before_scaling_and_keeps_the_covariate(demo_cat, breast):
    ds = COMBAT_DISEASE
    res = rw.build(ds, demo_cat)
    a = res["HOMO_SAPIENS"]
    assert list(a.obs_names) == list(breast.obs_names)
    design = batch_design(breast.obs, "experiment_accession", ["refinebio_disease"])
    assert np.allclose(np.asarray(a.X), combat(np.asarray(breast.X), design), atol=1e-12)
    exp = a.obs["experiment_accession"].to_numpy()
    tumour = (a.obs["refinebio_disease"] == "breast cancer").to_numpy()

    def batch_gap(X):
        return np.abs(X[exp == "GSE71102"].mean(axis=0) - X[exp == "SRP091833"].mean(axis=0))

    def disease_gap(X):  # tumour vs normal inside each batch, averaged
        return np.mean(
            [
                X[(exp == e) & tumour].mean(axis=0) - X[(exp == e) & ~tumour].mean(axis=0)
                for e in set(exp)
            ],
            axis=0,
        )

    X0, X1 = np.asarray(breast.X), np.asarray(a.X)
    assert batch_gap(X1).mean() < 0.2 * batch_gap(X0).mean()
    top = np.argsort(-np.abs(disease_gap(X0)))[:50]  # the genes the disease moves most
    kept = disease_gap(X1)[top] / disease_gap(X0)[top]
    assert np.median(kept) > 0.8  # the covariate's effect survives the correction
    # scaling comes after the correction: STANDARD gives mean 0, sd 1 per gene
    scaled = rw.build(
        rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="combat", scale_by="STANDARD"),
        demo_cat,
    )["HOMO_SAPIENS"]
    Xs = np.asarray(scaled.X)
    varying = Xs.std(axis=0) > 0
    assert np.allclose(Xs[:, varying].mean(axis=0), 0, atol=1e-9)
    assert np.allclose(Xs[:, varying].std(axis=0), 1, atol=1e-9)


def test_the_correction_is_recorded_everywhere(demo_cat, tmp_path):
    ds = COMBAT_DISEASE
    res = rw.build(ds, demo_cat)
    ours = res.aggregated_metadata["refinewidgets"]
    info = ours["groups"]["HOMO_SAPIENS"]["batch_correction"]
    assert info["method"] == "combat" and info["batch_key"] == "experiment_accession"
    assert info["batches"] == {"GSE71102": 24, "SRP091833": 20}
    assert info["covariates"] == ["refinebio_disease"]
    assert info["genes_unadjusted"] == 1
    assert ours["dataset"]["batch_correction"] == "combat"
    assert res["HOMO_SAPIENS"].uns["refinewidgets"]["batch_correction"]["method"] == "combat"
    # the spec JSON, the code and the link give the same dataset back
    assert rw.Dataset.from_dict(json.loads(ds.to_json())) == ds
    code = ds.to_code()
    assert "batch_correction='combat'" in code and "batch_covariates=['refinebio_disease']" in code
    scope = {"rw": rw}
    exec(code, scope)
    assert scope["ds"] == ds
    query = urlencode(dataset_query(ds))
    assert "batch_correction=combat" in query and "batch_covariates=refinebio_disease" in query
    assert dataset_from_query(query) == ds
    # the zip records it, and reading the zip back gives the dataset back
    path = res.write_zip(tmp_path / "d.zip")
    back = rw.read_zip(path)
    meta = back.aggregated_metadata["refinewidgets"]
    assert meta["groups"]["HOMO_SAPIENS"]["batch_correction"]["covariates"] == ["refinebio_disease"]
    assert back.dataset == ds


# -- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_correction": "ComBat-seq"}, "`batch_correction` must be one of"),
        ({"batch_covariates": ["refinebio_disease"]}, "kept by ComBat only"),
        (
            {"batch_correction": "harmony", "batch_covariates": ["refinebio_sex"]},
            "kept by ComBat only",
        ),
        (
            {"batch_correction": "combat", "batch_covariates": ["experiment_accession"]},
            "also a covariate",
        ),
        ({"batch_correction": "combat", "batch_key": " "}, "`batch_key` must be"),
    ],
)
def test_bad_batch_options_are_refused_by_the_spec(kwargs, message):
    with pytest.raises(DatasetSpecError, match=message):
        rw.Dataset(BREAST, aggregate_by="SPECIES", **kwargs)


def _build(cat, data=BREAST, **kwargs):
    kwargs.setdefault("aggregate_by", "SPECIES")
    return rw.build(rw.Dataset(data, batch_correction="combat", **kwargs), cat)


def test_one_batch_only_is_refused(demo_cat):
    with pytest.raises(DatasetSpecError, match='aggregate_by="EXPERIMENT".*one batch per group'):
        _build(demo_cat, aggregate_by="EXPERIMENT")
    with pytest.raises(DatasetSpecError, match="'GSE71102', one batch only"):
        _build(demo_cat, {"GSE71102": ["ALL"]})


def test_a_batch_of_one_sample_is_refused_and_named(demo_cat):
    one = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(DatasetSpecError, match=f"single sample: SRP091833 \\({one}\\)"):
        _build(demo_cat, {"GSE71102": ["ALL"], "SRP091833": [one]})


def test_a_covariate_confounded_with_the_batch_is_refused(demo_cat):
    # each experiment has its own platform: the platform cannot be told apart from the batch
    with pytest.raises(DatasetSpecError, match="confounded with the batch 'experiment_accession'"):
        _build(demo_cat, batch_covariates=["refinebio_platform"])


def test_unknown_empty_or_constant_covariates_are_refused(demo_cat):
    with pytest.raises(DatasetSpecError, match="'tissue_type' is not a column"):
        _build(demo_cat, batch_covariates=["tissue_type"])
    with pytest.raises(DatasetSpecError, match="same value for every sample"):
        _build(demo_cat, batch_covariates=["refinebio_sex"])  # every sample is female


def test_combat_on_cells_is_refused_with_the_way_out(demo_cat):
    with pytest.raises(DatasetSpecError, match='use batch_correction="harmony" for cells'):
        rw.build(
            rw.Dataset(
                {"ERP900101": ["ALL"], "ERP900102": ["ALL"]},
                aggregate_by="SPECIES",
                quantile_normalize=False,
                batch_correction="combat",
            ),
            demo_cat,
        )


def test_pseudobulk_samples_are_corrected_as_bulk(demo_cat):
    ds = rw.Dataset(
        {"ERP900101": ["ALL"], "ERP900102": ["ALL"]},
        aggregate_by="SPECIES",
        pseudobulk="sample",
        join="outer",
        batch_correction="combat",
    )
    a = rw.build(ds, demo_cat)["HOMO_SAPIENS"]
    raw = rw.build(uncorrected(ds), demo_cat)["HOMO_SAPIENS"]
    info = a.uns["refinewidgets"]["batch_correction"]
    assert info["batches"] == {"ERP900101": 4, "ERP900102": 3}
    assert not np.allclose(np.asarray(a.X), np.asarray(raw.X), equal_nan=True)
    assert np.array_equal(np.isnan(a.X), np.isnan(raw.X))


# -- Harmony --------------------------------------------------------------------------------
def test_harmony_lowers_the_batch_score_and_leaves_x_alone(demo_cat, breast):
    a = rw.build(rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="harmony"), demo_cat)[
        "HOMO_SAPIENS"
    ]
    assert np.array_equal(np.asarray(a.X), np.asarray(breast.X))  # X untouched
    assert a.obsm["X_pca_harmony"].shape == a.obsm["X_pca"].shape == (44, 43)
    before, after = batch_views(a)
    assert before.scores["silhouette"] > 0.5  # the experiments are apart on the first PCs
    assert after.scores["silhouette"] < 0.5 * before.scores["silhouette"]
    assert after.scores["variance_explained"] < 0.1 * before.scores["variance_explained"]
    assert a.uns["refinewidgets"]["batch_correction"]["method"] == "harmony"


def test_harmony_on_cells_corrects_their_embedding(demo_cat):
    ds = rw.Dataset(
        {"ERP900101": ["ALL"], "ERP900102": ["ALL"]},
        aggregate_by="SPECIES",
        quantile_normalize=False,
        batch_correction="harmony",
    )
    a = rw.build(ds, demo_cat)["HOMO_SAPIENS"]
    assert a.obsm["X_pca_harmony"].shape == (a.n_obs, 50)
    info = a.uns["refinewidgets"]["batch_correction"]
    assert info["batch_key"] == "experiment"
    assert info["batches"] == {"ERP900101": 1500, "ERP900102": 1200}
    before, after = batch_views(a)
    assert after.scores["silhouette"] < before.scores["silhouette"]


def test_combat_before_and_after_scores(demo_cat):
    ds = rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="combat")
    a = rw.build(ds, demo_cat)["HOMO_SAPIENS"]
    raw = rw.build(uncorrected(ds), demo_cat)["HOMO_SAPIENS"]
    before, after = batch_views(a, raw)
    assert [before.label, after.label] == ["before", "after"]
    assert list(after.coordinates.index) == list(a.obs_names)
    assert before.scores["variance_explained"] > 0.25
    assert after.scores["variance_explained"] < 0.01
    assert after.scores["silhouette"] < 0.1 < 0.5 < before.scores["silhouette"]
