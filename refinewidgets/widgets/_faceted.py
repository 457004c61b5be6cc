"""The base of the experiment browser and the sample picker: search, facet lists, a paged table.

:class:`FacetedTable` is a thin view over a :class:`~refinewidgets.core.browse.TableIndex`: a
text search box, one facet list per facet of the index (each value with its count), a
:class:`~refinewidgets.widgets._table.PagedTable` with a tick box per row, a row of buttons and
a :class:`~refinewidgets.widgets._status.StatusArea`. Every change of the search, the filters,
the sort or the page runs one query of the index in the kernel (:meth:`FacetedTable.refresh`);
only the page shown and the facet counts go to the browser.

Facet lists are sorted by count, then name; a facet with more than :data:`FACET_SEARCH_MIN`
values gets a small search box that narrows its list (``<facet>-filter`` CSS class).

The table lists the catalog of an :class:`~refinewidgets.widgets.state.AppState` and observes
it: rows of the state's selection are marked "in dataset" (``_in_dataset`` says which), and when
the state's catalog changes (downloads opened beside it) the table lists the new one in place,
keeping the search, the ticks and the filters whose facet is still there.

A subclass gives the texts, CSS classes and sizes of its parts (:class:`Parts`), declares the
trait holding the ticked keys and names it in ``ticked_trait``, and makes its buttons
(``_make_buttons``), keeping them up to date with the ticks (``_update_buttons``); it may add
controls above the table (``_make_controls``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import ipywidgets as w
from traitlets import Dict, Int, Unicode, observe

from ..core.browse import Page, TableIndex
from ..core.metadata import ORGANISM_COLUMNS, organism_label
from ._status import StatusArea, catalog_or_demo, guarded
from ._table import PagedTable
from .state import AppState, Rendering

__all__ = ["FacetedTable", "Parts"]

#: What the add listeners receive: ``{experiment: [samples] or None (every sample)}``.
Selection = Mapping[str, list[str] | None]
#: A facet with more values than this gets a search box over its values.
FACET_SEARCH_MIN = 8


def _css(name: str) -> str:
    return name.replace(" ", "-")


@dataclass(frozen=True)
class Parts:
    """The texts, CSS classes and sizes that tell one :class:`FacetedTable` from another.

    Parameters
    ----------
    title
        The HTML of the heading (``self.title``, which the widget may change later).
    columns
        The table's ``[(column, label, width in px), ...]``; the first is the row key.
    prefix
        The CSS class prefix of the table's parts (see :class:`PagedTable`).
    search, placeholder, search_width
        The search box's CSS class, placeholder and width.
    facet, facet_rows, facet_width, label_width
        Each facet list's CSS class (it also gets ``<facet>-<name>``, spaces turned to dashes),
        its height in rows, its width and the width of its label.
    status
        The CSS class of the status area.
    caption
        The table's caption (for screen readers).
    best_match
        Offer the sort order "best match" (most matching samples first) and start with it.
    """

    title: str
    columns: Sequence[tuple[str, str, int]]
    prefix: str
    search: str
    placeholder: str
    search_width: str
    facet: str
    facet_rows: int
    facet_width: str
    label_width: str
    status: str
    caption: str = "Rows"
    best_match: bool = False


class FacetedTable(w.VBox):
    """Search, filter with facets, sort, page and tick the rows of an index of a catalog.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo); ignored when ``state`` is
        given.
    indexer
        Makes the :class:`~refinewidgets.core.browse.TableIndex` shown from the catalog.
    parts
        The texts, CSS classes and sizes of the parts.
    facet_limit
        At most this many values per facet list (the most frequent, plus the chosen ones;
        None: all).
    state
        The :class:`~refinewidgets.widgets.state.AppState` whose catalog is listed and whose
        selection is marked (default: a new one over ``catalog``).

    Examples
    --------
    A subclass declares the trait of the ticked keys and names it:

    >>> import refinewidgets as rw
    >>> from traitlets import List
    >>> from refinewidgets.core.browse import experiment_index
    >>> from refinewidgets.widgets.experiment_browser import PARTS
    >>> class Experiments(FacetedTable):
    ...     ticked_trait = "ticked"
    ...     ticked = List(Unicode(), help="The ticked experiments.")
    >>> table = Experiments(rw.open_catalog(), experiment_index, PARTS)
    >>> table.text = "breast"; table.table.tick("GSE71102")
    >>> table.total, table.ticked
    (3, ['GSE71102'])
    """

    text = Unicode("", help="The search text.")
    filters = Dict(help="The chosen facet values: {facet: [values]}.")
    total = Int(0, help="How many rows match the search and filters.")

    #: The name of the subclass's ``List(Unicode())`` trait that mirrors the table's ticks.
    ticked_trait: ClassVar[str]

    def __init__(
        self,
        catalog,
        indexer: Callable[[Any], TableIndex],
        parts: Parts,
        *,
        facet_limit: int | None = None,
        state: AppState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = state if state is not None else AppState(catalog_or_demo(catalog))
        self._indexer = indexer
        self.index = indexer(self.state.catalog)
        self.parts = parts
        self.facet_limit = facet_limit
        self._listeners: list[Callable[[Selection], Any]] = []
        #: Raised while the view writes its own controls (their observers then do nothing).
        self._rendering = Rendering()
        self.add_class(f"{parts.prefix}-panel")
        self.status = StatusArea(parts.status)
        self.title = w.HTML(parts.title)
        self.search = w.Text(
            placeholder=parts.placeholder,
            continuous_update=True,
            layout=w.Layout(width=parts.search_width),
        )
        self.search.add_class(parts.search)
        self.search.observe(self._on_search, names="value")
        self.facets: dict[str, w.SelectMultiple] = {}
        #: Per facet with many values, the box searching its values.
        self.facet_search: dict[str, w.Text] = {}
        self.facet_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self._make_facets()
        self.table = PagedTable(
            parts.columns, prefix=parts.prefix, best_match=parts.best_match, caption=parts.caption
        )
        self.table.observe(self._on_table, names=["sort_by", "ascending", "page", "page_size"])
        self.table.observe(self._on_ticked, names="selected")
        self.observe(self._sync_ticks, names=self.ticked_trait)
        self.clear_filters_button = w.Button(
            description="Clear search and filters", icon="times", layout=w.Layout(width="220px")
        )
        self.clear_filters_button.add_class(f"{parts.prefix}-clear-filters")
        self.clear_filters_button.on_click(lambda _: self.clear_filters())
        self.children = [
            self.title,
            self.search,
            self.facet_box,
            self.clear_filters_button,
            *self._make_controls(),
            self.table,
            w.HBox(self._make_buttons()),
            self.status,
        ]
        self.state.observe(self._mark, names="selection")
        self.state.observe(self._catalog_changed, names="catalog")
        self._mark()
        self.refresh()

    @property
    def catalog(self):
        """The catalog listed: the state's."""
        return self.state.catalog

    def _mark(self, change=None) -> None:
        self.table.marked = self._in_dataset(self.state.selection)

    @guarded
    def _catalog_changed(self, change) -> None:
        """List the state's new catalog, keeping the search, the ticks and the filters whose
        facet is still there."""
        self._relist()
        with self._rendering:
            self.filters = {k: v for k, v in self.filters.items() if k in self.facets}
        self._first_page()
        self.table.keep_rows(self.index.table.index.astype(str))  # rows of the old catalog go

    def _relist(self) -> None:
        """Index the state's catalog and show its facets."""
        self.index = self._indexer(self.catalog)
        self._make_facets()

    def clear_filters(self) -> None:
        """Empty the search box, every facet list and every facet's search box."""
        with self._rendering:
            for box in self.facet_search.values():
                box.value = ""
        before = (self.filters, self.text)
        self.filters = {}
        self.text = ""
        if before == ({}, ""):  # only a facet's search box changed
            self.refresh()

    def _nothing_matches(self, page: Page) -> None:
        """Say how to find something when the search and filters match nothing."""
        if page.total == 0 and (self.text or self.filters):
            parts = [f"the search {self.text!r}"] if self.text else []
            parts += [f"{name} = {', '.join(v)}" for name, v in self.filters.items()]
            self.status.show(
                f"Nothing matches {' and '.join(parts)}. Check the spelling, search fewer "
                'words, or press "Clear search and filters".',
                "info",
            )
        elif self.status.text.startswith("Nothing matches"):
            self.status.clear()

    # -- for subclasses ---------------------------------------------------------------------
    def _in_dataset(self, selection) -> list[str]:
        """The keys of the rows that ``selection`` (the state's) holds, marked "in dataset"."""
        return []

    def _make_buttons(self) -> list[w.Widget]:
        """The widgets of the row under the table (called once, by ``__init__``)."""
        return []

    def _make_controls(self) -> list[w.Widget]:
        """Widgets shown between the facets and the table (called once, by ``__init__``)."""
        return []

    def _update_buttons(self, ticked: list[str]) -> None:
        """Show the new ticked keys ``ticked`` in the buttons' row."""

    def _page_shown(self, page: Page) -> None:
        """Called by :meth:`refresh` after it showed ``page``."""

    def _make_facets(self) -> None:
        """One facet list per facet of ``self.index``, in place of the ones shown."""
        for box in [*self.facets.values(), *self.facet_search.values()]:
            box.close()
        self.facets, self.facet_search = {}, {}
        lists = []
        for name, facet in self.index.facets.items():
            box = w.SelectMultiple(
                options=[],
                rows=self.parts.facet_rows,
                description=name.capitalize(),
                layout=w.Layout(width=self.parts.facet_width),
                style={"description_width": self.parts.label_width},
            )
            box.add_class(self.parts.facet)
            box.add_class(f"{self.parts.facet}-{_css(name)}")
            box.observe(self._on_facet, names="value")
            self.facets[name] = box
            if len(facet.values) <= FACET_SEARCH_MIN:
                lists.append(box)
                continue
            find = w.Text(
                placeholder=f"Find a {name} ({len(facet.values):,} values)",
                continuous_update=True,
                layout=w.Layout(
                    width=f"calc({self.parts.facet_width} - {self.parts.label_width} - 8px)",
                    margin=f"2px 2px 2px calc({self.parts.label_width} + 6px)",
                ),
            )
            find.add_class(f"{self.parts.facet}-filter")
            find.add_class(f"{self.parts.facet}-filter-{_css(name)}")
            find.observe(self._on_facet_search, names="value")
            self.facet_search[name] = find
            lists.append(w.VBox([find, box], layout=w.Layout(overflow="visible")))
        self.facet_box.children = lists

    def _first_page(self) -> None:
        if self.table.page != 0:
            self.table.page = 0  # the table's observer refreshes
        else:
            self.refresh()

    # -- events -----------------------------------------------------------------------------
    def _on_search(self, change) -> None:
        self.text = change["new"]

    def _on_facet_search(self, change) -> None:
        if not self._rendering:
            self.refresh()

    def _on_facet(self, change) -> None:
        if not self._rendering:
            self.filters = {name: list(box.value) for name, box in self.facets.items() if box.value}

    def _on_table(self, change) -> None:
        if change["name"] != "page":
            self._first_page()
        else:
            self.refresh()

    def _on_ticked(self, change) -> None:
        setattr(self, self.ticked_trait, list(change["new"]))

    def _sync_ticks(self, change) -> None:
        ticked = list(change["new"])
        if list(self.table.selected) != ticked:
            self.table.selected = ticked
        self._update_buttons(ticked)

    @observe("text", "filters")
    def _query_changed(self, change) -> None:
        if change["name"] == "text" and self.search.value != self.text:
            self.search.value = self.text
        if not self._rendering:
            self._first_page()

    # -- work -------------------------------------------------------------------------------
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
            facet_text={n: box.value for n, box in self.facet_search.items() if box.value},
        )
        with self._rendering:
            for name, box in self.facets.items():
                counts = page.facets[name]
                wanted = [v for v in self.filters.get(name, ()) if v in set(counts.index)]
                narrower = self.index.facets[name].narrower
                show_facet(box, name, counts.items(), wanted, narrower=narrower)
        self.table.show(_labelled(page))
        self.total = page.total
        searching = any(box.value for box in self.facet_search.values())
        self.clear_filters_button.disabled = not (self.text or self.filters or searching)
        self._nothing_matches(page)
        self._page_shown(page)

    def on_add(self, callback: Callable[[Selection], Any], remove: bool = False) -> None:
        """Call ``callback({experiment: [samples] or None (every sample)})`` on each addition.

        Parameters
        ----------
        callback
            Receives the experiments and samples added to the dataset.
        remove
            Unregister ``callback`` instead.
        """
        if remove:
            self._listeners.remove(callback)
        else:
            self._listeners.append(callback)

    def _hand_over(self, selection: Selection) -> list[Any]:
        """Give ``selection`` to every listener registered with :meth:`on_add`; their answers."""
        return [callback(selection) for callback in self._listeners]


