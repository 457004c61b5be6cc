"""Batch correction in the app, in a real browser: a linked ComBat dataset builds, the "Batch
correction" panel shows the PCA before and after side by side with the batch scores the core
computes, colours by any column, and the group downloads as AnnData (.h5ad), read back by
anndata. Expected values come from the core API on the same data; waits are on selectors."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import numpy as np
import pytest

import refinewidgets as rw
from refinewidgets.core import explore
from refinewidgets.core.url_state import dataset_query

from .test_app import open_app, tab
from .test_app_flows import build_and_wait

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DATASET = rw.Dataset(
    {"GSE71102": ["ALL"], "SRP091833": ["ALL"]},
    aggregate_by="SPECIES",
    batch_correction="combat",
    batch_covariates=["refinebio_disease"],
)


def test_combat_before_after_view_and_h5ad_download(page, voila_url, tmp_path):
    import anndata

    demo = rw.open_catalog()
    expected = rw.build(DATASET, demo)["HOMO_SAPIENS"]
    raw = rw.build(explore.uncorrected(DATASET), demo)["HOMO_SAPIENS"]
    before, after = explore.batch_views(expected, raw)

    open_app(page, f"{voila_url}&{urlencode(dataset_query(DATASET))}")
    # the link's options show in the controls
    tab(page, "My dataset")
    expect(page.locator(".rw-batch-correction select")).to_have_value(
        "ComBat (adjusts the values)"
    )  # ipywidgets: labels
    covariates = page.locator(".rw-batch-covariates select")
    assert covariates.evaluate("s => [...s.selectedOptions].map(o => o.value)") == [
        "refinebio_disease"
    ]
    build_and_wait(page)
    expect(page.locator(".rw-result-summary")).to_contain_text(
        "batch correction: ComBat by experiment_accession, keeping refinebio_disease"
    )

    page.locator(".rw-plots .jupyter-widget-Collapse-header", has_text="Batch correction").click()
    plot = page.locator(".rw-plot-batch .rw-plot-img")
    plot.wait_for()
    scores = page.locator(".rw-batch-scores table")
    rows = scores.locator("tr").all_inner_texts()
    cells = [re.split(r"\s+", r.strip()) for r in rows[1:]]  # the caption row is its own
    cells = [c for c in cells if c[0] in ("Before", "After")]
    assert cells == [
        [
            "Before",
            f"{before.scores['silhouette']:.2f}",
            f"{before.scores['variance_explained']:.1%}",
        ],
        ["After", f"{after.scores['silhouette']:.2f}", f"{after.scores['variance_explained']:.1%}"],
    ]
    label = plot.get_attribute("aria-label")
    assert f"before: silhouette {before.scores['silhouette']:.2f}" in label
    assert f"after: silhouette {after.scores['silhouette']:.2f}" in label
    assert plot.locator("svg").count() == 1
    expect(plot).to_contain_text("GSE71102")  # the legend: coloured by the batch
    page.locator(".rw-batch-color select").select_option("refinebio_disease")
    expect(plot).to_contain_text("breast cancer")
    expect(plot).not_to_contain_text("GSE71102")

    # "AnnData (.h5ad)" beside the zip: the download is the group, read back by anndata
    page.locator(".rw-save-format select").select_option(label="AnnData (.h5ad) of HOMO_SAPIENS")
    anchor = page.locator(".rw-download a.rw-download-link", has_text="HOMO_SAPIENS.h5ad")
    with page.expect_download() as info:
        anchor.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == "HOMO_SAPIENS.h5ad"
    back = anndata.read_h5ad(path)
    assert list(back.obs_names) == list(expected.obs_names)
    assert list(back.var_names) == list(expected.var_names)
    assert np.allclose(back.X, expected.X, atol=1e-12)
    assert back.uns["refinewidgets"]["batch_correction"]["covariates"] == ["refinebio_disease"]
