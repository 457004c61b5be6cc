"""What the user picks is what is built: no pick replaced without an explicit choice, the
search carried to the sample list, links that always build (issue 24)."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.widgets import DatasetBuilder


@pytest.fixture
def builder(demo_cat):
    return DatasetBuilder(demo_cat)


def _breast_cancer_samples(cat):
    return [
        s
        for s in cat.experiment_samples("GSE71102")
        if cat.samples.loc[s, "refinebio_disease"] == "breast cancer"
    ]


def _pick_breast_cancer(builder):
    """Search "breast cancer", tick GSE71102, Disease "breast cancer", Select all, Add."""
    builder.browser.search.value = "breast cancer"
    builder.browser.table.tick("GSE71102")
    builder.picker.facets["disease"].value = ("breast cancer",)
    builder.picker.select_all_button.click()
    builder.picker.add_button.click()


def test_adding_whole_experiments_keeps_a_trimmed_pick_and_asks(builder, demo_cat):
    _pick_breast_cancer(builder)
    cancer = _breast_cancer_samples(demo_cat)
    assert len(cancer) == 16
    assert builder.cart_view.data == {"GSE71102": cancer}
    # a second search: GSE71102 stays ticked, hidden; GSE75037 ticked and added whole
    builder.browser.search.value = "lung adenocarcinoma"
    assert "GSE71102" not in builder.browser.table.row_keys
    builder.browser.table.tick("GSE75037")
    assert builder.browser.chosen == ["GSE71102", "GSE75037"]
    assert builder.browser.ticked_label.value == "2 ticked (1 hidden by the search)"
    builder.browser.add_button.click()
    assert builder.cart_view.data == {"GSE71102": cancer, "GSE75037": ["ALL"]}
    n = len(demo_cat.experiment_samples("GSE75037"))
    assert builder.browser.status.text == (
        f"Added GSE75037 ({n} samples). Left out GSE71102: ticked before, hidden by the current "
        'search and filters (press "Clear search and filters" to see it, or "Untick all").'
    )
    # shown again: adding it whole keeps the 16 and the cart asks
    builder.browser.clear_filters()
    builder.browser.add_button.click()
    assert builder.cart_view.data["GSE71102"] == cancer
    assert builder.browser.status.text == (
        "GSE71102 keeps the 16 of its 24 samples you chose: My dataset asks whether to add the "
        "other 8. GSE75037: every sample was already in the dataset."
    )
    (question,) = builder.cart_view.questions.children
    assert question.children[0].value == "GSE71102: 16 of 24 chosen; add the other 8?"
    assert [b.description for b in question.children[1:]] == ["Add the other 8", "Keep 16"]
    builder.cart_view.add_rest_buttons["GSE71102"].click()
    assert builder.cart_view.data["GSE71102"] == ["ALL"]
    assert builder.cart_view.questions.children == ()
    builder.cart_view.undo_button.click()  # the explicit choice can be undone
    assert builder.cart_view.data["GSE71102"] == cancer


def test_keeping_the_trimmed_pick_closes_the_question(builder, demo_cat):
    _pick_breast_cancer(builder)
    builder.browser.clear_filters()
    builder.browser.add_button.click()
    (question,) = builder.cart_view.questions.children
    question.children[2].click()  # "Keep 16"
    assert builder.cart_view.questions.children == ()
    assert builder.cart_view.data["GSE71102"] == _breast_cancer_samples(demo_cat)


def test_only_hidden_ticks_add_nothing_and_say_why(builder):
    builder.browser.table.tick("GSE71102")
    builder.browser.search.value = "lung adenocarcinoma"
    assert builder.browser.add_button.disabled
    builder.browser.add_chosen()
    assert builder.cart_view.data == {}
    assert builder.browser.status.kind == "warning"
    assert "Left out GSE71102: ticked before, hidden by the current search" in (
        builder.browser.status.text
    )


@pytest.mark.parametrize("query", ["exp=ERP900101", "exp=ERP900101&quantile_normalize=1"])
def test_a_link_to_single_cells_opens_buildable(demo_cat, query):
    builder = DatasetBuilder(demo_cat, page_query=query)
    options = builder.options
    assert options.quantile_normalize.value is False and options.quantile_normalize.disabled
    assert options.qn_reason.value.count("Off: the dataset has single cells") == 1
    assert "set from code" not in options.qn_reason.value
    assert '"Quantile normalize" is off: the dataset has single cells' in builder.status.text
    assert builder.dataset.quantile_normalize is False
    assert builder.link_query == "exp=ERP900101&quantile_normalize=0"  # the address says so
    builder.build()
    assert builder.status.kind == "success", builder.status.text
    assert set(builder.result) == {"ERP900101"}


def test_a_single_cell_dataset_set_from_code_is_adapted_and_says_so(builder, demo_cat):
    builder.restore(rw.Dataset({"ERP900101": ["ALL"]}))  # the Dataset's default: QN on
    assert builder.dataset.quantile_normalize is False
    n = len(demo_cat.experiment_samples("ERP900101"))
    assert builder.status.text == (
        f'Dataset restored: 1 experiment(s), {n} samples. "Quantile normalize" is off: the '
        "dataset has single cells, which are never quantile-normalized."
    )


def test_the_search_arrives_at_the_sample_list(builder, demo_cat):
    builder.browser.search.value = "breast cancer"
    builder.browser.table.tick("GSE71102")
    picker = builder.picker
    cancer = _breast_cancer_samples(demo_cat)
    assert picker.text == "breast cancer" and picker.total == 16
    assert set(picker.index.keys(picker.text)) == set(cancer)
    assert picker.search_note.value == 'Showing 16 of 24 samples: those matching "breast cancer".'
    assert picker.show_all_button.layout.display is None
    assert picker.show_all_button.description == "Show all 24 samples"
    picker.select_all_button.click()  # takes what is shown
    assert sorted(picker.selected) == sorted(cancer)
    picker.show_all_button.click()
    assert picker.text == "" and picker.total == 24 and picker.search_note.value == ""
    assert picker.show_all_button.layout.display == "none"
    assert sorted(picker.selected) == sorted(cancer)  # ticks stay


def test_the_sample_search_counts_what_the_experiment_search_counted(demo_cat):
    from refinewidgets.core.browse import MATCHING, experiment_index, sample_index

    experiments = experiment_index(demo_cat)
    for words in ("breast cancer", "lung", "normal", "B cell", "liver", "GSE7", "homo"):
        page = experiments.query(words, page_size=1000)
        assert len(page.rows), words
        for exp, count in page.rows[MATCHING].items():
            listed = sample_index(demo_cat, [exp]).keys(words)
            assert len(listed) == count, (words, exp)
            assert set(listed) <= set(demo_cat.experiment_samples(exp))


def test_add_to_dataset_is_enabled_only_with_samples_ticked(demo_cat):
    from refinewidgets.widgets import SamplePicker

    picker = SamplePicker(demo_cat)
    assert picker.add_button.disabled
    picker.experiments = ["GSE71102"]
    assert picker.add_button.disabled
    picker.table.tick(demo_cat.experiment_samples("GSE71102")[0])
    assert not picker.add_button.disabled
    picker.select_none()
    assert picker.add_button.disabled
