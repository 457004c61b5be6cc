"""The whole app (``rw.DatasetBuilder``), the results view and the save panel, without a browser."""

from __future__ import annotations

import base64
import io
import re
import zipfile

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium
from refinewidgets.widgets import DatasetBuilder


@pytest.fixture
def builder(demo_cat):
    return DatasetBuilder(demo_cat)


def _pick(builder, experiment, disease=None):
    """Tick an experiment in the browser, filter its samples, select all, add them."""
    builder.browser.search.value = experiment
    builder.browser.table.tick(experiment)
    if disease:
        builder.picker.facets["disease"].value = (disease,)
    builder.picker.select_all_button.click()
    builder.picker.add_button.click()
    builder.browser.chosen = []


def test_the_builder_is_the_app_widget(builder):
    assert rw.DatasetBuilder is DatasetBuilder
    assert builder.tabs in builder.children and builder.status in builder.children
    assert builder.dataset is None and builder.result is None and builder.adata is None
    assert "rw-builder" in builder._dom_classes


def test_choose_add_options_build_and_look(builder, demo_cat):
    _pick(builder, "GSE71102", disease="normal")
    normal = [
        s
        for s in demo_cat.experiment_samples("GSE71102")
        if demo_cat.samples.loc[s, "refinebio_disease"] == "normal"
    ]
    builder.browser.search.value = "SRP"
    builder.browser.facets["organism"].value = ("MUS_MUSCULUS",)
    builder.browser.facets["technology"].value = ("RNA-SEQ",)
    assert builder.browser.table.row_keys == ["SRP132945"]
    builder.browser.table.tick("SRP132945")
    builder.browser.add_button.click()
    assert builder.cart_view.data == {"GSE71102": normal, "SRP132945": ["ALL"]}
    assert builder.tabs.get_title(1) == f"My dataset ({len(normal) + 18})"
    builder.options.aggregate.value = "SPECIES"
    builder.options.transformation.value = "STANDARD"
    expected = rw.Dataset(
        {"GSE71102": normal, "SRP132945": ["ALL"]}, aggregate_by="SPECIES", scale_by="STANDARD"
    )
    assert builder.dataset == expected
    builder.build_button.click()
    builder.wait()

    assert builder.status.kind == "success", builder.status.text
    res = builder.result
    direct = rw.build(expected, demo_cat)
    assert list(res) == ["HOMO_SAPIENS", "MUS_MUSCULUS"]
    for key in res:
        assert res[key].shape == direct[key].shape
        assert np.allclose(res[key].X, direct[key].X, equal_nan=True)
    assert (
        set(builder.adata) == {"HOMO_SAPIENS", "MUS_MUSCULUS"}
        and builder.adata["MUS_MUSCULUS"] is res["MUS_MUSCULUS"]
    )
    human = res["HOMO_SAPIENS"]
    assert builder.status.text == (
        f"Built 2 group(s) (HOMO_SAPIENS: {human.n_obs} x {human.n_vars:,}; "
        f"MUS_MUSCULUS: 18 x {res['MUS_MUSCULUS'].n_vars:,}); 0 sample(s) filtered."
    )
    assert (
        builder.progress.bar.value == builder.progress.bar.max
        and builder.progress.bar.bar_style == "success"
    )
    assert builder.tabs.selected_index == 2

    view = builder.results
    assert view.group == "HOMO_SAPIENS"
    assert view.group_box.label == "Homo sapiens (HOMO_SAPIENS)"  # species by name
    assert view.summary.value.startswith("<b>Homo sapiens (HOMO_SAPIENS)</b>: ")
    assert f"{human.n_obs} samples × {human.n_vars:,} genes" in view.summary.value
    assert "Z-score" in view.summary.value and "quantile-normalized" in view.summary.value
    assert "Filtered samples: none" in view.filtered.value
    assert view.preview.value.count("<tr>") == 9  # header + 8 genes
    # plots are drawn when their panel opens: the PCA's is open first
    assert view.plots.selected_index == 0 and view.distributions.value == ""
    assert '<div class="rw-plot-img" role="img"' in view.pca.value and "<svg" in view.pca.value
    assert view.before is None
    view.plots.selected_index = 1
    assert '<div class="rw-plot-img" role="img"' in view.distributions.value
    assert "Before normalization; After normalization" in view.distributions.value
    assert view.before is not None and view.before is not res
    view.group_box.value = "MUS_MUSCULUS"
    assert "18 samples" in view.summary.value
    assert "(18 samples)" in view.distributions.value and view.pca.value == ""  # the open one
    view.plots.selected_index = 0
    assert "PCA of MUS_MUSCULUS: 18 samples" in view.pca.value
    view.color_box.value = "refinebio_sex"
    assert view.color_by == "refinebio_sex" and "refinebio_sex" in view.pca.value


