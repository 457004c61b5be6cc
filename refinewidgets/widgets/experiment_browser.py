"""The experiment browser: text search, facet filters with counts, a paged and sortable table.

All filtering happens in the kernel (:class:`~refinewidgets.core.browse.TableIndex`, built once
per catalog); only the visible page and the facet counts go to the browser, so a keystroke
stays fast on a listing of 50,000 experiments. Ticking experiments sets :attr:`chosen` (the
sample picker lists their samples); "Add whole experiments" hands them to the listeners
registered with :meth:`ExperimentBrowser.on_add`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
from traitlets import Dict, Int, List, Unicode, observe

from ..core.browse import TableIndex, experiment_index
from ._status import StatusArea, guarded
from ._table import PagedTable

__all__ = ["ExperimentBrowser"]

COLUMNS = [
    ("accession", "Accession", 110),
    ("title", "Title", 380),
    ("technology", "Technology", 100),
    ("organisms", "Organism", 150),
    ("platforms", "Platform", 220),
    ("num_samples", "Samples", 70),
]


class ExperimentBrowser(w.VBox):
    """Search and filter the experiments of a catalog; tick the ones to pick samples from.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo).
    index
        A ready :func:`~refinewidgets.core.browse.experiment_index` of it (built when None).
    facet_limit
        At most this many values per facet list (the most frequent, plus the chosen ones).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> browser = ExperimentBrowser(rw.open_catalog())
    >>> browser.search.value = "breast"
    >>> browser.filters = {"technology": ["RNA-SEQ"]}
    >>> browser.table.row_keys
    ['SRP091833']
    """

    text = Unicode(
        "", help="The search text: every word must appear in the accession, title or description."
    )
    filters = Dict(
        help="The chosen facet values: {facet: [values]}, OR within a facet, AND across facets."
    )
    chosen = List(Unicode(), help="Accessions of the ticked experiments.")
    total = Int(0, help="How many experiments match the search and filters.")

    def __init__(
        self, catalog=None, *, index: TableIndex | None = None, facet_limit: int = 30, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if catalog is None:
            from ..io.catalog_open import open_catalog

            catalog = open_catalog()
        self.catalog = catalog
        self.index = index if index is not None else experiment_index(catalog)
        self.facet_limit = facet_limit
        self._listeners: list[Callable[[dict[str, list[str] | None]], Any]] = []
        self._quiet = False
        self.status = StatusArea("rw-browser-status")
        self.search = w.Text(
            placeholder="Search accession, title, description",
            continuous_update=True,
            layout=w.Layout(width="480px"),
        )
        self.search.add_class("rw-search")
        self.facets: dict[str, w.SelectMultiple] = {}
        for name in self.index.facets:
            box = w.SelectMultiple(
                options=[],
                rows=5,
                description=name.capitalize(),
                layout=w.Layout(width="330px"),
                style={"description_width": "80px"},
            )
            box.add_class("rw-facet")
            box.add_class(f"rw-facet-{name}")
            box.observe(self._on_facet, names="value")
            self.facets[name] = box
        self.table = PagedTable(COLUMNS, prefix="rw-experiments")
        self.table.observe(self._on_table, names=["sort_by", "ascending", "page", "page_size"])
        self.table.observe(self._on_ticked, names="selected")
        self.add_button = w.Button(
            description="Add whole experiments to dataset",
            icon="plus",
            layout=w.Layout(width="280px"),
            tooltip="Add every sample of the ticked experiments",
        )
        self.add_button.add_class("rw-add-experiments")
        self.add_button.on_click(lambda _: self.add_chosen())
        self.clear_button = w.Button(description="Untick all", layout=w.Layout(width="120px"))
        self.clear_button.add_class("rw-untick-experiments")
        self.clear_button.on_click(lambda _: setattr(self, "chosen", []))
        self.search.observe(self._on_search, names="value")
        self.children = [
            w.HTML("<b>Experiments</b>"),
            self.search,
            w.HBox(list(self.facets.values()), layout=w.Layout(flex_flow="row wrap")),
            self.table,
            w.HBox([self.add_button, self.clear_button]),
            self.status,
        ]
        self.refresh()

    # -- events ---------------------------------------------------------------------------------
    def _on_search(self, change) -> None:
        self.text = change["new"]

    def _on_facet(self, change) -> None:
        if self._quiet:
            return
        self.filters = {name: list(box.value) for name, box in self.facets.items() if box.value}

    def _on_table(self, change) -> None:
        if change["name"] != "page":
            self._first_page()
        else:
            self.refresh()

    def _first_page(self) -> None:
        if self.table.page != 0:
            self.table.page = 0  # the table's observer refreshes
        else:
            self.refresh()

    def _on_ticked(self, change) -> None:
        self.chosen = list(change["new"])

    @observe("text", "filters")
    def _query_changed(self, change) -> None:
        if change["name"] == "text" and self.search.value != self.text:
            self.search.value = self.text
        self._first_page()

    @observe("chosen")
    def _chosen_changed(self, change) -> None:
        if list(self.table.selected) != list(self.chosen):
            self.table.selected = list(self.chosen)
        self.add_button.disabled = not self.chosen

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
            facet_limit=self.facet_limit,
        )
        self._quiet = True
        try:
            for name, box in self.facets.items():
                counts = page.facets.get(name)
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
        if self.status.kind == "error":
            self.status.clear()

    def on_add(
        self, callback: Callable[[dict[str, list[str] | None]], Any], remove: bool = False
    ) -> None:
        """Call ``callback({experiment: None, ...})`` when whole experiments are added."""
        if remove:
            self._listeners.remove(callback)
        else:
            self._listeners.append(callback)

    @guarded
    def add_chosen(self) -> None:
        """Hand every ticked experiment, whole, to the listeners."""
        if not self.chosen:
            self.status.show("Tick one or more experiments first.", "warning")
            return
        selection = {exp: None for exp in self.chosen}
        for callback in self._listeners:
            callback(selection)
        n = sum(len(self.catalog.experiment_samples(e)) for e in selection)
        self.status.show(
            f"Added {len(selection)} experiment(s), {n:,} samples, to the dataset.", "success"
        )
