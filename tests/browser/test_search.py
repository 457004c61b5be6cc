"""Search that finds, in the Voila app: a disease search ranks experiments by matching samples;
the tables have header semantics, named selects, and scroll sideways instead of clipping.

Expected values come from the core API on the same demo catalog (``Catalog.search``), never from
the page itself. Waits are on selectors and texts, never on sleeps.
"""

from __future__ import annotations

import time

import pytest

import refinewidgets as rw

from .axe import assert_no_serious_violations
from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DISEASE = "lung adenocarcinoma"


@pytest.fixture(scope="module")
def demo():
    return rw.open_catalog()


def open_app(page, url, width):
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(url)
    page.locator(".rw-search input").wait_for()


def shown_keys(page, kind) -> list[str]:
    return [t.strip() for t in page.locator(f".rw-{kind}-checkbox").all_inner_texts()]


def column(page, kind, label) -> list[str]:
    """The texts of the column headed ``label`` in the ``kind`` table, row by row."""
    grid = page.locator(f".rw-{kind}-grid table")
    heads = [h.strip().rstrip(" ▲▼") for h in grid.locator("thead th").all_inner_texts()]
    i = heads.index(label) + 1
    return [t.strip() for t in grid.locator(f"tbody tr td:nth-child({i})").all_inner_texts()]


def assert_rows_aligned(page, kind) -> None:
    """Each tick box sits on the same line as its row of the table."""
    boxes = page.locator(f".rw-{kind}-checkbox input")
    rows = page.locator(f".rw-{kind}-grid tbody tr")
    assert boxes.count() == rows.count() > 0
    for i in range(rows.count()):
        box, row = boxes.nth(i).bounding_box(), rows.nth(i).bounding_box()
        middle = box["y"] + box["height"] / 2
        assert row["y"] <= middle <= row["y"] + row["height"], (i, box, row)


def test_a_disease_search_finds_and_ranks_experiments_by_matching_samples(page, voila_url, demo):
    hits = demo.search(DISEASE)["experiment_accession"].value_counts()
    assert len(hits) >= 3 and hits.is_unique  # several experiments, no ties: one right order
    open_app(page, voila_url, 1280)
    # facets are counted over the whole catalog before anything is ticked
    disease = page.locator(".rw-facet-disease select option", has_text=DISEASE)
    expect(disease).to_have_count(1)
    page.locator(".rw-search input").fill(DISEASE)
    label = page.locator(".rw-experiments-page-label")
    expect(label).to_contain_text(f"({len(hits)} rows)")
    expect(page.locator(".rw-experiments-sort select")).to_have_value("Best match")
    heads = page.locator(".rw-experiments-grid thead th[scope=col]")
    expect(heads.last).to_have_text("Matching samples")
    assert shown_keys(page, "experiments") == hits.index.tolist()
    assert column(page, "experiments", "Matching samples") == [str(n) for n in hits]
    assert_rows_aligned(page, "experiments")
    # every select has a name; the tables have header semantics
    assert_no_serious_violations(page, context=".rw-experiments-panel")
    assert_no_serious_violations(page, context=".rw-samples-panel")
    # sorting by a column still works while searching
    page.locator(".rw-experiments-sort select").select_option(label="Samples")
    expect(page.locator(".rw-experiments-grid th[aria-sort=ascending]")).to_have_text("Samples ▲")
    # the header and the rows are separate widgets: wait for the rows to follow
    deadline = time.monotonic() + 15
    sizes = [int(n) for n in column(page, "experiments", "Samples")]
    while sizes != sorted(sizes) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        sizes = [int(n) for n in column(page, "experiments", "Samples")]
    assert sizes == sorted(sizes) and len(sizes) == len(hits)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-ranked-1280.png"), full_page=True)


def test_the_sample_table_scrolls_sideways_at_800_px(page, voila_url, demo):
    experiment = "GSE75037"
    open_app(page, voila_url, 800)
    page.locator(".rw-search input").fill(experiment)
    expect(page.locator(".rw-experiments-row")).to_have_count(1)
    page.locator(".rw-experiments-checkbox", has_text=experiment).locator("input").check()
    n = len(demo.experiment_samples(experiment))
    expect(page.locator(".rw-samples-page-label")).to_contain_text(f"({n} rows)")
    # choose one more metadata column: it appears as a column header
    columns = page.locator(".rw-sample-columns select")
    chosen = columns.evaluate("s => Array.from(s.selectedOptions).map(o => o.textContent)")
    columns.select_option(label=[*chosen, "Platform"])
    grid = page.locator(".rw-samples-grid")
    expect(grid.locator("thead th", has_text="Platform")).to_have_count(1)
    platforms = column(page, "samples", "Platform")
    expected = demo.samples.loc[demo.experiment_samples(experiment), "refinebio_platform"]
    assert platforms == expected.iloc[: len(platforms)].tolist()
    assert_rows_aligned(page, "samples")
    assert_no_serious_violations(page, context=".rw-samples-panel")  # with rows, scrolling

    size = grid.evaluate(
        "g => ({scroll: g.scrollWidth, client: g.clientWidth, "
        "right: g.getBoundingClientRect().right, page: document.documentElement.clientWidth})"
    )
    assert size["scroll"] > size["client"], size  # too wide for 800 px: it scrolls
    assert size["right"] <= size["page"], size  # and the box itself fits in the page
    last = grid.locator("thead th").last
    grid.evaluate("g => { g.scrollLeft = g.scrollWidth; }")
    edge = last.evaluate("th => th.getBoundingClientRect().right")
    box = grid.evaluate("g => g.getBoundingClientRect().right")
    assert edge <= box + 1, (edge, box)  # the last column is reachable, not clipped
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sample-table-800.png"), full_page=True)
