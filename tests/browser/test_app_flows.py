"""The app's flows in a real browser, at 1280 and 800 px: the dataset in the address (reload, a
copied link, a damaged link), undo of Clear all, an out-of-date result, Cancel, a download checked
on disk, nothing clipped, axe-core (light and dark themes); screenshots and timings for docs/.

Expected values come from the core API on the same data. Waits are on widget selectors and
texts, never on sleeps.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw

from .axe import assert_buttons_readable, assert_no_serious_violations, assert_page_colours
from .conftest import ARTIFACTS
from .test_app import open_app, tab, tick, wait_for_build

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

VIEWPORTS = {"1280": {"width": 1280, "height": 900}, "800": {"width": 800, "height": 900}}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def demo():
    return rw.open_catalog()


@pytest.fixture(params=list(VIEWPORTS))
def sized_page(browser, request):
    """A page at 1280 px, then at 800 px wide."""
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORTS[request.param])
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def link(voila_url: str, query: str) -> str:
    return f"{voila_url}&{query}"


def add_whole(page, accession: str) -> None:
    """Search for one experiment, tick it, add it whole."""
    page.locator(".rw-search input").fill(accession)
    tick(page, "experiments", accession)
    page.locator(".rw-add-experiments").click()
    # the cart is drawn by the kernel: on a loaded machine that takes more than 5 s
    expect(page.locator(".rw-cart-row", has_text=accession)).to_have_count(1, timeout=30_000)


def query_of(page) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(page.url).query)


def build_and_wait(page) -> None:
    tab(page, "My dataset")
    page.locator(".rw-build").click()
    wait_for_build(page)
    expect(page.locator(".rw-result-summary")).not_to_be_empty()


# -- the dataset in the address ---------------------------------------------------------------
def test_reload_and_a_copied_link_restore_the_dataset(sized_page, voila_url, browser):
    page = sized_page
    open_app(page, voila_url)
    add_whole(page, "SRP091833")
    tab(page, "My dataset")
    page.locator(".rw-aggregate button", has_text="Species").click()
    page.locator(".rw-transformation select").select_option(label="Z-score")
    expect(page).to_have_url(re.compile(r"exp=SRP091833&aggregate_by=SPECIES&scale_by=STANDARD"))
    assert ("token", voila_url.split("token=")[1]) in query_of(page)  # the token stays

    def restored(p):
        expect(p.locator(".rw-status")).to_contain_text(
            "Dataset restored from the link: 1 experiment(s), 20 samples."
        )
        expect(p.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("(20)")
        tab(p, "My dataset")
        expect(p.locator(".rw-cart-row")).to_have_count(1)
        expect(p.locator(".rw-cart-row")).to_contain_text("SRP091833")
        expect(p.locator(".rw-aggregate button", has_text="Species")).to_have_class(
            re.compile("mod-active")
        )
        expect(p.locator(".rw-transformation select option:checked")).to_have_text("Z-score")

    page.reload()
    page.locator(".rw-search input").wait_for()
    restored(page)

    copied = page.url  # a link pasted into another browser (no cookies but the token's)
    other = browser.new_context(viewport=VIEWPORTS["1280"])
    try:
        second = other.new_page()
        second.set_default_timeout(120_000)
        open_app(second, copied)
        restored(second)
    finally:
        other.close()


def test_a_damaged_link_is_a_message_not_a_crash(page, voila_url):
    open_app(page, link(voila_url, "exp=..%2F..%2Fetc&scale_by=ROBUST"))
    status = page.locator(".rw-status")
    expect(status).to_contain_text("The link's dataset was not restored")
    expect(status).to_contain_text("'../../etc', which is not an accession")
    expect(page.locator(".rw-status.rw-error")).to_have_count(1)
    # the damaged part leaves the address; the app works on
    expect(page).not_to_have_url(re.compile("exp="))
    add_whole(page, "GSE75037")
    expect(page).to_have_url(re.compile("exp=GSE75037"))


# -- a dataset you can trust ------------------------------------------------------------------
def test_clear_all_can_be_undone(sized_page, voila_url, demo):
    page = sized_page
    two = demo.experiment_samples("GSE71102")[:2]
    open_app(page, link(voila_url, f"exp=SRP091833&exp=GSE71102:{','.join(two)}"))
    tab(page, "My dataset")
    expect(page.locator(".rw-cart-row")).to_have_count(2)
    undo = page.locator(".rw-cart-undo")
    expect(undo).to_be_disabled()
    page.locator(".rw-cart-clear").click()
    expect(page.locator(".rw-cart-summary")).to_contain_text("Empty")
    expect(page.locator(".rw-cart-row")).to_have_count(0)
    expect(page.locator(".rw-cart-status")).to_contain_text("Undo puts it back")
    expect(page).not_to_have_url(re.compile("exp="))
    expect(undo).to_be_enabled()
    undo.click()
    expect(page.locator(".rw-cart-row")).to_have_count(2)
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("(22)")
    expect(page).to_have_url(re.compile(r"exp=SRP091833&exp=GSE71102%3A" + "%2C".join(two)))
    expect(undo).to_be_disabled()


def test_a_changed_option_marks_the_result_out_of_date(sized_page, voila_url):
    page = sized_page
    open_app(page, link(voila_url, "exp=GSE75037"))
    build_and_wait(page)
    download = page.locator(".rw-download a.rw-download-link")
    expect(download).to_have_count(1)
    expect(page.locator(".rw-prepare-download")).to_be_hidden()  # the link took its place
    expect(page.locator(".rw-save")).to_be_enabled()
    expect(page.locator(".rw-stale")).to_have_text("")

    tab(page, "My dataset")
    page.locator(".rw-transformation select").select_option(label="Robust")
    tab(page, "Results")
    expect(page.locator(".rw-stale")).to_contain_text("built from an earlier dataset")
    expect(page.locator(".rw-save")).to_be_disabled()
    expect(page.locator(".rw-prepare-download")).to_be_disabled()
    expect(download).to_have_count(0)
    expect(page.locator(".rw-save-status")).to_contain_text("build again to save it")

    build_and_wait(page)  # rebuilt: current again
    expect(page.locator(".rw-stale")).to_have_text("")
    expect(page.locator(".rw-result-summary")).to_contain_text("Robust")
    expect(page.locator(".rw-save")).to_be_enabled()
    expect(download).to_have_count(1)


@pytest.fixture(scope="module")
def big_source(voila_server):
    """A refine.bio zip of 12 RNA-seq experiments x 60 samples x 12,000 genes in the app's
    folder: a build of all of it takes a few seconds, time enough to press Cancel."""
    from refinewidgets.core.sources import InMemorySource
    from refinewidgets.testing import synthetic_compendium

    path = voila_server.cwd / "sources" / "big.zip"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        comp = synthetic_compendium(
            n_experiments=12,
            samples_per_experiment=60,
            n_genes=12_000,
            technologies=("RNA-SEQ",),
            seed=11,
        )
        cat = rw.Catalog([InMemorySource.from_compendium(comp)])
        data = {e: ["ALL"] for e in cat.experiment_ids}
        rw.build(rw.Dataset(data, quantile_normalize=False), cat).write_zip(path)
    return "sources/big.zip", sorted(rw.open_catalog(path).experiment_ids)


def test_cancel_stops_the_build_and_keeps_nothing(page, voila_url, big_source):
    source, experiments = big_source
    query = f"source={source}&" + "&".join(f"exp={e}" for e in experiments)
    open_app(page, link(voila_url, query))
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text(
        f"({len(experiments) * 60:,})"
    )
    tab(page, "My dataset")
    cancel = page.locator(".rw-cancel")
    expect(cancel).to_be_disabled()
    page.locator(".rw-build").click()
    expect(cancel).to_be_enabled()
    cancel.click()
    status = page.locator(".rw-status")
    expect(status).to_contain_text("The build was cancelled: Cancelled after")
    expect(status).to_contain_text("nothing was kept")
    steps = re.search(r"after (\d+) of (\d+) steps", status.inner_text())
    assert steps and int(steps[1]) < int(steps[2]), status.inner_text()  # stopped midway
    expect(page.locator(".rw-progress-label")).to_have_text("cancelled")
    expect(page.locator(".rw-build")).to_be_enabled()
    expect(cancel).to_be_disabled()
    tab(page, "Results")
    expect(page.locator(".rw-result-summary")).to_have_text("No result yet: build a dataset.")
    expect(page.locator(".rw-save")).to_be_disabled()


# -- a download checked on disk, from a link, at 800 px -----------------------------------------
def test_a_linked_dataset_builds_and_downloads_at_800(browser, voila_url, demo, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORTS["800"])
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        samples = demo.experiment_samples("GSE75037")[:6]
        open_app(page, link(voila_url, f"exp=GSE75037:{','.join(samples)}&scale_by=MINMAX"))
        build_and_wait(page)
        anchor = page.locator(".rw-download a.rw-download-link")
        with page.expect_download() as info:
            anchor.click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
    finally:
        context.close()
    expected = rw.build(rw.Dataset({"GSE75037": samples}, scale_by="MINMAX"), demo)["GSE75037"]
    with zipfile.ZipFile(path) as zf:
        with zf.open("GSE75037/GSE75037.tsv") as fh:
            matrix = pd.read_csv(fh, sep="\t", index_col=0)
        meta = json.loads(zf.read("aggregated_metadata.json"))
    assert list(matrix.columns) == samples and list(matrix.columns) == list(expected.obs_names)
    assert list(matrix.index) == list(expected.var_names)
    assert np.allclose(matrix.to_numpy(), expected.X.T, atol=1e-5, equal_nan=True)
    assert meta["scale_by"] == "MINMAX" and set(meta["samples"]) == set(samples)


# -- layout and accessibility -----------------------------------------------------------------
CLIPPED = """() => {
    const root = document.querySelector('.rw-builder');
    const limit = Math.min(window.innerWidth, document.documentElement.clientWidth);
    const scrolls = el => {
        for (let a = el.parentElement; a && a !== root; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX;
            if ((o === 'auto' || o === 'scroll') && a.scrollWidth > a.clientWidth) return true;
        }
        return false;
    };
    const out = [];
    for (const el of root.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || r.right <= limit + 1) continue;
        if (scrolls(el)) continue;  // inside a box that scrolls sideways: reachable
        out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} right=${Math.round(r.right)}`);
    }
    return {limit, page: document.documentElement.scrollWidth, out: out.slice(0, 15)};
}"""


def test_nothing_is_clipped_at_800(voila_url, browser):
    context = browser.new_context(viewport=VIEWPORTS["800"])
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        open_app(page, link(voila_url, "exp=SRP091833&exp=GSE71102&aggregate_by=SPECIES"))
        for name in ("Choose samples", "My dataset"):
            tab(page, name)
            found = page.evaluate(CLIPPED)
            assert not found["out"], f"{name} at 800 px: {found}"
        build_and_wait(page)
        page.locator(".rw-plot-pca .rw-plot-img").wait_for()
        found = page.evaluate(CLIPPED)
        assert not found["out"], f"Results at 800 px: {found}"
    finally:
        context.close()


# "browser-dark": the browser prefers dark (Playwright's emulation of prefers-color-scheme) and
# the page asks for no theme: the app (--theme auto, the default) follows the browser.
@pytest.mark.parametrize("theme", ["light", "dark", "browser-dark"])
def test_axe_finds_no_serious_issue_after_a_build(browser, voila_url, theme):
    scheme = "dark" if theme == "browser-dark" else "light"
    context = browser.new_context(viewport=VIEWPORTS["1280"], color_scheme=scheme)
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        query = "exp=ERP900101&exp=SRP091833&pseudobulk=sample" + (
            "&theme=dark" if theme == "dark" else ""
        )
        open_app(page, link(voila_url, query))
        assert page.evaluate("document.body.dataset.jpThemeLight") == (
            "true" if theme == "light" else "false"
        )
        assert_page_colours(page, dark=theme != "light")
        assert_no_serious_violations(page)  # the first tab
        tab(page, "My dataset")
        buttons = assert_buttons_readable(page)
        assert any("mod-success" in b["cls"] for b in buttons), buttons  # the check saw the button
        build_and_wait(page)
        page.locator(".rw-plot-pca .rw-plot-img").wait_for()
        assert_no_serious_violations(page)  # the results, a plot open
        tab(page, "My dataset")
        assert_no_serious_violations(page)
    finally:
        context.close()


def test_a_theme_asked_for_wins_over_the_browsers_preference(browser, voila_url):
    """``?theme=light`` stays light in a browser preferring dark; the page follows the
    preference when it changes (no reload)."""
    context = browser.new_context(viewport=VIEWPORTS["1280"], color_scheme="dark")
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        open_app(page, link(voila_url, "theme=light"))
        assert page.evaluate("document.body.dataset.jpThemeLight") == "true"
        assert_page_colours(page, dark=False)
        open_app(page, voila_url)  # no theme asked for: the browser's
        assert_page_colours(page, dark=True)
        page.emulate_media(color_scheme="light")  # the preference changes while the page is open
        expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true")
        assert_page_colours(page, dark=False)
    finally:
        context.close()


@pytest.mark.parametrize("query", ["", "theme=light"])
def test_the_page_asks_nothing_of_other_sites_and_its_icons_show(browser, voila_url, query):
    """Voila's template links Font Awesome on a public CDN: the app strips it (a third party
    saw every visitor; offline, the page waited for it to fail). The icons still show: they come
    with Voila's own scripts."""
    context = browser.new_context(viewport=VIEWPORTS["1280"])
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        open_app(page, link(voila_url, query) if query else voila_url)
        root = voila_url.split("?")[0]
        outside = [url for url in asked if not url.removeprefix("blob:").startswith(root)]
        assert asked and not outside, outside  # blob: the address writer's module, made here
        icon = page.locator(".rw-add-experiments i").first
        expect(icon).to_be_visible()
        font = icon.evaluate("i => getComputedStyle(i, '::before').fontFamily")
        assert "Font Awesome" in font or "FontAwesome" in font, font
        assert icon.evaluate("i => i.getBoundingClientRect().width") > 4  # a glyph is drawn
    finally:
        context.close()


# -- screenshots and timings for docs/ --------------------------------------------------------
def _timed(action, wait) -> float:
    start = time.perf_counter()
    action()
    wait()
    return time.perf_counter() - start


def test_screenshots_and_timings(browser, voila_server, capsys):
    """Saves docs/app-1280.png, docs/app-800.png, docs/app-dark.png; prints the time of a page
    load (first widget visible, a ready kernel), a search, a build and a plot change."""
    url = voila_server.url
    timings: dict[str, float] = {}
    context = browser.new_context(viewport=VIEWPORTS["1280"])
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        loads = []
        for _ in range(3):  # the pool refills between loads; the best shows a ready kernel
            loads.append(
                _timed(lambda: page.goto(url), lambda: page.locator(".rw-search input").wait_for())
            )
        timings["page load (best of 3)"] = min(loads)
        timings["page load (worst of 3)"] = max(loads)
        timings["search 'breast cancer'"] = _timed(
            lambda: page.locator(".rw-search input").fill("breast cancer"),
            lambda: expect(page.locator(".rw-experiments-row").first).to_contain_text("GSE"),
        )
        tick(page, "experiments", "GSE71102")
        page.locator(".rw-add-experiments").click()
        add = page.locator(".rw-search input")
        add.fill("SRP091833")
        tick(page, "experiments", "SRP091833")
        page.locator(".rw-add-experiments").click()
        tab(page, "My dataset")
        page.locator(".rw-aggregate button", has_text="Species").click()
        timings["build (to results shown)"] = _timed(
            lambda: page.locator(".rw-build").click(),
            lambda: expect(page.locator(".rw-progress-label")).to_contain_text("done in"),
        )
        label = page.locator(".rw-progress-label").inner_text()
        page.locator(".rw-plot-pca .rw-plot-img").wait_for()
        before = page.locator(".rw-plot-pca").inner_html()
        timings["plot change (PCA colour)"] = _timed(
            lambda: page.locator(".rw-pca-color select").select_option("refinebio_disease"),
            lambda: expect(page.locator(".rw-plot-pca .rw-plot-img")).to_contain_text(
                "refinebio_disease"
            ),
        )
        assert page.locator(".rw-plot-pca").inner_html() != before
        DOCS.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 2000})
        page.screenshot(path=str(DOCS / "app-1280.png"), full_page=True)
        page.set_viewport_size({"width": 800, "height": 2200})
        page.screenshot(path=str(DOCS / "app-800.png"), full_page=True)
        dark = context.new_page()
        dark.set_default_timeout(120_000)
        dark.set_viewport_size({"width": 1280, "height": 2000})
        open_app(dark, f"{page.url}&theme=dark")
        build_and_wait(dark)
        dark.locator(".rw-plot-pca .rw-plot-img").wait_for()
        dark.screenshot(path=str(DOCS / "app-dark.png"), full_page=True)
    finally:
        context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2))
    with capsys.disabled():
        print("\napp timings (s): " + ", ".join(f"{k}: {v:.2f}" for k, v in timings.items()))
        print(f"progress label after the build: {label!r}")
    for name in ("app-1280.png", "app-800.png", "app-dark.png"):
        assert (DOCS / name).stat().st_size > 10_000
