"""The dataset options: aggregation, transformation, quantile normalization, batch correction,
single-cell options.

A view of the app's :class:`~refinewidgets.widgets.state.AppState`: the controls show the
selection's options, and changing one assigns ``selection.with_options(...)``. The rules live in
the core (:class:`~refinewidgets.core.selection.Selection`): the quantile-normalization box
follows :func:`~refinewidgets.core.selection.quantile_rule` (refine.bio's page rule: it can be
skipped only for RNA-seq aggregated by experiment; single cells are never quantile-normalized);
when the rule fixes the value, the box is disabled and the reason is shown under it. The
single-cell options (cell filters, counts normalization, pseudobulk, join) show only when the
selection holds single-cell libraries. The batch correction (ComBat or Harmony, see
:mod:`refinewidgets.core.batch`) shows the covariates to keep when ComBat is chosen.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from ..core.cell_filter import parse_cell_filter
from ..core.scale import SCALE_LABELS
from ..core.selection import CELL_FILTER_SOURCES
from ..core.spec import Dataset
from ._status import StatusArea, catalog_or_demo, guarded
from .state import AppState

__all__ = ["OptionsPanel"]

AGGREGATE = [("Experiment", "EXPERIMENT"), ("Species", "SPECIES"), ("All", "ALL")]
COUNTS = [("Raw counts", "NONE"), ("CPM", "CPM"), ("log1p CPM", "LOG1P_CPM")]
PSEUDOBULK = [
    ("No: keep cells", ""),
    ("Per library", "sample"),
    ("Per library and cell type", "sample_cell_type"),
]
JOIN = [("Genes in every sample (inner)", "inner"), ("Every gene (outer)", "outer")]
BATCH = [
    ("None", ""),
    ("ComBat (adjusts the values)", "combat"),
    ("Harmony (corrects the PCA embedding)", "harmony"),
]
#: refine.bio's harmonized sample columns, offered as ComBat covariates (effects to keep).
COVARIATES = (
    "refinebio_disease",
    "refinebio_disease_stage",
    "refinebio_sex",
    "refinebio_age",
    "refinebio_specimen_part",
    "refinebio_cell_line",
    "refinebio_genetic_information",
    "refinebio_treatment",
    "refinebio_compound",
    "refinebio_time",
    "refinebio_race",
)
STYLE = {"description_width": "170px"}
#: ToggleButtons put their label above the buttons: in line, as the other controls' labels.
AGGREGATE_CSS = (
    "<style>.rw-aggregate{display:flex !important;flex-flow:row wrap;align-items:center}</style>"
)


class OptionsPanel(w.VBox):
    """Choose how the dataset is aggregated and normalized.

    Parameters
    ----------
    state
        The :class:`AppState` to show and edit (default: a new one over the bundled demo).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> panel = OptionsPanel(state=AppState(rw.open_catalog()))
    >>> panel.state.selection = panel.state.selection.add({"GSE71102": None})  # microarray
    >>> panel.quantile_normalize.disabled, panel.quantile_normalize.value
    (True, True)
    >>> panel.state.selection = panel.state.selection.clear().add({"SRP091833": None})
    >>> panel.quantile_normalize.disabled
    False
    """

    def __init__(self, *, state: AppState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state if state is not None else AppState(catalog_or_demo(None))
        self.status = StatusArea("rw-options-status")
        self._make_processing_controls()
        self._make_batch_controls()
        self._make_single_cell_controls()
        self._controls = {
            "aggregate_by": self.aggregate,
            "scale_by": self.transformation,
            "quantile_normalize": self.quantile_normalize,
            "counts_normalization": self.counts_normalization,
            "pseudobulk": self.pseudobulk,
            "join": self.join,
            "batch_correction": self.batch_correction,
            "batch_covariates": self.batch_covariates,
        }
        for name, control in self._controls.items():
            control.observe(lambda change, name=name: self._on_control(name, change), names="value")
        self.children = [
            w.HTML(AGGREGATE_CSS + "<b>Options</b>"),
            self.aggregate,
            self.transformation,
            self.quantile_normalize,
            self.qn_reason,
            self.batch_correction,
            self.batch_covariates,
            self.single_cell_box,
            self.status,
        ]
        self.state.observe(self._render, names="selection")
        self._render()

    # -- the controls ---------------------------------------------------------------------------
    def _make_processing_controls(self) -> None:
        """Aggregation, transformation, quantile normalization and the reason for its rule."""
        self.aggregate = w.ToggleButtons(
            options=AGGREGATE,
            value="EXPERIMENT",
            description="Aggregate by",
            style={**STYLE, "button_width": "100px"},
            layout=w.Layout(width="auto"),  # the label in line with its buttons
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

    def _make_batch_controls(self) -> None:
        """The batch correction and the covariates ComBat keeps."""
        self.batch_correction = w.Dropdown(
            options=BATCH, value="", description="Batch correction", style=STYLE
        )
        self.batch_correction.add_class("rw-batch-correction")
        self.batch_covariates = w.SelectMultiple(
            options=list(COVARIATES),
            value=(),
            rows=4,
            description="Keep the effect of",
            style=STYLE,
            layout=w.Layout(width="420px", display="none"),
        )
        self.batch_covariates.add_class("rw-batch-covariates")

    def _make_single_cell_controls(self) -> None:
        """The single-cell options, in a box shown only for a selection with single cells: cell
        filters (lists, or a filter text), counts normalization, pseudobulk, join."""
        self.cell_filters: dict[str, w.SelectMultiple] = {}
        self.cell_filter_box = w.VBox()
        # a filter text in CELLxGENE Census' syntax, used in place of the lists when given
        self.cell_filter_text = w.Text(
            value="",
            placeholder="cell_type == 'T cell' and n_genes_by_counts > 200",
            description="Or a filter text",
            continuous_update=False,
            style=STYLE,
            layout=w.Layout(width="620px"),
        )
        self.cell_filter_text.add_class("rw-cell-filter-text")
        self.cell_filter_text.observe(self._on_cell_filter_text, names="value")
        self.cell_filter_error = w.HTML("")
        self.cell_filter_error.add_class("rw-cell-filter-error")
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
                self.cell_filter_box,
                self.cell_filter_text,
                self.cell_filter_error,
                self.counts_normalization,
                self.pseudobulk,
                self.join,
            ],
            layout=w.Layout(display="none"),
        )
        self.single_cell_box.add_class("rw-single-cell-options")

    # -- user actions: each assigns a new selection ---------------------------------------------
    @guarded
    def _on_control(self, name: str, change) -> None:
        value = change["new"]
        if name in ("pseudobulk", "batch_correction"):
            value = value or None
        if name == "batch_covariates":
            value = list(value) or None
        current = self.state.selection.option_values[name]
        if value == (list(current) if isinstance(current, tuple) else current):
            return  # the control shows the selection: nothing changed
        changes = {name: value}
        if name == "batch_correction" and value != "combat":
            changes["batch_covariates"] = None  # covariates are ComBat's only
        self.state.selection = self.state.selection.with_options(**changes)

    @guarded
    def _on_cell_filter(self, change) -> None:
        current = self.state.selection.option_values["cell_filter"] or {}
        if isinstance(current, str):  # a filter text: the lists are disabled
            return
        # conditions the lists cannot show (exclusions, ranges, other columns) are kept as set
        chosen = {
            c: v for c, v in current.items() if c not in self.cell_filters or isinstance(v, dict)
        }
        chosen.update({c: list(box.value) for c, box in self.cell_filters.items() if box.value})
        if (chosen or None) == (current or None):
            return
        self.state.selection = self.state.selection.with_options(cell_filter=chosen or None)

    @guarded
    def _on_cell_filter_text(self, change) -> None:
        """A filter text typed (Enter or leaving the box): checked by the core's parser; a
        wrong one is shown with the place it goes wrong and changes nothing; an empty one gives
        the lists back."""
        text = change["new"].strip()
        current = self.state.selection.option_values["cell_filter"]
        try:
            parsed = parse_cell_filter(text) if text else None
        except ValueError as exc:
            self.cell_filter_error.value = (
                f'<pre class="rw-error-text" style="white-space:pre-wrap;margin:2px 0">'
                f"{html.escape(str(exc))}</pre>"
            )
            return
        self.cell_filter_error.value = ""
        if parsed is None and not isinstance(current, str):
            return  # emptied while the lists are in use: they stay as they are
        if parsed != current:
            self.state.selection = self.state.selection.with_options(cell_filter=parsed)

    @guarded
    def set_options(self, options: Dataset | Mapping[str, Any]) -> None:
        """Show and use ``options`` (a Dataset, or a dict of its option keywords); unknown keys
        raise. Values are kept as given, even where refine.bio's page would not allow them."""
        if isinstance(options, Dataset):
            options = {k: getattr(options, k) for k in Dataset.options()}
        options = {k: v for k, v in options.items() if k != "data"}
        extra = sorted(set(options) - set(Dataset.options()))
        if extra:
            raise KeyError(f"Unknown option(s) {extra}; options: {sorted(Dataset.options())}.")
        checked = Dataset({"_": ["_"]}, **{**Dataset.options(), **options})  # the spec's checks
        self.state.selection = self.state.selection.restore_options(checked)

    # -- rendering ------------------------------------------------------------------------------
    def _render(self, change=None) -> None:
        selection = self.state.selection
        values = selection.option_values
        covariates = tuple(values["batch_covariates"] or ())
        extra = [c for c in covariates if c not in COVARIATES]
        if list(self.batch_covariates.options) != [*COVARIATES, *extra]:
            self.batch_covariates.options = [*COVARIATES, *extra]  # set from code or a link
        for name, control in self._controls.items():
            if name in ("pseudobulk", "batch_correction"):
                control.value = "" if values[name] is None else values[name]
            elif name == "batch_covariates":
                control.value = covariates
            else:
                control.value = values[name]
        combat = values["batch_correction"] == "combat"
        self.batch_covariates.layout.display = None if combat else "none"
        rule = selection.quantile_rule()
        self.quantile_normalize.disabled = rule.required is not None
        note = ""
        if rule.required is not None and values["quantile_normalize"] != rule.required:
            note = " (set from code: the API allows it, refine.bio's page would not)"
        self.qn_reason.value = (
            f'<span style="color:var(--rw-muted,#555)">{html.escape(rule.reason + note)}</span>'
            if rule.reason
            else ""
        )
        self.single_cell_box.layout.display = None if selection.has_single_cell else "none"
        self._render_cell_filters(selection.cell_filter_choices(), values["cell_filter"])

    def _render_cell_filters(self, choices: Mapping[str, list[str]], chosen) -> None:
        """One list per cell-filter column; a list whose choices changed is made anew, so that
        changing its options never shows a half-updated value. A filter text (set from code or
        a link) is not shown as lists: they are disabled, so that no click replaces it."""
        text = chosen if isinstance(chosen, str) else None
        chosen = {} if text is not None else chosen or {}
        if text is not None and self.cell_filter_text.value.strip() != text:
            self.cell_filter_text.value = text  # set from code or a link
        elif text is None and not self.cell_filter_error.value:
            self.cell_filter_text.value = ""
        for column in CELL_FILTER_SOURCES:
            condition = chosen.get(column, ())
            wanted = () if isinstance(condition, Mapping) else tuple(condition)
            known = list(choices.get(column, ()))
            options = known + [v for v in wanted if v not in known]
            box = self.cell_filters.get(column)
            if box is not None and list(box.options) == options:
                box.value = wanted
                box.disabled = text is not None
                continue
            if box is not None:
                box.close()
            box = w.SelectMultiple(
                options=options,
                value=wanted,
                rows=4,
                description=f"Keep cells: {column.replace('_', ' ')}",
                style=STYLE,
                layout=w.Layout(width="420px"),
            )
            box.disabled = text is not None
            box.add_class(f"rw-cell-filter-{column.replace('_', '-')}")
            box.observe(self._on_cell_filter, names="value")
            self.cell_filters[column] = box
        self.cell_filter_box.children = [self.cell_filters[c] for c in CELL_FILTER_SOURCES]

    @property
    def options(self) -> dict[str, Any]:
        """The selection's options, as keyword arguments of ``rw.Dataset`` besides ``data``
        (read from the state)."""
        return self.state.selection.option_values

    @property
    def single_cell_visible(self) -> bool:
        """Whether the single-cell options are shown."""
        return self.single_cell_box.layout.display != "none"
