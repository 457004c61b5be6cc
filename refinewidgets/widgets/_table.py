"""A paged table of a DataFrame page, with a tick box per row, sorting and a pager.

The table never sees the whole data: its owner queries a
:class:`~refinewidgets.core.browse.TableIndex` and hands it one
:class:`~refinewidgets.core.browse.Page` at a time (:meth:`PagedTable.show`). A fixed pool of
row widgets is reused from page to page, so a page change only sends the new texts to the
browser. Each row is a checkbox labelled with the row's key (its accession) and one HTML line
with the other cells.

CSS classes (``<prefix>`` is given by the owner, e.g. ``rw-experiments``): ``<prefix>-table``,
``<prefix>-header``, ``<prefix>-row``, ``<prefix>-checkbox``, ``<prefix>-sort``,
``<prefix>-sort-direction``, ``<prefix>-prev``, ``<prefix>-next``, ``<prefix>-page-label``,
``<prefix>-page-size``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import numpy as np
from traitlets import Bool, Int, List, Unicode, observe

from ..core.browse import Page

__all__ = ["PagedTable", "format_cell", "frame_html"]

CELL_STYLE = (
    "display:inline-block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding:0 6px"
)


def format_cell(value: Any) -> str:
    """A cell's text: empty for missing values, thousands separators for numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.4g}"
    return str(value)


def _cells(values: Sequence[Any], widths: Sequence[int], tag: str = "span") -> str:
    out = []
    for value, width in zip(values, widths):
        text = html.escape(format_cell(value))
        out.append(f'<{tag} title="{text}" style="{CELL_STYLE};width:{width}px">{text}</{tag}>')
    return '<div style="display:flex;align-items:center">' + "".join(out) + "</div>"


def frame_html(frame, *, max_rows: int = 50, index: bool = True) -> str:
    """A small DataFrame as an HTML table (escaped; numbers formatted; at most ``max_rows``)."""
    head = frame.iloc[:max_rows]
    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in head.columns]
    th = "".join(f"<th style='text-align:left;padding:2px 6px'>{html.escape(c)}</th>" for c in cols)
    body = []
    for key, row in zip(head.index, head.itertuples(index=False)):
        cells = ([key] if index else []) + list(row)
        body.append(
            "<tr>"
            + "".join(
                f"<td style='padding:2px 6px'>{html.escape(format_cell(v))}</td>" for v in cells
            )
            + "</tr>"
        )
    more = f"<div>... {len(frame) - max_rows:,} more rows</div>" if len(frame) > max_rows else ""
    return f"<table style='border-collapse:collapse'><tr>{th}</tr>{''.join(body)}</table>{more}"


#: The marker of a row already in the dataset.
IN_DATASET = (
    '<span class="rw-in-dataset" title="Already in the dataset" '
    'style="color:#2e7d32;font-weight:bold">&#10003; in dataset</span> '
)