def test_one_group_gives_its_anndata_and_code_rebuilds_the_dataset(builder, demo_cat):
    builder.restore(rw.Dataset({"SRP105872": ["ALL"]}, quantile_normalize=False))
    builder.show_code.value = True
    assert builder.code.layout.display is None
    ns: dict = {}
    exec(builder.code.value, ns)
    assert ns["ds"] == builder.dataset
    builder.build()
    assert isinstance(builder.adata, type(ns["res"]["SRP105872"]))
    assert builder.adata.shape == ns["res"]["SRP105872"].shape
    assert np.allclose(builder.adata.X, ns["res"]["SRP105872"].X, equal_nan=True)


def test_setting_the_dataset_restores_cart_and_options_and_round_trips(builder, demo_cat):
    part = demo_cat.experiment_samples("GSE75037")[:5]
    ds = rw.Dataset(
        {"GSE75037": part, "SRP091833": ["ALL"]},
        aggregate_by="ALL",
        scale_by="MINMAX",
        join="outer",
    )
    builder.restore(ds)
    assert builder.dataset == ds
    assert builder.cart_view.data == ds.data
    assert (
        builder.options.aggregate.value == "ALL"
        and builder.options.transformation.value == "MINMAX"
    )
    assert builder.options.join.value == "outer"
    assert builder.options.quantile_normalize.disabled  # microarray, aggregated by all
    assert "Dataset restored: 2 experiment(s), 25 samples." == builder.status.text
    # editing the restored state flows back into the trait
    builder.cart_view.remove_buttons["SRP091833"].click()
    assert builder.dataset == rw.Dataset(
        {"GSE75037": part}, aggregate_by="ALL", scale_by="MINMAX", join="outer"
    )
    builder.restore(rw.Dataset.from_dict(ds.to_dict()))
    assert builder.dataset == ds and builder.cart_view.data == ds.data
    # an API-only choice (skipping QN for microarray) is kept and explained
    api = rw.Dataset({"GSE75037": part}, quantile_normalize=False)
    builder.restore(api)
    assert builder.dataset == api and builder.options.quantile_normalize.value is False
    assert "set from code" in builder.options.qn_reason.value
    builder.restore(None)
    assert builder.cart_view.data == {}


def test_restoring_a_bad_dataset_is_refused_with_a_message(builder, demo_cat):
    builder.restore(rw.Dataset({"SRP091833": ["ALL"]}))
    with pytest.raises(rw.UnknownAccessionError, match="GSM0"):
        builder.restore(rw.Dataset({"GSE71102": ["GSM0"]}))
    assert builder.dataset == rw.Dataset({"SRP091833": ["ALL"]})  # nothing changed
    assert builder.status.kind == "error"
    assert builder.status.text == (
        "The dataset was not restored: Sample(s) in dataset do not exist in the catalog: GSM0. "
        "Remove them or open the source that holds them."
    )
    misplaced = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(rw.DatasetSpecError, match=f"{misplaced} is listed under GSE71102"):
        builder.restore({"data": {"GSE71102": [misplaced]}})
    assert builder.cart_view.data == {"SRP091833": ["ALL"]}


def test_the_dataset_is_read_only_restore_puts_one_back(builder):
    with pytest.raises(AttributeError, match=r"read-only: builder\.restore\(dataset\)"):
        builder.dataset = rw.Dataset({"SRP091833": ["ALL"]})
    assert builder.dataset is None and builder.cart_view.data == {}
    builder.restore(rw.Dataset({"SRP091833": ["ALL"]}).to_dict())  # a spec's dict too
    assert builder.dataset == rw.Dataset({"SRP091833": ["ALL"]})


