"""What you pick is what you build, in a real browser at 1280 and 800 px (issue 24): an "add
whole experiments" never undoes a sample pick (the cart asks instead), ticks hidden by a later
search are left out with a message, the search arrives at the sample list, and a link to single
cells opens with options that build. Saves docs/app-cart-two-searches.png.

Expected values come from the core API on the same data; waits are on selectors and texts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import refinewidgets as rw

from .test_app import open_app, tab, tick
from .test_app_flows import VIEWPORTS, build_and_wait, link

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def demo():
    return rw.open_catalog()


@pytest.fixture(params=list(VIEWPORTS))
def sized_page(browser, request):
    """A page at 1280 px, then at 800 px wide."""
    context = browser.new_context(viewport=VIEWPORTS[request.param])
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.width = request.param
    yield page
    # the visitor leaves: the page's kernel ends (the app holds at most 4 pages' kernels)
    page.close(run_before_unload=True)
    context.close()


def test_two_searches_keep_the_first_pick_and_the_cart_asks(sized_page, voila_url, demo):
    page = sized_page
    n_lung = len(demo.experiment_samples("GSE75037"))
    cancer = demo.samples.loc[demo.experiment_samples("GSE71102"), "refinebio_disease"]
    assert (cancer == "breast cancer").sum() == 16  # the counts the page shows below
    open_app(page, voila_url)
    page.locator(".rw-search input").fill("breast cancer")
    tick(page, "experiments", "GSE71102")
    # the search arrives at the sample list: the 16 matching samples, "Show all 24" beside them
    note = page.locator(".rw-sample-search-note")
    expect(note).to_have_text('Showing 16 of 24 samples: those matching "breast cancer".')
    expect(page.locator(".rw-samples-page-label")).to_contain_text("(16 rows)")
    expect(page.locator(".rw-show-all-samples")).to_have_text("Show all 24 samples")
    page.locator(".rw-sample-facet-disease select").select_option(label="breast cancer (16)")
    page.locator(".rw-select-all").click()
    expect(page.locator(".rw-selection-count")).to_have_text("16 selected")
    page.locator(".rw-add-to-dataset").click()
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("(16)")
    # the second search hides GSE71102, still ticked
    page.locator(".rw-search input").fill("lung adenocarcinoma")
    expect(page.locator(".rw-experiments-row", has_text="GSE71102")).to_have_count(0)
    tick(page, "experiments", "GSE75037")
    expect(page.locator(".rw-ticked-count")).to_have_text("2 ticked (1 hidden by the search)")
    page.locator(".rw-add-experiments").click()
    expect(page.locator(".rw-browser-status")).to_have_text(
        f"Added GSE75037 ({n_lung} samples). Left out GSE71102: ticked before, hidden by the "
        'current search and filters (press "Clear search and filters" to see it, or "Untick all").'
    )
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text(
        f"({16 + n_lung})"
    )
    # shown again and added whole: the 16 stay, the cart asks
    page.locator(".rw-experiments-clear-filters").click()
    expect(page.locator(".rw-experiments-row", has_text="GSE71102")).to_have_count(1)
    page.locator(".rw-add-experiments").click()
    expect(page.locator(".rw-browser-status")).to_contain_text(
        "GSE71102 keeps the 16 of its 24 samples you chose: My dataset asks whether to add the "
        "other 8."
    )
    tab(page, "My dataset")
    expect(page.locator(".rw-cart-row", has_text="GSE71102")).to_contain_text("16 of 24")
    question = page.locator(".rw-cart-question")
    expect(question.locator(".rw-cart-question-text")).to_have_text(
        "GSE71102: 16 of 24 chosen; add the other 8?"
    )
    expect(question.locator(".rw-cart-add-rest")).to_be_visible()
    if page.width == "1280":
        DOCS.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1100})
        page.screenshot(path=str(DOCS / "app-cart-two-searches.png"), full_page=True)
    question.locator(".rw-cart-add-rest").click()
    expect(page.locator(".rw-cart-row", has_text="GSE71102")).to_contain_text("24 of 24")
    expect(page.locator(".rw-cart-question")).to_have_count(0)
    page.locator(".rw-cart-undo").click()  # an explicit choice, undone
    expect(page.locator(".rw-cart-row", has_text="GSE71102")).to_contain_text("16 of 24")


def test_a_link_to_single_cells_opens_with_options_that_build(sized_page, voila_url):
    page = sized_page
    open_app(page, link(voila_url, "exp=ERP900101"))
    expect(page.locator(".rw-status")).to_contain_text(
        '"Quantile normalize" is off: the dataset has single cells'
    )
    tab(page, "My dataset")
    box = page.locator(".rw-quantile-normalize input")
    expect(box).not_to_be_checked()
    expect(box).to_be_disabled()
    expect(page.locator(".rw-qn-reason")).to_contain_text(
        "Off: the dataset has single cells, which are never quantile-normalized"
    )
    build_and_wait(page)
    expect(page.locator(".rw-status")).to_contain_text("Built 1 group(s)")


#: Whether every element matching the selector lies inside the page and inside each box that
#: scrolls sideways around it, unscrolled: reachable without scrolling sideways.
FITS = """(selector) => {
    const limit = Math.min(window.innerWidth, document.documentElement.clientWidth);
    const out = [];
    for (const el of document.querySelectorAll(selector)) {
        const r = el.getBoundingClientRect();
        if (r.width === 0) continue;
        let right = limit;
        for (let a = el.parentElement; a; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX;
            if (o === 'auto' || o === 'scroll' || o === 'hidden')
                right = Math.min(right, a.getBoundingClientRect().right);
        }
        if (r.right > right + 1) out.push(`${el.className} right=${Math.round(r.right)} > ${Math.round(right)}`);
    }
    return out;
}"""


def test_primary_actions_need_no_sideways_scroll(sized_page, voila_url):
    page = sized_page
    open_app(page, link(voila_url, "exp=GSE71102"))
    page.locator(".rw-search input").fill("breast cancer")
    expect(page.locator(".rw-experiments-header")).to_contain_text("Matching samples")
    for column in ("platforms", "num_samples"):
        header = page.locator(f".rw-experiments-table th.rw-col-{column}")
        expect(header).to_have_count(1)
        assert page.evaluate(FITS, f".rw-experiments-table th.rw-col-{column}") == [], column
    tick(page, "experiments", "GSE71102")
    expect(page.locator(".rw-samples-page-label")).to_contain_text("(16 rows)")
    for column in ("refinebio_sex", "refinebio_disease"):
        assert page.evaluate(FITS, f".rw-samples-table th.rw-col-{column}") == [], column
    # "Add to dataset" waits for ticked samples
    expect(page.locator(".rw-add-to-dataset")).to_be_disabled()
    page.locator(".rw-select-all").click()
    expect(page.locator(".rw-add-to-dataset")).to_be_enabled()
    tab(page, "My dataset")
    expect(page.locator(".rw-cart-remove")).to_have_count(1)
    assert page.evaluate(FITS, ".rw-cart-remove") == []
    # "Aggregate by" is in line with its buttons
    label = page.locator(".rw-aggregate .widget-label").bounding_box()
    button = page.locator(".rw-aggregate button").first.bounding_box()
    assert abs((label["y"] + label["height"] / 2) - (button["y"] + button["height"] / 2)) < 4
    assert label["x"] + label["width"] <= button["x"]
    if page.width == "800":
        DOCS.mkdir(exist_ok=True)
        tab(page, "Choose samples")
        page.set_viewport_size({"width": 800, "height": 2000})
        page.screenshot(path=str(DOCS / "app-800-choose.png"), full_page=True)


def test_a_bad_source_page_leads_back_to_the_app(page, voila_url):
    page.goto(link(voila_url, "source=nope.zip&exp=GSE71102"))
    expect(page.locator(".rw-error")).to_contain_text(
        "source='nope.zip' in the URL does not exist in the app's folder"
    )
    page.locator("a.rw-app-link").click()
    page.locator(".rw-search input").wait_for()
    assert "source=" not in page.url and "exp=GSE71102" in page.url
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("(24)")


def test_five_visitors_in_a_row_each_get_a_page(browser, voila_url):
    """Five visitors, one after the other, each with a fresh browser: the time until the page
    shows its first control, printed and kept in test-artifacts/visitors.json (measured, never
    asserted: the numbers depend on the machine)."""
    import json
    import time

    from .conftest import ARTIFACTS

    loads = []
    for visitor in range(6):  # the first comes while the app is starting: not counted
        context = browser.new_context(viewport=VIEWPORTS["1280"])
        try:
            page = context.new_page()
            page.set_default_timeout(120_000)
            start = time.perf_counter()
            page.goto(voila_url)
            page.locator(".rw-search input").wait_for()
            if visitor:
                loads.append(time.perf_counter() - start)
            expect(page.locator(".rw-experiments-row").first).to_be_visible()  # a working app
            page.close(run_before_unload=True)  # the visitor leaves: the page's kernel ends
        finally:
            context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "visitors.json").write_text(json.dumps(loads))
    print("\npage loads of five visitors in a row (s): " + ", ".join(f"{t:.2f}" for t in loads))
    assert len(loads) == 5