class PagedTable(w.VBox):
    """One page of rows with tick boxes, a sort control and a pager.

    Parameters
    ----------
    columns
        ``[(column, label, width in px), ...]``; the first is the row key (the index).
    prefix
        The CSS class prefix of this table's parts.
    page_sizes, page_size
        The choices of rows per page, and the first choice (default: the second size).

    Examples
    --------
    >>> import pandas as pd
    >>> from refinewidgets.core.browse import TableIndex
    >>> idx = TableIndex(pd.DataFrame({"title": ["a", "b", "c"]}, index=pd.Index(["E1", "E2", "E3"], name="accession")))
    >>> t = PagedTable([("accession", "Accession", 100), ("title", "Title", 200)], prefix="rw-demo",
    ...                page_sizes=(2, 10), page_size=2)
    >>> t.show(idx.query(page_size=t.page_size))
    >>> t.row_keys, t.page_label.value
    (['E1', 'E2'], 'Page 1 of 2 (3 rows)')
    """

    sort_by = Unicode(
        None, allow_none=True, help="The column the rows are sorted by (None: the source order)."
    )
    ascending = Bool(True, help="Sort ascending (True) or descending (False).")
    page = Int(0, help="The page shown, from 0.")
    page_size = Int(20, help="Rows per page.")
    selected = List(Unicode(), help="Keys of the ticked rows, across pages (kept in Python).")
    row_keys = List(Unicode(), help="Keys of the rows on the page shown.")
    marked = List(Unicode(), help="Keys shown with an 'in dataset' marker (already selected).")

    def __init__(
        self,
        columns: Sequence[tuple[str, str, int]],
        *,
        prefix: str,
        page_sizes: Sequence[int] = (10, 20, 50),
        page_size: int | None = None,
        selectable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.columns = list(columns)
        self.prefix = prefix
        self.selectable = selectable
        self.page_size = int(page_size or page_sizes[min(1, len(page_sizes) - 1)])
        self._quiet = False
        key_col, key_label, key_width = self.columns[0]
        self.sort = w.Dropdown(
            options=[("(source order)", "")] + [(lbl, col) for col, lbl, _ in self.columns],
            value="",
            description="Sort by",
            layout=w.Layout(width="260px"),
        )
        self.direction = w.Button(
            description="ascending", icon="arrow-up", layout=w.Layout(width="120px")
        )
        self.header = w.HTML(layout=w.Layout(margin="0 0 0 24px" if selectable else "0"))
        self.rows_box = w.VBox()
        self.prev = w.Button(
            description="Previous", icon="chevron-left", layout=w.Layout(width="110px")
        )
        self.next = w.Button(
            description="Next", icon="chevron-right", layout=w.Layout(width="110px")
        )
        self.page_label = w.Label("")
        self.page_size_box = w.Dropdown(
            options=[(f"{n} per page", int(n)) for n in page_sizes],
            value=self.page_size,
            layout=w.Layout(width="130px"),
        )
        for widget, name in [
            (self, "table"),
            (self.header, "header"),
            (self.sort, "sort"),
            (self.direction, "sort-direction"),
            (self.prev, "prev"),
            (self.next, "next"),
            (self.page_label, "page-label"),
            (self.page_size_box, "page-size"),
        ]:
            widget.add_class(f"{prefix}-{name}")
        self._checkboxes: list[w.Checkbox] = []
        self._cells: list[w.HTML] = []
        self._row_widgets: list[w.HBox] = []
        self.sort.observe(self._on_sort_widget, names="value")
        self.direction.on_click(self._on_direction)
        self.prev.on_click(lambda _: self._turn(-1))
        self.next.on_click(lambda _: self._turn(+1))
        self.page_size_box.observe(self._on_page_size_widget, names="value")
        self._render_header()
        self.children = [
            w.HBox([self.sort, self.direction]),
            self.header,
            self.rows_box,
            w.HBox([self.prev, self.page_label, self.next, self.page_size_box]),
        ]

    # -- controls -----------------------------------------------------------------------------
    def _on_sort_widget(self, change) -> None:
        if not self._quiet:
            self.sort_by = change["new"] or None

    def _on_direction(self, _button) -> None:
        self.ascending = not self.ascending

    def _turn(self, step: int) -> None:
        self.page = max(0, self.page + step)

    def _on_page_size_widget(self, change) -> None:
        self.page_size = int(change["new"])

    @observe("sort_by", "ascending")
    def _sort_changed(self, change) -> None:
        self.sort.value = self.sort_by or ""
        self.direction.description = "ascending" if self.ascending else "descending"
        self.direction.icon = "arrow-up" if self.ascending else "arrow-down"
        self._render_header()

    def set_columns(self, columns: Sequence[tuple[str, str, int]]) -> None:
        """Show other columns (same key column); the sort falls back to the source order if its
        column goes."""
        self.columns = list(columns)
        names = [c for c, _, _ in self.columns]
        if self.sort_by not in names:
            self.sort_by = None
        self._quiet = True
        try:
            self.sort.options = [("(source order)", "")] + [
                (lbl, col) for col, lbl, _ in self.columns
            ]
            self.sort.value = self.sort_by or ""
        finally:
            self._quiet = False
        self._render_header()

    def _render_header(self) -> None:
        labels = []
        for col, label, _ in self.columns:
            mark = (" ▲" if self.ascending else " ▼") if col == self.sort_by else ""
            labels.append(label + mark)
        self.header.value = "<b>" + _cells(labels, [wd for _, _, wd in self.columns]) + "</b>"

    # -- rows -----------------------------------------------------------------------------------
    def _ensure_rows(self, n: int) -> None:
        key_width = self.columns[0][2]
        while len(self._row_widgets) < n:
            box = w.Checkbox(
                value=False, indent=False, layout=w.Layout(width=f"{key_width + 24}px")
            )
            box.add_class(f"{self.prefix}-checkbox")
            box.observe(self._on_tick, names="value")
            cells = w.HTML()
            row = w.HBox([box, cells] if self.selectable else [cells])
            row.add_class(f"{self.prefix}-row")
            self._checkboxes.append(box)
            self._cells.append(cells)
            self._row_widgets.append(row)
        self.rows_box.children = self._row_widgets[: max(n, 1)] if self._row_widgets else []

    @observe("marked")
    def _marked_changed(self, change) -> None:
        if getattr(self, "_page", None) is not None:
            self.show(self._page)

    def show(self, page: Page) -> None:
        """Render ``page`` (its rows, page number and total)."""
        self._page = page
        frame = page.rows
        keys = [str(k) for k in frame.index]
        marked = set(self.marked)
        self._ensure_rows(len(keys))
        chosen = set(self.selected)
        others = [c for c, _, _ in self.columns[1:]]
        widths = [wd for _, _, wd in self.columns[1:]]
        values = frame.reindex(columns=others)
        self._quiet = True
        try:
            for i, row in enumerate(self._row_widgets):
                if i < len(keys):
                    key = keys[i]
                    box = self._checkboxes[i]
                    box.description = key
                    box.value = key in chosen
                    cells = list(values.iloc[i]) if others else []
                    if not self.selectable:
                        cells = [key, *cells]
                    html = _cells(
                        cells, widths if self.selectable else [self.columns[0][2], *widths]
                    )
                    if key in marked:
                        html = IN_DATASET + html
                        row.add_class(f"{self.prefix}-in-dataset")
                    else:
                        row.remove_class(f"{self.prefix}-in-dataset")
                    self._cells[i].value = html
                    row.layout.display = None
                else:
                    row.layout.display = "none"
            self.row_keys = keys
            if self.page != page.page:
                self.page = page.page
        finally:
            self._quiet = False
        first = page.page * page.page_size + 1 if page.total else 0
        self.page_label.value = f"Page {page.page + 1} of {page.n_pages} ({page.total:,} rows)"
        self.page_label.tooltip = (
            f"rows {first:,} to {min(page.total, (page.page + 1) * page.page_size):,}"
        )
        self.prev.disabled = page.page <= 0
        self.next.disabled = page.page >= page.n_pages - 1

    def _on_tick(self, change) -> None:
        if self._quiet:
            return
        key = change["owner"].description
        chosen = [k for k in self.selected if k != key]
        if change["new"]:
            chosen.append(key)
        self.selected = chosen

    @observe("selected")
    def _selected_changed(self, change) -> None:
        chosen = set(self.selected)
        self._quiet = True
        try:
            for key, box in zip(self.row_keys, self._checkboxes):
                box.value = key in chosen
        finally:
            self._quiet = False

    def tick(self, key: str, value: bool = True) -> None:
        """Tick (or untick) the row ``key`` on the page shown, as a click on its box would."""
        try:
            i = self.row_keys.index(key)
        except ValueError:
            raise KeyError(f"{key!r} is not on the page shown; rows: {self.row_keys}") from None
        self._checkboxes[i].value = value
