"""Remote sources of the "Choose samples" tab: refine.bio's live catalog and Bgee's FTP site.

:class:`RefineBioBrowser` searches refine.bio (text and the organism, technology and platform
facets, with refine.bio's own sample counts), one page of experiments at a time from the
server; :class:`~refinewidgets.widgets.bgee_browser.BgeeBrowser` lists Bgee's species, then a species' droplet experiments. Both
show, per experiment, whether it is already in the download cache, and hand the ticked
experiments to their listeners (:meth:`~RemotePanel.on_add`) as
:class:`~refinewidgets.core.pending.RemoteExperiment` values: the app's state keeps them as
"to fetch", and a build fetches them.

Network calls run in a thread (a search never freezes the page): a spinner says what is
asked meanwhile, and Cancel stops waiting for the answer (it is then ignored);
:meth:`RemotePanel.wait` waits for the last call. A failure is a message in the panel's status
area, in the user's words ("refine.bio cannot be reached from this computer"), the client's
technical message folded away under "Technical details"; "Open downloaded files" opens what is
already in the cache (listeners of :meth:`~RemotePanel.on_open`) as local sources, and is
disabled while the cache holds nothing of the service. Previous and Next stay disabled until
there are results to page through.

Names from the services (titles, accessions, species) are shown as text: the table escapes
them, and accessions were checked by the clients before they got here.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
from traitlets import Bool, Dict, Int, List, Unicode, observe

from ..core.browse import Page
from ..core.metadata import organism_label
from ..core.pending import RemoteExperiment
from ._faceted import show_facet
from ._status import StatusArea, guarded
from ._table import PagedTable
from .refinebio_account import RefineBioAccount
from .remote_fetch import Details, Spinner, cached_paths, cannot_reach, trouble
from .state import Rendering

__all__ = ["RefineBioBrowser", "RemotePanel"]

REFINEBIO_COLUMNS = [
    ("accession", "Accession", 130),
    ("title", "Title", 330),
    ("organism", "Organism", 140),
    ("technology", "Technology", 110),
    ("samples", "Samples", 80),
    ("downloaded", "In the cache", 110),
]
#: refine.bio's facet fields, the filter each sets, and the label shown.
REFINEBIO_FACETS = {
    "organism": ("downloadable_organism_names", "Organism"),
    "technology": ("technology", "Technology"),
    "platform": ("platform_accession_codes", "Platform"),
}
IN_CACHE = "downloaded"
ACCOUNT_TITLE = "refine.bio account: token and e-mail address"


class RemotePanel(w.VBox):
    """What the refine.bio and Bgee panels share: a status area, background calls, the
    "Open downloaded files" button, and the add and open listeners.

    Parameters
    ----------
    service
        ``"refinebio"`` or ``"bgee"``.
    prefix
        The CSS class prefix of the panel's parts.
    """

    busy = Bool(False, help="Whether a call to the service is running.")
    chosen = List(Unicode(), help="Keys of the ticked rows.")

    service_name = ""

    def __init__(self, service: str, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.prefix = prefix
        self.status = StatusArea(f"{prefix}-status")
        self._add_listeners: list[Callable[[list[RemoteExperiment]], Any]] = []
        self._reached_listeners: list[Callable[[], Any]] = []
        self._open_listeners: list[Callable[[list[Path]], Any]] = []
        self._thread: threading.Thread | None = None
        self._generation = 0
        self.activated = False
        self._last: tuple | None = None
        self.open_cache_button = self._button(
            "Open downloaded files",
            "folder-open",
            260,
            f"Open every {self.service_name} download already in the cache as a local source "
            "(no network needed)",
            "open-cache",
            self.open_cache,
        )
        self.refresh_cache_button()
        #: While the service is asked: a spinner saying what, and Cancel.
        self.spinner = Spinner(f"{prefix}-spinner")
        self.cancel_button = self._button(
            "Cancel",
            "stop",
            110,
            f"Stop waiting for {self.service_name}",
            "cancel",
            self.cancel,
            disabled=False,
        )
        self.busy_box = w.HBox(
            [self.spinner, self.cancel_button],
            layout=w.Layout(display="none", align_items="center", flex_flow="row wrap"),
        )
        self.busy_box.add_class(f"{prefix}-busy")
        #: The technical detail of the last failure, folded away.
        self.details = Details(f"{prefix}-details")
        self._what = ""
        self.add_class(f"{prefix}-panel")

    def _button(
        self,
        description: str,
        icon: str,
        width: int,
        tooltip: str,
        css: str,
        action: Callable[[], Any],
        *,
        disabled: bool = True,
    ) -> w.Button:
        """A button of the panel (CSS class ``<prefix>-<css>``) calling ``action()``."""
        button = w.Button(
            description=description,
            icon=icon,
            disabled=disabled,
            layout=w.Layout(width=f"{width}px"),
            tooltip=tooltip,
        )
        button.add_class(f"{self.prefix}-{css}")
        button.on_click(lambda _: action())
        return button

    def _make_title(self, text: str, env: str, default: str) -> None:
        """The panel's title: ``<service>: text (the address, from $env or default)``."""
        address = os.environ.get(env) or default
        self.title = w.HTML(
            f"<b>{html.escape(self.service_name)}</b>: {text} (<code>{html.escape(address)}"
            "</code>). Added experiments are fetched when you build."
        )

    def _make_table(self, columns, caption: str, what: str) -> None:
        """The experiments table (CSS prefix ``<prefix>-experiments``), its ticks kept in
        :attr:`chosen`, and "Add to dataset" (adding every ``what`` of the ticked ones)."""
        self.table = PagedTable(columns, prefix=f"{self.prefix}-experiments", caption=caption)
        self.table.prev.disabled = self.table.next.disabled = True  # no results yet
        self.table.observe(lambda c: setattr(self, "chosen", list(c["new"])), names="selected")
        self.add_button = self._button(
            "Add to dataset",
            "plus",
            200,
            f"Add the ticked experiments (every {what}); Build fetches them",
            "add",
            self.add_chosen,
        )

    @observe("chosen")
    def _chosen_changed(self, change) -> None:
        self.add_button.disabled = not self.chosen
        if list(self.table.selected) != list(self.chosen):
            self.table.selected = list(self.chosen)

    # -- listeners ------------------------------------------------------------------------------
    def on_add(self, callback: Callable[[list[RemoteExperiment]], Any]) -> None:
        """Call ``callback([RemoteExperiment, ...])`` when experiments are added."""
        self._add_listeners.append(callback)

    def on_open(self, callback: Callable[[list[Path]], Any]) -> None:
        """Call ``callback([path, ...])`` to open cached downloads as local sources."""
        self._open_listeners.append(callback)

    def on_reached(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` (in the call's thread) each time the service answers."""
        self._reached_listeners.append(callback)

    def _hand_over(self, experiments: list[RemoteExperiment], message: str) -> None:
        """Give ``experiments`` to the listeners, untick the rows, say ``message``."""
        for callback in self._add_listeners:
            callback(experiments)
        self.chosen = []
        self.status.show(message, "success")

    # -- background calls -----------------------------------------------------------------------
    @observe("busy")
    def _busy_changed(self, change) -> None:
        if self.busy:
            self.spinner.start(self._what)
            self.busy_box.layout.display = None
        else:
            self.spinner.stop()
            self.busy_box.layout.display = "none"

    def _run(self, what: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work()`` in a thread, showing ``what...`` with a spinner and Cancel; then
        ``done(result)``, unless a newer call started or Cancel was pressed meanwhile; a
        failure becomes a message."""
        self._generation += 1
        generation = self._generation
        self._what = what
        self.details.clear()
        self.busy = False  # a newer call: the spinner says what it asks
        self.busy = True
        self.status.show(f"{what}...", "info")

        def target() -> None:
            try:
                result = work()
            except Exception as exc:
                if generation == self._generation:
                    self.busy = False
                    self._failed(what, exc)
                return
            for callback in self._reached_listeners:
                try:
                    callback()
                except Exception:  # a listener's failure is its own; the answer is shown
                    logging.getLogger("refinewidgets.widgets").debug(
                        "a listener of %s failed", self.service_name, exc_info=True
                    )
            if generation != self._generation:
                return
            self.busy = False
            try:
                done(result)
            except Exception as exc:
                self._failed(what, exc)

        self._thread = threading.Thread(target=target, name=f"{self.prefix}-call", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = 60) -> None:
        """Wait for the last call to the service to end (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @guarded
    def cancel(self) -> None:
        """Stop waiting for the service: its answer, when it comes, is ignored."""
        if not self.busy:
            return
        self._generation += 1
        self.busy = False
        self.status.show(
            f"Cancelled: {self._what[:1].lower() + self._what[1:]} stopped. Ask again when you "
            f"want; files already downloaded from {self.service_name} open without the network "
            '("Open downloaded files").',
            "info",
        )

    def _failed(self, what: str, exc: BaseException) -> None:
        from ..io.remote.errors import ServiceUnavailableError

        headline, detail = trouble(self.service_name, exc)
        if isinstance(exc, ServiceUnavailableError):
            n = self.refresh_cache_button()
            offer = (
                f' "Open downloaded files" opens the {n} file(s) from {self.service_name} '
                "already in the download cache."
                if n
                else f" Nothing from {self.service_name} is in the download cache yet."
            )
            self.open_cache_button.button_style = "warning" if n else ""
            advice = (
                "check this computer's network connection and try again."
                if cannot_reach(exc)
                else "the service has a problem of its own, not this computer."
            )
            self.status.show(f"{headline} {what} failed: {advice}{offer}", "error")
        else:
            self.status.show(f"{what} failed: {headline}", "error")
        self.details.show(detail)

    # -- the cache ------------------------------------------------------------------------------
    def refresh_cache_button(self) -> int:
        """Enable "Open downloaded files" when the cache holds files of the service; returns
        how many."""
        n = len(cached_paths(self.service))
        self.open_cache_button.disabled = not n
        self.open_cache_button.tooltip = (
            f"Open the {n} {self.service_name} file(s) already in the download cache as local "
            "sources (no network needed)"
            if n
            else f"Nothing from {self.service_name} is in the download cache yet"
        )
        return n

    @guarded
    def open_cache(self) -> None:
        """Open every complete download of this service in the cache as local sources."""
        paths = cached_paths(self.service)
        if not paths:
            self.status.show(
                f"Nothing from {self.service_name} is in the download cache yet: add "
                "experiments and build while the service can be reached.",
                "info",
            )
            return
        for callback in self._open_listeners:
            callback(paths)
        self.status.show(
            f"Opened {len(paths)} downloaded file(s) from {self.service_name} as local "
            'sources: choose their samples under "This computer".',
            "success",
        )

    def activate(self) -> None:
        """Called when the panel is shown: the first time, load what it lists (:meth:`_load`);
        later, bring the "In the cache" column up to date (no network)."""
        self.refresh_cache_button()
        if not self.activated:
            self.activated = True
            self._load()
        elif self._last is not None:
            self._show(*self._last)

    def _load(self) -> None:
        """Ask the service for what the panel lists first."""

    def _show(self, *shown) -> None:
        """Show what the service answered (``self._last`` keeps it, to show it again)."""

    def add_chosen(self) -> None:
        """Hand the ticked experiments to the listeners, to be fetched by the next build."""

    def watch(self, state) -> None:
        """Mark the rows ``state``'s selection holds (in the dataset, or to fetch), now and
        each time it changes (``state``: the app's
        :class:`~refinewidgets.widgets.state.AppState`)."""

        def mark(change=None) -> None:
            selection = state.selection
            self.table.marked = [*selection.experiments, *(p.key for p in selection.pending)]

        state.observe(mark, names="selection")
        mark()


def cached_names(service: str) -> set[str]:
    return {p.name for p in cached_paths(service)}


class RefineBioBrowser(RemotePanel):
    """Search refine.bio's experiments; tick them and add them to the dataset (to fetch).

    Examples
    --------
    Needs refine.bio (or the test server of :mod:`refinewidgets.testing.fake_services`)::

        panel = RefineBioBrowser()
        panel.search.value = "medulloblastoma"; panel.wait()
        panel.table.tick("GSE37382"); panel.add_button.click()
    """

    text = Unicode("", help="The search text sent to refine.bio.")
    filters = Dict(help="The chosen facet values: {organism|technology|platform: [values]}.")
    total = Int(0, help="How many experiments refine.bio says match.")
    facet_counts = Dict(help="refine.bio's facets of the last search: {field: {value: samples}}.")

    service_name = "refine.bio"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("refinebio", "rw-remote", **kwargs)
        from ..io.remote.refinebio import API_ENV, DEFAULT_API

        self._make_title("search the experiments refine.bio has processed", API_ENV, DEFAULT_API)
        self._rows: dict[str, dict] = {}
        #: Raised while the view writes its own controls (their observers then do nothing).
        self._rendering = Rendering()
        self.search = w.Text(
            placeholder="Search refine.bio: disease, tissue, title, accession (Enter)",
            continuous_update=False,
            layout=w.Layout(width="480px"),
        )
        self.search.add_class("rw-remote-search")
        self.search.observe(lambda c: setattr(self, "text", c["new"]), names="value")
        self.search_button = self._button(
            "Search",
            "search",
            110,
            "Search refine.bio",
            "search-button",
            self.run_search,
            disabled=False,
        )
        self.facets: dict[str, w.SelectMultiple] = {}
        for name, (_, label) in REFINEBIO_FACETS.items():
            box = w.SelectMultiple(
                options=[],
                rows=5,
                description=label,
                layout=w.Layout(width="330px"),
                style={"description_width": "80px"},
            )
            box.add_class("rw-remote-facet")
            box.add_class(f"rw-remote-facet-{name}")
            box.observe(self._on_facet, names="value")
            self.facets[name] = box
        self._make_table(REFINEBIO_COLUMNS, "refine.bio experiments", "sample")
        self.table.children[0].layout.display = "none"  # refine.bio's order (relevance)
        self.table.observe(self._on_page, names=["page", "page_size"])
        #: The account form (token and e-mail address), collapsed until wanted.
        self.account = RefineBioAccount()
        self.account_box = w.Accordion(
            children=[self.account], titles=(ACCOUNT_TITLE,), selected_index=None
        )
        self.account_box.add_class("rw-remote-account")
        self.children = [
            self.title,
            w.HBox([self.search, self.search_button], layout=w.Layout(flex_flow="row wrap")),
            w.HBox(list(self.facets.values()), layout=w.Layout(flex_flow="row wrap")),
            self.table,
            w.HBox(
                [self.add_button, self.open_cache_button], layout=w.Layout(flex_flow="row wrap")
            ),
            self.busy_box,
            self.status,
            self.details,
            self.account_box,
        ]

    def show_account(self) -> None:
        """Open the account form (a build needs a token or an e-mail address)."""
        self.account.refresh()
        self.account_box.selected_index = 0

    def _load(self) -> None:
        """The first search: every downloadable experiment."""
        self.run_search(page=0)

    # -- events ---------------------------------------------------------------------------------
    @observe("text", "filters")
    def _query_changed(self, change) -> None:
        if change["name"] == "text" and self.search.value != self.text:
            self.search.value = self.text
        if not self._rendering:
            self.run_search(page=0)

    def _on_facet(self, change) -> None:
        if not self._rendering:
            self.filters = {n: list(b.value) for n, b in self.facets.items() if b.value}

    def _on_page(self, change) -> None:
        if not self._rendering:
            self.run_search(page=self.table.page if change["name"] == "page" else 0)

    # -- work -----------------------------------------------------------------------------------
    def run_search(self, page: int = 0) -> None:
        """Ask refine.bio for one page of the experiments matching the search and facets."""
        from ..io.remote.refinebio import RefineBio

        size = self.table.page_size
        text, filters = self.text.strip(), dict(self.filters)

        def work():
            return RefineBio().search(
                text or None,
                organism=filters.get("organism"),
                technology=filters.get("technology"),
                platform=filters.get("platform"),
                filters={"offset": page * size},
                max_results=size,
            )

        what = f"Searching refine.bio for {text!r}" if text else "Searching refine.bio"
        self._run(what, work, lambda found: self._show(found, page, size))

    def _show(self, found, page: int, size: int) -> None:
        self._last = (found, page, size)
        frame = found.experiments
        cached = cached_names("refinebio")
        rows = []
        for acc, rec in frame.iterrows():
            organisms = rec.get("organism_names") or rec.get("downloadable_organism_names") or []
            if isinstance(organisms, str):
                organisms = [organisms]
            row = {
                "accession": acc,
                "title": str(rec.get("title") or ""),
                "organism": "; ".join(organism_label(o) for o in organisms),
                "organism_codes": [str(o).upper() for o in organisms],
                "technology": str(rec.get("technology") or "").lower(),
                "samples": _count(rec.get("num_downloadable_samples")),
                "downloaded": IN_CACHE if f"{acc}.zip" in cached else "",
            }
            rows.append(row)
            self._rows[acc] = row
        table = pd.DataFrame(rows, columns=[c for c, _, _ in REFINEBIO_COLUMNS])
        table = table.set_index("accession", drop=False)
        table.index.name = "accession"
        self.facet_counts = found.facets
        self._show_facets(found.facets)
        with self._rendering:
            self.table.page_size = size
            self.table.show(Page(table, int(found.count), page, size))
        self.total = int(found.count)
        if found.count:
            self.status.show(
                f"refine.bio has {found.count:,} matching experiment(s). Tick some and press "
                '"Add to dataset": Build fetches them (one download per experiment, kept in '
                "the cache).",
                "info",
            )
        else:
            self.status.show(
                "refine.bio has no experiment matching this search: check the spelling, "
                "search fewer words, or clear the facets.",
                "info",
            )

    def _show_facets(self, facets: dict) -> None:
        with self._rendering:
            for name, (field, _) in REFINEBIO_FACETS.items():
                counts = dict(facets.get(field) or {})
                chosen = tuple(self.filters.get(name, ()))
                for value in chosen:
                    counts.setdefault(value, 0)
                ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                show_facet(self.facets[name], name, ordered, chosen, "samples")

    @guarded
    def add_chosen(self) -> None:
        """Hand the ticked experiments to the listeners, to be fetched by the next build."""
        if not self.chosen:
            self.status.show("Tick one or more experiments first.", "warning")
            return
        experiments = []
        for acc in self.chosen:
            row = self._rows.get(acc, {})
            codes = row.get("organism_codes") or []
            experiments.append(
                RemoteExperiment(
                    "refinebio",
                    acc,
                    title=row.get("title", ""),
                    organism="; ".join(codes),
                    technology=row.get("technology", ""),
                    samples=row.get("samples"),
                )
            )
        self._hand_over(
            experiments,
            f"Added {len(experiments)} experiment(s) from refine.bio to the dataset: "
            f"{', '.join(e.accession for e in experiments)}. Build fetches them.",
        )


def _count(value) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None
