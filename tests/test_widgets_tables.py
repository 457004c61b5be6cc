"""The browsing tables without a browser: header semantics, named selects, facet search and
order, the sample table's column choice and sort, the best-match ranking in the browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import ipywidgets as w

import refinewidgets as rw
from refinewidgets.core.browse import BEST_MATCH, MATCHING, TableIndex
from refinewidgets.testing import synthetic_listing
from refinewidgets.widgets import ExperimentBrowser, SamplePicker
from refinewidgets.widgets._faceted import FACET_SEARCH_MIN
from refinewidgets.widgets._table import KEPT_PAGES as _KEPT_PAGES
from refinewidgets.widgets._table import PagedTable


class _Table(HTMLParser):
    """The structure of one HTML table: caption, header cells (with attributes), body rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.caption, self.heads, self.rows = "", [], []
        self._where, self._cell, self._attrs = [], None, {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._where.append(tag)
        if tag == "tr" and "tbody" in self._where:
            self.rows.append([])
        if tag in ("th", "td"):
            self._cell, self._attrs = "", dict(attrs)

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            cell = (tag, self._attrs, self._cell)
            (self.heads if "thead" in self._where else self.rows[-1]).append(cell)
            self._cell = None
        while self._where and self._where.pop() != tag:
            pass

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._where and self._where[-1] == "caption":
            self.caption += data


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _facet_counts(box) -> list[tuple[str, int]]:
    out = []
    for label, value in box.options:
        count = re.search(r"\(([\d,]+)\)$", label).group(1)
        out.append((value, int(count.replace(",", ""))))
    return out


@pytest.fixture(scope="module")
def listing():
    return synthetic_listing(400, 4_000, seed=5)


# -- the HTML table ----------------------------------------------------------------------------
def test_the_page_is_a_table_with_column_headers_caption_and_sort_state(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    table = _Table(browser.table.grid.value)
    labels = [label for _, label, _ in browser.table.columns[1:]]  # the key is the tick column
    assert table.caption == "Experiments"
    assert [text for _, _, text in table.heads] == labels
    assert all(tag == "th" and attrs.get("scope") == "col" for tag, attrs, _ in table.heads)
    assert not any("aria-sort" in attrs for _, attrs, _ in table.heads)
    assert len(table.rows) == len(browser.table.row_keys) == len(browser.table.rows_box.children)
    assert all(len(row) == len(labels) and {t for t, _, _ in row} == {"td"} for row in table.rows)
    first = demo_cat.experiments.loc[browser.table.row_keys[0]]
    assert table.rows[0][0][2] == first["title"]
    browser.table.sort.value = "num_samples"
    browser.table.direction.click()
    table = _Table(browser.table.grid.value)
    sorted_heads = [(a["aria-sort"], text) for _, a, text in table.heads if "aria-sort" in a]
    assert sorted_heads == [("descending", "Samples ▼")]
    sizes = [int(row[labels.index("Samples")][2]) for row in table.rows]
    assert sizes == sorted(sizes, reverse=True)


def test_a_table_without_tick_boxes_has_row_headers_and_escapes_everything():
    frame = pd.DataFrame(
        {"title": ['<img src=x onerror="alert(1)">'], "n": [1234567]},
        index=pd.Index(["E<1>"], name="accession"),
    )
    table = PagedTable(
        [("accession", "Acc<ession>", 100), ("title", "Title", 200), ("n", "N", 80)],
        prefix="rw-t",
        selectable=False,
        caption="Things & stuff",
    )
    table.show(TableIndex(frame).query())
    html = table.grid.value
    assert "<img" not in html and "&lt;img src=x" in html and "E&lt;1&gt;" in html
    assert "Acc&lt;ession&gt;" in html and "Things &amp; stuff" in html
    parsed = _Table(html)
    assert [text for _, _, text in parsed.heads] == ["Acc<ession>", "Title", "N"]
    (row,) = parsed.rows
    assert row[0][:1] == ("th",) and row[0][1]["scope"] == "row" and row[0][2] == "E<1>"
    assert [t for t, _, _ in row[1:]] == ["td", "td"] and row[2][2] == "1,234,567"
    assert table.rows_box.children == ()  # no tick boxes


def test_tick_boxes_line_up_with_rows_and_carry_the_in_dataset_marker(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    browser.table.page_size_box.value = 10
    keys = browser.table.row_keys
    assert [box.description for box in browser.table._checkboxes[: len(keys)]] == keys
    assert len(_Table(browser.table.grid.value).rows) == len(browser.table.rows_box.children)
    browser.table.marked = [keys[2]]
    markers = [cell.value for cell in browser.table._cells[: len(keys)]]
    assert ["in dataset" in m for m in markers] == [i == 2 for i in range(len(keys))]
    rows = browser.table.rows_box.children
    assert "rw-experiments-in-dataset" in rows[2]._dom_classes
    assert "rw-experiments-in-dataset" not in rows[1]._dom_classes


def test_a_click_the_browser_sends_for_a_row_already_replaced_ticks_that_row(demo_cat):
    """The race seen in the app: the user clicks a row while the kernel already shows the next
    search's page. The click comes from the box the browser still showed, so it must tick that
    row's key, not the key now shown in the same place (each box keeps one key for life)."""
    browser = ExperimentBrowser(demo_cat)
    before = list(browser.table.row_keys)
    seen = browser.table._checkboxes[0]  # the box the browser still shows for before[0]
    browser.search.value = "lung"  # the kernel lists the search's page
    after = list(browser.table.row_keys)
    assert after[0] != before[0]  # another row now sits first
    seen.value = True  # the click arrives
    assert browser.chosen == [before[0]]
    assert not browser.table._checkboxes[0].value  # the row now first is not ticked
    browser.search.value = ""  # back to the first page: its box shows the tick
    assert browser.table._checkboxes[before.index(before[0])].value
    browser.chosen = []
    assert not seen.value  # unticking reaches boxes kept off the page too


def test_paging_keeps_a_bounded_number_of_tick_boxes(listing):
    browser = ExperimentBrowser(rw.Catalog.from_tables(*listing))
    table = browser.table
    table.page_size_box.value = 10
    first = table._checkboxes[0]
    for page in range(12):
        table.page = page
    assert table.page == 11 and len(table.row_keys) == 10
    assert len(table._rows) <= _KEPT_PAGES * 10
    assert first.comm is None  # closed: rows shown long ago do not stay in the page
    assert [box.description for box in table._checkboxes] == table.row_keys
    # the rows share their layouts and styles: three widgets per row for the page to load
    parts = {(id(b.layout), id(b.style)) for b in table._checkboxes}
    parts |= {(id(r.layout), 0) for r in table._row_widgets}
    assert len(parts) == 2


def test_the_sample_rows_of_experiments_no_longer_listed_are_closed(demo_cat):
    """A late click on a sample row of an experiment the picker no longer lists cannot tick it:
    that row's box is closed once the new list is shown."""
    picker = SamplePicker(demo_cat)
    picker.experiments = ["GSE71102"]
    old = picker.table._checkboxes[0]
    assert old.description in demo_cat.experiment_samples("GSE71102")
    picker.experiments = ["SRP091833"]
    assert old.comm is None  # closed: the browser can send it nothing
    listed = set(demo_cat.experiment_samples("SRP091833"))
    assert set(picker.table._rows) <= listed and picker.table.row_keys
    assert set(picker.table.row_keys) <= listed


def test_every_select_and_text_box_has_an_accessible_name(demo_cat):
    """axe-core's "select-name" and "label" rules: a description, or a placeholder for a text
    box (the "per page" selects used to have neither)."""
    picker = SamplePicker(demo_cat)
    picker.experiments = ["GSE71102"]
    browser = ExperimentBrowser(rw.Catalog.from_tables(*synthetic_listing(300, 3_000, seed=1)))
    assert browser.facet_search  # a facet with many values has a search box
    for view in (browser, picker):
        for widget in _walk(view):
            if isinstance(widget, (w.Dropdown, w.Select, w.SelectMultiple)):
                assert widget.description.strip(), widget
            if isinstance(widget, w.Text):
                assert widget.description.strip() or widget.placeholder.strip(), widget
    assert browser.table.page_size_box.description == "Show"
    assert picker.table.page_size_box.options[0] == ("10 per page", 10)


# -- facets ------------------------------------------------------------------------------------
def test_facets_are_sorted_by_count_then_name_over_the_whole_catalog(listing):
    exps, samples = listing
    browser = ExperimentBrowser(rw.Catalog.from_tables(exps, samples))
    platforms = exps["platforms"].str.split("; ").explode().value_counts()
    expected = sorted(platforms.items(), key=lambda vc: (-vc[1], vc[0].lower()))
    assert _facet_counts(browser.facets["platform"]) == [(v, int(n)) for v, n in expected]
    for box in browser.facets.values():
        counts = _facet_counts(box)
        assert counts == sorted(counts, key=lambda vc: (-vc[1], vc[0].lower())), box.description


def test_a_facet_with_many_values_can_be_searched(listing):
    exps, samples = listing
    browser = ExperimentBrowser(rw.Catalog.from_tables(exps, samples))
    sizes = {name: len(facet.values) for name, facet in browser.index.facets.items()}
    assert set(browser.facet_search) == {n for n, k in sizes.items() if k > FACET_SEARCH_MIN}
    assert "platform" in browser.facet_search and "technology" not in browser.facet_search
    find = browser.facet_search["platform"]
    assert "rw-facet-filter-platform" in find._dom_classes
    before = dict(_facet_counts(browser.facets["platform"]))
    find.value = "Illumina"
    listed = dict(_facet_counts(browser.facets["platform"]))
    assert listed and all("illumina" in v.lower() for v in listed)
    assert listed == {v: n for v, n in before.items() if "illumina" in v.lower()}
    assert browser.total == len(exps)  # searching a facet's values filters no experiment
    assert not browser.clear_filters_button.disabled
    # a chosen value stays listed while the search hides the others
    browser.facets["platform"].value = (next(iter(listed)),)
    find.value = "affymetrix"
    assert next(iter(listed)) in dict(_facet_counts(browser.facets["platform"]))
    browser.clear_filters_button.click()
    assert find.value == "" and browser.filters == {}
    assert dict(_facet_counts(browser.facets["platform"])) == before


# -- best match --------------------------------------------------------------------------------
def test_the_browser_ranks_by_matching_samples_and_shows_their_number(demo_cat):
    browser = ExperimentBrowser(demo_cat)
    assert browser.table.sort_by == BEST_MATCH
    assert MATCHING not in [c for c, _, _ in browser.table.columns]
    assert browser.table.row_keys == demo_cat.experiments.index[:20].tolist()  # no words
    browser.search.value = "breast cancer"
    found = demo_cat.search("breast cancer")["experiment_accession"].value_counts()
    assert browser.table.row_keys == found.index.tolist() == ["GSE71102", "SRP091833"]
    labels = [label for c, label, _ in browser.table.columns]
    assert labels[-1] == "Matching samples"
    rows = _Table(browser.table.grid.value).rows
    assert [int(row[-1][2]) for row in rows] == found.tolist() == [16, 12]
    # the user's column sort wins; clearing the search drops the column and its sort
    browser.table.sort.value = MATCHING
    assert browser.table.row_keys == ["SRP091833", "GSE71102"]  # fewest first
    browser.search.value = ""
    assert MATCHING not in [c for c, _, _ in browser.table.columns]
    assert browser.table.sort_by == BEST_MATCH and browser.table.sort.value == BEST_MATCH


# -- the sample table's columns ------------------------------------------------------------------
def test_the_user_picks_the_sample_tables_columns(demo_cat):
    picker = SamplePicker(demo_cat)
    picker.experiments = ["GSE71102"]
    default = [
        "experiment_accession",
        "refinebio_title",
        "refinebio_organism",
        "refinebio_sex",
        "refinebio_specimen_part",
        "refinebio_disease",
    ]
    assert picker.shown == default and list(picker.column_picker.value) == default
    offered = [value for _, value in picker.column_picker.options]
    samples = demo_cat.samples.loc[demo_cat.experiment_samples("GSE71102")]
    empty = [c for c in samples.columns if (samples[c].fillna("").astype(str) == "").all()]
    assert offered[: len(default)] == default and not set(empty) & set(offered)
    assert "refinebio_platform" in offered and "refinebio_age" in offered
    picker.column_picker.value = ("refinebio_age", "refinebio_platform")  # as a click
    assert picker.shown == ["refinebio_age", "refinebio_platform"]
    assert [c for c, _, _ in picker.table.columns] == ["accession", *picker.shown]
    table = _Table(picker.table.grid.value)
    assert [text for _, _, text in table.heads] == ["Age", "Platform"]
    first = samples.loc[picker.table.row_keys[0]]
    assert table.rows[0][1][2] == first["refinebio_platform"]
    # the choice stays for the next experiments, without the columns they leave empty
    picker.experiments = ["GSE75037"]  # it has ages
    assert picker.shown == ["refinebio_age", "refinebio_platform"]
    picker.experiments = ["SRP091833"]  # no ages
    assert picker.shown == ["refinebio_platform"]
    assert "refinebio_age" not in [v for _, v in picker.column_picker.options]
    assert list(picker.column_picker.value) == ["refinebio_platform"]


def test_the_sample_table_sorts_by_a_chosen_column(demo_cat):
    picker = SamplePicker(demo_cat)
    picker.experiments = ["GSE71102", "SRP091833"]
    picker.shown = ["refinebio_disease", "refinebio_title"]
    picker.table.page_size_box.value = 50
    picker.table.sort.value = "refinebio_title"
    members = demo_cat.experiment_samples("GSE71102") + demo_cat.experiment_samples("SRP091833")
    titles = demo_cat.samples.loc[members, "refinebio_title"]
    expected = titles.str.lower().sort_values(kind="stable").index.tolist()
    assert picker.table.row_keys == expected
    picker.table.direction.click()
    descending = titles.str.lower().sort_values(ascending=False, kind="stable").index.tolist()
    assert picker.table.row_keys == descending
    table = _Table(picker.table.grid.value)
    assert [t for _, a, t in table.heads if "aria-sort" in a] == ["Title ▼"]
    picker.shown = ["refinebio_disease", "no_such_column"]  # the sorted column goes
    assert picker.table.sort_by is None and picker.table.row_keys == members  # source order
    assert [c for c, _, _ in picker.table.columns] == ["accession", "refinebio_disease"]
    assert picker.status.kind != "error", picker.status.text


def test_a_small_frame_is_a_table_with_headers_in_a_box_that_scrolls_sideways():
    from refinewidgets.widgets._table import frame_html

    frame = pd.DataFrame(
        {"GSM<1>": [1.5, 2.25], "GSM2": [1234.0, None]}, index=pd.Index(["g1", "g&2"], name="Gene")
    )
    html = frame_html(frame, label="Preview of <values>")
    table = _Table(html)
    assert [(tag, a.get("scope"), text) for tag, a, text in table.heads] == [
        ("th", "col", "Gene"),
        ("th", "col", "GSM<1>"),
        ("th", "col", "GSM2"),
    ]
    assert [[(tag, a.get("scope"), text) for tag, a, text in row] for row in table.rows] == [
        [("th", "row", "g1"), ("td", None, "1.5"), ("td", None, "1,234")],
        [("th", "row", "g&2"), ("td", None, "2.25"), ("td", None, "")],
    ]
    assert 'class="rw-scroll-x" role="region" tabindex="0"' in html
    assert 'aria-label="Preview of &lt;values&gt;"' in html and "overflow-x:auto" in html
    plain = _Table(frame_html(frame, index=False))
    assert [text for _, _, text in plain.heads] == ["GSM<1>", "GSM2"]
    assert all(tag == "td" for row in plain.rows for tag, _, _ in row)
