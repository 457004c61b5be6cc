"""Batch correction in the app (issue 25): the options, the before/after view, its numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.core import explore
from refinewidgets.widgets import DatasetBuilder, ResultsView
from refinewidgets.widgets.results import PANEL_BATCH

BREAST = {"GSE71102": ["ALL"], "SRP091833": ["ALL"]}
#: ComBat across the two experiments, keeping the disease's effect
COMBAT_DISEASE = rw.Dataset(
    BREAST,
    aggregate_by="SPECIES",
    batch_correction="combat",
    batch_covariates=["refinebio_disease"],
)


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", value)).strip()


def test_the_options_choose_combat_with_covariates_and_harmony_without(demo_cat):
    builder = DatasetBuilder(demo_cat)
    builder.restore(rw.Dataset(BREAST, aggregate_by="SPECIES"))
    options = builder.options
    assert options.batch_covariates.layout.display == "none"
    options.batch_correction.value = "combat"
    assert options.batch_covariates.layout.display is None  # covariates are ComBat's
    options.batch_covariates.value = ("refinebio_disease",)
    ds = builder.state.selection.to_dataset()
    assert ds.batch_correction == "combat" and ds.batch_covariates == ["refinebio_disease"]
    assert "batch_covariates=['refinebio_disease']" in ds.to_code()
    options.batch_correction.value = "harmony"  # Harmony keeps no covariate: they are cleared
    ds = builder.state.selection.to_dataset()
    assert ds.batch_correction == "harmony" and ds.batch_covariates is None
    assert options.batch_covariates.layout.display == "none"
    # a dataset set from code (or a link) shows in the controls, unknown covariates included
    builder.restore(
        rw.Dataset(
            BREAST, aggregate_by="SPECIES", batch_correction="combat", batch_covariates=["tissue"]
        )
    )
    assert options.batch_correction.value == "combat"
    assert options.batch_covariates.value == ("tissue",)
    options.batch_correction.value = ""
    assert builder.state.selection.to_dataset().batch_correction is None


def test_combat_panel_shows_before_and_after_with_the_scores(demo_cat):
    ds = COMBAT_DISEASE
    res = rw.build(ds, demo_cat)
    view = ResultsView(demo_cat)
    view.result = res
    assert "batch correction: ComBat by experiment_accession, keeping refinebio_disease" in _text(
        view.summary.value
    )
    assert view.uncorrected is None and view.batch_plot.value == ""  # drawn when opened
    view.plots.selected_index = PANEL_BATCH
    assert view.uncorrected is not None  # built on its own: a small result
    raw = view.uncorrected["HOMO_SAPIENS"]
    assert raw.uns["refinewidgets"].get("batch_correction") is None
    # the numbers shown are those of core.explore on the two builds
    before, after = explore.batch_views(res["HOMO_SAPIENS"], raw)
    text = _text(view.batch_scores.value)
    assert (
        f"Before {before.scores['silhouette']:.2f} {before.scores['variance_explained']:.1%}"
        in text
    )
    assert (
        f"After {after.scores['silhouette']:.2f} {after.scores['variance_explained']:.1%}" in text
    )
    assert before.scores["silhouette"] > 0.5 > 0.1 > after.scores["silhouette"]
    plot = view.batch_plot.value
    assert 'class="rw-plot-img"' in plot and plot.count("<svg") == 1
    assert f"before: silhouette {before.scores['silhouette']:.2f}" in plot  # its aria-label
    assert "experiment_accession" in plot and "GSE71102" in plot  # coloured by the batch
    view.batch_color.value = "refinebio_disease"  # or by any column
    assert "breast cancer" in view.batch_plot.value and "GSE71102" not in view.batch_plot.value


def test_harmony_panel_needs_no_second_build_and_plain_results_say_how(demo_cat, monkeypatch):
    import refinewidgets.widgets.results as results_module

    calls = []
    monkeypatch.setattr(results_module, "build", lambda *a: calls.append(a))
    view = ResultsView(demo_cat)
    view.result = rw.build(
        rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="harmony"), demo_cat
    )
    view.plots.selected_index = PANEL_BATCH
    assert calls == [] and view.uncorrected is None  # its before is obsm["X_pca"]
    before, after = explore.batch_views(view.result["HOMO_SAPIENS"])
    text = _text(view.batch_scores.value)
    assert f"After {after.scores['silhouette']:.2f}" in text
    assert after.scores["silhouette"] < before.scores["silhouette"]
    assert "Harmony 1" in view.batch_plot.value
    view.result = rw.build(rw.Dataset(BREAST, aggregate_by="SPECIES"), demo_cat)
    view.plots.selected_index = PANEL_BATCH
    assert "No batch correction in this group" in view.batch_scores.value
    assert view.batch_plot.value == ""


def test_large_combat_results_wait_for_the_button(demo_cat, monkeypatch):
    import refinewidgets.widgets.results as results_module

    monkeypatch.setattr(results_module, "AUTO_BEFORE_VALUES", 0)
    view = ResultsView(demo_cat)
    view.result = rw.build(
        rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="combat"), demo_cat
    )
    view.plots.selected_index = PANEL_BATCH
    assert view.uncorrected is None and view.batch_button.layout.display is None
    assert "built without ComBat" in view.batch_scores.value
    view.batch_button.click()
    assert view.uncorrected is not None and view.batch_button.layout.display == "none"
    assert "Silhouette" in view.batch_scores.value


def test_uncorrected_and_unnormalized_drop_the_correction():
    ds = rw.Dataset(
        BREAST,
        aggregate_by="SPECIES",
        batch_correction="combat",
        batch_covariates=["refinebio_sex"],
    )
    raw = explore.unnormalized(ds)
    assert raw.batch_correction is None and raw.batch_covariates is None
    assert not raw.quantile_normalize
    assert explore.uncorrected(ds).quantile_normalize  # only the correction is dropped


def test_batch_scores_are_sklearns_silhouette_and_the_between_batch_share():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 12)) + np.r_[[0.0] * 15, [2.0] * 15][:, None]
    labels = ["a"] * 15 + ["b"] * 15
    scores = explore.batch_scores(X, labels, embedding=X)
    assert scores["silhouette"] == pytest.approx(silhouette_score(X[:, :10], labels))
    # variance explained: between-batch sum of squares over the total, by hand
    centred = X - X.mean(axis=0)
    between = 15 * (
        np.square(centred[:15].mean(axis=0)).sum() + np.square(centred[15:].mean(axis=0)).sum()
    )
    assert scores["variance_explained"] == pytest.approx(between / np.square(centred).sum())
    with pytest.raises(rw.DatasetSpecError, match="2 or more batches"):
        explore.batch_scores(X, ["a"] * 30)