def test_build_with_nothing_selected_shows_a_message(builder):
    builder.build_button.click()
    builder.wait()
    assert builder.result is None
    assert builder.status.kind == "error"
    assert builder.status.text == (
        "The build failed: Nothing selected: choose experiments, tick samples and press "
        '"Add to dataset" (or add whole experiments) before building.'
    )
    assert "rw-error" in builder.status._dom_classes
    assert builder.progress.bar.bar_style == "danger"


def test_incompatible_options_show_the_cores_message(builder):
    builder.restore(rw.Dataset({"GSE71102": ["ALL"], "GSE90428": ["ALL"]}, aggregate_by="ALL"))
    builder.build_button.click()
    builder.wait()
    assert builder.result is None and builder.status.kind == "error"
    assert builder.status.text.startswith(
        "The build failed: The gene sets of these samples do not overlap"
    )


def test_a_failing_source_shows_its_error(demo_cat, monkeypatch):
    comp = synthetic_compendium(n_experiments=2, samples_per_experiment=4, n_genes=60, seed=5)
    src = InMemorySource.from_compendium(comp)
    cat = rw.Catalog([src])
    builder = DatasetBuilder(cat)
    builder.restore(rw.Dataset({cat.experiment_ids[0]: ["ALL"]}))

    def broken(*args, **kwargs):
        raise OSError("the disk went away")

    monkeypatch.setattr(src, "read_matrix", broken)
    builder.build_button.click()
    builder.wait()
    assert builder.status.kind == "error"
    assert "OSError: the disk went away" in builder.status.text
    assert builder.code.value.splitlines()[2] == "cat = ...  # the catalog given to DatasetBuilder"


def test_filtered_samples_are_listed(demo_cat):
    comp = synthetic_compendium(n_experiments=1, samples_per_experiment=5, n_genes=80, seed=9)
    exp = next(iter(comp.experiments))
    dropped = comp.values[exp].columns[1]
    comp.values[exp] = comp.values[exp].drop(columns=[dropped])  # the sample has no values now
    builder = DatasetBuilder(rw.Catalog([InMemorySource.from_compendium(comp)]))
    builder.restore(rw.Dataset({exp: ["ALL"]}))
    builder.build()
    assert builder.status.kind == "success" and "1 sample(s) filtered" in builder.status.text
    assert dropped in builder.results.filtered.value
    assert "no processed expression values" in builder.results.filtered.value


def test_save_zip_refuse_overwrite_h5ad_and_download(builder, tmp_path):
    import anndata

    builder.restore(
        rw.Dataset({"SRP091833": ["ALL"], "GSE71102": ["ALL"]}, aggregate_by="EXPERIMENT")
    )
    builder.build()
    save = builder.save
    save.path.value = str(tmp_path / "out.zip")
    save.save_button.click()
    assert save.status.kind == "success" and save.saved_path == str(tmp_path / "out.zip")
    assert set(rw.read_zip(tmp_path / "out.zip")) == {"SRP091833", "GSE71102"}
    before = (tmp_path / "out.zip").stat().st_mtime_ns
    save.save_button.click()
    assert (
        save.status.kind == "error"
        and "exists" in save.status.text
        and "Overwrite" in save.status.text
    )
    assert "exists" not in builder.status.text  # shown once, next to the save panel
    assert (tmp_path / "out.zip").stat().st_mtime_ns == before
    save.overwrite.value = True
    save.save_button.click()
    assert save.status.kind == "success"

    save.overwrite.value = False
    save.path.value = str(tmp_path / "dataset.zip")
    save.format.value = "h5ad:GSE71102"
    assert save.path.value == str(tmp_path / "GSE71102.h5ad")
    save.save_button.click()
    assert save.status.kind == "success"
    back = anndata.read_h5ad(tmp_path / "GSE71102.h5ad")
    assert back.shape == builder.result["GSE71102"].shape
    save.save_button.click()
    assert save.status.kind == "error" and "exists" in save.status.text
    assert not list(tmp_path.glob("*.partial"))

    # the download follows the format: "AnnData (.h5ad)" gives the group's file, read back
    assert dict(save.format.options)["AnnData (.h5ad) of GSE71102"] == "h5ad:GSE71102"
    link = save.download.value
    assert 'download="GSE71102.h5ad"' in link
    data = re.search(r'href="data:application/x-hdf5;base64,([^"]+)"', link).group(1)
    (tmp_path / "down.h5ad").write_bytes(base64.b64decode(data))
    down = anndata.read_h5ad(tmp_path / "down.h5ad")
    built = builder.result["GSE71102"]
    assert list(down.obs_names) == list(built.obs_names)
    assert np.array_equal(down.X, built.X) and list(down.var_names) == list(built.var_names)
    assert down.uns["refinewidgets"]["format_version"] == 1

    save.format.value = "zip"
    link = save.download.value
    assert 'class="rw-download-link"' in link
    data = re.search(r'href="data:application/zip;base64,([^"]+)"', link).group(1)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as zf:
        assert zf.testzip() is None
        assert "aggregated_metadata.json" in zf.namelist()
        assert "SRP091833/SRP091833.tsv" in zf.namelist()


