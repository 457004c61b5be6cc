"""A paged table of a DataFrame page, with a tick box per row, sorting and a pager.

The table never sees the whole data: its owner queries a
:class:`~refinewidgets.core.browse.TableIndex` and hands it one
:class:`~refinewidgets.core.browse.Page` at a time (:meth:`PagedTable.show`). The page's cells
are one HTML table with header semantics (``<th scope="col">``, ``aria-sort``, a caption) that
scrolls sideways instead of clipping; beside it, one tick-box row per key (made when its row is first
shown, kept while recently shown), labelled with its key (its accession) and aligned with its
row. A box never changes key, so a click always ticks the row the user saw.

CSS classes (``<prefix>`` is given by the owner, e.g. ``rw-experiments``): ``<prefix>-table``,
``<prefix>-header`` and ``<prefix>-grid`` (the HTML table's widget), ``<prefix>-body``,
``<prefix>-row`` (a tick-box row), ``<prefix>-checkbox``, ``<prefix>-cells`` (a ``<tr>``),
``<prefix>-sort``, ``<prefix>-sort-direction``, ``<prefix>-prev``, ``<prefix>-next``,
``<prefix>-page-label``, ``<prefix>-page-size``."""

from __future__ import annotations

import html
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import numpy as np
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle
from traitlets import Bool, Int, List, Unicode, observe

from ..core.browse import BEST_MATCH, Page
from .state import Rendering

__all__ = ["PagedTable", "format_cell", "frame_html", "page_table"]

#: The colour of the lines between rows (the theme's, when there is one).
BORDER = "var(--jp-border-color2, #e0e0e0)"
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


#: Pages at most this wide (px) show the wide columns narrower (:data:`NARROW_WIDTHS`).
NARROW_PX = 900
#: The width (px) of a column on a narrow page, by column name: the columns users act on
#: (platform, samples, sex, disease, the cart's Remove) then fit an 800 px page without
#: scrolling sideways (the experiments' "Matching samples", shown while searching, may need it);
#: a cell cut short shows its whole text on hover (its ``title``).
NARROW_WIDTHS = {
    "title": 95,
    "refinebio_title": 80,
    "technology": 95,
    "organisms": 95,
    "refinebio_organism": 75,
    "platforms": 120,
    "num_samples": 75,
    "matching_samples": 80,
    "experiment_accession": 80,
    "refinebio_sex": 55,
    "refinebio_specimen_part": 85,
    "refinebio_disease": 100,
}


def column_class(column: str) -> str:
    """The CSS class of a table column's cells: ``rw-col-`` and the name, made a CSS word.

    Examples
    --------
    >>> column_class("refinebio_title"), column_class("a b/c")
    ('rw-col-refinebio_title', 'rw-col-a-b-c')
    """
    return "rw-col-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(column))


def narrow_width(columns: Sequence[tuple[str, str, int]]) -> int:
    """The total width of ``columns`` on a narrow page."""
    return sum(min(wd, NARROW_WIDTHS.get(c, wd)) for c, _, wd in columns)


#: The narrow widths as CSS (in each table and cart, so that it works anywhere).
NARROW_STYLE = (
    f"<style>@media (max-width:{NARROW_PX}px){{"
    ".rw-page-table{width:var(--rw-narrow-width) !important}"
    + "".join(
        f".rw-page-table th.{column_class(c)},span.{column_class(c)}{{width:{wd}px !important}}"
        for c, wd in NARROW_WIDTHS.items()
    )
    + "}</style>"
)


def _cells(
    values: Sequence[Any],
    widths: Sequence[int],
    tag: str = "span",
    names: Sequence[str] | None = None,
) -> str:
    """Cells of fixed widths in a row; with ``names`` (column names) each gets its column's
    class, and its narrow width on a narrow page (:data:`NARROW_WIDTHS`)."""
    out = []
    names = names if names is not None else [""] * len(widths)
    for value, width, name in zip(values, widths, names):
        text = html.escape(format_cell(value))
        css = f' class="{column_class(name)}"' if name else ""
        out.append(
            f'<{tag}{css} title="{text}" style="{CELL_STYLE};width:{width}px">{text}</{tag}>'
        )
    return '<div style="display:flex;align-items:center">' + "".join(out) + "</div>"


