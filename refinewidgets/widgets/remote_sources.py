"""The app's remote sources: the source switch, opening downloads, and fetching before a build.

:class:`RemoteSources` is the part of :class:`~refinewidgets.widgets.builder.DatasetBuilder`
that deals with refine.bio and Bgee (a mixin of the builder, kept apart to keep each module
short): the "Source" switch of the "Choose samples" tab (this computer, refine.bio, Bgee; the
remote panels are made when first chosen), opening downloaded files beside the catalog's sources
(:meth:`~RemoteSources.open_downloads`, which turns the experiments still to fetch that they hold
into local ones), the fetch a build starts when the dataset has experiments to fetch
(:meth:`~RemoteSources._fetch`), and the offer of the download cache when a service cannot be
reached (:meth:`~RemoteSources.open_cached`).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..core.pending import fetch_code
from ..core.selection import Selection
from ..errors import BuildCancelled
from ._status import describe, guarded
from .experiment_browser import ExperimentBrowser
from .remote_fetch import FetchJob, cached_paths, open_downloads, remote_words
from .sample_picker import SamplePicker

__all__ = ["SOURCES", "RemoteSources"]

#: The sources of the "Choose samples" tab: this computer's catalog, refine.bio, Bgee.
SOURCES = [("This computer", "local"), ("refine.bio", "refinebio"), ("Bgee", "bgee")]


class RemoteSources:
    """The builder's refine.bio and Bgee parts (see the module's docstring).

    Attributes
    ----------
    poll_interval
        Seconds between two questions to refine.bio while it prepares a download.
    remote_panels
        ``{"refinebio" | "bgee": panel}``, each made when first chosen.
    """

    def _make_remote_parts(self) -> None:
        #: Seconds between two questions to refine.bio while it prepares a download.
        self.poll_interval = 10.0
        #: ``{path: experiments}`` of the downloads opened so far (never opened twice).
        self._downloads: dict[str, list[str]] = {}
        self._fetch_job: FetchJob | None = None
        self.source = w.ToggleButtons(
            options=SOURCES,
            value="local",
            description="Source",
            tooltips=[
                "The experiments of the sources this app opened",
                "Search refine.bio's processed experiments (fetched when you build)",
                "Bgee's droplet single-cell experiments (fetched when you build)",
            ],
            style={"description_width": "60px", "button_width": "130px"},
        )
        self.source.add_class("rw-source")
        self.source.observe(self._on_source, names="value")
        #: The refine.bio and Bgee panels, made when first chosen.
        self.remote_panels: dict[str, Any] = {}
        self.local_box = w.VBox([self.browser, self.picker])
        self.choose_box = w.VBox([self.source, self.local_box])
        self.offline_note = w.HTML()
        self.offline_button = w.Button(
            description="Open downloaded files", icon="folder-open", button_style="warning"
        )
        self.offline_button.add_class("rw-build-open-cache")
        self.offline_button.on_click(lambda _: self.open_cached())
        self.offline_box = w.HBox(
            [self.offline_note, self.offline_button],
            layout=w.Layout(display="none", flex_flow="row wrap", align_items="center"),
        )
        self.account_button = w.Button(
            description="Get a refine.bio token",
            icon="key",
            button_style="warning",
            layout=w.Layout(width="220px", display="none"),
            tooltip='Opens "refine.bio account" on the refine.bio source: your e-mail address '
            "and a token",
        )
        self.account_button.add_class("rw-build-get-token")
        self.account_button.on_click(lambda _: self.show_account())

    @guarded
    def _on_source(self, change) -> None:
        choice = change["new"]
        if choice == "local":
            self.choose_box.children = [self.source, self.local_box]
            return
        panel = self.remote_panels.get(choice)
        if panel is None:
            from .bgee_browser import BgeeBrowser
            from .remote_browser import RefineBioBrowser

            panel = RefineBioBrowser() if choice == "refinebio" else BgeeBrowser()
            panel.on_add(self.cart_view.add_remote)
            code = f"rw.open_catalog(*rw.remote.cached(service={choice!r}))"
            panel.on_open(lambda paths, code=code: self.open_downloads(paths, code=code))
            self.remote_panels[choice] = panel
            self._mark_remote()
        self.choose_box.children = [self.source, panel]
        panel.activate()

    def _mark_remote(self) -> None:
        selection = self.state.selection
        keys = selection.experiments + [p.key for p in selection.pending]
        for panel in self.remote_panels.values():
            panel.set_marked(keys)

    def open_downloads(self, paths, *, code: str | None = None) -> None:
        """Open downloaded files (``paths``) beside the catalog's sources; experiments to fetch
        that they hold become local ones. ``code`` is the expression giving the same paths,
        for "Show code" (default: the paths themselves)."""
        paths = list(paths)
        catalog, by_path, warned = open_downloads(self.catalog, paths, self._downloads)
        self._downloads.update({str(p): e for p, e in by_path.items()})
        found: dict[str, list[str]] = {}
        known = set(catalog.experiment_ids)
        for exp in self.state.selection.pending:
            if exp.accession and exp.accession in known:
                found[exp.key] = [exp.accession]
            elif not exp.accession:
                held = [e for p, es in by_path.items() if p.parent.name == exp.species for e in es]
                if held:
                    found[exp.key] = held
        expression = code or f"rw.open_catalog(*{[str(p) for p in paths]!r})"
        self._use_catalog(catalog, self.state.selection.with_fetched(catalog, found), expression)
        if warned:
            self.status.show("Opening the downloads: " + " ".join(warned), "warning")

    @guarded
    def open_cached(self) -> None:
        """Open every download of the services the dataset needs already in the cache (the
        offer made when a service cannot be reached)."""
        services = list(dict.fromkeys(p.service for p in self.state.selection.pending))
        paths = [p for service in services or [None] for p in cached_paths(service)]
        if not paths:
            self.status.show("Nothing is in the download cache yet.", "info")
            return
        left = len(self.state.selection.pending)
        self.open_downloads(paths, code="rw.open_catalog(*rw.remote.cached())")
        self.offline_box.layout.display = "none"
        still = self.state.selection.pending
        self.status.show(
            f"Opened {len(paths)} downloaded file(s) from the cache. "
            + (
                f"{len(still)} experiment(s) are not in it and still need the network: "
                + ", ".join(p.label for p in still)
                + " (remove them to build the rest)."
                if still
                else f"The {left} experiment(s) to fetch were all in it."
            ),
            "info" if not still else "warning",
        )

    def _use_catalog(self, catalog, selection: Selection, code: str) -> None:
        """Switch the app to ``catalog`` (more sources) and ``selection`` over it."""
        if catalog is not self.catalog:
            self.catalog = catalog
            self.catalog_code = f"rw.Catalog([*{self.catalog_code}.sources, *{code}.sources])"
            old = (self.browser, self.picker)
            text, filters = self.browser.text, dict(self.browser.filters)
            self.browser = ExperimentBrowser(catalog)
            self.picker = SamplePicker(catalog)
            self.browser.text = text
            self.browser.filters = {k: v for k, v in filters.items() if k in self.browser.facets}
            self._wire_local()
            self.local_box.children = [self.browser, self.picker]
            for widget in old:
                widget.close()
            self.cart_view.catalog = catalog
            self.results.catalog = catalog
        self.state.use_catalog(selection)
        self._on_selection(None)

    def _fetch(self, selection: Selection) -> Selection:
        """Fetch the selection's pending experiments (Cancel stops it at once), open them
        beside the catalog and return the selection with them as local experiments."""
        pending = list(selection.pending)
        job = FetchJob(pending, progress=self.progress, poll_interval=self.poll_interval)
        self._fetch_job = job
        self.status.show(f"Fetching {job.describe()}...", "info")
        self.progress.set_description(f"fetching {job.describe()}")
        job.start()
        while not job.wait(0.1) and not self.progress.cancelled:
            pass
        if self.progress.cancelled:  # the job may have ended already, or ends soon after
            job.cancel()
            raise BuildCancelled(f"Cancelled while fetching {job.describe()}.")
        fetched = job.result()
        paths = list(dict.fromkeys(p for key in fetched for p in fetched[key]))
        catalog, by_path, warned = open_downloads(self.catalog, paths, self._downloads)
        self._downloads.update({str(p): e for p, e in by_path.items()})
        found = {key: sorted({e for p in ps for e in by_path[p]}) for key, ps in fetched.items()}
        self._use_catalog(catalog, selection.with_fetched(catalog, found), fetch_code(pending))
        if warned:
            self.cart_view.status.show("Opening the downloads: " + " ".join(warned), "warning")
        return self.state.selection

    @guarded
    def show_account(self) -> None:
        """Show the refine.bio account form (Choose samples, source refine.bio, opened)."""
        self.source.value = "refinebio"
        self.remote_panels["refinebio"].show_account()
        self.tabs.selected_index = 0

    def _fetch_failed(self, exc: BaseException) -> None:
        """Say what failed; when a service cannot be reached, offer the cache; without a
        refine.bio token or e-mail address, offer the account form."""
        from ..io.remote.errors import RemoteDatasetError, ServiceUnavailableError, TokenError
        from .refinebio_account import configured_email

        self.progress.fail("failed")
        services = sorted({p.service_name for p in self.state.selection.pending})
        message = remote_words(describe(exc))
        account = isinstance(exc, TokenError) or (
            isinstance(exc, RemoteDatasetError) and not configured_email()
        )
        if account:
            message += ' In the app: "Get a refine.bio token" below asks for both.'
        self.account_button.layout.display = None if account else "none"
        self.status.show(
            f"Fetching from {' and '.join(services) or 'the service'} failed: {message}", "error"
        )
        if isinstance(exc, ServiceUnavailableError):
            ids = list(dict.fromkeys(p.service for p in self.state.selection.pending))
            n = sum(len(cached_paths(s)) for s in ids)
            self.offline_note.value = (
                f"No network? {n} file(s) from {' and '.join(services)} are already in the "
                "download cache: open them as local sources, and build what they hold."
                if n
                else f"Nothing from {' and '.join(services)} is in the download cache yet."
            )
            self.offline_button.disabled = not n
            self.offline_box.layout.display = None