def test_a_download_too_big_is_refused_with_a_message(builder, monkeypatch):
    from refinewidgets.widgets import save as save_module

    monkeypatch.setattr(save_module, "DOWNLOAD_LIMIT", 1000)
    builder.restore(rw.Dataset({"SRP091833": ["ALL"]}))
    builder.build()
    assert builder.save.download.value == ""
    assert "too big for a browser download" in builder.save.status.text


def test_single_cell_build_shows_cells_per_cell_type(demo_cat):
    sc = [e for e in demo_cat.experiment_ids if demo_cat.technology(e) == "SINGLE-CELL"]
    if not sc:
        pytest.skip("the demo has no single-cell experiment")
    builder = DatasetBuilder(demo_cat)
    builder.browser.search.value = sc[0]
    builder.browser.table.tick(sc[0])
    builder.browser.add_button.click()
    options = builder.options
    assert options.single_cell_visible
    assert options.quantile_normalize.value is False and options.quantile_normalize.disabled
    assert options.cell_filters["cell_type"].options  # choices from the libraries
    options.counts_normalization.value = "LOG1P_CPM"
    builder.build_button.click()
    builder.wait()
    assert builder.status.kind == "success", builder.status.text
    view = builder.results
    assert "cells ×" in view.summary.value
    view.plots.selected_index = 2
    assert '<div class="rw-plot-img"' in view.cell_types.value
    view.plots.selected_index = 1
    assert "not single cells" in view.distributions.value
    assert view.color_box.value == "cell_type"


UNIQUE_CLASSES = """
rw-builder rw-tabs rw-status rw-build rw-progress rw-progress-label rw-show-code rw-code
rw-search rw-facet-organism rw-facet-technology rw-facet-platform rw-add-experiments
rw-untick-experiments rw-browser-status rw-experiments-table rw-experiments-header
rw-experiments-sort rw-experiments-sort-direction rw-experiments-prev rw-experiments-next
rw-experiments-page-label rw-experiments-page-size rw-sample-search rw-select-all rw-select-none
rw-add-to-dataset rw-selection-count rw-picker-status rw-samples-table rw-samples-next
rw-cart-summary rw-cart-rows rw-cart-totals rw-cart-clear rw-cart-status rw-aggregate
rw-transformation rw-quantile-normalize rw-qn-reason rw-single-cell-options
rw-cell-filter-cell-type rw-cell-filter-tissue rw-cell-filter-stage rw-cell-filter-sex
rw-counts-normalization rw-pseudobulk rw-join rw-options-status rw-result-group rw-result-summary
rw-filtered-samples rw-preview rw-plot-distributions rw-before-after rw-pca-color rw-plot-pca
rw-plot-cell-types rw-plots rw-results-status rw-save-path rw-save-format rw-save-overwrite rw-save
rw-prepare-download rw-download rw-save-status
""".split()


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_css_classes_are_unique_and_documented(builder, demo_cat):
    from refinewidgets.widgets import builder as builder_module

    builder.restore(rw.Dataset({"GSE71102": ["ALL"]}))
    builder.browser.table.tick("GSE71102")
    seen: dict[str, int] = {}
    for widget in _walk(builder):
        for css in getattr(widget, "_dom_classes", ()):
            seen[css] = seen.get(css, 0) + 1
    for css in UNIQUE_CLASSES:
        assert seen.get(css) == 1, (css, seen.get(css))
        assert f"``{css}``" in builder_module.__doc__, css
    assert seen["rw-experiments-checkbox"] == len(builder.browser.table.row_keys)
    assert seen["rw-samples-checkbox"] == 20 and seen["rw-cart-remove"] == 1
    assert seen["rw-message"] == 7


