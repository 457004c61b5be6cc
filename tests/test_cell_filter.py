"""The cell filter's small syntax: normal form, hashable form, matching, and the options panel
keeping conditions its lists cannot show."""

from __future__ import annotations

import pandas as pd
import pytest

from refinewidgets.core.cell_filter import (
    describe_filter,
    freeze_cell_filter,
    match_cells,
    parse_cell_filter,
    qc_keep,
    qc_table_columns,
    thaw_cell_filter,
)
from refinewidgets.errors import DatasetSpecError

CELLS = pd.DataFrame(
    {
        "cell_type": ["B cell", "T cell", "B cell", "monocyte"],
        "sex": ["Male", "female", "unknown", "male"],
        "total_counts": [900.0, 300.0, 1500.0, 50.0],
        "author": ["B_naive", "T_cd4", "B_memory", "mono"],
    }
)

FILTER = {
    "cell_type": "B cell",
    "sex": {"not_in": ["unknown"]},
    "total_counts": {"min": 100, "max": 1000},
}


def test_normal_form_freezes_and_thaws_back():
    normal = parse_cell_filter(FILTER)
    assert normal == {
        "cell_type": ["B cell"],
        "sex": {"not_in": ["unknown"]},
        "total_counts": {"min": 100.0, "max": 1000.0},
    }
    frozen = freeze_cell_filter(normal)
    hash(frozen)
    assert thaw_cell_filter(frozen) == normal
    assert describe_filter(normal) == (
        "cell_type in ['B cell']; sex not in ['unknown']; total_counts >= 100; total_counts <= 1000"
    )


def test_matching_values_exclusions_ranges_and_case():
    assert match_cells(CELLS, FILTER, "t").tolist() == [True, False, False, False]
    # sex is compared ignoring case: "Male" and "male" both match
    assert match_cells(CELLS, {"sex": ["MALE"]}, "t").tolist() == [True, False, False, True]
    assert match_cells(CELLS, {"author": {"in": ["B_naive", "mono"]}}, "t").tolist() == [
        True,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("cell_filter", "message"),
    [
        (
            {"cell_type": ["neuron"]},
            "no cell of t has ['neuron']; values present: ['B cell', 'T cell', 'monocyte']",
        ),
        ({"cell_type": {"not_in": ["B cell", "T cell", "monocyte"]}}, "every cell of t has one of"),
        (
            {"total_counts": {"min": 5000}},
            "no cell of t is in [5000.0, inf] (its values range 50.0..1500.0)",
        ),
        ({"author": {"max": 3}}, "a numeric range needs numbers"),
        (
            {"cell_type": ["monocyte"], "sex": ["female"]},
            "meets all of (cell_type in ['monocyte']; sex in ['female']) together",
        ),
        ({"celltype": ["B cell"]}, "'celltype' (did you mean cell_type?) is not in t"),
    ],
)
def test_matching_errors_say_what_exists(cell_filter, message):
    with pytest.raises(DatasetSpecError) as info:
        match_cells(CELLS, cell_filter, "t")
    assert message in str(info.value)


def test_selection_keeps_rich_conditions(sc_catalog):
    from refinewidgets.core.selection import Selection

    sel = (
        Selection(sc_catalog)
        .add({"SC1": None})
        .with_options(quantile_normalize=False, cell_filter=FILTER, genes=["CD19"])
    )
    assert sel.option_values["cell_filter"] == parse_cell_filter(FILTER)
    assert sel.option_values["genes"] == ["CD19"]
    assert sel.dataset.cell_filter == parse_cell_filter(FILTER)
    assert Selection.from_dataset(sel.dataset, sc_catalog).option_values == sel.option_values


