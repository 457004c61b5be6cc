"""The app's one state (``AppState``): the catalog lives there and every view observes it."""

from __future__ import annotations

import pytest
from traitlets import TraitError

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium
from refinewidgets.widgets import DatasetBuilder
from refinewidgets.widgets.experiment_browser import ExperimentBrowser
from refinewidgets.widgets.sample_picker import SamplePicker
from refinewidgets.widgets.state import AppState, Rendering


@pytest.fixture
def more(demo_cat):
    """The demo's sources and two synthetic experiments beside them (downloads just opened)."""
    comp = synthetic_compendium(
        n_experiments=2, samples_per_experiment=4, n_genes=60, seed=5, organisms=("MUS_MUSCULUS",)
    )
    return rw.Catalog([*demo_cat.sources, InMemorySource.from_compendium(comp)])


def test_the_catalog_is_the_selections_and_follows_use_catalog(demo_cat, more):
    state = AppState(demo_cat)
    seen = []
    state.observe(lambda c: seen.append(c["new"]), names="catalog")
    assert state.catalog is demo_cat and state.catalog_code == "rw.open_catalog()"
    state.selection = state.selection.add({"SRP091833": None})
    with pytest.raises(rw.UnknownAccessionError, match="GSE72069"):
        state.selection.add({"GSE72069": None})  # not in the demo
    # an equal selection over the bigger catalog: the catalog still changes, and says so
    state.use_catalog(state.selection.with_fetched(more, {}), "rw.Catalog([...])")
    assert seen == [more] and state.catalog is more and state.selection.catalog is more
    assert state.catalog_code == "rw.Catalog([...])"
    state.selection = state.selection.add({"GSE72069": None})
    assert state.selection.data == {"SRP091833": ["ALL"], "GSE72069": ["ALL"]}
    with pytest.raises(TraitError, match='"catalog" trait is read-only'):
        state.catalog = demo_cat  # it is the selection's


def test_undo_after_downloads_opened_stays_on_the_new_catalog(demo_cat, more):
    state = AppState(demo_cat)
    state.selection = state.selection.add({"SRP091833": None, "GSE71102": None})
    state.edit(state.selection.remove("GSE71102"))
    state.use_catalog(state.selection.with_fetched(more, {}))
    assert state.can_undo and state.undo()
    assert state.selection.data == {"SRP091833": ["ALL"], "GSE71102": ["ALL"]}
    assert state.catalog is more and state.selection.catalog is more
    assert state.selection.add({"GSE72069": None}).n_samples == 20 + 24 + 4


def test_the_browser_and_picker_mark_what_the_state_holds(demo_cat):
    state = AppState(demo_cat)
    browser = ExperimentBrowser(state=state)
    picker = SamplePicker(state=state)
    picker.experiments = ["GSE71102"]
    two = demo_cat.experiment_samples("GSE71102")[:2]
    assert browser.table.marked == [] and picker.table.marked == []
    state.selection = state.selection.add({"GSE71102": two, "SRP091833": None})
    assert browser.table.marked == ["GSE71102", "SRP091833"]
    assert sorted(picker.table.marked) == sorted([*two, *demo_cat.experiment_samples("SRP091833")])
    browser.search.value = "GSE71102"
    row = browser.table.row_keys.index("GSE71102")
    assert "rw-experiments-in-dataset" in browser.table._row_widgets[row]._dom_classes
    state.selection = state.selection.clear()
    assert browser.table.marked == [] and picker.table.marked == []
    assert "rw-experiments-in-dataset" not in browser.table._row_widgets[row]._dom_classes


def test_the_browser_and_picker_list_a_new_catalog_in_place(demo_cat, more):
    state = AppState(demo_cat)
    browser = ExperimentBrowser(state=state)
    picker = SamplePicker(state=state)
    browser.text = "breast"
    browser.filters = {"technology": ["MICROARRAY"]}
    browser.table.tick("GSE71102")
    picker.experiments = list(browser.chosen)
    assert "GSE72069" not in browser.index.table.index
    state.use_catalog(state.selection.with_fetched(more, {}))
    # the same widgets, the new catalog, the search, filters and ticks kept
    assert browser.catalog is more and picker.catalog is more
    assert "GSE72069" in browser.index.table.index
    assert browser.text == "breast" and browser.filters == {"technology": ["MICROARRAY"]}
    assert browser.chosen == ["GSE71102"] and browser.table.selected == ["GSE71102"]
    assert picker.index.n == len(demo_cat.experiment_samples("GSE71102"))
    browser.filters = {}
    browser.text = "GSE72069"
    assert browser.table.row_keys == ["GSE72069"]


def test_the_builder_keeps_its_views_when_downloads_open(demo_cat, more):
    builder = DatasetBuilder(demo_cat)
    views = (builder.browser, builder.picker, builder.cart_view, builder.results)
    builder.browser.search.value = "breast"
    builder._use_catalog(more, builder.state.selection.with_fetched(more, {}), "rw.Catalog([])")
    assert (builder.browser, builder.picker, builder.cart_view, builder.results) == views
    assert builder.local_box.children == (builder.browser, builder.picker)
    assert builder.catalog is more and builder.results.catalog is more
    assert builder.cart_view.catalog is more and builder.browser.catalog is more
    assert (
        builder.catalog_code == "rw.Catalog([*rw.open_catalog().sources, *rw.Catalog([]).sources])"
    )
    # an experiment of the opened source is added, marked, built from the state's catalog
    builder.browser.search.value = "GSE72069"
    builder.browser.table.tick("GSE72069")
    builder.browser.add_button.click()
    assert builder.cart_view.data == {"GSE72069": ["ALL"]}
    assert builder.browser.table.marked == ["GSE72069"]
    assert builder.dataset == rw.Dataset({"GSE72069": ["ALL"]})
    assert builder.code.value.splitlines()[2] == f"cat = {builder.catalog_code}"


def test_views_keep_no_copy_of_the_state(demo_cat):
    builder = DatasetBuilder(demo_cat)
    for view in (builder.cart_view, builder.options, builder.browser, builder.picker):
        assert view.state is builder.state
    assert not {"data", "n_samples"} & set(builder.cart_view.trait_names())
    assert "options" not in builder.options.trait_names()
    assert "dataset" not in builder.trait_names()
    builder.state.selection = builder.state.selection.add({"SRP091833": None}).with_options(
        aggregate_by="SPECIES"
    )
    assert builder.cart_view.data == {"SRP091833": ["ALL"]} and builder.cart_view.n_samples == 20
    assert builder.options.options["aggregate_by"] == "SPECIES"
    assert builder.dataset == rw.Dataset({"SRP091833": ["ALL"]}, aggregate_by="SPECIES")


def test_rendering_is_raised_until_the_outermost_block_ends_even_on_error():
    rendering = Rendering()
    with pytest.raises(ValueError, match="inside"):
        with rendering:
            with rendering:
                assert rendering
            assert rendering
            raise ValueError("inside")
    assert not rendering