def test_results_view_before_after_on_demand(demo_cat, monkeypatch, tmp_path):
    from refinewidgets.widgets import ResultsView
    from refinewidgets.widgets import results as results_module

    monkeypatch.setattr(results_module, "AUTO_BEFORE_VALUES", 0)
    res = rw.build(rw.Dataset({"GSE75037": ["ALL"]}, scale_by="STANDARD"), demo_cat)
    view = ResultsView(demo_cat)
    view.result = res
    view.plots.selected_index = 1
    assert view.before is None and view.before_button.layout.display is None
    assert "After normalization" in view.distributions.value
    assert "Before normalization" not in view.distributions.value
    view.before_button.click()
    assert view.before is not None and view.before_button.layout.display == "none"
    assert "Before normalization" in view.distributions.value
    raw = view.before["GSE75037"].X
    assert np.nanmax(np.abs(raw - res["GSE75037"].X)) > 1  # really the values before scaling

    # a result read back from a zip, without its catalog: shown, and the comparison says why not
    res.write_zip(tmp_path / "d.zip")
    alone = ResultsView()
    alone.result = rw.read_zip(tmp_path / "d.zip")
    assert "24 samples" in alone.summary.value and alone.status.text == ""
    alone.before_button.click()
    assert alone.status.kind == "error" and "catalog" in alone.status.text


def test_results_are_marked_out_of_date_when_the_dataset_changes(builder):
    first = rw.Dataset({"SRP091833": ["ALL"]}, quantile_normalize=False)
    builder.restore(first)
    builder.build()
    assert builder.stale_note.value == "" and not builder.save.save_button.disabled
    both = rw.Dataset({"SRP091833": ["ALL"], "SRP105872": ["ALL"]}, quantile_normalize=False)
    builder.restore(both)  # restored from code: the results are of the first dataset
    assert builder.state.selection.dataset == both and builder.result.dataset == first
    assert "built from an earlier dataset" in builder.stale_note.value
    assert builder.save.save_button.disabled and builder.save.prepare_button.disabled
    builder.build()
    assert builder.result.dataset == builder.dataset == both
    assert builder.stale_note.value == "" and not builder.save.save_button.disabled
    builder.cart_view.clear_button.click()
    assert builder.dataset is None and builder.save.save_button.disabled
    assert "built from an earlier dataset" in builder.stale_note.value


def test_one_state_drives_every_part(builder):
    builder.state.selection = builder.state.selection.add({"SRP091833": None}).with_options(
        scale_by="STANDARD"
    )
    assert builder.cart_view.data == {"SRP091833": ["ALL"]}
    assert builder.options.transformation.value == "STANDARD"
    assert builder.dataset == rw.Dataset({"SRP091833": ["ALL"]}, scale_by="STANDARD")
    assert "scale_by='STANDARD'" in builder.code.value
    builder.options.transformation.value = "MINMAX"  # a control assigns a new selection
    assert builder.state.selection.dataset.scale_by == "MINMAX" == builder.dataset.scale_by


def test_expected_refusals_are_plain_messages_not_bugs():
    from refinewidgets.widgets import SavePanel

    panel = SavePanel()
    panel.save()
    assert (panel.status.kind, panel.status.text) == (
        "info",
        "Nothing to save yet: build a dataset first.",
    )
    panel.prepare_download()
    assert "Nothing to download yet" in panel.status.text and "bug" not in panel.status.text


