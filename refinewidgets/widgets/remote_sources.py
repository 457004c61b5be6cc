"""The app's remote sources: the source switch, opening downloads, and fetching before a build.

:class:`RemoteSources` is the part of :class:`~refinewidgets.widgets.builder.DatasetBuilder`
that deals with refine.bio and Bgee (a mixin of the builder, kept apart to keep each module
short): the "Source" switch of the "Choose samples" tab (this computer, refine.bio, Bgee; the
remote panels are made when first chosen), opening downloaded files beside the catalog's sources
(:meth:`~RemoteSources.open_downloads`, which turns the experiments still to fetch that they hold
into local ones), the fetch a build starts when the dataset has experiments to fetch
(:meth:`~RemoteSources._fetch`), and the offer of the download cache when a service cannot be
reached (:meth:`~RemoteSources.open_cached`).

Experiments to fetch that the app knows by name only (restored from a link) are described once
their service answers (:meth:`~RemoteSources.describe_pending`: titles, organisms, samples);
for refine.bio, the My dataset tab also says what a download will really hold (refine.bio
leaves out unprocessed samples and those of organisms without a QN target), and a build lists
the samples a download lacks in ``filtered_samples`` with the reason. When a service cannot be
reached, a build goes on with what is at hand and lists the experiments it could not fetch in
``filtered_samples`` ("not fetched: ...").
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as w
import pandas as pd
from traitlets import Bunch

from ..core.catalog import Catalog
from ..core.metadata import ACCESSION
from ..core.pending import LeftOutSamples, RemoteExperiment, fetch_code, not_fetched
from ..core.selection import Selection
from ..errors import BuildCancelled
from ._status import describe, guarded, log
from .remote_fetch import (
    Details,
    FetchJob,
    RefineBioPlan,
    Spinner,
    ask_refinebio,
    cached_paths,
    cannot_reach,
    open_downloads,
    remote_words,
    trouble,
)

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
        #: ``{accession: RefineBioPlan}``: what refine.bio said of the experiments to fetch.
        self.refinebio_plans: dict[str, RefineBioPlan] = {}
        #: The experiments the last build could not fetch (their service unreachable).
        self.not_fetched: list[RemoteExperiment] = []
        self._describer: threading.Thread | None = None
        self._describe_again = False
        self._make_source_choice()
        self._make_offline_box()
        self._make_fetch_status()

    def _make_source_choice(self) -> None:
        """The "Source" buttons over this computer's browser and picker or a remote panel."""
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

    def _make_offline_box(self) -> None:
        """Shown when a fetch failed: the downloaded files to open instead, and the detail."""
        self.offline_note = w.HTML()
        self.offline_button = w.Button(
            description="Open downloaded files", icon="folder-open", button_style="warning"
        )
        self.offline_button.add_class("rw-build-open-cache")
        self.offline_button.on_click(lambda _: self.open_cached())
        #: The technical detail of a fetch that failed, folded away.
        self.fetch_details = Details("rw-build-details")
        self.offline_box = w.VBox(
            [
                w.HBox(
                    [self.offline_note, self.offline_button],
                    layout=w.Layout(flex_flow="row wrap", align_items="center"),
                ),
                self.fetch_details,
            ],
            layout=w.Layout(display="none"),
        )

    def _make_fetch_status(self) -> None:
        """The remote part of the My dataset tab: the fetch spinner, what refine.bio includes,
        the offline box, the token button."""
        self.includes_note = w.HTML()
        self.includes_note.add_class("rw-refinebio-includes")
        self.fetch_spinner = Spinner("rw-fetch-spinner")
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
        #: The remote part of the My dataset tab (under the build button).
        self.remote_box = w.VBox(
            [self.fetch_spinner, self.includes_note, self.offline_box, self.account_button]
        )

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
            panel.on_add(lambda _: self.describe_pending())
            panel.on_reached(self.describe_pending)
            code = f"rw.open_catalog(*rw.remote.cached(service={choice!r}))"
            panel.on_open(lambda paths, code=code: self.open_downloads(paths, code=code))
            panel.watch(self.state)
            self.remote_panels[choice] = panel
        self.choose_box.children = [self.source, panel]
        panel.activate()

    # -- what the services say of the experiments to fetch -------------------------------------
    def _undescribed(self) -> list[RemoteExperiment]:
        return [
            p
            for p in self.state.selection.pending
            if (p.service == "refinebio" and p.accession not in self.refinebio_plans)
            or (p.service == "bgee" and p.accession and not p.title)
        ]

    def describe_pending(self) -> None:
        """Ask refine.bio and Bgee, in the background, about the experiments to fetch that the
        app does not know yet (restored from a link, or just added): titles, organisms, how many
        samples a download holds. The cart shows them once the service answers; a service that
        cannot be reached is asked again when it next answers (a search, a build)."""
        if not self._undescribed():
            return
        if self._describer is not None and self._describer.is_alive():
            self._describe_again = True
            return
        self._describe_again = False
        self._describer = threading.Thread(
            target=self._describe, name="refinewidgets-describe", daemon=True
        )
        self._describer.start()

    def wait_described(self, timeout: float | None = 60) -> None:
        """Wait for :meth:`describe_pending` to end (tests and scripts)."""
        while self._describer is not None and self._describer.is_alive():
            self._describer.join(timeout)
            if timeout is not None:
                break

    def _describe(self) -> None:
        from ..io.remote.errors import RemoteError

        pending = self._undescribed()
        try:
            accs = [p.accession for p in pending if p.service == "refinebio"]
            if accs:
                from ..io.remote.refinebio import RefineBio

                client = RefineBio()
                for acc in accs:
                    try:
                        self.refinebio_plans.update(ask_refinebio(client, [acc]))
                    except RemoteError as exc:
                        if cannot_reach(exc):
                            break  # asked again when refine.bio next answers
                        log.debug("refine.bio said nothing of %s", acc, exc_info=True)
            files: dict[str, str] = {}
            for species in dict.fromkeys(p.species for p in pending if p.service == "bgee"):
                from ..io.remote.bgee import Bgee

                try:
                    frame = Bgee().list_experiments(species)
                except RemoteError:
                    log.debug("Bgee said nothing of %s", species, exc_info=True)
                    continue
                files.update({str(e): str(f) for e, f in zip(frame["experiment"], frame["file"])})
            _on_kernel_loop(lambda: self._show_described(files))
        except Exception:  # a description is a courtesy: the accession stays shown
            log.debug("describing the experiments to fetch failed", exc_info=True)
        if self._describe_again:
            self._describe_again = False
            self._describe()

    def _show_described(self, bgee_files: dict[str, str]) -> None:
        """Put what the services said into the pending experiments (equal values: the cart,
        the link and undo see the same selection, with titles)."""

        def described(p: RemoteExperiment) -> RemoteExperiment:
            plan = self.refinebio_plans.get(p.accession) if p.service == "refinebio" else None
            if plan is not None:
                return replace(
                    p,
                    title=plan.title or p.title,
                    organism="; ".join(plan.organisms) or p.organism,
                    technology=plan.technology or p.technology,
                    samples=plan.included if plan.included is not None else p.samples,
                )
            if p.service == "bgee" and p.accession in bgee_files and not p.title:
                return replace(p, title=bgee_files[p.accession])
            return p

        old = self.state.selection
        pending = tuple(described(p) for p in old.pending)
        if [_shown(p) for p in pending] == [_shown(p) for p in old.pending]:
            self._show_includes()
            return
        new = replace(old, pending=pending)
        self.state.selection = new  # equal to the old one: nobody is notified, so say it
        self.state.notify_change(
            Bunch(name="selection", old=old, new=new, owner=self.state, type="change")
        )

    def _show_includes(self) -> None:
        """Say, on the My dataset tab, what refine.bio's downloads of the experiments to fetch
        will hold (refine.bio leaves some samples out of them)."""
        said = [
            plan.describe()
            for p in self.state.selection.pending
            if p.service == "refinebio" and (plan := self.refinebio_plans.get(p.accession))
        ]
        said = [text for text in said if text]
        self.includes_note.value = (
            '<div class="rw-message" style="color:var(--rw-warning,#8a5a00)">'
            "<b>What refine.bio will include</b>: it sends the processed samples of organisms "
            "that have a quantile-normalization target, and leaves the others out of its "
            "downloads. "
            + " ".join(html.escape(text) for text in said)
            + " The samples left out are listed in the result's filtered samples.</div>"
            if said
            else ""
        )

    def _with_left_out(self, catalog: Catalog, accessions) -> Catalog:
        """``catalog`` and the samples refine.bio listed for ``accessions`` that their downloads
        lack (without values, with the reason: a build lists them as filtered)."""
        reasons: dict[str, dict[str, str]] = {}
        records: dict[str, dict] = {}
        for acc in accessions:
            plan = self.refinebio_plans.get(acc)
            if plan is None or acc not in catalog.experiment_ids:
                continue
            # a sample the download lists without values is lacking too: refine.bio's reason
            # is the one to give (a reason the download itself gives comes first)
            lacking = plan.lacking(catalog.has_values)
            if lacking:
                reasons[acc] = lacking
                records.update({s: plan.records.get(s) or {} for s in lacking})
        if not reasons:
            return catalog
        return Catalog([*catalog.sources, LeftOutSamples(reasons, records)])

    def _account_not_fetched(self, result) -> None:
        """List the experiments the build could not fetch in ``result.filtered_samples``."""
        if not self.not_fetched or result is None:
            return
        rows = [(p.key, p.key, not_fetched(p.service_name)) for p in self.not_fetched]
        extra = pd.DataFrame(rows, columns=["accession", "experiment", "reason"])
        result.filtered_samples = pd.concat(
            [result.filtered_samples, extra], ignore_index=True
        ).drop_duplicates(subset=["accession", "reason"], ignore_index=True)
        for key, _, _ in rows:
            result.filtered_records.setdefault(key, {ACCESSION: key})

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
        """Switch the app's state to ``catalog`` (more sources, opened in code by ``code``
        beside the catalog's) and ``selection`` over it: the views follow the state."""
        opened = f"rw.Catalog([*{self.state.catalog_code}.sources, *{code}.sources])"
        self.state.use_catalog(selection, opened if catalog is not self.catalog else None)

    def _fetch(self, selection: Selection) -> Selection:
        """Fetch the selection's pending experiments (Cancel stops it at once), open them
        beside the catalog and return the selection with them as local experiments."""
        pending = list(selection.pending)
        job = FetchJob(
            pending,
            progress=self.progress,
            poll_interval=self.poll_interval,
            plans=self.refinebio_plans,
        )
        self._fetch_job = job
        self.not_fetched = []
        self.status.show(f"Fetching {job.describe()}...", "info")
        self.progress.set_description(f"fetching {job.describe()}")
        self.fetch_spinner.start(f"Fetching {job.describe()} (Cancel stops it)")
        try:
            job.start()
            while not job.wait(0.1) and not self.progress.cancelled:
                pass
        finally:
            self.fetch_spinner.stop()
        if self.progress.cancelled:  # the job may have ended already, or ends soon after
            job.cancel()
            raise BuildCancelled(f"Cancelled while fetching {job.describe()}.")
        fetched = job.result()
        self.refinebio_plans.update(job.plans)
        if job.unreachable and not fetched and not selection.data:
            raise next(iter(job.unreachable.values()))  # nothing at hand to build
        paths = list(dict.fromkeys(p for key in fetched for p in fetched[key]))
        catalog, by_path, warned = open_downloads(self.catalog, paths, self._downloads)
        self._downloads.update({str(p): e for p, e in by_path.items()})
        catalog = self._with_left_out(catalog, [k for k in fetched if k in self.refinebio_plans])
        found = {key: sorted({e for p in ps for e in by_path[p]}) for key, ps in fetched.items()}
        done = [p for p in pending if p.key in fetched]
        code = fetch_code(done) if done else "rw.Catalog([])"
        self._use_catalog(catalog, selection.with_fetched(catalog, found), code)
        for panel in self.remote_panels.values():
            panel.refresh_cache_button()
        said = job.messages()
        if said:
            self.cart_view.status.show("Fetching: " + " ".join(said), "warning")
        if warned:
            self.cart_view.status.show("Opening the downloads: " + " ".join(warned), "warning")
        if job.unreachable:
            self.not_fetched = job.not_fetched
            self._show_unreachable(job.unreachable, building=True)
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
        if isinstance(exc, ServiceUnavailableError):
            named = {
                p.service: exc for p in self.state.selection.pending if p.service_name in services
            }
            self._show_unreachable(named, building=False)
            return
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

    def _show_unreachable(self, errors: dict[str, BaseException], *, building: bool) -> None:
        """Say which services could not be reached (the detail folded away) and offer the
        download cache. ``building``: the build goes on with what is at hand."""
        from ..core.pending import SERVICES

        lines, details = [], []
        for service, exc in errors.items():
            headline, detail = trouble(SERVICES[service], exc)
            lines.append(headline)
            details.append(detail)
        keys = [p.label for p in self.state.selection.pending if p.service in errors]
        if building:
            what = (
                f"Building what is at hand: {', '.join(keys)} could not be fetched, and the "
                "result lists them as not fetched."
            )
            kind = "warning"
        else:
            check = (
                "check this computer's network"
                if all(cannot_reach(e) for e in errors.values())
                else "try again later"
            )
            what = f"Nothing was fetched ({', '.join(keys)}): {check}."
            kind = "error"
        self.status.show(" ".join(lines) + " " + what, kind)
        self.fetch_details.show("\n\n".join(d for d in details if d))
        names = [SERVICES[s] for s in errors]
        n = sum(len(cached_paths(s)) for s in errors)
        self.offline_note.value = html.escape(
            f"No network? {n} file(s) from {' and '.join(names)} are already in the "
            "download cache: open them as local sources, and build what they hold."
            if n
            else f"Nothing from {' and '.join(names)} is in the download cache yet."
        )
        self.offline_button.disabled = not n
        self.offline_box.layout.display = None


def _on_kernel_loop(change: Callable[[], Any]) -> None:
    """Run ``change()`` (a change of widgets made for a background thread) on the kernel's main
    loop, after the cell running now: in the web app, the page being served may still be
    rendering the widgets (restored from its link), and a thread changing them meanwhile leaves
    the page blank. Outside a kernel (scripts, tests) it runs at once."""
    loop = None
    with contextlib.suppress(ImportError):
        from IPython import get_ipython

        loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    if loop is None:
        change()
        return

    def run() -> None:
        try:
            change()
        except Exception:  # a courtesy (titles): the accession stays shown
            log.debug("showing what the services said failed", exc_info=True)

    loop.add_callback(run)


def _shown(p: RemoteExperiment) -> tuple:
    """What the cart shows of an experiment to fetch (the value's fields compared by ``==``
    leave these out)."""
    return (p.title, p.organism, p.technology, p.samples)
