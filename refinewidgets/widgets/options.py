"""The dataset options: aggregation, transformation, quantile normalization, single-cell options.

The quantile-normalization box follows :func:`~refinewidgets.core.cart.quantile_rule`
(refine.bio's page rule: it can be skipped only for RNA-seq aggregated by experiment; single
cells are never quantile-normalized): when the rule fixes the value, the box is disabled and
the reason is shown under it. The single-cell options (cell filters, counts normalization,
pseudobulk, join) show only when the dataset holds single-cell libraries.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as w
from traitlets import Dict, List, Unicode, observe

from ..core.cart import CELL_FILTER_SOURCES, SINGLE_CELL, quantile_rule
from ..core.scale import SCALE_LABELS
from ..core.spec import Dataset
from ._status import StatusArea, guarded

__all__ = ["OptionsPanel"]

AGGREGATE = [("Experiment", "EXPERIMENT"), ("Species", "SPECIES"), ("All", "ALL")]
COUNTS = [("Raw counts", "NONE"), ("CPM", "CPM"), ("log1p CPM", "LOG1P_CPM")]
PSEUDOBULK = [
    ("No: keep cells", ""),
    ("Per library", "sample"),
    ("Per library and cell type", "sample_cell_type"),
]
JOIN = [("Genes in every sample (inner)", "inner"), ("Every gene (outer)", "outer")]
DEFAULTS = {
    "aggregate_by": "EXPERIMENT",
    "scale_by": "NONE",
    "quantile_normalize": True,
    "join": "inner",
    "cell_filter": None,
    "counts_normalization": "NONE",
    "pseudobulk": None,
}
STYLE = {"description_width": "170px"}


class OptionsPanel(w.VBox):
    """Choose how the dataset is aggregated and normalized.

    Examples
    --------
    >>> panel = OptionsPanel()
    >>> panel.technologies = ["MICROARRAY"]
    >>> panel.quantile_normalize.disabled, panel.quantile_normalize.value
    (True, True)
    >>> panel.technologies = ["RNA-SEQ"]
    >>> panel.quantile_normalize.disabled
    False
    """

    technologies = List(
        Unicode(), help="Technologies of the dataset's experiments (from the cart)."
    )
    cell_filter_choices = Dict(
        help="{cell-filter column: values} of the dataset's single-cell libraries."
    )
    options = Dict(help="The chosen options: the keyword arguments of rw.Dataset besides `data`.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._quiet = False
        self.status = StatusArea("rw-options-status")
        self.aggregate = w.ToggleButtons(
            options=AGGREGATE, value="EXPERIMENT", description="Aggregate by", style=STYLE
        )
        self.aggregate.add_class("rw-aggregate")
        self.transformation = w.Dropdown(
            options=[(label, key) for key, label in SCALE_LABELS.items()],
            value="NONE",
            description="Transformation",
            style=STYLE,
        )
        self.transformation.add_class("rw-transformation")
        self.quantile_normalize = w.Checkbox(
            value=True,
            description="Quantile normalize",
            indent=True,
            style=STYLE,
            layout=w.Layout(width="auto"),  # the whole label, not "Quantile nor..."
        )
        self.quantile_normalize.add_class("rw-quantile-normalize")
        self.qn_reason = w.HTML()
        self.qn_reason.add_class("rw-qn-reason")
        self.cell_filters: dict[str, w.SelectMultiple] = {}
        for column in CELL_FILTER_SOURCES:
            box = w.SelectMultiple(
                options=[],
                rows=4,
                description=f"Keep cells: {column.replace('_', ' ')}",
                style=STYLE,
                layout=w.Layout(width="420px"),
            )
            box.add_class(f"rw-cell-filter-{column.replace('_', '-')}")
            self.cell_filters[column] = box
        self.counts_normalization = w.Dropdown(
            options=COUNTS, value="NONE", description="Counts normalization", style=STYLE
        )
        self.counts_normalization.add_class("rw-counts-normalization")
        self.pseudobulk = w.Dropdown(
            options=PSEUDOBULK, value="", description="Pseudobulk", style=STYLE
        )
        self.pseudobulk.add_class("rw-pseudobulk")
        self.join = w.Dropdown(options=JOIN, value="inner", description="Genes", style=STYLE)
        self.join.add_class("rw-join")
        self.single_cell_box = w.VBox(
            [
                w.HTML("<b>Single-cell options</b> (empty cell filters keep every cell)"),
                *self.cell_filters.values(),
                self.counts_normalization,
                self.pseudobulk,
                self.join,
            ],
            layout=w.Layout(display="none"),
        )
        self.single_cell_box.add_class("rw-single-cell-options")
        for widget in (
            self.aggregate,
            self.transformation,
            self.quantile_normalize,
            self.counts_normalization,
            self.pseudobulk,
            self.join,
            *self.cell_filters.values(),
        ):
            widget.observe(self._on_widget, names="value")
        self.children = [
            w.HTML("<b>Options</b>"),
            self.aggregate,
            self.transformation,
            self.quantile_normalize,
            self.qn_reason,
            self.single_cell_box,
            self.status,
        ]
        self._apply_rule(force=True)
        self.options = self._collect()

    # -- values ---------------------------------------------------------------------------------
    def _collect(self) -> dict[str, Any]:
        cell_filter = {c: list(box.value) for c, box in self.cell_filters.items() if box.value}
        return {
            "aggregate_by": self.aggregate.value,
            "scale_by": self.transformation.value,
            "quantile_normalize": bool(self.quantile_normalize.value),
            "join": self.join.value,
            "cell_filter": cell_filter or None,
            "counts_normalization": self.counts_normalization.value,
            "pseudobulk": self.pseudobulk.value or None,
        }

    @guarded
    def set_options(self, options: Dataset | Mapping[str, Any]) -> None:
        """Show ``options`` (a Dataset, or a dict of its option keywords); unknown keys raise."""
        values = dict(DEFAULTS)
        if isinstance(options, Dataset):
            options = {k: getattr(options, k) for k in DEFAULTS}
        extra = sorted(set(options) - set(DEFAULTS) - {"data"})
        if extra:
            raise KeyError(f"Unknown option(s) {extra}; options: {sorted(DEFAULTS)}.")
        values.update({k: v for k, v in options.items() if k != "data"})
        self._quiet = True
        try:
            self.aggregate.value = str(values["aggregate_by"]).upper()
            self.transformation.value = str(values["scale_by"]).upper()
            self.quantile_normalize.value = bool(values["quantile_normalize"])
            self.join.value = values["join"]
            self.counts_normalization.value = values["counts_normalization"]
            self.pseudobulk.value = values["pseudobulk"] or ""
            wanted = values["cell_filter"] or {}
            for column, box in self.cell_filters.items():
                chosen = tuple(wanted.get(column, ()))
                known = list(self.cell_filter_choices.get(column, ()))
                box.options = known + [v for v in chosen if v not in known]
                box.value = chosen
        finally:
            self._quiet = False
        self._apply_rule(force=False)
        self.options = self._collect()

    # -- rules ----------------------------------------------------------------------------------
    @guarded
    def _on_widget(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] in (self.aggregate, self.pseudobulk):
            self._apply_rule(force=True)
        self.options = self._collect()

    def _apply_rule(self, force: bool) -> None:
        rule = quantile_rule(self.technologies, self.aggregate.value, self.pseudobulk.value or None)
        if force and rule.required is not None and self.quantile_normalize.value != rule.required:
            self._quiet = True
            try:
                self.quantile_normalize.value = rule.required
            finally:
                self._quiet = False
        self.quantile_normalize.disabled = rule.required is not None
        note = ""
        if rule.required is not None and self.quantile_normalize.value != rule.required:
            note = " (set from code: the API allows it, refine.bio's page would not)"
        self.qn_reason.value = (
            f'<span style="color:#555">{html.escape(rule.reason + note)}</span>'
            if rule.reason
            else ""
        )

    @observe("technologies")
    def _technologies_changed(self, change) -> None:
        single_cell = SINGLE_CELL in self.technologies
        self.single_cell_box.layout.display = None if single_cell else "none"
        if not single_cell:
            self._quiet = True
            try:
                for box in self.cell_filters.values():
                    box.value = ()
                self.counts_normalization.value = "NONE"
                self.pseudobulk.value = ""
            finally:
                self._quiet = False
        self._apply_rule(force=True)
        self.options = self._collect()

    @observe("cell_filter_choices")
    def _choices_changed(self, change) -> None:
        self._quiet = True
        try:
            for column, box in self.cell_filters.items():
                chosen = tuple(box.value)
                known = list(self.cell_filter_choices.get(column, ()))
                options = known + [v for v in chosen if v not in known]
                if list(box.options) != options:
                    box.options = options
                    box.value = chosen
        finally:
            self._quiet = False
        self.options = self._collect()

    @property
    def single_cell_visible(self) -> bool:
        """Whether the single-cell options are shown."""
        return self.single_cell_box.layout.display != "none"