def test_clear_all_and_remove_can_be_undone(builder):
    ds = rw.Dataset({"SRP091833": ["ALL"], "GSE71102": ["ALL"]}, scale_by="STANDARD")
    builder.restore(ds)
    cart = builder.cart_view
    assert cart.undo_button.disabled
    cart.clear_button.click()
    assert builder.dataset is None and not cart.undo_button.disabled
    assert "Undo puts it back" in cart.status.text
    cart.undo_button.click()
    assert builder.dataset == ds and cart.undo_button.disabled
    cart.remove_buttons["GSE71102"].click()
    builder.state.selection = builder.state.selection.with_options(scale_by="MINMAX")
    assert cart.undo_button.disabled  # another change came after the removal: nothing to undo
    cart.undo()
    assert builder.dataset.data == {"SRP091833": ["ALL"]}


def test_rows_already_in_the_dataset_are_marked(builder, demo_cat):
    builder.browser.search.value = "GSE71102"
    row = builder.browser.table._row_widgets[0]
    assert "in dataset" not in builder.browser.table._cells[0].value
    builder.state.selection = builder.state.selection.add({"GSE71102": None})
    assert builder.browser.table._cells[0].value.startswith('<span class="rw-in-dataset"')
    assert "rw-experiments-in-dataset" in row._dom_classes
    builder.browser.table.tick("GSE71102")
    picker = builder.picker.table
    assert picker.row_keys and all(
        "in dataset" in c.value for c in picker._cells[: len(picker.row_keys)]
    )
    builder.cart_view.clear()
    assert "rw-experiments-in-dataset" not in row._dom_classes


class _BlockingSource(InMemorySource):
    """An in-memory source whose reads wait for a signal (a build that takes its time)."""

    def __init__(self, *args, **kwargs):
        import threading

        super().__init__(*args, **kwargs)
        self.reading = threading.Event()
        self.go = threading.Event()

    def read_matrix(self, matrix_id, samples):
        self.reading.set()
        self.go.wait(30)
        return super().read_matrix(matrix_id, samples)


def test_build_runs_in_the_background_and_cancel_stops_it():
    comp = synthetic_compendium(n_experiments=2, samples_per_experiment=4, n_genes=60, seed=5)
    src = _BlockingSource(comp.experiments, comp.samples, comp.values, name="slow")
    builder = DatasetBuilder(rw.Catalog([src]))
    builder.restore(rw.Dataset({e: ["ALL"] for e in comp.experiments}, aggregate_by="SPECIES"))
    builder.build_button.click()
    assert src.reading.wait(30)  # the build is running, in its thread
    assert builder.build_button.disabled and not builder.cancel_button.disabled
    builder.browser.search.value = "nothing matches this"  # the kernel stays free meanwhile
    assert builder.browser.total == 0
    builder.cancel_button.click()
    src.go.set()
    assert builder.wait(30) is None  # cancelled at the next step: no result kept
    assert builder.status.text.startswith("The build was cancelled: Cancelled after")
    assert (
        builder.progress.bar.bar_style == "danger" and builder.progress.label.value == "cancelled"
    )
    assert not builder.build_button.disabled and builder.cancel_button.disabled
    builder.build_button.click()  # and a new build runs to the end
    assert builder.wait(30) is not None and builder.status.kind == "success"


def test_cancel_through_the_cores_progress_protocol(demo_cat):
    class Bar:
        cancelled = False

        def update(self, n):
            self.cancelled = True  # cancel right after the first step

    with pytest.raises(rw.BuildCancelled, match="Cancelled after 1 of"):
        rw.build(rw.Dataset({"SRP091833": ["ALL"], "GSE71102": ["ALL"]}), demo_cat, progress=Bar())


def test_sample_facets_of_single_cell_experiments_are_the_cell_filter(builder, demo_cat):
    builder.picker.experiments = ["ERP900101"]
    builder.picker.filters = {"cell type": ["B cell"]}
    builder.picker.select_all_button.click()
    builder.picker.add_selected()
    ds = builder.dataset
    assert ds.cell_filter == {"cell_type": ["B cell"]}
    assert builder.options.cell_filters["cell_type"].value == ("B cell",)
    assert "Cell filter set from the sample facets (cell type: B cell)" in (
        builder.cart_view.status.text
    )
    builder.build()
    cells = builder.result["ERP900101"].obs
    assert set(cells["cell_type"].astype(str)) == {"B cell"}


