"""The sample picker: the samples of the chosen experiments, with their harmonized metadata.

Facet lists on metadata columns (sex, specimen part, disease; for single-cell libraries also
cell type, tissue and stage) narrow the table; samples are ticked one by one, or all the
matching ones at once ("Select all" / "Select none"). "Add to dataset" hands
``{experiment: [samples]}`` to the listeners registered with :meth:`SamplePicker.on_add`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
from traitlets import Dict, Int, List, Unicode, observe

from ..core.browse import sample_index
from ._status import StatusArea, guarded
from ._table import PagedTable

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


def _css(name: str) -> str:
    return name.replace(" ", "-")


class SamplePicker(w.VBox):
    """Pick samples of the chosen experiments.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo).

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
    text = Unicode("", help="Search text over the sample accession, title and experiment.")
    filters = Dict(help="The chosen facet values: {facet: [values]}.")
    selected = List(Unicode(), help="The ticked samples (across pages and filters).")
    total = Int(0, help="How many listed samples match the search and filters.")

    def __init__(self, catalog=None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if catalog is None:
            from ..io.catalog_open import open_catalog

            catalog = open_catalog()
        self.catalog = catalog
        self.index = sample_index(catalog, [])
        self._listeners: list[Callable[[dict[str, list[str]]], Any]] = []
        self._quiet = False
        self.status = StatusArea("rw-picker-status")
        self.title = w.HTML("<b>Samples</b>: tick experiments above to list their samples.")
        self.search = w.Text(
            placeholder="Search sample accession or title",
            continuous_update=True,
            layout=w.Layout(width="400px"),
        )
        self.search.add_class("rw-sample-search")
        self.search.observe(lambda c: setattr(self, "text", c["new"]), names="value")
        self.facets: dict[str, w.SelectMultiple] = {}
        self.facet_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.table = PagedTable(COLUMNS, prefix="rw-samples")
        self.table.observe(self._on_table, names=["sort_by", "ascending", "page", "page_size"])
        self.table.observe(lambda c: setattr(self, "selected", list(c["new"])), names="selected")
        self.select_all_button = w.Button(description="Select all", icon="check-square")
        self.select_all_button.add_class("rw-select-all")
        self.select_all_button.on_click(lambda _: self.select_all())
        self.select_none_button = w.Button(description="Select none", icon="square")
        self.select_none_button.add_class("rw-select-none")
        self.select_none_button.on_click(lambda _: self.select_none())
        self.add_button = w.Button(
            description="Add to dataset", icon="plus", button_style="primary"
        )
        self.add_button.add_class("rw-add-to-dataset")
        self.add_button.on_click(lambda _: self.add_selected())
        self.selection_label = w.Label("0 selected")
        self.selection_label.add_class("rw-selection-count")
        self.children = [
            self.title,
            self.search,
            self.facet_box,
            self.table,
            w.HBox(
                [
                    self.select_all_button,
                    self.select_none_button,
                    self.add_button,
                    self.selection_label,
                ]
            ),
            self.status,
        ]
        self.refresh()

    # -- events ---------------------------------------------------------------------------------
    @observe("experiments")
    def _experiments_changed(self, change) -> None:
        self._load()

    @guarded
    def _load(self) -> None:
        self.index = sample_index(self.catalog, self.experiments)
        for box in self.facets.values():
            box.close()
        self.facets = {}
        for name in self.index.facets:
            box = w.SelectMultiple(
                options=[],
                rows=4,
                description=name.capitalize(),
                layout=w.Layout(width="300px"),
                style={"description_width": "90px"},
            )
            box.add_class("rw-sample-facet")
            box.add_class(f"rw-sample-facet-{_css(name)}")
            box.observe(self._on_facet, names="value")
            self.facets[name] = box
        self.facet_box.children = list(self.facets.values())
        table = self.index.table
        sc = "technology" in table.columns and bool((table["technology"] == "SINGLE-CELL").any())
        self.table.set_columns(COLUMNS + (SINGLE_CELL_COLUMNS if sc else []))
        listed = set(self.index.table.index.astype(str))
        self._quiet = True
        self.filters = {}
        self._quiet = False
        self.selected = [s for s in self.selected if s in listed]
        n = len(self.experiments)
        self.title.value = (
            f"<b>Samples</b> of {n} experiment(s): {self.index.n:,} samples"
            if n
            else "<b>Samples</b>: tick experiments above to list their samples."
        )
        self._first_page()

    def _on_facet(self, change) -> None:
        if not self._quiet:
            self.filters = {name: list(box.value) for name, box in self.facets.items() if box.value}

    def _on_table(self, change) -> None:
        if change["name"] != "page":
            self._first_page()
        else:
            self.refresh()

    def _first_page(self) -> None:
        if self.table.page != 0:
            self.table.page = 0
        else:
            self.refresh()

    @observe("text", "filters")
    def _query_changed(self, change) -> None:
        if change["name"] == "text" and self.search.value != self.text:
            self.search.value = self.text
        if not self._quiet:
            self._first_page()

    @observe("selected")
    def _selected_changed(self, change) -> None:
        if list(self.table.selected) != list(self.selected):
            self.table.selected = list(self.selected)
        self.selection_label.value = f"{len(self.selected):,} selected"
        self.add_button.disabled = not self.selected

    # -- work -----------------------------------------------------------------------------------
    @guarded
    def refresh(self) -> None:
        """Run the query of the current search, filters, sort and page; show its page."""
        page = self.index.query(
            self.text,
            self.filters,
            sort=self.table.sort_by,
            ascending=self.table.ascending,
            page=self.table.page,
            page_size=self.table.page_size,
        )
        self._quiet = True
        try:
            for name, box in self.facets.items():
                counts = page.facets[name]
                options = [(f"{value} ({count:,})", value) for value, count in counts.items()]
                wanted = tuple(v for v in self.filters.get(name, ()) if v in set(counts.index))
                if list(box.options) != options:
                    box.options = options
                if box.value != wanted:
                    box.value = wanted
        finally:
            self._quiet = False
        self.table.show(page)
        self.total = page.total

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

    def on_add(self, callback: Callable[[dict[str, list[str]]], Any], remove: bool = False) -> None:
        """Call ``callback({experiment: [samples]})`` when "Add to dataset" is pressed."""
        if remove:
            self._listeners.remove(callback)
        else:
            self._listeners.append(callback)

    @guarded
    def add_selected(self) -> None:
        """Hand the ticked samples to the listeners."""
        selection = self.selection()
        if not selection:
            self.status.show(
                'No sample is ticked: tick samples (or press "Select all") first.', "warning"
            )
            return
        for callback in self._listeners:
            callback(selection)
        n = sum(len(s) for s in selection.values())
        where = "" if self._listeners else " (no dataset is connected: read picker.selection())"
        self.status.show(
            f"Added {n:,} sample(s) of {len(selection)} experiment(s) to the dataset{where}.",
            "success",
        )
