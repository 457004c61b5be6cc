"""``rw.DatasetBuilder``: the whole app, made of the parts, each a widget of its own.

Tabs: **Choose samples** (a source switch: this computer's catalog with
:class:`ExperimentBrowser` and :class:`SamplePicker`, or refine.bio's live catalog, or Bgee's
species and experiments, :mod:`~refinewidgets.widgets.remote_browser`), **My dataset**
(:class:`DatasetCartView`, :class:`OptionsPanel`, the build button, its progress, the code
that rebuilds the dataset), **Results** (:class:`ResultsView`, :class:`SavePanel`). Each part
shows its own messages next to it, once; the status line under the tabs shows the builder's
own (building, restoring a dataset), errors included.

The app has one state: an :class:`~refinewidgets.widgets.state.AppState` holding an immutable
:class:`~refinewidgets.core.selection.Selection` (the samples, the options, and the experiments
chosen from refine.bio or Bgee and not downloaded yet, its ``pending``, kept in the page's
address too). A build first fetches what is pending
(:class:`~refinewidgets.widgets.remote_fetch.FetchJob`: progress per experiment and in bytes,
Cancel stops it at the next chunk, or at once while refine.bio processes, and keeps nothing;
without a refine.bio token, "Get a refine.bio token" opens the account form of
:mod:`~refinewidgets.widgets.refinebio_account`), opens the downloads beside
the catalog's sources, adds every sample of the fetched experiments, then builds locally; the
downloads stay in the cache, so a build with other options needs no network. When a service
cannot be reached, the message says which and why, and "Open downloaded files" opens what the
cache holds instead. The state also holds the catalog (``state.catalog``, and the code
that opens it): every part reads it from there, and when downloads are opened beside the
catalog's sources, the browser and the picker list the new catalog in place. The parts observe
the state and keep no copy of it: the cart and the options panel render from it and assign new
selections, the browser, the picker and the refine.bio and Bgee tables mark the rows it holds.
The builder's ``dataset`` (read-only) is the selection's spec of the local experiments;
:meth:`DatasetBuilder.restore` puts a dataset back, and a build uses exactly that spec.
Traits: ``result`` (the :class:`~refinewidgets.Result` of the last build; when the dataset
changes afterwards, the results are marked out of date and saving is off until the next build)
and ``adata`` (its AnnData when there is one group, else ``{key: AnnData}``).

CSS classes, for browser tests (each is on one element unless said otherwise). ipywidgets puts
a class on the widget's outer element: target the control inside it (``.rw-search input``,
``.rw-build`` is the button itself, ``.rw-facet-organism select``, ``.rw-samples-checkbox input``).
Every message area has ``rw-message``; one showing an error also has ``rw-error``.

- app: ``rw-builder``, ``rw-tabs``, ``rw-status`` (the status line), ``rw-build``, ``rw-cancel``,
  ``rw-dashboard`` (the Dask dashboard link, when built with a client), ``rw-progress``,
  ``rw-progress-label``, ``rw-show-code``, ``rw-code``, ``rw-stale`` (the out-of-date note on
  the Results tab), ``rw-url-writer`` (web app only: keeps the page's
  address in step with the dataset), ``rw-source`` (the source switch: its buttons are "This
  computer", "refine.bio", "Bgee"), ``rw-build-open-cache`` (shown when a build could not reach
  a service: opens the download cache), ``rw-build-get-token`` (shown when a build needs a
  refine.bio token or e-mail address: opens the account form);
- refine.bio (made when first chosen): ``rw-remote-panel``, ``rw-remote-search``,
  ``rw-remote-search-button``, ``rw-remote-facet`` (on each facet list) with
  ``rw-remote-facet-organism``, ``rw-remote-facet-technology``, ``rw-remote-facet-platform``;
  ``rw-remote-add``, ``rw-remote-open-cache``, ``rw-remote-status``, ``rw-remote-account``
  (the collapsed account part) holding ``rw-account``, ``rw-account-intro``,
  ``rw-account-email``, ``rw-account-accept`` (the terms box), ``rw-account-links``,
  ``rw-account-get-token``, ``rw-account-status``; its table's parts are those
  of the experiments table with the prefix ``rw-remote-experiments`` (``rw-remote-experiments-row``,
  ``rw-remote-experiments-checkbox``, ``rw-remote-experiments-cells``, ...);
- Bgee (made when first chosen): ``rw-bgee-panel``, ``rw-bgee-species``, ``rw-bgee-add``,
  ``rw-bgee-add-species``, ``rw-bgee-open-cache``, ``rw-bgee-status``; its table's prefix is
  ``rw-bgee-experiments``;
- experiment browser: ``rw-search``, ``rw-facet`` (on each facet list) with
  ``rw-facet-organism``, ``rw-facet-technology``, ``rw-facet-platform``; ``rw-add-experiments``,
  ``rw-untick-experiments``, ``rw-ticked-count`` (how many are ticked, and hidden by the
  search), ``rw-browser-status``; its table: ``rw-experiments-table``,
  ``rw-experiments-header``, ``rw-experiments-row`` (each row), ``rw-experiments-checkbox``
  (each row's box, labelled with the accession), ``rw-experiments-sort``,
  ``rw-experiments-sort-direction``, ``rw-experiments-prev``, ``rw-experiments-next``,
  ``rw-experiments-page-label``, ``rw-experiments-page-size``;
- sample picker: ``rw-sample-search``, ``rw-sample-facet`` (on each facet list) with
  ``rw-sample-facet-sex``, ``rw-sample-facet-specimen-part``, ``rw-sample-facet-disease``,
  ``rw-sample-facet-cell-type``, ``rw-sample-facet-tissue``, ``rw-sample-facet-stage`` (those
  present); ``rw-select-all``, ``rw-select-none``, ``rw-add-to-dataset``,
  ``rw-selection-count``, ``rw-sample-search-note`` (says when the list is narrowed, e.g. by
  the experiment search carried here), ``rw-show-all-samples``, ``rw-picker-status``; its
  table: ``rw-samples-table``, ``rw-samples-header``, ``rw-samples-row``, ``rw-samples-checkbox`` (each sample's box,
  labelled with its accession), ``rw-samples-sort``, ``rw-samples-sort-direction``,
  ``rw-samples-prev``, ``rw-samples-next``, ``rw-samples-page-label``, ``rw-samples-page-size``;
- cart: ``rw-cart-summary``, ``rw-cart-rows``, ``rw-cart-row`` (each row), ``rw-cart-pending``
  (also on each row of an experiment still to fetch from refine.bio or Bgee), ``rw-cart-remove``
  (each row's button, tooltip "Remove <accession>"), ``rw-cart-questions`` holding a
  ``rw-cart-question`` per experiment an "add whole experiments" kept trimmed (its text
  ``rw-cart-question-text``, its buttons ``rw-cart-add-rest`` and ``rw-cart-keep``),
  ``rw-cart-totals``, ``rw-cart-clear``,
  ``rw-cart-status``;
- options: ``rw-aggregate``, ``rw-transformation``, ``rw-quantile-normalize``, ``rw-qn-reason``,
  ``rw-batch-correction``, ``rw-batch-covariates`` (shown with ComBat),
  ``rw-single-cell-options``, ``rw-cell-filter-cell-type``, ``rw-cell-filter-tissue``,
  ``rw-cell-filter-stage``, ``rw-cell-filter-sex``, ``rw-counts-normalization``,
  ``rw-pseudobulk``, ``rw-join``, ``rw-options-status``;
- results: ``rw-result-group``, ``rw-result-summary``, ``rw-filtered-samples``, ``rw-preview``,
  ``rw-plot-distributions``, ``rw-before-after``, ``rw-pca-color``, ``rw-plot-pca``,
  ``rw-plot-cell-types``, ``rw-batch-color``, ``rw-batch-scores`` (holding
  ``table.rw-batch-score-table``), ``rw-plot-batch``, ``rw-batch-before``, ``rw-plot-img``
  (each plot), ``rw-plots`` (the accordion holding them; a plot is drawn when its panel opens),
  ``rw-results-status``;
- save: ``rw-save-path``, ``rw-save-format``, ``rw-save-folder``, ``rw-save-overwrite``,
  ``rw-save``, ``rw-prepare-download``, ``rw-download`` (holds the link
  ``a.rw-download-link``), ``rw-save-status``.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as w
from traitlets import Any as AnyTrait
from traitlets import Instance, Unicode, observe

from ..core.build import build
from ..core.result import Result
from ..core.selection import Selection, rebuild_code
from ..core.spec import Dataset
from ..errors import BuildCancelled, DatasetSpecError, RefineWidgetsError
from ..io.gene_symbols import add_gene_symbols
from ._progress import WidgetProgress
from ._status import THEME_CSS, StatusArea, catalog_or_demo, describe, guarded, in_app_words
from ._url import UrlWriter
from .cart import DatasetCartView
from .experiment_browser import ExperimentBrowser
from .options import OptionsPanel
from .page_link import PageLink
from .remote_sources import RemoteSources
from .results import ResultsView
from .sample_picker import SamplePicker
from .save import SavePanel
from .state import AppState

__all__ = ["DatasetBuilder"]

TAB_CHOOSE, TAB_DATASET, TAB_RESULTS = range(3)
#: Sample-picker facets that select cells, and the cell-filter column each one sets.
CELL_FACETS = {"cell type": "cell_type", "tissue": "tissue", "stage": "stage", "sex": "sex"}


def _catalog_code(catalog) -> str:
    from ..io.catalog_open import demo_path

    paths = [getattr(src, "path", None) for src in catalog.sources]
    if not paths or any(p is None for p in paths):
        return "...  # the catalog given to DatasetBuilder"
    demo = demo_path().resolve()
    if all(Path(p).resolve().is_relative_to(demo) for p in paths):
        return "rw.open_catalog()"
    return "rw.open_catalog(" + ", ".join(repr(str(p)) for p in paths) + ")"


def _dashboard_html(client) -> str:
    """A link to the Dask dashboard of ``client`` ('' without a client or a dashboard)."""
    link = str(getattr(client, "dashboard_link", "") or "") if client is not None else ""
    if not link.startswith(("http://", "https://")):
        return ""
    return (
        f'<a href="{html.escape(link, quote=True)}" target="_blank" rel="noopener noreferrer">'
        "Dask dashboard</a>"
    )


class DatasetBuilder(PageLink, RemoteSources, w.VBox):
    """Browse experiments, pick samples, choose options, build, look at and save the result.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog`; None opens the bundled demo (``rw.open_catalog()``).
    output_dir
        Where "Save" may write: None (default) accepts any path; a folder restricts saving to a
        file name inside it (see :class:`SavePanel`; the web app always passes one).
    client, workdir
        A ``dask.distributed`` client: bulk groups are then built out of core on its
        workers, into zarr arrays under ``workdir`` (see :func:`refinewidgets.build`); a link
        to the cluster's dashboard shows beside the progress. None (default): in memory, or on
        a local cluster when a group would not fit.
    page_query
        The web app only: the query string of the page's URL (``"token=...&exp=GSE1"``). The
        dataset it encodes (:mod:`refinewidgets.core.url_state`), experiments still to fetch
        from refine.bio or Bgee included, is restored, and from then on
        the page's address shows the current dataset (reloading restores it, the address is a
        link to it). None (default): the address is left alone, as in a notebook.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> builder = rw.DatasetBuilder()
    >>> builder.restore(rw.Dataset({"SRP091833": ["ALL"]}, scale_by="STANDARD"))
    >>> builder.build_button.click()  # builds in the background; the kernel stays free
    >>> _ = builder.wait()
    >>> builder.adata.shape[0], builder.status.kind
    (20, 'success')
    """

    result = Instance(Result, allow_none=True, help="The result of the last successful build.")
    adata = AnyTrait(
        None,
        allow_none=True,
        help="The AnnData of the result when it has one group, else {group: AnnData}.",
    )
    link_query = Unicode(
        "",
        help="The URL query encoding the dataset and the experiments still to fetch (the page's "
        "other query keys kept): the address the web app shows. '' when the dataset is too "
        "large for a link.",
    )

    def __init__(
        self,
        catalog=None,
        *,
        output_dir=None,
        page_query=None,
        client=None,
        workdir=None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client, self.workdir = client, workdir
        self.dashboard = w.HTML(_dashboard_html(client))
        self.dashboard.add_class("rw-dashboard")
        catalog = catalog_or_demo(catalog)
        #: The app's one state: the selection, its options, the catalog (read from here only).
        self.state = AppState(catalog, catalog_code=_catalog_code(catalog))
        self.status = StatusArea("rw-status")
        self.browser = ExperimentBrowser(state=self.state)
        self.picker = SamplePicker(state=self.state)
        self.cart_view = DatasetCartView(state=self.state)
        self.options = OptionsPanel(state=self.state)
        self.results = ResultsView(state=self.state)
        self.save = SavePanel(output_dir=output_dir)
        self._make_build_controls()
        self._make_code_view()
        self._make_remote_parts()
        self._page_query = ""
        self.url_writer: UrlWriter | None = None
        self._make_tabs()
        self.browser.observe(self._list_samples, names="chosen")
        self.browser.on_add(lambda selection: self.cart_view.add_whole(list(selection)))
        self.picker.on_add(self._add_from_picker)
        self.state.observe(self._on_selection, names=["selection", "catalog_code"])
        self._on_selection(None)
        if page_query is not None:
            self.link_to_page(page_query)

    def _make_build_controls(self) -> None:
        """The build and Cancel buttons and the progress bar (the dashboard link beside)."""
        self.progress = WidgetProgress()
        self.progress.hold_done = True  # "done" once the results are shown, not before
        self.build_button = w.Button(
            description="Build dataset",
            icon="cogs",
            button_style="success",
            layout=w.Layout(width="200px"),
        )
        self.build_button.add_class("rw-build")
        self.build_button.on_click(lambda _: self.start_build())
        self.cancel_button = w.Button(
            description="Cancel", icon="stop", disabled=True, layout=w.Layout(width="110px")
        )
        self.cancel_button.add_class("rw-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self._thread: threading.Thread | None = None
        #: Seconds the last build took ("build") and showing its results took ("show").
        self.timings: dict[str, float] = {}

    def _make_code_view(self) -> None:
        """The code that rebuilds the dataset ("Show code"), and the results' out-of-date note."""
        self.code = w.Textarea(
            value="", layout=w.Layout(width="100%", height="180px", display="none")
        )
        self.code.add_class("rw-code")
        self.show_code = w.ToggleButton(value=False, description="Show code", icon="code")
        self.show_code.add_class("rw-show-code")
        self.show_code.observe(
            lambda c: setattr(self.code.layout, "display", None if c["new"] else "none"),
            names="value",
        )
        self.stale_note = w.HTML()
        self.stale_note.add_class("rw-stale")

    def _make_tabs(self) -> None:
        """The tabs: Choose samples, My dataset (cart, options, build), Results (and save)."""
        self.tabs = w.Tab(
            children=[
                self.choose_box,
                w.VBox(
                    [
                        self.cart_view,
                        self.options,
                        w.HBox(
                            [
                                self.build_button,
                                self.cancel_button,
                                self.progress.widget,
                                self.dashboard,
                            ],
                            layout=w.Layout(flex_flow="row wrap"),
                        ),
                        self.remote_box,
                        self.show_code,
                        self.code,
                    ]
                ),
                w.VBox([self.stale_note, self.results, self.save]),
            ],
            titles=["Choose samples", "My dataset", "Results"],
        )
        self.tabs.add_class("rw-tabs")
        self.add_class("rw-builder")
        self.children = [
            w.HTML(THEME_CSS + "<h3>refinewidgets: build a gene-expression dataset</h3>"),
            self.tabs,
            self.status,
        ]

    @property
    def catalog(self):
        """The catalog the samples come from (the state's; it grows when downloads open)."""
        return self.state.catalog

    @property
    def catalog_code(self) -> str:
        """The expression that opens :attr:`catalog` in code (the state's)."""
        return self.state.catalog_code

    @property
    def dataset(self) -> Dataset | None:
        """The dataset spec being assembled (None while the cart is empty): the state's
        selection of local experiments. Read-only: :meth:`restore` puts a dataset back."""
        return self.state.selection.dataset

    @dataset.setter
    def dataset(self, value) -> None:
        raise AttributeError(
            "DatasetBuilder.dataset is read-only: builder.restore(dataset) puts a dataset back "
            "(its cart and options)."
        )

    def _list_samples(self, change) -> None:
        """List the samples of the ticked experiments, filtered by the search that found them
        (the sample list shows what the experiment browser counted as matching)."""
        self.picker.experiments = list(change["new"])
        self.picker.text = self.browser.text

    # -- single cells in one place: the sample facets are the cell filter ---------------------
    @guarded
    def _add_from_picker(self, selection) -> None:
        """Add the picked samples; for single-cell libraries, the picker's cell-type, tissue,
        stage and sex facets become the dataset's cell filter (the cells, not only the
        libraries, are what the user chose)."""
        before = self.state.selection
        self.cart_view.add(selection)
        if self.state.selection == before:
            return  # the addition was refused (the cart says why)
        cells = [e for e in selection if self.catalog.is_single_cell(e)]
        chosen = {
            column: list(dict.fromkeys(v.strip() for x in values for v in str(x).split(";")))
            for facet, column in CELL_FACETS.items()
            if (values := self.picker.filters.get(facet))
        }
        if not cells or not chosen:
            return
        current = self.state.selection.option_values["cell_filter"] or {}
        if isinstance(current, str):  # a filter text: the facets' choices are added to it
            merged = " and ".join(
                [f"({current})", *(f"{c} in {list(v)!r}" for c, v in chosen.items())]
            )
        else:
            merged = {**current, **chosen}
        self.state.selection = self.state.selection.with_options(cell_filter=merged)
        said = "; ".join(f"{c.replace('_', ' ')}: {', '.join(v)}" for c, v in chosen.items())
        self.cart_view.status.show(
            f"Cell filter set from the sample facets ({said}): only those cells of "
            f"{', '.join(cells)} are built. Change it under Single-cell options.",
            "info",
        )

    # -- keeping `dataset` in step with the selection -----------------------------------------

    @guarded
    def _on_selection(self, change) -> None:
        selection = self.state.selection
        n = selection.n_samples
        k = len(selection.pending)
        # short enough for the tab's width: the sample count alone (and what is to fetch)
        count = ", ".join(([f"{n:,}"] if n else []) + ([f"+{k} to fetch"] if k else []))
        self.tabs.set_title(TAB_DATASET, f"My dataset ({count})" if count else "My dataset")
        self._show_includes()
        self._show_code()
        self._show_staleness()
        self._write_link()

    def _show_code(self) -> None:
        selection = self.state.selection
        planned = selection.planned_dataset if selection.pending else self.dataset
        self.code.value = (
            rebuild_code(planned, self.state.catalog_code, selection.pending)
            if planned is not None
            else "# Add samples to the dataset: the code that rebuilds it appears here."
        )

    def _show_staleness(self) -> None:
        stale = self.result is not None and self.result.dataset != self.dataset
        self.save.stale = stale
        self.stale_note.value = (
            '<div class="rw-message" style="color:var(--rw-warning,#8a5a00)">These results were built from an '
            "earlier dataset: the samples or options changed since. Build again to see the "
            "current dataset; saving is off until then.</div>"
            if stale
            else ""
        )

    def restore(self, dataset: Dataset | Mapping[str, Any] | None) -> None:
        """Put ``dataset`` back (a :class:`~refinewidgets.Dataset`, or its ``to_dict()``): the
        cart and the options show it, and a build builds it; None empties the dataset.

        A dataset the catalog cannot give (an unknown experiment, a sample of another one)
        raises the core's error, also shown in the status line, and changes nothing.

        Examples
        --------
        >>> import refinewidgets as rw
        >>> builder = rw.DatasetBuilder()
        >>> builder.restore(rw.Dataset({"SRP091833": ["ALL"]}, aggregate_by="SPECIES"))
        >>> builder.cart_view.data, builder.options.aggregate.value
        ({'SRP091833': ['ALL']}, 'SPECIES')
        >>> builder.status.text
        'Dataset restored: 1 experiment(s), 20 samples.'
        """
        try:
            if isinstance(dataset, Mapping):
                dataset = Dataset.from_dict(dataset)
            selection = (
                Selection(self.catalog)
                if dataset is None
                else Selection.from_dataset(dataset, self.catalog)  # the catalog's checks
            )
        except Exception as exc:
            self.status.show(f"The dataset was not restored: {describe(exc)}", "error")
            raise
        self.state.selection = selection
        options = {k: getattr(dataset, k, v) for k, v in Dataset.options().items()}
        self.status.show(
            f"Dataset restored: {len(selection)} experiment(s), {selection.n_samples:,} samples."
            + self._adapted_note(options),
            "info",
        )

    # -- build ----------------------------------------------------------------------------------
    def start_build(self) -> None:
        """Build in a background thread (the "Build dataset" button): the kernel stays free,
        and "Cancel" stops the build at its next step. :meth:`wait` waits for it."""
        if self._thread is not None and self._thread.is_alive():
            self.status.show("A build is already running.", "info")
            return
        self.progress.cancelled = False
        self._thread = threading.Thread(target=self.build, name="refinewidgets-build", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> Result | None:
        """Wait for the background build (and a fetch it started) to end; returns the result
        shown."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._fetch_job is not None:
            self._fetch_job.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop the running build at its next step, or a fetch at its next chunk (nothing of
        either is kept)."""
        self.progress.cancelled = True
        if self._fetch_job is not None:
            self._fetch_job.cancel()
        self.status.show("Cancelling at the next step...", "info")

    @guarded
    def build(self) -> Result | None:
        """Build the current dataset and show the result (in this thread; the button uses
        :meth:`start_build`). The progress bar covers the build and the showing of its results
        (summary, preview, the open plot): it says "done" when they are on the page."""
        started = time.perf_counter()
        result = self._fetch_and_build(self.state.selection)
        if result is None:
            return None
        try:
            built = time.perf_counter()
            self._account_not_fetched(result)
            self.result = result
            shown = time.perf_counter()
        finally:
            self.build_button.disabled = False
        self.timings = {"build": built - started, "show": shown - built}
        self.progress.finish(
            f"done in {shown - started:.1f} s (built in {built - started:.1f} s, "
            f"results shown {shown - built:.1f} s later)"
        )
        self._report_built(result)
        return result

    def _fetch_and_build(self, selection: Selection) -> Result | None:
        """Fetch what ``selection`` has pending, then build it; None (said in the status line)
        when the fetch or the build failed or was cancelled."""
        result = None
        self.not_fetched = []
        try:
            if selection.pending:
                self.build_button.disabled = True
                self.cancel_button.disabled = False
                self.offline_box.layout.display = "none"
                self.account_button.layout.display = "none"
                try:
                    selection = self._fetch(selection)
                except (BuildCancelled, DatasetSpecError):
                    raise
                except RefineWidgetsError as exc:
                    self._fetch_failed(exc)
                    return None
            # exactly the state's spec (its local part when a service could not be reached)
            dataset = selection.dataset if self.not_fetched else selection.to_dataset()
            self.status.show(f"Building {selection.n_samples:,} samples...", "info")
            self.build_button.disabled = True
            self.cancel_button.disabled = False
            result = build(
                dataset,
                self.catalog,
                progress=self.progress,
                client=self.client,
                workdir=self.workdir,
            )
            # symbols for the preview: human from the shipped table, others if cached (offline)
            add_gene_symbols(result, offline=True, skip_missing=True)
        except BuildCancelled as exc:
            self.progress.fail("cancelled")
            self.status.show(f"The build was cancelled: {exc}", "info")
            return None
        except Exception as exc:
            self.progress.fail("failed")
            self.status.show(f"The build failed: {in_app_words(describe(exc))}", "error")
            return None
        finally:
            self.cancel_button.disabled = True
            self.progress.cancelled = False
            if result is None:
                self.build_button.disabled = False
        return result

    def _report_built(self, result: Result) -> None:
        """Say what was built, and which experiments could not be fetched."""
        shapes = "; ".join(f"{k}: {a.n_obs:,} x {a.n_vars:,}" for k, a in result.items())
        filtered = len(result.filtered_samples) - len(self.not_fetched)
        built_text = f"Built {len(result)} group(s) ({shapes}); {filtered} sample(s) filtered."
        if self.not_fetched:
            services = " and ".join(dict.fromkeys(p.service_name for p in self.not_fetched))
            self.status.show(
                f"{built_text} {services} cannot be reached from this computer: "
                f"{', '.join(p.label for p in self.not_fetched)} not fetched (listed in the "
                "filtered samples; still in the dataset, to fetch when you build again).",
                "warning",
            )
        else:
            self.status.show(built_text, "success")

    @observe("result")
    def _result_changed(self, change) -> None:
        res = self.result
        self.adata = (
            None
            if res is None
            else (next(iter(res.values())) if len(res) == 1 else dict(res.items()))
        )
        self.results.result = res
        self.save.result = res  # prepares its download once the result is current (below)
        self._show_staleness()
        if res is not None:
            self.tabs.selected_index = TAB_RESULTS
