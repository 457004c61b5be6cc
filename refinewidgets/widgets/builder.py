"""``rw.DatasetBuilder``: the whole app, made of the parts, each a widget of its own.

Tabs: **Choose samples** (:class:`ExperimentBrowser`, :class:`SamplePicker`), **My dataset**
(:class:`DatasetCartView`, :class:`OptionsPanel`, the build button, its progress, the code
that rebuilds the dataset), **Results** (:class:`ResultsView`, :class:`SavePanel`). A status
line under the tabs shows the last message of any part, errors included.

The builder only edits a :class:`~refinewidgets.Dataset` and calls :func:`refinewidgets.build`.
Its traits: ``dataset`` (the current spec; setting it restores the cart and the options),
``result`` (the :class:`~refinewidgets.Result` of the last build) and ``adata`` (its AnnData when
there is one group, else ``{key: AnnData}``).

CSS classes, for browser tests (each is on one element unless said otherwise). ipywidgets puts
a class on the widget's outer element: target the control inside it (``.rw-search input``,
``.rw-build`` is the button itself, ``.rw-facet-organism select``, ``.rw-samples-checkbox input``).
Every message area has ``rw-message``; one showing an error also has ``rw-error``.

- app: ``rw-builder``, ``rw-tabs``, ``rw-status`` (the status line), ``rw-build``,
  ``rw-progress``, ``rw-progress-label``, ``rw-show-code``, ``rw-code``;
- experiment browser: ``rw-search``, ``rw-facet`` (on each facet list) with
  ``rw-facet-organism``, ``rw-facet-technology``, ``rw-facet-platform``; ``rw-add-experiments``,
  ``rw-untick-experiments``, ``rw-browser-status``; its table: ``rw-experiments-table``,
  ``rw-experiments-header``, ``rw-experiments-row`` (each row), ``rw-experiments-checkbox``
  (each row's box, labelled with the accession), ``rw-experiments-sort``,
  ``rw-experiments-sort-direction``, ``rw-experiments-prev``, ``rw-experiments-next``,
  ``rw-experiments-page-label``, ``rw-experiments-page-size``;
- sample picker: ``rw-sample-search``, ``rw-sample-facet`` (on each facet list) with
  ``rw-sample-facet-sex``, ``rw-sample-facet-specimen-part``, ``rw-sample-facet-disease``,
  ``rw-sample-facet-cell-type``, ``rw-sample-facet-tissue``, ``rw-sample-facet-stage`` (those
  present); ``rw-select-all``, ``rw-select-none``, ``rw-add-to-dataset``,
  ``rw-selection-count``, ``rw-picker-status``; its table: ``rw-samples-table``,
  ``rw-samples-header``, ``rw-samples-row``, ``rw-samples-checkbox`` (each sample's box,
  labelled with its accession), ``rw-samples-sort``, ``rw-samples-sort-direction``,
  ``rw-samples-prev``, ``rw-samples-next``, ``rw-samples-page-label``, ``rw-samples-page-size``;
- cart: ``rw-cart-summary``, ``rw-cart-rows``, ``rw-cart-row`` (each row), ``rw-cart-remove``
  (each row's button, tooltip "Remove <accession>"), ``rw-cart-totals``, ``rw-cart-clear``,
  ``rw-cart-status``;
- options: ``rw-aggregate``, ``rw-transformation``, ``rw-quantile-normalize``, ``rw-qn-reason``,
  ``rw-single-cell-options``, ``rw-cell-filter-cell-type``, ``rw-cell-filter-tissue``,
  ``rw-cell-filter-stage``, ``rw-cell-filter-sex``, ``rw-counts-normalization``,
  ``rw-pseudobulk``, ``rw-join``, ``rw-options-status``;
- results: ``rw-result-group``, ``rw-result-summary``, ``rw-filtered-samples``, ``rw-preview``,
  ``rw-plot-distributions``, ``rw-before-after``, ``rw-pca-color``, ``rw-plot-pca``,
  ``rw-plot-cell-types``, ``rw-plot-img`` (each plot image), ``rw-results-status``;
- save: ``rw-save-path``, ``rw-save-format``, ``rw-save-folder``, ``rw-save-overwrite``,
  ``rw-save``, ``rw-prepare-download``, ``rw-download`` (holds the link
  ``a.rw-download-link``), ``rw-save-status``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w
from traitlets import Any as AnyTrait
from traitlets import Instance, TraitError, observe, validate

from ..core.build import build
from ..core.cart import Cart, rebuild_code
from ..core.result import Result
from ..core.spec import Dataset
from ._progress import WidgetProgress
from ._status import StatusArea, catalog_or_demo, describe, guarded
from .cart import DatasetCartView
from .experiment_browser import ExperimentBrowser
from .options import OptionsPanel
from .results import ResultsView
from .sample_picker import SamplePicker
from .save import SavePanel

__all__ = ["DatasetBuilder"]

TAB_CHOOSE, TAB_DATASET, TAB_RESULTS = range(3)


def _catalog_code(catalog) -> str:
    from ..io.catalog_open import demo_path

    paths = [getattr(src, "path", None) for src in catalog.sources]
    if not paths or any(p is None for p in paths):
        return "...  # the catalog given to DatasetBuilder"
    demo = demo_path().resolve()
    if all(Path(p).resolve().is_relative_to(demo) for p in paths):
        return "rw.open_catalog()"
    return "rw.open_catalog(" + ", ".join(repr(str(p)) for p in paths) + ")"


class DatasetBuilder(w.VBox):
    """Browse experiments, pick samples, choose options, build, look at and save the result.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog`; None opens the bundled demo (``rw.open_catalog()``).
    output_dir
        Where "Save" may write: None (default) accepts any path; a folder restricts saving to a
        file name inside it (see :class:`SavePanel`; the web app always passes one).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> builder = rw.DatasetBuilder()
    >>> builder.dataset = rw.Dataset({"SRP091833": ["ALL"]}, scale_by="STANDARD")
    >>> builder.build_button.click()
    >>> builder.adata.shape[0], builder.status.kind
    (20, 'success')
    """

    dataset = Instance(
        Dataset,
        allow_none=True,
        help="The dataset spec being assembled (None while the cart "
        "is empty). Setting it restores the cart and the options.",
    )
    result = Instance(Result, allow_none=True, help="The result of the last successful build.")
    adata = AnyTrait(
        None,
        allow_none=True,
        help="The AnnData of the result when it has one group, else {group: AnnData}.",
    )

    def __init__(self, catalog=None, *, output_dir=None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog = catalog_or_demo(catalog)
        self.catalog_code = _catalog_code(catalog)
        self._syncing = False
        self.status = StatusArea("rw-status")
        self.browser = ExperimentBrowser(catalog)
        self.picker = SamplePicker(catalog)
        self.cart_view = DatasetCartView(catalog)
        self.options = OptionsPanel()
        self.results = ResultsView(catalog)
        self.save = SavePanel(output_dir=output_dir)
        self.progress = WidgetProgress()
        self.build_button = w.Button(
            description="Build dataset",
            icon="cogs",
            button_style="success",
            layout=w.Layout(width="200px"),
        )
        self.build_button.add_class("rw-build")
        self.build_button.on_click(lambda _: self.build())
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
        self.tabs = w.Tab(
            children=[
                w.VBox([self.browser, self.picker]),
                w.VBox(
                    [
                        self.cart_view,
                        self.options,
                        w.HBox([self.build_button, self.progress.widget]),
                        self.show_code,
                        self.code,
                    ]
                ),
                w.VBox([self.results, self.save]),
            ],
            titles=["Choose samples", "My dataset", "Results"],
        )
        self.tabs.add_class("rw-tabs")
        self.add_class("rw-builder")
        self.children = [
            w.HTML("<h3>refinewidgets: build a gene-expression dataset</h3>"),
            self.tabs,
            self.status,
        ]
        self.browser.observe(
            lambda c: setattr(self.picker, "experiments", list(c["new"])), names="chosen"
        )
        self.browser.on_add(self.cart_view.add)
        self.picker.on_add(self.cart_view.add)
        self.cart_view.observe(self._on_cart, names="data")
        self.options.observe(self._on_options, names="options")
        for part in (
            self.browser,
            self.picker,
            self.cart_view,
            self.options,
            self.results,
            self.save,
        ):
            part.status.observe(self._mirror, names="serial")
        self._on_cart(None)

    # -- keeping `dataset` in step with the parts -------------------------------------------
    def _mirror(self, change) -> None:
        part = change["owner"]
        if part.text:
            self.status.show(part.text, part.kind)

    @guarded
    def _on_cart(self, change) -> None:
        cart = self.cart_view.cart
        self.options.technologies = cart.technologies()
        self.options.cell_filter_choices = cart.cell_filter_choices()
        n = cart.n_samples
        self.tabs.set_title(TAB_DATASET, f"My dataset ({n:,} samples)" if n else "My dataset")
        self._sync()

    def _on_options(self, change) -> None:
        self._sync()

    @guarded
    def _sync(self) -> None:
        if self._syncing:
            return
        cart = self.cart_view.cart
        ds = cart.to_dataset(**self.options.options) if len(cart) else None
        self._syncing = True
        try:
            self.dataset = ds
        finally:
            self._syncing = False
        self._show_code()

    def _show_code(self) -> None:
        self.code.value = (
            rebuild_code(self.dataset, self.catalog_code)
            if self.dataset is not None
            else "# Add samples to the dataset: the code that rebuilds it appears here."
        )

    @validate("dataset")
    def _valid_dataset(self, proposal) -> Dataset | None:
        value = proposal["value"]
        if value is not None and not self._syncing:
            try:
                self._restored = Cart.from_dataset(value, self.catalog)
            except Exception as exc:
                self.status.show(describe(exc), "error")
                raise TraitError(describe(exc)) from exc
        return value

    @observe("dataset")
    def _dataset_changed(self, change) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.cart_view.set_cart(
                self._restored if self.dataset is not None else Cart(self.catalog)
            )
            if self.dataset is not None:
                self.options.set_options(self.dataset)
        finally:
            self._syncing = False
        self._show_code()
        n = self.cart_view.cart.n_samples
        self.status.show(
            f"Dataset restored: {len(self.cart_view.cart)} experiment(s), {n:,} samples.", "info"
        )

    # -- build ----------------------------------------------------------------------------------
    @guarded
    def build(self) -> Result | None:
        """Build the current dataset (as the "Build dataset" button does) and show the result."""
        cart = self.cart_view.cart
        try:
            dataset = cart.to_dataset(**self.options.options)
            self.status.show(f"Building {cart.n_samples:,} samples...", "info")
            self.build_button.disabled = True
            result = build(dataset, self.catalog, progress=self.progress)
        except Exception as exc:
            self.progress.fail("failed")
            self.status.show(f"The build failed: {describe(exc)}", "error")
            return None
        finally:
            self.build_button.disabled = False
        self.result = result
        shapes = "; ".join(f"{k}: {a.n_obs:,} x {a.n_vars:,}" for k, a in result.items())
        filtered = len(result.filtered_samples)
        self.status.show(
            f"Built {len(result)} group(s) ({shapes}); {filtered} sample(s) filtered.", "success"
        )
        return result

    @observe("result")
    def _result_changed(self, change) -> None:
        res = self.result
        self.adata = (
            None
            if res is None
            else (next(iter(res.values())) if len(res) == 1 else dict(res.items()))
        )
        self.results.result = res
        self.save.result = res
        if res is not None:
            self.tabs.selected_index = TAB_RESULTS