def test_build_errors_name_the_controls_not_the_api(builder):
    builder.restore(
        rw.Dataset({"ERP900101": ["ALL"], "SRP091833": ["ALL"]}, aggregate_by="SPECIES")
    )  # from code: single cells and bulk samples in one group
    builder.build()
    text = builder.status.text
    assert builder.status.kind == "error" and "cells and bulk samples cannot share" in text
    assert 'Pseudobulk "Per library" (or "Per library and cell type")' in text
    assert 'or Aggregate by "Experiment" to keep them' in text
    assert "pseudobulk='sample'" not in text and "aggregate_by=" not in text


def test_in_the_app_downloads_are_real_files_served_by_the_app(tmp_path, monkeypatch, demo_cat):
    from refinewidgets.widgets import SavePanel
    from refinewidgets.widgets.save import DOWNLOADS_ENV

    monkeypatch.setenv(DOWNLOADS_ENV, str(tmp_path))
    panel = SavePanel()
    panel.result = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), demo_cat)  # prepared on its own
    href = re.search(r'href="([^"]+)"', panel.download.value).group(1)
    key, name = href.removeprefix("/refinewidgets/download/").split("/")
    assert name == "dataset.zip" and len(key) >= 16
    first = tmp_path / key / name
    assert zipfile.ZipFile(first).namelist()[2] == "aggregated_metadata.json"
    panel.path.value = "../../evil name.zip"  # never a path: a safe name or the default
    panel.prepare_download()
    assert not first.exists()  # one prepared download at a time
    assert re.search(r'href="/refinewidgets/download/[^/]+/dataset.zip"', panel.download.value)


def test_plots_follow_the_pages_theme_and_fit_its_width(demo_cat):
    """Inline SVG: text and axes in currentColor (light on a dark page), no background, ids
    unique per plot, scaled down to the width available."""
    from refinewidgets.core import explore
    from refinewidgets.widgets import _plots

    _plots.warm_up()
    adata = rw.build(rw.Dataset({"GSE75037": ["ALL"]}), demo_cat)["GSE75037"]
    labels = explore.color_labels(adata.obs, "experiment_accession")
    one = _plots.pca_img(explore.pca(adata), labels, title="PCA", css_class="rw-plot-img")
    two = _plots.distributions_img(
        [("After", explore.sample_quantiles(adata))], labels, css_class="rw-plot-img"
    )
    for html_text in (one, two):
        assert html_text.startswith('<div class="rw-plot-img" role="img" aria-label="')
        svg = html_text[html_text.index("<svg") :]
        assert "currentColor" in svg and _plots._INK not in svg
        assert "<style" not in svg and "<?xml" not in svg  # nothing page-wide, no prolog
        assert 'width="100%"' in svg and "max-width:" in svg and "viewBox=" in svg
        assert "fill: #ffffff" not in svg  # transparent: the page's background shows
    ids = lambda text: set(re.findall(r'\bid="([^"]+)"', text))  # noqa: E731
    assert ids(one) and not ids(one) & ids(two)
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', one):
        assert ref in ids(one)  # every reference points inside its own plot


def test_a_ready_link_takes_the_prepare_buttons_place(builder):
    builder.restore(rw.Dataset({"SRP091833": ["ALL"]}, quantile_normalize=False))
    builder.build()
    save = builder.save
    assert "rw-download-link" in save.download.value  # small: the link is made on its own
    assert save.prepare_button.layout.display == "none"
    builder.restore(rw.Dataset({"SRP105872": ["ALL"]}, quantile_normalize=False))
    assert save.download.value == "" and save.prepare_button.layout.display is None
    builder.build()
    assert "rw-download-link" in save.download.value
    assert save.prepare_button.layout.display == "none"


def test_a_one_experiment_pca_is_coloured_by_something_that_varies(builder):
    builder.restore(rw.Dataset({"GSE71102": ["ALL"]}))
    builder.build()
    box = builder.results.color_box
    assert box.value != "experiment_accession"
    assert builder.result["GSE71102"].obs[box.value].astype(str).nunique() > 1
    assert box.options[-1] == "experiment_accession"  # still offered, last
