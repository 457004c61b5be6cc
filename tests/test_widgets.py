"""The parts of the app, driven without a browser: trait assignment and ``.click()``."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.testing import synthetic_listing
from refinewidgets.widgets import DatasetCartView, ExperimentBrowser, OptionsPanel, SamplePicker


def _facet_counts(box) -> dict[str, int]:
    return {
        value: int(re.search(r"\(([\d,]+)\)$", label).group(1).replace(",", ""))
        for label, value in box.options
    }


def _matching(exps: pd.DataFrame, word: str) -> list[str]:
    hay = (exps.index.to_series() + " " + exps["title"] + " " + exps["description"]).str.lower()
    return exps.index[hay.str.contains(word)].tolist()


SAMPLE_TEXT = [
    "refinebio_title",
    "refinebio_cell_line",
    "refinebio_organism",
    "refinebio_platform",
    "refinebio_disease",
    "refinebio_specimen_part",
    "tissues",
    "cell_types",
]


def _best_first(exps: pd.DataFrame, samples: pd.DataFrame, keys: list[str], word: str) -> list:
    """``keys`` ranked the plain pandas way: most samples holding ``word`` (in their text or
    their experiment's), then a title holding it, then table order."""
    owner = samples["experiment_accession"]
    hay = (
        samples.index.to_series()
        + " | "
        + owner
        + " | "
        + owner.map(exps["title"]).fillna("")
        + " | "
        + owner.map(exps["description"]).fillna("")
    ).str.lower()
    for c in SAMPLE_TEXT:
        if c in samples:
            hay = hay + " | " + samples[c].fillna("").astype(str).str.lower()
    hits = samples.loc[hay.str.contains(word, regex=False), "experiment_accession"]
    counts = hits.value_counts()
    position = {e: i for i, e in enumerate(exps.index)}
    titled = exps["title"].str.lower().str.contains(word, regex=False)
    return sorted(keys, key=lambda e: (-counts.get(e, 0), not titled[e], position[e]))


# -- experiment browser ------------------------------------------------------------------------
def test_search_narrows_the_table_to_the_matching_experiments(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    assert browser.total == len(demo_cat.experiments)
    browser.search.value = "Breast"
    expected = _matching(demo_cat.experiments, "breast")
    assert browser.text == "Breast"
    assert sorted(browser.table.row_keys) == sorted(expected) and browser.total == len(expected)
    # ranked: most matching samples first
    ranked = _best_first(demo_cat.experiments, demo_cat.samples, expected, "breast")
    assert browser.table.row_keys == ranked
    assert browser.table.page_label.value == f"Page 1 of 1 ({len(expected)} rows)"
    browser.search.value = "no such experiment"
    assert browser.table.row_keys == [] and browser.total == 0


def test_facet_lists_count_like_pandas_and_filter(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    exps = demo_cat.experiments
    browser.search.value = "lung"
    hits = exps.loc[_matching(exps, "lung")]
    assert (
        _facet_counts(browser.facets["technology"]) == hits["technology"].value_counts().to_dict()
    )
    assert _facet_counts(browser.facets["organism"]) == hits["organisms"].value_counts().to_dict()
    browser.facets["organism"].value = ("HOMO_SAPIENS",)  # as a click in the list
    assert browser.filters == {"organism": ["HOMO_SAPIENS"]}
    human = hits[hits["organisms"] == "HOMO_SAPIENS"]
    assert browser.table.row_keys == _best_first(
        exps, demo_cat.samples, human.index.tolist(), "lung"
    )
    assert _facet_counts(browser.facets["platform"]) == human["platforms"].value_counts().to_dict()
    # a facet's own counts ignore its own choice, so the other organism stays listed
    assert _facet_counts(browser.facets["organism"]) == hits["organisms"].value_counts().to_dict()
    assert browser.facets["organism"].value == ("HOMO_SAPIENS",)


def test_paging_and_sorting(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    exps = demo_cat.experiments
    browser.table.page_size_box.value = 10
    assert browser.table.row_keys == exps.index[:10].tolist()
    assert browser.table.prev.disabled and not browser.table.next.disabled
    browser.table.next.click()
    assert browser.table.row_keys == exps.index[10:].tolist()
    assert browser.table.next.disabled and browser.table.page_label.value.startswith("Page 2 of 2")
    browser.table.sort.value = "num_samples"  # sorting goes back to the first page
    assert browser.table.page == 0
    assert (
        browser.table.row_keys == exps.sort_values("num_samples", kind="stable").index[:10].tolist()
    )
    browser.table.direction.click()
    assert browser.table.ascending is False
    expected = exps.sort_values("num_samples", ascending=False, kind="stable").index[:10].tolist()
    assert browser.table.row_keys == expected
    assert "Samples ▼" in browser.table.header.value


def test_ticking_experiments_and_adding_them_whole(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    received = []
    browser.on_add(received.append)
    browser.add_button.click()
    assert browser.status.kind == "warning" and "Tick one or more" in browser.status.text
    browser.table.tick("GSE71102")
    browser.table.tick("SRP091833")
    assert browser.chosen == ["GSE71102", "SRP091833"]
    browser.add_button.click()
    assert received == [{"GSE71102": None, "SRP091833": None}]
    assert browser.status.text == "Added 2 experiment(s), 44 samples, to the dataset."
    browser.table.tick("GSE71102", False)
    assert browser.chosen == ["SRP091833"]


def test_browser_on_a_large_listing_sends_only_one_page(tmp_path):
    exps, samples = synthetic_listing(5_000, 60_000, seed=2)
    browser = ExperimentBrowser(rw.Catalog.from_tables(exps, samples))
    browser.filters = {"organism": ["HOMO_SAPIENS"], "technology": ["RNA-SEQ"]}
    browser.search.value = "liver"
    hits = exps[(exps["organisms"] == "HOMO_SAPIENS") & (exps["technology"] == "RNA-SEQ")]
    expected = _matching(hits, "liver")
    assert browser.total == len(expected) > 20
    assert browser.table.row_keys == _best_first(hits, samples, expected, "liver")[:20]
    assert len(browser.table.rows_box.children) == 20


# -- sample picker -----------------------------------------------------------------------------
def test_picker_lists_the_chosen_experiments_samples(demo_cat):
    picker = SamplePicker(demo_cat)
    assert picker.total == 0
    picker.experiments = ["GSE71102", "SRP091833"]
    members = demo_cat.experiment_samples("GSE71102") + demo_cat.experiment_samples("SRP091833")
    assert picker.total == len(members)
    assert picker.table.row_keys == members[:20]
    assert set(picker.facets) == {"sex", "specimen part", "disease"}
    table = demo_cat.samples.loc[members]
    assert (
        _facet_counts(picker.facets["disease"])
        == table["refinebio_disease"].replace("", "(missing)").value_counts().to_dict()
    )


def test_picker_filters_select_all_none_and_one(demo_cat):
    picker = SamplePicker(demo_cat)
    picker.experiments = ["GSE71102"]
    table = demo_cat.samples.loc[demo_cat.experiment_samples("GSE71102")]
    picker.facets["disease"].value = ("normal",)
    normal = table.index[table["refinebio_disease"] == "normal"].tolist()
    assert picker.filters == {"disease": ["normal"]} and picker.total == len(normal)
    picker.select_all_button.click()
    assert picker.selected == normal
    assert picker.selection_label.value == f"{len(normal)} selected"
    picker.select_none_button.click()
    assert picker.selected == [] and picker.add_button.disabled
    picker.table.tick(normal[1])
    assert picker.selected == [normal[1]]
    assert picker.selection() == {"GSE71102": [normal[1]]}


def test_picker_add_to_dataset(demo_cat):
    picker = SamplePicker(demo_cat)
    received = []
    picker.on_add(received.append)
    picker.experiments = ["GSE71102", "SRP091833"]
    picker.add_selected()
    assert picker.status.kind == "warning" and "No sample is ticked" in picker.status.text
    first = demo_cat.experiment_samples("SRP091833")[0]
    picker.selected = [first, demo_cat.experiment_samples("GSE71102")[2]]
    picker.add_button.click()
    assert received == [
        {"GSE71102": [demo_cat.experiment_samples("GSE71102")[2]], "SRP091833": [first]}
    ]
    assert "Added 2 sample(s) of 2 experiment(s)" in picker.status.text
    picker.experiments = ["SRP091833"]  # samples of experiments no longer listed are unticked
    assert picker.selected == [first]


def test_picker_single_cell_facets_and_columns(sc_catalog):
    picker = SamplePicker(sc_catalog)
    picker.experiments = ["SC1"]
    assert {"cell type", "tissue", "stage"} <= set(picker.facets)
    assert "rw-sample-facet-cell-type" in picker.facets["cell type"]._dom_classes
    assert [c for c, _, _ in picker.table.columns][-2:] == ["n_cells", "cell_types"]
    picker.filters = {"cell type": ["T cell"]}
    assert picker.table.row_keys == ["L2"]
    picker.experiments = ["B1"]
    assert "cell type" not in picker.facets and picker.filters == {}


def test_picker_switching_from_a_filtered_single_cell_experiment_shows_no_false_error(sc_catalog):
    picker = SamplePicker(sc_catalog)
    picker.experiments = ["SC1"]
    picker.filters = {"cell type": ["T cell"]}
    picker.table.sort_by = "n_cells"
    picker.experiments = ["B1"]  # a bulk experiment: no "cell type" facet, no "Cells" column
    assert picker.status.kind != "error", picker.status.text
    assert picker.filters == {} and picker.table.row_keys


# -- cart ----------------------------------------------------------------------------------------
def test_cart_view_add_totals_remove_clear(demo_cat):
    view = DatasetCartView(demo_cat)
    assert view.data == {} and "Empty" in view.summary.value and view.clear_button.disabled
    mouse = demo_cat.experiment_samples("GSE90428")[:4]
    view.add({"SRP091833": None, "GSE90428": mouse})
    assert view.data == {"SRP091833": ["ALL"], "GSE90428": mouse}
    assert view.n_samples == 24 and view.summary.value == "2 experiment(s), 24 sample(s)"
    assert "Homo sapiens: 20" in view.totals.value and "Mus musculus: 4" in view.totals.value
    assert "MICROARRAY: 4" in view.totals.value and "RNA-SEQ: 20" in view.totals.value
    assert "4 of 16" in view.rows.children[2].children[0].value
    view.remove_buttons["SRP091833"].click()
    assert (
        view.data == {"GSE90428": mouse}
        and view.status.text == "Removed SRP091833 (Undo puts it back)."
    )
    view.add({"GSE0": None})
    assert view.status.kind == "error" and "GSE0" in view.status.text
    assert view.data == {"GSE90428": mouse}
    view.clear_button.click()
    assert view.data == {} and view.n_samples == 0 and view.totals.value == ""


# -- options -------------------------------------------------------------------------------------
def _panel(catalog):
    from refinewidgets.widgets.state import AppState

    return OptionsPanel(state=AppState(catalog))


def _select(panel, selection):
    panel.state.selection = panel.state.selection.clear().add(selection)


def test_quantile_normalization_box_follows_the_page_rule(demo_cat):
    panel = _panel(demo_cat)
    assert panel.quantile_normalize.disabled  # empty dataset
    _select(panel, {"SRP091833": None})  # RNA-seq
    assert not panel.quantile_normalize.disabled and panel.qn_reason.value == ""
    panel.quantile_normalize.value = False
    assert panel.options["quantile_normalize"] is False
    assert panel.state.selection.dataset.quantile_normalize is False
    panel.aggregate.value = "SPECIES"
    assert panel.quantile_normalize.disabled and panel.quantile_normalize.value is True
    assert "aggregating by species" in panel.qn_reason.value
    assert panel.state.selection.dataset.aggregate_by == "SPECIES"
    assert panel.options["quantile_normalize"] is True
    panel.aggregate.value = "EXPERIMENT"
    assert not panel.quantile_normalize.disabled
    panel.state.selection = panel.state.selection.add({"GSE71102": None})  # microarray too
    assert panel.quantile_normalize.disabled and "microarray samples" in panel.qn_reason.value


def test_transformation_labels_and_options(demo_cat):
    panel = _panel(demo_cat)
    assert [label for label, _ in panel.transformation.options] == [
        "None",
        "Zero to One",
        "Z-score",
        "Robust",
    ]
    panel.transformation.value = "STANDARD"
    assert panel.options == {
        "aggregate_by": "EXPERIMENT",
        "scale_by": "STANDARD",
        "quantile_normalize": True,
        "join": "inner",
        "cell_filter": None,
        "counts_normalization": "NONE",
        "pseudobulk": None,
        "keep_intergenic": False,
        "genes": None,
        "exact": False,
        "var_filter": None,
        "obs_columns": None,
        "batch_correction": None,
        "batch_key": "experiment_accession",
        "batch_covariates": None,
    }


def test_single_cell_options_show_only_with_single_cell_samples(sc_catalog):
    panel = _panel(sc_catalog)
    _select(panel, {"B1": None})
    assert not panel.single_cell_visible
    panel.state.selection = panel.state.selection.add({"SC1": None})
    assert panel.single_cell_visible
    assert panel.quantile_normalize.disabled and panel.quantile_normalize.value is False
    assert "single cells" in panel.qn_reason.value
    assert panel.cell_filters["cell_type"].options == ("B cell", "T cell")
    panel.cell_filters["cell_type"].value = ("T cell",)
    panel.counts_normalization.value = "LOG1P_CPM"
    assert panel.options["cell_filter"] == {"cell_type": ["T cell"]}
    assert panel.state.selection.dataset.cell_filter == {"cell_type": ["T cell"]}
    panel.pseudobulk.value = "sample"  # pseudobulk sums are normalized like RNA-seq samples
    assert not panel.quantile_normalize.disabled
    panel.state.selection = panel.state.selection.remove("SC1")  # no single cells: defaults
    assert not panel.single_cell_visible
    assert (
        panel.options["cell_filter"],
        panel.options["pseudobulk"],
        panel.options["counts_normalization"],
    ) == (None, None, "NONE")


def test_set_options_restores_every_control(sc_catalog):
    panel = _panel(sc_catalog)
    _select(panel, {"SC1": None})
    ds = rw.Dataset(
        {"E": ["ALL"]},
        aggregate_by="ALL",
        scale_by="ROBUST",
        quantile_normalize=False,
        join="outer",
        cell_filter={"tissue": ["liver"]},
        counts_normalization="CPM",
        pseudobulk="sample_cell_type",
    )
    panel.set_options(ds)
    assert rw.Dataset({"E": ["ALL"]}, **panel.options) == ds
    assert panel.cell_filters["tissue"].value == ("liver",)  # kept although not among the choices
    panel.set_options({"bogus": 1})
    assert panel.status.kind == "error" and "bogus" in panel.status.text


# -- small parts ---------------------------------------------------------------------------------
def test_progress_adapter_follows_the_cores_progress():
    from refinewidgets.core.progress import as_progress
    from refinewidgets.widgets._progress import WidgetProgress

    bar = WidgetProgress()
    progress = as_progress(bar)
    progress.start(3, "reading values")
    assert (bar.bar.value, bar.bar.max, bar.label.value) == (0, 3, "reading values")
    progress.advance("HOMO_SAPIENS: normalizing")
    assert (bar.bar.value, bar.label.value) == (1, "HOMO_SAPIENS: normalizing")
    progress.close()
    assert bar.bar.value == 3 and bar.bar.bar_style == "success"
    bar.fail("failed")
    assert bar.bar.bar_style == "danger" and bar.label.value == "failed"


def test_table_cells_are_escaped():
    from refinewidgets.core.browse import TableIndex
    from refinewidgets.widgets._table import PagedTable, frame_html

    frame = pd.DataFrame(
        {"title": ["<script>alert(1)</script>"], "n": [1234567]},
        index=pd.Index(["E&1"], name="accession"),
    )
    table = PagedTable(
        [("accession", "Accession", 100), ("title", "Title", 200), ("n", "N", 80)], prefix="rw-t"
    )
    table.show(TableIndex(frame).query())
    cells = table.grid.value
    assert "<script>" not in cells and "&lt;script&gt;" in cells and "1,234,567" in cells
    assert table.row_keys == ["E&1"]
    assert "<script>" not in frame_html(frame) and "E&amp;1" in frame_html(frame)


def test_a_failing_callback_becomes_a_visible_message(demo_cat, monkeypatch):
    browser = ExperimentBrowser(demo_cat)

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(browser.index, "query", broken)
    browser.search.value = "lung"  # no exception escapes the trait change
    assert browser.status.kind == "error"
    assert browser.status.text.startswith("Unexpected RuntimeError: index exploded.")
    assert "rw-error" in browser.status._dom_classes


def test_nothing_matches_says_how_to_find_something_and_filters_clear(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    assert browser.clear_filters_button.disabled
    browser.filters = {"technology": ["RNA-SEQ"]}
    browser.search.value = "zebrafish retina"
    assert browser.total == 0
    assert browser.status.text.startswith(
        "Nothing matches the search 'zebrafish retina' and technology = RNA-SEQ."
    )
    assert not browser.clear_filters_button.disabled
    browser.clear_filters_button.click()
    assert browser.text == "" and browser.filters == {} and browser.search.value == ""
    assert browser.total == len(demo_cat.experiment_ids) and browser.status.text == ""
