"""The results of a build, group by group: shape, filtered samples, a preview and plots.

Plots, each in its own panel of an accordion (``plots``) and drawn only when its panel is open
(a result shows as soon as its summary, preview and first panel are ready): a PCA of the samples
coloured by experiment or any metadata column (open first); per-sample value distributions after
normalization, and before it when the same dataset built without normalization is at hand
(:meth:`ResultsView.compute_before`, run on its own for small results when the panel opens); for
single cells (or pseudobulk per cell type), the cells per cell type; for a batch-corrected
group, the PCA before and after the correction side by side, coloured by the batch (or any
column), each with its batch scores (:func:`~refinewidgets.core.explore.batch_views`: the
silhouette of the batch labels on the first PCs and the share of variance the batches explain),
so the user sees whether the correction helped. ComBat's "before" is the same dataset built
without it (:meth:`ResultsView.compute_uncorrected`, run on its own for small results); Harmony
keeps its "before" in ``obsm["X_pca"]``. The numbers come from
:mod:`refinewidgets.core.explore`; this module only draws them.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from traitlets import Instance, Unicode, observe

from ..core import explore
from ..core.build import build
from ..core.metadata import organism_label
from ..core.result import Result, is_cell_group
from ..core.scale import SCALE_LABELS
from ._plots import bar_img, batch_pair_img, distributions_img, pca_img
from ._status import StatusArea, describe, guarded
from ._table import frame_html
from .state import AppState, Rendering

__all__ = ["ResultsView"]

PANEL_PCA, PANEL_DISTRIBUTIONS, PANEL_CELL_TYPES, PANEL_BATCH = range(4)

#: Results with at most this many values get their "before normalization" build on their own.
AUTO_BEFORE_VALUES = 20_000_000


class ResultsView(w.VBox):
    """Show a :class:`~refinewidgets.Result`.

    Parameters
    ----------
    catalog
        The catalog the result was built from (needed for the "before normalization" and
        "before batch correction" builds); ignored when ``state`` is given.
    state
        The app's :class:`~refinewidgets.widgets.state.AppState`: its catalog is the one used
        (default: a new one over ``catalog``, or none when ``catalog`` is None either).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> view = ResultsView(cat)
    >>> view.result = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), cat)
    >>> view.group, "20 samples" in view.summary.value
    ('SRP091833', True)
    """

    result = Instance(Result, allow_none=True, help="The result shown.")
    before = Instance(
        Result, allow_none=True, help="The same dataset built without normalization, or None."
    )
    uncorrected = Instance(
        Result,
        allow_none=True,
        help="The same dataset built without its ComBat correction (the 'before'), or None.",
    )
    group = Unicode(None, allow_none=True, help="The key of the group shown.")
    color_by = Unicode("experiment_accession", help="The metadata column colouring the PCA.")

    def __init__(self, catalog=None, *, state: AppState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state if state is not None or catalog is None else AppState(catalog)
        #: Raised while the view writes its own controls (their observers then do nothing).
        self._rendering = Rendering()
        self.status = StatusArea("rw-results-status")
        self.group_box = w.Dropdown(options=[], description="Group")
        self.group_box.add_class("rw-result-group")
        self.group_box.observe(lambda c: setattr(self, "group", c["new"]), names="value")
        self.summary = w.HTML()
        self.summary.add_class("rw-result-summary")
        self.filtered = w.HTML()
        self.filtered.add_class("rw-filtered-samples")
        self.preview = w.HTML()
        self.preview.add_class("rw-preview")
        self._make_plots()
        self.children = [
            w.HTML("<b>Results</b>"),
            self.group_box,
            self.summary,
            self.filtered,
            self.preview,
            self.plots,
            self.status,
        ]
        self._render()

    def _make_plots(self) -> None:
        """The plot panels, each drawn when opened: PCA (coloured by a column), value
        distributions (before and after normalization), cells per cell type, batch
        correction (before and after, with its scores)."""
        self.distributions = w.HTML()
        self.distributions.add_class("rw-plot-distributions")
        self.before_button = w.Button(
            description="Compare with values before normalization",
            icon="chart-bar",
            layout=w.Layout(width="330px"),
        )
        self.before_button.add_class("rw-before-after")
        self.before_button.on_click(lambda _: self.compute_before())
        self.color_box = w.Dropdown(options=[], description="Colour by")
        self.color_box.add_class("rw-pca-color")
        self.color_box.observe(self._on_color, names="value")
        self.pca = w.HTML()
        self.pca.add_class("rw-plot-pca")
        self.cell_types = w.HTML()
        self.cell_types.add_class("rw-plot-cell-types")
        self.batch_color = w.Dropdown(options=[], description="Colour by")
        self.batch_color.add_class("rw-batch-color")
        self.batch_color.observe(self._on_batch_color, names="value")
        self.batch_plot = w.HTML()
        self.batch_plot.add_class("rw-plot-batch")
        self.batch_scores = w.HTML()
        self.batch_scores.add_class("rw-batch-scores")
        self.batch_button = w.Button(
            description="Compare with values before batch correction",
            icon="chart-bar",
            layout=w.Layout(width="360px", display="none"),
        )
        self.batch_button.add_class("rw-batch-before")
        self.batch_button.on_click(lambda _: self.compute_uncorrected())
        self._drawn: set[int] = set()
        self.plots = w.Accordion(
            children=[
                w.VBox([self.color_box, self.pca]),
                w.VBox([self.distributions, self.before_button]),
                w.VBox([self.cell_types]),
                w.VBox([self.batch_color, self.batch_scores, self.batch_plot, self.batch_button]),
            ],
            titles=["PCA", "Value distributions", "Cells per cell type", "Batch correction"],
            selected_index=PANEL_PCA,
        )
        self.plots.add_class("rw-plots")
        self.plots.observe(lambda _: self._draw_open_panel(), names="selected_index")

    @property
    def catalog(self):
        """The catalog a result is rebuilt from (the state's; None without a state)."""
        return self.state.catalog if self.state is not None else None

    # -- events ---------------------------------------------------------------------------------
    @observe("result")
    def _result_changed(self, change) -> None:
        res = self.result
        keys = list(res) if res is not None else []
        with self._rendering:
            self.before = None
            self.uncorrected = None
            self.group_box.options = [(self._label(k), k) for k in keys]
            self.group = keys[0] if keys else None
            self.group_box.value = self.group
            self._render_filtered()
        self._render()

    @observe("group")
    def _group_changed(self, change) -> None:
        if self.group_box.value != self.group:
            self.group_box.value = self.group
        if not self._rendering:
            self._render()

    @observe("before")
    def _before_changed(self, change) -> None:
        if not self._rendering and PANEL_DISTRIBUTIONS in self._drawn:
            self._render_distributions()

    @observe("uncorrected")
    def _uncorrected_changed(self, change) -> None:
        if not self._rendering and PANEL_BATCH in self._drawn:
            self._render_batch()

    def _on_batch_color(self, change) -> None:
        if change["new"] and not self._rendering and PANEL_BATCH in self._drawn:
            self._render_batch()

    def _on_color(self, change) -> None:
        if change["new"] and not self._rendering:
            self.color_by = change["new"]

    @observe("color_by")
    def _color_changed(self, change) -> None:
        if PANEL_PCA in self._drawn:
            self._render_pca()

    @guarded
    def _draw_open_panel(self) -> None:
        """Draw the open panel's plot if it is not drawn yet for the group shown."""
        panel = self.plots.selected_index
        if panel is None or panel in self._drawn or self._adata() is None:
            return
        self._drawn.add(panel)
        if panel == PANEL_PCA:
            self._render_pca()
        elif panel == PANEL_DISTRIBUTIONS:
            res = self.result
            small = sum(a.n_obs * a.n_vars for a in res.values()) <= AUTO_BEFORE_VALUES
            if (
                self.before is None
                and small
                and res.dataset is not None
                and self.catalog is not None
                and not is_cell_group(self._adata())
            ):
                self.compute_before()  # draws the distributions (see _before_changed)
            else:
                self._render_distributions()
        elif panel == PANEL_BATCH:
            res = self.result
            small = sum(a.n_obs * a.n_vars for a in res.values()) <= AUTO_BEFORE_VALUES
            if (
                self.uncorrected is None
                and self._batch_info().get("method") == "combat"
                and small
                and res.dataset is not None
                and self.catalog is not None
            ):
                self.compute_uncorrected()  # draws the panel (see _uncorrected_changed)
            else:
                self._render_batch()
        else:
            self._render_cell_types(self._adata())

    # -- work -----------------------------------------------------------------------------------
    @guarded
    def compute_before(self) -> None:
        """Build the same dataset without normalization, for the before/after distributions."""
        res = self.result
        if res is None or res.dataset is None or self.catalog is None:
            raise ValueError("there is no built result (with its catalog) to compare with")
        raw = explore.unnormalized(res.dataset)
        self.before = res if raw is None else build(raw, self.catalog)

    @guarded
    def compute_uncorrected(self) -> None:
        """Build the same dataset without its ComBat correction, for the batch panel's before."""
        res = self.result
        if res is None or res.dataset is None or self.catalog is None:
            raise ValueError("there is no built result (with its catalog) to compare with")
        raw = explore.uncorrected(res.dataset)
        if raw is None:
            raise ValueError("this result has no ComBat correction to compare with")
        self.uncorrected = build(raw, self.catalog)

    def _batch_info(self) -> dict:
        adata = self._adata()
        if adata is None:
            return {}
        return dict(adata.uns.get("refinewidgets", {}).get("batch_correction", {}) or {})

    def _label(self, key: str) -> str:
        """A group's name for people: the species' name when grouped by species."""
        res = self.result
        by_species = (
            res is not None and res.dataset is not None and (res.dataset.aggregate_by == "SPECIES")
        )
        return f"{organism_label(key)} ({key})" if by_species else key

    def _adata(self):
        if self.result is None or self.group is None or self.group not in self.result:
            return None
        return self.result[self.group]

    @guarded
    def _render(self) -> None:
        adata = self._adata()
        for widget in (
            self.summary,
            self.preview,
            self.distributions,
            self.pca,
            self.cell_types,
            self.batch_plot,
            self.batch_scores,
        ):
            widget.value = ""
        self._drawn = set()
        self.before_button.layout.display = "none"
        self.batch_button.layout.display = "none"
        self.color_box.layout.display = "none"
        self.plots.layout.display = "none" if adata is None else None
        if adata is None:
            self.summary.value = "No result yet: build a dataset." if self.result is None else ""
            return
        self._render_summary(adata)
        self.preview.value = "<b>Preview</b> (first genes x samples)" + frame_html(
            explore.preview(adata)
        )
        columns = explore.color_columns(adata.obs)
        default = (
            "cell_type"
            if is_cell_group(adata) and "cell_type" in columns
            else columns[0]
            if columns
            else None
        )
        with self._rendering:
            self.color_box.options = columns
            varies = self.color_by in columns and adata.obs[self.color_by].astype(str).nunique() > 1
            self.color_box.value = self.color_by if varies else default
            batch_key = self._batch_info().get("batch_key")
            batch_columns = ([batch_key] if batch_key in adata.obs else []) + [
                c for c in columns if c != batch_key
            ]
            self.batch_color.options = batch_columns
            self.batch_color.value = batch_columns[0] if batch_columns else None
        self.color_box.layout.display = None if columns else "none"
        self.batch_color.layout.display = None if self._batch_info() else "none"
        self._draw_open_panel()

    def _render_summary(self, adata) -> None:
        row = self.result.summary().loc[self.group]
        info = adata.uns.get("refinewidgets", {})
        parts = [*self._summary_parts(adata, row), *_gene_parts(info)]
        self.summary.value = " · ".join(parts) + _summary_warnings(info)

    def _summary_parts(self, adata, row) -> list[str]:
        """The group's shape and how its values were processed (normalization, transformation,
        batch correction)."""
        rows = "cells" if is_cell_group(adata) else "samples"
        parts = [
            f"<b>{html.escape(self._label(self.group))}</b>: {adata.n_obs:,} {rows} × "
            f"{adata.n_vars:,} genes"
        ]
        if row.get("quantile_normalized"):
            parts.append(
                f"quantile-normalized (target: {html.escape(str(row.get('qn_target') or 'computed'))})"
            )
        else:
            parts.append("not quantile-normalized")
        parts.append(
            f"transformation: {SCALE_LABELS.get(str(row.get('scale_by')), row.get('scale_by'))}"
        )
        if row.get("values"):
            parts.append(f"values: {html.escape(str(row['values']))}")
        batch = self._batch_info()
        if batch:
            method = {"combat": "ComBat", "harmony": "Harmony"}.get(batch.get("method"), "")
            kept = batch.get("covariates") or []
            parts.append(
                f"batch correction: {method} by {html.escape(str(batch.get('batch_key')))}"
                + (f", keeping {html.escape(', '.join(map(str, kept)))}" if kept else "")
            )
        return parts

    def _render_filtered(self) -> None:
        res = self.result
        if res is None:
            self.filtered.value = ""
        elif len(res.filtered_samples):
            self.filtered.value = (
                f"<b>Filtered samples</b> ({len(res.filtered_samples):,}, whole dataset)"
                + frame_html(res.filtered_samples, index=False)
            )
        else:
            self.filtered.value = "Filtered samples: none (every requested sample is in a matrix)."

    def _render_distributions(self) -> None:
        adata = self._adata()
        if adata is None:
            return
        if is_cell_group(adata):
            self.distributions.value = (
                "Value distributions are shown for samples, not single cells."
            )
            return
        try:
            labels = (
                explore.color_labels(adata.obs, "experiment_accession")
                if "experiment_accession" in adata.obs
                else None
            )
            panels = []
            if (
                self.before is not None
                and self.before is not self.result
                and self.group in self.before
            ):
                panels.append(
                    ("Before normalization", explore.sample_quantiles(self.before[self.group]))
                )
            after = "As built" if self.before is self.result else "After normalization"
            panels.append((after, explore.sample_quantiles(adata)))
            if labels is None:
                import pandas as pd

                labels = pd.Series("samples", index=adata.obs_names)
            self.distributions.value = "<b>Per-sample value distributions</b>" + distributions_img(
                panels, labels, css_class="rw-plot-img"
            )
        except Exception as exc:
            self.distributions.value = f"<i>{html.escape(describe(exc))}</i>"
        self.before_button.layout.display = "none" if self.before is not None else None

    def _render_pca(self) -> None:
        adata = self._adata()
        if adata is None:
            return
        try:
            res = explore.pca(adata)
            column = self.color_box.value or self.color_by
            labels = (
                explore.color_labels(adata.obs, column)
                if column in adata.obs
                else explore.color_labels(adata.obs.assign(group=self.group), "group")
            )
            labels.name = column
            unit = "cells" if is_cell_group(adata) else "samples"
            self.pca.value = pca_img(
                res, labels, title=f"PCA of {self.group}", css_class="rw-plot-img", unit=unit
            )
        except Exception as exc:
            self.pca.value = f"<i>PCA not shown: {html.escape(describe(exc))}</i>"

    def _render_cell_types(self, adata) -> None:
        counts = explore.cells_per_cell_type(adata)
        self.cell_types.value = (
            bar_img(counts, title=f"Cells per cell type in {self.group}", css_class="rw-plot-img")
            if len(counts)
            else "No cell types to count: this group holds bulk samples."
        )

    def _render_batch(self) -> None:
        adata = self._adata()
        if adata is None:
            return
        info = self._batch_info()
        self.batch_button.layout.display = "none"
        if not info:
            self.batch_scores.value = (
                "No batch correction in this group: choose ComBat or Harmony in the options "
                "and build again to see it here."
            )
            self.batch_plot.value = ""
            return
        before = None
        if info.get("method") == "combat":
            if self.uncorrected is None or self.group not in self.uncorrected:
                self.batch_scores.value = (
                    "The comparison needs the same dataset built without ComBat."
                )
                self.batch_plot.value = ""
                self.batch_button.layout.display = None
                return
            before = self.uncorrected[self.group]
        batch_key = str(info.get("batch_key"))
        try:
            views = explore.batch_views(adata, before, batch_key=batch_key)
            column = self.batch_color.value or batch_key
            labels = explore.color_labels(adata.obs, column)
            labels.name = column
            self.batch_scores.value = _scores_table(views, batch_key)
            self.batch_plot.value = batch_pair_img(
                views, labels, batch_key=batch_key, css_class="rw-plot-img"
            )
        except Exception as exc:
            self.batch_scores.value = ""
            self.batch_plot.value = (
                f"<i>Batch comparison not shown: {html.escape(describe(exc))}</i>"
            )


def _scores_table(views, batch_key: str) -> str:
    """The batch scores before and after, as a small table."""
    rows = "".join(
        f'<tr><th scope="row">{html.escape(v.label.capitalize())}</th>'
        f"<td>{v.scores['silhouette']:.2f}</td><td>{v.scores['variance_explained']:.1%}</td></tr>"
        for v in views
    )
    key = html.escape(batch_key)
    return (
        f'<table class="rw-batch-score-table"><caption>How much the rows group by {key} '
        f"(silhouette of the {key} labels on the first {explore.BATCH_PCS} PCs: near 1 apart, "
        "near 0 mixed)</caption>"
        f'<tr><td></td><th scope="col">Silhouette</th>'
        f'<th scope="col">Variance explained by {key}</th></tr>{rows}</table>'
    )


def _gene_parts(info: dict) -> list[str]:
    """The summary's parts on genes: the symbols found, the genes the join kept."""
    parts = []
    symbols = info.get("gene_symbols") or {}
    if symbols.get("release"):
        parts.append(
            f"gene symbols: {int(symbols.get('with_symbol', 0)):,} of "
            f"{int(symbols.get('genes', 0)):,} ids ({html.escape(str(symbols['release']))})"
        )
    elif symbols.get("missing"):
        parts.append(f"gene symbols: {html.escape(str(symbols['missing']))}")
    report = info.get("gene_report") or {}
    if report:
        parts.append(
            f"genes kept by the {html.escape(str(report.get('join')))} join: "
            f"{int(report.get('kept', 0)):,} of {int(report.get('union', 0)):,}"
        )
    return parts


def _summary_warnings(info: dict) -> str:
    """The summary's warnings (HTML): a join keeping few genes, samples whose distributions
    differ after quantile normalization."""
    text = ""
    report = info.get("gene_report") or {}
    if report.get("low_overlap"):
        text += (
            '<div class="rw-warning" style="color:var(--rw-warning,#8a5a00)">Warning: the join kept '
            f"{int(report['kept']):,} genes, less than half of the "
            f"{int(report['smallest_sample_genes']):,} of the smallest sample "
            f"({html.escape(str(report['smallest_sample']))}); "
            f"{int(report['dropped']):,} were dropped. The platforms share few gene ids: "
            "aggregate by experiment, or keep every gene (join outer).</div>"
        )
    qn = info.get("quantile_normalization", {})
    ks = qn.get("ks_warning")
    if ks and qn.get("ks_distributions_differ", True):
        text += f'<div class="rw-warning" style="color:var(--rw-warning,#8a5a00)">Warning: {html.escape(str(ks))}</div>'
    elif ks:  # only refine.bio's strict statistic threshold tripped: a note, not an alarm
        text += (
            '<div class="rw-note" style="color:var(--rw-muted,#555);font-size:90%">Distribution check: '
            "the normalized samples share one distribution (every KS p-value is at least "
            "0.8); refine.bio's strict statistic threshold flags tiny differences, as it "
            "does on most builds.</div>"
        )
    return text