def show_facet(
    box: w.SelectMultiple,
    name: str,
    counts: Iterable[tuple[str, int]],
    chosen: Sequence[str],
    unit: str = "",
    narrower: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Show ``counts`` (``(value, count)`` pairs, in order) in the facet list ``box`` as
    ``label (count unit)`` (organism codes as species names), with ``chosen`` selected; only
    what differs is assigned, so that observers are not called for nothing. A value standing
    for narrower ontology terms of the list (``narrower``: value -> those terms) says so:
    ``T cell (12, incl. 2 narrower terms)``, its count being that of the rows holding any."""
    label = organism_label if name == "organism" else str
    suffix = f" {unit}" if unit else ""
    below = narrower or {}

    def text(value, count):
        n = len(below.get(value, ()))
        more = f", incl. {n} narrower term{'s' if n > 1 else ''}" if n else ""
        return f"{label(value)} ({count:,}{suffix}{more})"

    options = [(text(value, count), value) for value, count in counts]
    if list(box.options) != options:
        box.options = options
    if box.value != tuple(chosen):
        box.value = tuple(chosen)


def _labelled(page):
    """The page with organism codes shown as species names (filters keep the codes)."""
    columns = [c for c in ORGANISM_COLUMNS if c in page.rows.columns]
    if not columns:
        return page
    rows = page.rows.copy()
    for c in columns:
        rows[c] = rows[c].map(organism_label)
    return dataclasses.replace(page, rows=rows)