def frame_html(frame, *, max_rows: int = 50, index: bool = True, label: str = "Table") -> str:
    """A small DataFrame as an HTML table (escaped; numbers formatted; at most ``max_rows``),
    with column headers (``<th scope="col">``), in a box that scrolls sideways when too wide
    (focusable, named ``label``, so that a keyboard can scroll it)."""
    name = html.escape(label, quote=True)
    head = frame.iloc[:max_rows]
    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in head.columns]
    th = "".join(
        f'<th scope="col" style="text-align:left;padding:2px 6px">{html.escape(c)}</th>'
        for c in cols
    )
    body = []
    for key, row in zip(head.index, head.itertuples(index=False)):
        first = (
            f'<th scope="row" style="text-align:left;padding:2px 6px;font-weight:normal">'
            f"{html.escape(format_cell(key))}</th>"
            if index
            else ""
        )
        body.append(
            "<tr>"
            + first
            + "".join(
                f"<td style='padding:2px 6px'>{html.escape(format_cell(v))}</td>" for v in row
            )
            + "</tr>"
        )
    more = f"<div>... {len(frame) - max_rows:,} more rows</div>" if len(frame) > max_rows else ""
    return (
        f"{SCROLL_HOST_STYLE}"
        f'<div class="rw-scroll-x" role="region" tabindex="0" aria-label="{name}" '
        f'style="{SCROLL_STYLE}">'
        f"<table style='border-collapse:collapse'><thead><tr>{th}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


#: The marker of a row already in the dataset.
IN_DATASET = (
    '<span class="rw-in-dataset" title="Already in the dataset" '
    'style="color:var(--rw-success,#2e7d32);font-weight:bold;white-space:nowrap">&#10003; in dataset</span>'
)
#: The height of a row of a :class:`PagedTable`, in px (its tick boxes and table rows align).
ROW_HEIGHT = 30
#: Tick-box rows are kept for about this many pages of rows (the page shown and those shown
#: last), then closed.
KEPT_PAGES = 3
#: A box that scrolls sideways instead of clipping what is too wide for it.
SCROLL_STYLE = "overflow-x:auto;overflow-y:hidden;max-width:100%"
#: Lets an HTML widget holding such a box shrink to its container (a flex item otherwise grows to
#: its content, and an outer box scrolls instead).
SCROLL_HOST_STYLE = (
    "<style>.widget-html-content:has(> .rw-scroll-x),"
    ".jupyter-widget-html-content:has(> .rw-scroll-x){min-width:0}</style>"
)
#: The style of :func:`page_table`'s tables (in each table, so that it works anywhere).
PAGE_TABLE_STYLE = (
    "<style>"
    ".rw-page-table{border-collapse:separate;border-spacing:0;table-layout:fixed}"
    ".rw-page-table th,.rw-page-table td{"
    f"height:{ROW_HEIGHT}px;box-sizing:border-box;padding:0 8px;white-space:nowrap;"
    "overflow:hidden;text-overflow:ellipsis;text-align:left;vertical-align:middle;"
    f"line-height:normal;border-bottom:1px solid {BORDER}}}"
    ".rw-page-table tbody th{font-weight:normal}"
    ".rw-page-table caption{position:absolute;width:1px;height:1px;overflow:hidden;"
    "clip:rect(0 0 0 0);white-space:nowrap}"
    "</style>"
)


def page_table(
    frame,
    columns: Sequence[tuple[str, str, int]],
    *,
    caption: str,
    sort_by: str | None = None,
    ascending: bool = True,
    row_header: bool = False,
    row_class: str = "",
) -> str:
    """One page of rows as an accessible HTML table: a caption, ``<th scope="col">`` headers
    (``aria-sort`` on the sorted one), one ``<tr>`` per row, escaped cells of fixed widths; in
    a focusable region, so that a keyboard can scroll it when its box scrolls sideways.

    ``columns`` is ``[(column, label, width in px), ...]``; the index is the column named like
    the first one when ``row_header`` is true (shown as ``<th scope="row">``).
    """
    heads = []
    for col, label, width in columns:
        sort = ""
        if col == sort_by:
            sort = f' aria-sort="{"ascending" if ascending else "descending"}"'
            label = label + (" ▲" if ascending else " ▼")
        heads.append(
            f'<th scope="col"{sort} class="{column_class(col)}" style="width:{width}px">'
            f"{html.escape(label)}</th>"
        )
    names = [c for c, _, _ in columns]
    keys = [str(k) for k in frame.index]
    values = frame.reindex(columns=names[1:] if row_header else names)
    body = []
    for i, key in enumerate(keys):
        cells = []
        if row_header:
            text = html.escape(key)
            cells.append(f'<th scope="row" title="{text}">{text}</th>')
        for value in values.iloc[i]:
            text = html.escape(format_cell(value))
            cells.append(f'<td title="{text}">{text}</td>')
        body.append(f'<tr class="{row_class}">{"".join(cells)}</tr>')
    width = sum(wd for _, _, wd in columns)
    # focusable, so that a keyboard can scroll the table sideways (arrow keys)
    name = html.escape(f"{caption} table", quote=True)
    return (
        f'{PAGE_TABLE_STYLE}{NARROW_STYLE}<div class="rw-page-table-region" role="region" '
        f'tabindex="0" aria-label="{name}"><table class="rw-page-table" '
        f'style="width:{width}px;--rw-narrow-width:{narrow_width(columns)}px">'
        f"<caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


class PagedTable(w.VBox):
    """One page of rows with tick boxes, a sort control and a pager.

    The rows' cells are one accessible HTML table (:func:`page_table`, :attr:`grid`) that
    scrolls sideways when it is wider than the page; left of it, a column of tick boxes, one per
    row, each labelled with the row's key and aligned with its row.

    Parameters
    ----------
    columns
        ``[(column, label, width in px), ...]``; the first is the row key (the index).
    prefix
        The CSS class prefix of this table's parts.
    page_sizes, page_size
        The choices of rows per page, and the first choice (default: the second size).
    best_match
        Offer (and start with) the sort order :data:`~refinewidgets.core.browse.BEST_MATCH`.
    caption
        The table's caption, read by screen readers.

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
        best_match: bool = False,
        caption: str = "Rows",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.columns = list(columns)
        self.prefix = prefix
        self.selectable = selectable
        self.caption = caption
        self.best_match = best_match
        self.page_size = int(page_size or page_sizes[min(1, len(page_sizes) - 1)])
        #: Raised while the table writes its own controls (their observers then do nothing).
        self._rendering = Rendering()
        self._page: Page | None = None
        self._make_sort_controls()
        self._make_rows(selectable)
        self._make_pager(page_sizes)
        for widget, name in [
            (self, "table"),
            (self.grid, "header"),
            (self.grid, "grid"),
            (self.body, "body"),
            (self.sort, "sort"),
            (self.direction, "sort-direction"),
            (self.prev, "prev"),
            (self.next, "next"),
            (self.page_label, "page-label"),
            (self.page_size_box, "page-size"),
        ]:
            widget.add_class(f"{prefix}-{name}")
        self.sort.observe(self._on_sort_widget, names="value")
        self.direction.on_click(self._on_direction)
        self.prev.on_click(lambda _: self._turn(-1))
        self.next.on_click(lambda _: self._turn(+1))
        self.page_size_box.observe(self._on_page_size_widget, names="value")
        self._render_header()
        self.children = [
            w.HBox([self.sort, self.direction], layout=w.Layout(flex_flow="row wrap")),
            self.body,
            w.HBox(
                [self.prev, self.page_label, self.next, self.page_size_box],
                layout=w.Layout(flex_flow="row wrap"),
            ),
        ]
        if best_match:
            self.sort_by = BEST_MATCH

    # -- the parts ------------------------------------------------------------------------------
    def _make_sort_controls(self) -> None:
        """The sort column and the sort direction."""
        self.sort = w.Dropdown(
            options=self._sort_options(),
            value=self.sort_by or "",
            description="Sort by",
            layout=w.Layout(width="300px"),
        )
        self.direction = w.Button(
            description="ascending",
            icon="arrow-up",
            tooltip="Reverse the sort order",
            layout=w.Layout(width="120px"),
        )

    def _make_rows(self, selectable: bool) -> None:
        """The rows: tick boxes (left, when ``selectable``) beside the table of cells."""
        #: The layouts and styles every tick-box row shares (fewer widgets for the page to load).
        self._row_parts: dict[str, dict[str, w.Widget]] | None = None
        #: The rows made so far, by key, least recently shown first (see :meth:`_row_for`).
        self._rows: OrderedDict[str, tuple[w.Checkbox, w.HTML, w.HBox]] = OrderedDict()
        #: The tick boxes, "in dataset" markers and rows of the page shown, in its order.
        self._checkboxes: list[w.Checkbox] = []
        self._cells: list[w.HTML] = []
        self._row_widgets: list[w.HBox] = []
        # the table of cells scrolls sideways
        self.grid = self.header = w.HTML(
            layout=w.Layout(flex="1 1 auto", min_width="0", overflow="auto hidden", margin="0")
        )
        line = f"1px solid {BORDER}"
        self.tick_header = w.HTML(
            layout=w.Layout(height=f"{ROW_HEIGHT}px", margin="0", border_bottom=line)
        )
        self.rows_box = w.VBox(layout=w.Layout(margin="0"))
        ticks = w.VBox(
            [self.tick_header, self.rows_box], layout=w.Layout(flex="0 0 auto", margin="0")
        )
        self.body = w.HBox(
            [ticks, self.grid] if selectable else [self.grid],
            layout=w.Layout(align_items="flex-start", width="100%", margin="0"),
        )

    def _make_pager(self, page_sizes: Sequence[int]) -> None:
        """Previous, the page shown, next, and the rows per page."""
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
            description="Show",
            style={"description_width": "40px"},
            layout=w.Layout(width="170px"),
        )

    # -- controls -----------------------------------------------------------------------------
    def _sort_options(self) -> list[tuple[str, str]]:
        first = [("Best match", BEST_MATCH)] if self.best_match else []
        return first + [("(source order)", "")] + [(lbl, col) for col, lbl, _ in self.columns]

    def _on_sort_widget(self, change) -> None:
        if not self._rendering:
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
        """Show other columns (same key column); the sort falls back to the first order (best
        match or source order) if its column goes."""
        self.columns = list(columns)
        names = [c for c, _, _ in self.columns]
        if self.sort_by not in names and self.sort_by != BEST_MATCH:
            self.sort_by = BEST_MATCH if self.best_match else None
        with self._rendering:
            self.sort.options = self._sort_options()
            self.sort.value = self.sort_by or ""
        self._render_header()

    def _render_header(self) -> None:
        key, label, _ = self.columns[0]
        if key == self.sort_by:
            label += " ▲" if self.ascending else " ▼"
        self.tick_header.value = (
            f'<b style="padding-left:24px;white-space:nowrap">{html.escape(label)}</b>'
        )
        if self._page is not None:
            self.show(self._page)
        else:
            self.grid.value = self._table_html(None)

    def _table_html(self, frame) -> str:
        columns = self.columns if not self.selectable else self.columns[1:]
        if frame is None:
            import pandas as pd

            frame = pd.DataFrame(columns=[c for c, _, _ in self.columns])
        return page_table(
            frame,
            columns,
            caption=self.caption,
            sort_by=self.sort_by,
            ascending=self.ascending,
            row_header=not self.selectable,
            row_class=f"{self.prefix}-cells",
        )

    # -- rows -----------------------------------------------------------------------------------
    def _row_for(self, key: str) -> tuple[w.Checkbox, w.HTML, w.HBox]:
        """The tick box, marker and row of ``key``, made once and kept while recently shown.

        A box belongs to one key for its whole life: a click that the browser sends for a row
        it still shows, while the kernel already lists another page (a search typed a moment
        before), ticks the row the user saw, never whatever row now takes its place."""
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        if self._row_parts is None:  # one layout and style per part, shared by every row
            key_width = self.columns[0][2]
            self._row_parts = {
                "box": {
                    "layout": w.Layout(width=f"{key_width + 24}px", margin="0 0 0 4px"),
                    "style": CheckboxStyle(),
                },
                "marker": {"layout": w.Layout(margin="0 4px"), "style": HTMLStyle()},
                "row": {
                    "layout": w.Layout(
                        height=f"{ROW_HEIGHT}px",
                        margin="0",
                        align_items="center",
                        border_bottom=f"1px solid {BORDER}",
                        overflow="hidden",
                    )
                },
            }
        parts = self._row_parts
        box = w.Checkbox(
            value=key in set(self.selected), description=key, indent=False, **parts["box"]
        )
        box.add_class(f"{self.prefix}-checkbox")
        box.observe(self._on_tick, names="value")
        marker = w.HTML(**parts["marker"])
        row = w.HBox([box, marker], **parts["row"])
        row.add_class(f"{self.prefix}-row")
        self._rows[key] = (box, marker, row)
        return self._rows[key]

    def _forget_rows(self, shown: Sequence[str]) -> None:
        """Close the rows least recently shown beyond :data:`KEPT_PAGES` pages' worth (never a
        row of the page shown), so paging through a long listing does not grow the page."""
        keep = set(shown)
        limit = KEPT_PAGES * max(self.page_size, len(shown))
        for key in [k for k in self._rows if k not in keep][: max(0, len(self._rows) - limit)]:
            for widget in self._rows.pop(key):
                widget.close()

    def keep_rows(self, listed) -> None:
        """Close the kept tick-box rows whose key is not in ``listed`` (the owner lists other
        rows now: other experiments' samples, another catalog), so that a late click on one of
        them cannot tick a row the listing no longer has."""
        listed = set(listed)
        for key in [k for k in self._rows if k not in listed and k not in self.row_keys]:
            for widget in self._rows.pop(key):
                widget.close()

    @observe("marked")
    def _marked_changed(self, change) -> None:
        if self._page is not None:
            self.show(self._page)

    def show(self, page: Page) -> None:
        """Render ``page`` (its rows, page number and total)."""
        self._page = page
        keys = [str(k) for k in page.rows.index]
        marked = set(self.marked)
        chosen = set(self.selected)
        with self._rendering:
            if self.selectable:
                rows = [self._row_for(key) for key in keys]
                self._checkboxes = [box for box, _, _ in rows]
                self._cells = [marker for _, marker, _ in rows]
                self._row_widgets = [row for _, _, row in rows]
                if tuple(self.rows_box.children) != tuple(self._row_widgets):
                    self.rows_box.children = self._row_widgets
                self._forget_rows(keys)
            for key, box, cell, row in zip(
                keys if self.selectable else (), self._checkboxes, self._cells, self._row_widgets
            ):
                box.value = key in chosen
                if key in marked:
                    cell.value = IN_DATASET
                    row.add_class(f"{self.prefix}-in-dataset")
                else:
                    cell.value = ""
                    row.remove_class(f"{self.prefix}-in-dataset")
            self.grid.value = self._table_html(page.rows)
            self.row_keys = keys
            if self.page != page.page:
                self.page = page.page
        first = page.page * page.page_size + 1 if page.total else 0
        self.page_label.value = f"Page {page.page + 1} of {page.n_pages} ({page.total:,} rows)"
        self.page_label.tooltip = (
            f"rows {first:,} to {min(page.total, (page.page + 1) * page.page_size):,}"
        )
        self.prev.disabled = page.page <= 0
        self.next.disabled = page.page >= page.n_pages - 1

    def _on_tick(self, change) -> None:
        if self._rendering:
            return
        key = change["owner"].description
        chosen = [k for k in self.selected if k != key]
        if change["new"]:
            chosen.append(key)
        self.selected = chosen

    @observe("selected")
    def _selected_changed(self, change) -> None:
        chosen = set(self.selected)
        with self._rendering:
            for key, (box, _, _) in self._rows.items():
                box.value = key in chosen

    def tick(self, key: str, value: bool = True) -> None:
        """Tick (or untick) the row ``key`` on the page shown, as a click on its box would."""
        try:
            i = self.row_keys.index(key)
        except ValueError:
            raise KeyError(f"{key!r} is not on the page shown; rows: {self.row_keys}") from None
        self._checkboxes[i].value = value
