"""The experiment browser: text search, facet filters with counts, a paged and sortable table.

All filtering happens in the kernel (:class:`~refinewidgets.core.browse.TableIndex`, built once
per catalog); only the visible page and the facet counts go to the browser, so a keystroke
stays fast on a listing of 50,000 experiments. Ticking experiments sets :attr:`chosen` (the
sample picker lists their samples); "Add whole experiments" hands them to the listeners
registered with :meth:`ExperimentBrowser.on_add`. The search, facets, table and status area
are those of :class:`~refinewidgets.widgets._faceted.FacetedTable`.

While the search has words, experiments are ranked by best match (most samples matching every
word, then a title holding every word; :data:`~refinewidgets.core.browse.BEST_MATCH`) and a
"Matching samples" column shows each experiment's count.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
from traitlets import Dict, Int, List, Unicode

from ..core.browse import MATCHING, Page, TableIndex, experiment_index
from ._faceted import FacetedTable, Parts
from ._status import guarded

__all__ = ["ExperimentBrowser"]

COLUMNS = [
    ("accession", "Accession", 110),
    ("title", "Title", 300),
    ("technology", "Technology", 110),
    ("organisms", "Organism", 130),
    ("platforms", "Platform", 200),
    ("num_samples", "Samples", 90),
]
#: The column added while the search has words.
MATCHING_COLUMN = (MATCHING, "Matching samples", 130)
PARTS = Parts(
    title="<b>Experiments</b>",
    columns=COLUMNS,
    prefix="rw-experiments",
    search="rw-search",
    placeholder="Search experiments and their samples: disease, tissue, cell type, title, accession",
    search_width="480px",
    facet="rw-facet",
    facet_rows=5,
    facet_width="330px",
    label_width="80px",
    status="rw-browser-status",
    caption="Experiments",
    best_match=True,
)


class ExperimentBrowser(FacetedTable):
    """Search and filter the experiments of a catalog; tick the ones to pick samples from.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo); ignored when ``state`` is
        given.
    state
        The :class:`~refinewidgets.widgets.state.AppState` whose catalog is listed and whose
        experiments are marked "in dataset" (default: a new one over ``catalog``).
    index
        A ready :func:`~refinewidgets.core.browse.experiment_index` of the catalog (built when
        None; a catalog the state changes to is indexed anew).
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
        "",
        help="The search text: every word must appear in the experiment (accession, title, "
        "description) or its samples' metadata (accessions, titles, diseases, tissues, cell "
        "types, platforms, organisms).",
    )
    filters = Dict(
        help="The chosen facet values: {facet: [values]}, OR within a facet, AND across facets."
    )
    chosen = List(Unicode(), help="Accessions of the ticked experiments.")
    total = Int(0, help="How many experiments match the search and filters.")

    ticked_trait = "chosen"

    def __init__(
        self,
        catalog=None,
        *,
        state=None,
        index: TableIndex | None = None,
        facet_limit: int = 30,
        **kwargs: Any,
    ) -> None:
        given = [index]  # for the first catalog only

        def indexer(catalog) -> TableIndex:
            ready = given.pop() if given else None
            return experiment_index(catalog) if ready is None else ready

        super().__init__(catalog, indexer, PARTS, facet_limit=facet_limit, state=state, **kwargs)

    def _in_dataset(self, selection) -> list[str]:
        return list(selection.experiments)

    def _make_buttons(self) -> list[w.Widget]:
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
        self.ticked_label = w.Label("")
        self.ticked_label.add_class("rw-ticked-count")
        return [self.add_button, self.clear_button, self.ticked_label]

    def _update_buttons(self, ticked: list[str]) -> None:
        hidden = self.hidden() if ticked else []
        self.add_button.disabled = len(hidden) == len(ticked)
        self.ticked_label.value = (
            f"{len(ticked):,} ticked"
            + (f" ({len(hidden):,} hidden by the search)" if hidden else "")
            if ticked
            else ""
        )

    def refresh(self) -> None:
        """Show the "Matching samples" column while the search has words; run the query."""
        columns = COLUMNS + ([MATCHING_COLUMN] if self.text.split() else [])
        if self.table.columns != columns:
            self.table.set_columns(columns)
        super().refresh()

    def _page_shown(self, page: Page) -> None:
        self._update_buttons(list(self.chosen))
        if self.status.kind == "error":  # the query works again
            self.status.clear()

    def hidden(self) -> list[str]:
        """The ticked experiments the current search and filters hide (ticked by an earlier
        search): "Add whole experiments" leaves them out and says so."""
        if not self.chosen:
            return []
        shown = self.index.mask(self.text, self.filters)
        where = self.index.table.index.astype(str).get_indexer(list(self.chosen))
        return [e for e, i in zip(self.chosen, where) if i < 0 or not shown[i]]

    @guarded
    def add_chosen(self) -> None:
        """Hand every ticked experiment the search shows, whole, to the listeners; ticked ones
        hidden by the search are left out, with a message naming them.

        A listener may say what it did (an experiment already trimmed to some samples is kept
        as chosen, see :meth:`~refinewidgets.widgets.cart.DatasetCartView.add_whole`) by
        returning a text, shown instead of the count of samples handed over.
        """
        hidden = self.hidden()
        shown = [e for e in self.chosen if e not in set(hidden)]
        left_out = (
            f" Left out {', '.join(hidden)}: ticked before, hidden by the current search and "
            'filters (press "Clear search and filters" to see it, or "Untick all").'
            if hidden
            else ""
        )
        if not shown:
            self.status.show(("Tick one or more experiments first." + left_out).strip(), "warning")
            return
        selection: dict[str, list[str] | None] = {exp: None for exp in shown}
        said = [text for text in self._hand_over(selection) if isinstance(text, str)]
        if said:
            self.status.show(" ".join(said) + left_out, "success")
            return
        n = sum(len(self.catalog.experiment_samples(e)) for e in selection)
        self.status.show(
            f"Added {len(selection)} experiment(s), {n:,} samples, to the dataset.{left_out}",
            "success",
        )