def test_options_panel_keeps_conditions_its_lists_cannot_show(sc_catalog):
    from refinewidgets.widgets.options import OptionsPanel
    from refinewidgets.widgets.state import AppState

    panel = OptionsPanel(state=AppState(sc_catalog))
    panel.state.selection = panel.state.selection.add({"SC1": None}).with_options(
        quantile_normalize=False,
        cell_filter={"sex": {"not_in": ["unknown"]}, "total_counts": {"min": 500}},
    )
    assert panel.cell_filters["sex"].value == ()  # an exclusion is not a list of choices
    box = panel.cell_filters["cell_type"]
    box.value = (box.options[0],)
    assert panel.state.selection.option_values["cell_filter"] == {
        "sex": {"not_in": ["unknown"]},
        "total_counts": {"min": 500.0},
        "cell_type": [box.options[0]],
    }


QC = pd.DataFrame(
    {"total_counts": [900.0, 300.0, 1500.0, 50.0], "n_genes_by_counts": [400, 120, 800, 20]},
    index=["c1", "c2", "c3", "c4"],  # any index: the mask follows the rows
)


def test_qc_pass_of_a_dict_filter_uses_only_its_qc_conditions():
    keep = qc_keep(FILTER, QC, "f.h5ad")
    assert keep.tolist() == [True, True, False, False]
    assert qc_keep({"cell_type": ["B cell"]}, QC, "f.h5ad") is None
    assert qc_table_columns(FILTER) == []
    with pytest.raises(DatasetSpecError, match="f.h5ad"):
        qc_keep({"n_genes_by_counts": {"min": 10_000}}, QC, "f.h5ad")


def test_qc_pass_of_a_filter_text_sees_the_cells_and_their_qc_values():
    text = "(cell_type == 'B' and total_counts < 1000) or n_genes_by_counts > 700"
    renamed = {"cell_type": "author_type"}
    assert qc_table_columns(text, renamed) == ["author_type"]
    assert qc_table_columns("cell_type == 'B'", renamed) == []
    cells = pd.DataFrame({"author_type": ["B", "B", "T", "T"]})
    keep = qc_keep(text, QC, "f.h5ad", table=cells, renamed=renamed)
    assert keep.tolist() == [True, True, True, False]
    assert qc_keep("cell_type == 'B'", QC, "f.h5ad", table=cells, renamed=renamed) is None
    only_qc = qc_keep("total_counts >= 300", QC, "f.h5ad")
    assert only_qc.tolist() == [True, True, True, False]


def test_options_panel_takes_a_filter_text_and_shows_where_it_goes_wrong(sc_catalog):
    from refinewidgets.widgets.options import OptionsPanel
    from refinewidgets.widgets.state import AppState

    panel = OptionsPanel(state=AppState(sc_catalog))
    panel.state.selection = panel.state.selection.add({"SC1": None}).with_options(
        quantile_normalize=False, cell_filter={"cell_type": ["T cell"]}
    )
    before = panel.state.selection
    panel.cell_filter_text.value = "cell_type == 'B cell' and"  # unfinished
    assert panel.state.selection is before  # nothing changed
    error = panel.cell_filter_error.value
    assert "cell filter" in error and "^" in error and "<pre" in error
    assert panel.cell_filter_text.value == "cell_type == 'B cell' and"  # kept to be fixed
    panel.cell_filter_text.value = "cell_type == 'B cell' or total_counts >= 500"
    assert panel.cell_filter_error.value == ""
    text = panel.state.selection.option_values["cell_filter"]
    assert text == parse_cell_filter("cell_type == 'B cell' or total_counts >= 500")
    assert panel.state.selection.dataset.cell_filter == text
    assert all(box.disabled for box in panel.cell_filters.values())  # the text is used
    panel.cell_filter_text.value = ""  # emptied: no filter, the lists are back
    assert panel.state.selection.option_values["cell_filter"] is None
    assert not any(box.disabled for box in panel.cell_filters.values())
    # a text set from code or a link shows in the box
    panel.state.selection = panel.state.selection.with_options(cell_filter="tissue in ['liver']")
    assert panel.cell_filter_text.value == parse_cell_filter("tissue in ['liver']")
    panel.cell_filter_text.value = "tissue == '<b>x</b>' and ("
    assert "<b>x</b>" not in panel.cell_filter_error.value  # shown as text, never as HTML
