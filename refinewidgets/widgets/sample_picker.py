"""The sample picker: the samples of the chosen experiments, with their harmonized metadata.

Facet lists on metadata columns (sex, specimen part, disease; for single-cell libraries also
cell type, tissue and stage) narrow the table; samples are ticked one by one, or all the
matching ones at once ("Select all" / "Select none": what the list shows). The experiment
search that found the ticked experiments is carried to :attr:`SamplePicker.text` (by the
builder), so the list shows the samples the search matched; a note says so, with "Show all N
samples" beside it. "Add to dataset" hands
``{experiment: [samples]}`` to the listeners registered with :meth:`SamplePicker.on_add`.
The "Columns" list (``rw-sample-columns``) chooses which metadata columns the table shows, among
those of the listed samples that hold a value (:attr:`SamplePicker.shown`).
The search, facets, table and status area are those of
:class:`~refinewidgets.widgets._faceted.FacetedTable`; the index and the facets change with
:attr:`SamplePicker.experiments`.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from traitlets import Dict, Int, List, Unicode, observe

from ..core.browse import sample_index, shown_columns
from ..core.spec import SINGLE_CELL
from ._faceted import FacetedTable, Parts
from ._status import guarded

__all__ = ["SamplePicker"]

COLUMNS = [
    ("accession", "Sample", 120),
    ("experiment_accession", "Experiment", 110),
    ("refinebio_title", "Title", 220),
    ("refinebio_organism", "Organism", 130),
    ("refinebio_sex", "Sex", 70),
    ("refinebio_specimen_part", "Specimen part", 130),
    ("refinebio_disease", "Disease", 160),
]
SINGLE_CELL_COLUMNS = [("n_cells", "Cells", 60), ("cell_types", "Cell types", 220)]
#: The labels and widths of the columns above; other columns: a label from their name, 150 px.
_KNOWN = {c: (label, width) for c, label, width in COLUMNS + SINGLE_CELL_COLUMNS}


def column_label(column: str) -> str:
    """The header of a sample column: ``refinebio_developmental_stage`` -> "Developmental stage".

    Examples
    --------
    >>> column_label("refinebio_specimen_part"), column_label("n_cells")
    ('Specimen part', 'Cells')
    """
    if column in _KNOWN:
        return _KNOWN[column][0]
    name = column.removeprefix("refinebio_").replace("_", " ").strip()
    return name[:1].upper() + name[1:]


NO_EXPERIMENT = "<b>Samples</b>: tick experiments above to list their samples."
PARTS = Parts(
    title=NO_EXPERIMENT,
    columns=COLUMNS,
    prefix="rw-samples",
    search="rw-sample-search",
    placeholder="Search samples: accession, title, disease, tissue, cell type",
    search_width="400px",
    facet="rw-sample-facet",
    facet_rows=4,
    facet_width="320px",
    label_width="110px",
    status="rw-picker-status",
    caption="Samples",
)


class SamplePicker(FacetedTable):
    """Pick samples of the chosen experiments.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo); ignored when ``state`` is
        given.
    state
        The :class:`~refinewidgets.widgets.state.AppState` whose catalog is listed and whose
        samples are marked "in dataset" (default: a new one over ``catalog``).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> picker = SamplePicker(rw.open_catalog())
    >>> picker.experiments = ["GSE71102"]
    >>> picker.filters = {"disease": ["normal"]}
    >>> picker.select_all(); len(picker.selected) == picker.total
    True
    """

    experiments = List(Unicode(), help="The experiments whose samples are listed.")
    text = Unicode(
        "",
        help="Search text over the samples' accession, title, disease, tissue, cell type and "
        "experiment (the experiment browser's search, carried here when experiments are ticked).",
    )
    filters = Dict(help="The chosen facet values: {facet: [values]}.")
    selected = List(Unicode(), help="The ticked samples (across pages and filters).")
    total = Int(0, help="How many listed samples match the search and filters.")
    shown = List(
        Unicode(),
        help="The metadata columns the table shows, in order (the sample accession always is).",
    )

    ticked_trait = "selected"
    _defaults: list[str] = []  # the default columns last offered

    def __init__(self, catalog=None, *, state=None, **kwargs: Any) -> None:
        super().__init__(
            catalog, lambda catalog: sample_index(catalog, []), PARTS, state=state, **kwargs
        )
        self._offer_columns(single_cell=False)

    def _in_dataset(self, selection) -> list[str]:
        return selection.samples()

    def _catalog_changed(self, change) -> None:
        self._load()  # the listed experiments' samples, as the new catalog holds them

    def _make_controls(self) -> list[w.Widget]:
        self.search_note = w.HTML()
        self.search_note.add_class("rw-sample-search-note")
        self.show_all_button = w.Button(
            description="Show all samples",
            icon="list",
            tooltip="Clear the search and filters: list every sample of the ticked experiments",
            layout=w.Layout(width="auto", display="none"),
        )
        self.show_all_button.add_class("rw-show-all-samples")
        self.show_all_button.on_click(lambda _: self.clear_filters())
        self.column_picker = w.SelectMultiple(
            options=[],
            rows=5,
            description="Columns",
            tooltip="The metadata columns shown (Ctrl/Shift-click to choose several)",
            layout=w.Layout(width="400px"),
            style={"description_width": self.parts.label_width},
        )
        self.column_picker.add_class("rw-sample-columns")
        self.column_picker.observe(self._on_column_picker, names="value")
        note = w.HBox(
            [self.search_note, self.show_all_button],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        return [note, self.column_picker]

    def _page_shown(self, page) -> None:
        """Say when the list is narrowed (the experiment search carried here, or the picker's own
        search and filters), with "Show all N samples" beside it."""
        narrowed = bool(self.text.split() or self.filters) and page.total < self.index.n
        self.show_all_button.layout.display = None if narrowed else "none"
        if not narrowed:
            self.search_note.value = ""
            return
        what = [f'matching "{html.escape(self.text.strip())}"'] if self.text.split() else []
        what += [
            f"{html.escape(name)} = {html.escape(', '.join(v))}" for name, v in self.filters.items()
        ]
        self.search_note.value = (
            f"Showing {page.total:,} of {self.index.n:,} samples: those {' and '.join(what)}."
        )
        self.show_all_button.description = f"Show all {self.index.n:,} samples"

    def _on_column_picker(self, change) -> None:
        if not self._rendering:
            self.shown = list(change["new"])

    @observe("shown")
    def _shown_changed(self, change) -> None:
        with self._rendering:
            offered = {value for _, value in self.column_picker.options}
            value = tuple(c for c in self.shown if c in offered)
            if self.column_picker.value != value:
                self.column_picker.value = value
        # columns the listed samples do not have are not shown (nor sortable)
        columns = [COLUMNS[0]] + [(c, column_label(c), _KNOWN.get(c, ("", 150))[1]) for c in value]
        if columns != self.table.columns:
            self.table.set_columns(columns)
            self.refresh()

    def _make_buttons(self) -> list[w.Widget]:
        self.select_all_button = w.Button(description="Select all", icon="check-square")
        self.select_all_button.add_class("rw-select-all")
        self.select_all_button.on_click(lambda _: self.select_all())
        self.select_none_button = w.Button(description="Select none", icon="square")
        self.select_none_button.add_class("rw-select-none")
        self.select_none_button.on_click(lambda _: self.select_none())
        self.add_button = w.Button(
            description="Add to dataset", icon="plus", button_style="primary", disabled=True
        )  # enabled while samples are ticked
        self.add_button.add_class("rw-add-to-dataset")
        self.add_button.on_click(lambda _: self.add_selected())
        self.selection_label = w.Label("0 selected")
        self.selection_label.add_class("rw-selection-count")
        return [
            self.select_all_button,
            self.select_none_button,
            self.add_button,
            self.selection_label,
        ]

    def _update_buttons(self, ticked: list[str]) -> None:
        self.selection_label.value = f"{len(ticked):,} selected"
        self.add_button.disabled = not ticked

    # -- the listed experiments -----------------------------------------------------------------
    @observe("experiments")
    def _experiments_changed(self, change) -> None:
        self._load()

    @guarded
    def _load(self) -> None:
        self.index = sample_index(self.catalog, self.experiments)
        self._make_facets()
        table = self.index.table
        sc = "technology" in table.columns and bool((table["technology"] == SINGLE_CELL).any())
        # reset the filters first: they may name facets the new experiments do not have
        with self._rendering:
            self.filters = {}
        self._offer_columns(sc)
        listed = set(self.index.table.index.astype(str))
        self.selected = [s for s in self.selected if s in listed]
        n = len(self.experiments)
        self.title.value = (
            f"<b>Samples</b> of {n} experiment(s): {self.index.n:,} samples" if n else NO_EXPERIMENT
        )
        self._first_page()
        self.table.keep_rows(listed)  # a late click on a sample gone is not a tick

    def _offer_columns(self, single_cell: bool) -> None:
        """Offer the columns of the listed samples holding a value; keep the chosen ones that
        are still there (the defaults when none is)."""
        defaults = [c for c, _, _ in COLUMNS[1:] + (SINGLE_CELL_COLUMNS if single_cell else [])]
        present = set(shown_columns(self.index.table)) | {c for c, _, _ in COLUMNS[1:]}
        if not single_cell:
            present -= {c for c, _, _ in SINGLE_CELL_COLUMNS}
        others = sorted(present - set(defaults), key=lambda c: column_label(c).lower())
        with self._rendering:
            self.column_picker.options = [(column_label(c), c) for c in defaults + others]
        kept = [c for c in self.shown if c in present]
        chosen_by_user, self._defaults = list(self.shown) != self._defaults, defaults
        chosen = kept if kept and chosen_by_user else defaults
        if chosen == list(self.shown):
            self._shown_changed(None)  # the offered columns changed: resync the list
        else:
            self.shown = chosen

    # -- ticking and adding ---------------------------------------------------------------------
    def select_all(self) -> None:
        """Tick every sample matching the search and filters (keeping those ticked before)."""
        matching = self.index.keys(self.text, self.filters)
        self.selected = list(dict.fromkeys([*self.selected, *matching]))

    def select_none(self) -> None:
        """Untick every sample."""
        self.selected = []

    def selection(self) -> dict[str, list[str]]:
        """The ticked samples grouped by experiment, in table order."""
        chosen = set(self.selected)
        owners = self.index.table["experiment_accession"]
        out: dict[str, list[str]] = {}
        for sample, exp in zip(owners.index.astype(str), owners.astype(str)):
            if sample in chosen:
                out.setdefault(exp, []).append(sample)
        return out

    @guarded
    def add_selected(self) -> None:
        """Hand the ticked samples to the listeners."""
        selection = self.selection()
        if not selection:
            self.status.show(
                'No sample is ticked: tick samples (or press "Select all") first.', "warning"
            )
            return
        self._hand_over(selection)
        n = sum(len(s) for s in selection.values())
        where = "" if self._listeners else " (no dataset is connected: read picker.selection())"
        self.status.show(
            f"Added {n:,} sample(s) of {len(selection)} experiment(s) to the dataset{where}.",
            "success",
        )
