"""The dataset cart ("My dataset"): chosen experiments, their sample counts, totals.

A view of the app's :class:`~refinewidgets.widgets.state.AppState`: one row per experiment with
its selected / total samples and a "Remove" button, the questions an "add whole experiments"
leaves ("GSE71102: 16 of 24 chosen; add the other 8?", with "Add the other 8" and "Keep 16": an
experiment trimmed to some samples is never made whole without that choice), the totals per species and per technology,
and "Clear all". Experiments chosen from refine.bio or Bgee and not downloaded yet (the
selection's ``pending``) have rows of their own, "to fetch from refine.bio" (or Bgee), removable
like the others; Remove, Clear all and Undo treat both alike. It renders from the state's
selection and changes it only by assigning a new one; it keeps no copy of it
(:attr:`DatasetCartView.data` and :attr:`DatasetCartView.n_samples` read the state).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w

from ..core.metadata import organism_label
from ..core.pending import RemoteExperiment
from ._status import StatusArea, catalog_or_demo, guarded
from ._table import NARROW_STYLE, _cells
from .state import AppState

__all__ = ["DatasetCartView"]

WIDTHS = [110, 320, 110, 150, 90]
#: The columns' names, for their narrow widths on a narrow page (``_table.NARROW_WIDTHS``).
NAMES = ["accession", "title", "technology", "organisms", "num_samples"]


class DatasetCartView(w.VBox):
    """Show and edit the selection being assembled.

    Parameters
    ----------
    catalog
        A :class:`~refinewidgets.Catalog` (None: the bundled demo); ignored when ``state`` is
        given.
    state
        The :class:`AppState` to show and edit (default: a new one over ``catalog``).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> view = DatasetCartView(rw.open_catalog())
    >>> view.add({"SRP091833": None})
    >>> view.data, view.n_samples
    ({'SRP091833': ['ALL']}, 20)
    """

    def __init__(self, catalog=None, *, state: AppState | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state if state is not None else AppState(catalog_or_demo(catalog))
        self.status = StatusArea("rw-cart-status")
        self.summary = w.HTML()
        self.summary.add_class("rw-cart-summary")
        self.rows = w.VBox()
        self.rows.add_class("rw-cart-rows")
        self.totals = w.HTML()
        self.totals.add_class("rw-cart-totals")
        self.clear_button = w.Button(description="Clear all", icon="trash")
        self.clear_button.add_class("rw-cart-clear")
        self.clear_button.on_click(lambda _: self.clear())
        self.undo_button = w.Button(description="Undo", icon="undo", disabled=True)
        self.undo_button.add_class("rw-cart-undo")
        self.undo_button.on_click(lambda _: self.undo())
        self.remove_buttons: dict[str, w.Button] = {}
        #: Per experiment kept trimmed by an "add whole experiments", its "Add the other N".
        self.add_rest_buttons: dict[str, w.Button] = {}
        self._asking: list[str] = []  # the experiments the questions are about
        self.questions = w.VBox()
        self.questions.add_class("rw-cart-questions")
        self.children = [
            w.HTML("<b>My dataset</b>"),
            self.summary,
            self.questions,
            self.rows,
            self.totals,
            w.HBox([self.clear_button, self.undo_button]),
            self.status,
        ]
        self.state.observe(self._render, names=["selection", "undoable"])
        self._render()

    @property
    def catalog(self):
        """The catalog of the samples: the state's."""
        return self.state.catalog

    @property
    def data(self) -> dict[str, list[str]]:
        """The selection as the ``data`` of a dataset spec: ``{experiment: [samples] or
        ["ALL"]}``."""
        return self.state.selection.data

    @property
    def n_samples(self) -> int:
        """Distinct samples selected."""
        return self.state.selection.n_samples

    # -- editing: each assigns a new selection ------------------------------------------------
    @guarded
    def add(self, selection: Mapping[str, Sequence[str] | None]) -> None:
        """Add ``{experiment: [samples] or None (every sample)}``."""
        self.state.selection = self.state.selection.add(selection)

    @guarded
    def add_whole(self, experiments: Sequence[str]) -> str:
        """Add every sample of ``experiments``; one already trimmed to some samples keeps them,
        and the cart asks whether to add the others ("GSE71102: 16 of 24 chosen; add the other
        8?"). Returns what was done, in words.

        Examples
        --------
        >>> import refinewidgets as rw
        >>> cat = rw.open_catalog()
        >>> view = DatasetCartView(cat)
        >>> view.add({"GSE71102": cat.experiment_samples("GSE71102")[:16]})
        >>> print(view.add_whole(["GSE71102", "SRP091833"]))
        Added SRP091833 (20 samples). GSE71102 keeps the 16 of its 24 samples you chose: My dataset asks whether to add the other 8.
        >>> view.questions.children[0].children[0].value
        'GSE71102: 16 of 24 chosen; add the other 8?'
        """
        before = self.state.selection
        new = [e for e in dict.fromkeys(experiments) if e not in before]
        self.state.selection = before.add_whole(experiments)
        trimmed = self.state.selection.trimmed()
        kept = [e for e in dict.fromkeys(experiments) if e in trimmed]
        self._asking = list(dict.fromkeys([*self._asking, *kept]))
        self._render()
        n = sum(len(self.catalog.experiment_samples(e)) for e in new)
        words = [f"Added {', '.join(new)} ({n:,} samples)."] if new else []
        for e in kept:
            chosen, total = trimmed[e]
            words.append(
                f"{e} keeps the {chosen:,} of its {total:,} samples you chose: My dataset asks "
                f"whether to add the other {total - chosen:,}."
            )
        done = [e for e in dict.fromkeys(experiments) if e not in new and e not in kept]
        if done:
            words.append(f"{', '.join(done)}: every sample was already in the dataset.")
        return " ".join(words)

    @guarded
    def add_rest(self, experiment: str) -> None:
        """Add the samples of ``experiment`` not chosen yet (the answer "yes" to the cart's
        question)."""
        self._asking = [e for e in self._asking if e != experiment]
        self.state.edit(self.state.selection.add({experiment: None}))
        self.status.show(f"Added every sample of {experiment} (Undo takes them out).", "info")

    def keep_trimmed(self, experiment: str) -> None:
        """Keep ``experiment`` as chosen (the answer "no"): the question goes."""
        self._asking = [e for e in self._asking if e != experiment]
        self._render()

    @guarded
    def add_remote(self, experiments: list[RemoteExperiment]) -> None:
        """Add experiments to fetch from refine.bio or Bgee (fetched by the next build)."""
        self.state.selection = self.state.selection.add_remote(experiments)

    @guarded
    def remove(self, experiment: str) -> None:
        """Remove one experiment (or one still to fetch, by its accession or Bgee species)."""
        self.state.edit(self.state.selection.remove(experiment))
        self.status.show(f"Removed {experiment} (Undo puts it back).", "info")

    @guarded
    def clear(self) -> None:
        """Remove everything."""
        self.state.edit(self.state.selection.clear())
        self.status.show("The dataset is empty (Undo puts it back).", "info")

    @guarded
    def undo(self) -> None:
        """Put back what the last Remove or Clear all took away."""
        if self.state.undo():
            self.status.show("Undone.", "info")

    # -- rendering ------------------------------------------------------------------------------
    def _render(self, change=None) -> None:
        selection = self.state.selection
        table = selection.table()
        old_rows = self.rows.children
        self.remove_buttons = {}
        header = w.HTML(
            NARROW_STYLE
            + "<b>"
            + _cells(
                ["Experiment", "Title", "Technology", "Organism", "Samples"], WIDTHS, names=NAMES
            )
            + "</b>"
        )
        rows: list[w.Widget] = [header] if len(table) else []
        for rec in table.itertuples(index=False):
            count = f"{rec.selected:,} of {rec.total:,}"
            organisms = organism_label(rec.organisms)
            cells = [rec.experiment, rec.title, rec.technology, organisms, count]
            rows.append(self._row(rec.experiment, cells))
        if selection.pending and not len(table):
            rows.append(header)
        rows.extend(self._pending_row(exp) for exp in selection.pending)
        self.rows.children = rows
        # the old rows go whole (row, cells, button): a row left open holding a closed button
        # keeps the page from loading when the cart changes before the page has asked for its
        # widgets (a title arriving from refine.bio right after a link is opened)
        for row in old_rows:
            for part in getattr(row, "children", ()):
                part.close()
            row.close()
        self._render_questions(selection.trimmed())
        n = selection.n_samples
        to_fetch = self._to_fetch_text()
        if len(table):
            self.summary.value = f"{len(table)} experiment(s), {n:,} sample(s){to_fetch}"
        elif selection.pending:
            self.summary.value = to_fetch.removeprefix("; ")
        else:
            self.summary.value = (
                "Empty: add samples from the experiment browser or the sample picker."
            )
        self.totals.value = self._totals_html() if len(table) else ""
        self.clear_button.disabled = not (len(table) or selection.pending)
        self.undo_button.disabled = not self.state.can_undo

    def _render_questions(self, trimmed: Mapping[str, tuple[int, int]]) -> None:
        """One question per experiment an "add whole experiments" kept trimmed, while it is."""
        for row in self.questions.children:
            for child in row.children:
                child.close()
        self.add_rest_buttons = {}
        self._asking = [e for e in self._asking if e in trimmed]
        questions = []
        for e in self._asking:
            chosen, total = trimmed[e]
            rest = total - chosen
            text = w.HTML(
                html.escape(f"{e}: {chosen:,} of {total:,} chosen; add the other {rest:,}?")
            )
            text.add_class("rw-cart-question-text")
            add = w.Button(
                description=f"Add the other {rest:,}",
                icon="plus",
                tooltip=f"Add the other {rest:,} samples of {e}",
                layout=w.Layout(width="auto"),
            )
            add.add_class("rw-cart-add-rest")
            add.on_click(lambda _, e=e: self.add_rest(e))
            keep = w.Button(
                description=f"Keep {chosen:,}",
                tooltip=f"Keep the {chosen:,} samples of {e} you chose",
                layout=w.Layout(width="auto"),
            )
            keep.add_class("rw-cart-keep")
            keep.on_click(lambda _, e=e: self.keep_trimmed(e))
            self.add_rest_buttons[e] = add
            row = w.HBox(
                [text, add, keep], layout=w.Layout(flex_flow="row wrap", align_items="center")
            )
            row.add_class("rw-cart-question")
            questions.append(row)
        self.questions.children = questions

    def _row(self, key: str, cells: list[str]) -> w.HBox:
        """One row: its cells (escaped) and a "Remove" button removing ``key``."""
        button = w.Button(
            description="Remove",
            icon="times",
            tooltip=f"Remove {key}",
            layout=w.Layout(width="100px"),
        )
        button.add_class("rw-cart-remove")
        button.on_click(lambda _: self.remove(key))
        self.remove_buttons[key] = button
        row = w.HBox([w.HTML(_cells(cells, WIDTHS, names=NAMES)), button])
        row.add_class("rw-cart-row")
        return row

    def _pending_row(self, exp: RemoteExperiment) -> w.HBox:
        count = f"{exp.samples:,} to fetch" if exp.samples is not None else "to fetch"
        where = f"to fetch from {exp.service_name}"
        organisms = organism_label(exp.organism) if exp.organism else ""
        row = self._row(exp.key, [exp.label, exp.title or where, where, organisms, count])
        row.add_class("rw-cart-pending")
        return row

    def _to_fetch_text(self) -> str:
        """``; 2 experiment(s) to fetch from refine.bio when you build`` (or '')."""
        pending = self.state.selection.pending
        if not pending:
            return ""
        services = " and ".join(dict.fromkeys(p.service_name for p in pending))
        return f"; {len(pending)} experiment(s) to fetch from {services} when you build"

    def _totals_html(self) -> str:
        parts = []
        for by, title in (("organism", "Per species"), ("technology", "Per technology")):
            totals = self.state.selection.totals(by)
            label = organism_label if by == "organism" else str
            items = ", ".join(f"{html.escape(label(k))}: {v:,}" for k, v in totals.items())
            parts.append(f"<div><b>{title}</b>: {items}</div>")
        return "".join(parts)
