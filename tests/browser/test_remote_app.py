"""refine.bio in the Voila app, in a real browser: search, add, build (fetching first), results;
then the service gone: the message, and the cache opened instead.

The app (``refinewidgets app``) is pointed at the local test server of
:mod:`refinewidgets.testing.fake_services` through the environment (``$REFINEWIDGETS_REFINEBIO_API``,
its own ``$REFINEWIDGETS_CACHE``, a token and an e-mail address); nothing reaches the internet.
Waits are on widget selectors and texts, never on sleeps.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import refinewidgets as rw
from refinewidgets.app import free_port
from refinewidgets.testing.fake_services import FakeServices, retitled, split_experiment_download

from .server import start_app
from .test_app import open_app, tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DATA = Path(__file__).resolve().parents[1] / "data" / "refinebio"
HOSTILE = "<img src=x onerror=alert(1)> kidney"


@pytest.fixture(scope="module")
def remote_app(tmp_path_factory):
    """The app over the demo, with refine.bio at a local server; one experiment (E-MTAB-4001)
    already in its download cache. Yields ``(app, fake server, cache folder)``."""
    base = tmp_path_factory.mktemp("remote-app")
    cache = base / "cache"
    experiments = split_experiment_download(DATA / "experiment_shuffled.zip")
    experiments["E-MTAB-4001"] = retitled(experiments["E-MTAB-4001"], "E-MTAB-4001", HOSTILE)
    fake = FakeServices(experiments=experiments, processing_polls=0).start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REFINEWIDGETS_CACHE", str(cache))
        env.setenv("REFINEWIDGETS_REFINEBIO_API", fake.api)
        env.setenv("REFINEBIO_CONFIG_FILE", str(base / "refinebio.yaml"))
        env.setenv("REFINEBIO_TOKEN", fake.activated_token())
        env.setenv("REFINEBIO_EMAIL", "someone@example.org")
        env.setenv("REFINEWIDGETS_HTTP_RETRIES", "1")
        env.setenv("REFINEWIDGETS_HTTP_BACKOFF", "0.01")
        rw.remote.refinebio.fetch(["E-MTAB-4001"], poll_interval=0.01)  # downloaded earlier
        workdir = base / "work"
        workdir.mkdir()
        app = start_app(workdir, base / "voila.log", "--port", str(free_port()), "--pool-size", "1")
    try:
        yield app, fake, cache
    finally:
        app.stop()
        fake.stop()


def choose_source(page, label):
    page.locator(".rw-source button", has_text=label).click()


def test_a_spinner_and_cancel_while_refinebio_is_asked(page, remote_app):
    app, fake, cache = remote_app
    fake.delay("/v1/search/", 20.0, times=1)  # the first search waits long
    open_app(page, app.url)
    choose_source(page, "refine.bio")
    spinner = page.locator(".rw-remote-spinner")
    expect(spinner).to_be_visible()
    expect(spinner).to_contain_text("Searching refine.bio...")
    expect(spinner.locator(".rw-spinner-ring")).to_be_visible()
    cancel = page.locator(".rw-remote-cancel")
    expect(cancel).to_be_visible()
    expect(cancel).to_be_enabled()
    # no results yet: nothing to page through
    expect(page.locator(".rw-remote-experiments-prev")).to_be_disabled()
    expect(page.locator(".rw-remote-experiments-next")).to_be_disabled()
    cancel.click()
    status = page.locator(".rw-remote-status")
    expect(status).to_contain_text("Cancelled: searching refine.bio stopped.")
    expect(spinner).to_be_hidden()
    expect(cancel).to_be_hidden()
    page.locator(".rw-remote-search-button").click()  # asked again: answered at once
    expect(status).to_contain_text("refine.bio has 2 matching experiment(s)")
    expect(page.locator(".rw-remote-experiments-row")).to_have_count(2)
    expect(spinner).to_be_hidden()


def test_search_refinebio_add_build_and_see_the_results(page, remote_app, demo_cat):
    app, fake, cache = remote_app
    created = len(fake.seen("POST", "/v1/dataset/"))
    downloads = len(fake.seen("GET", "/files/datasets/"))
    open_app(page, app.url)
    choose_source(page, "refine.bio")
    status = page.locator(".rw-remote-status")
    expect(status).to_contain_text("refine.bio has 2 matching experiment(s)")
    rows = page.locator(".rw-remote-experiments-row")
    expect(rows).to_have_count(2)
    # the title from the service is text on the page, never markup
    grid = page.locator(".rw-remote-experiments-grid")
    expect(grid).to_contain_text(HOSTILE)
    assert page.locator(".rw-remote-experiments-grid img").count() == 0
    # E-MTAB-4001 (the hostile title) is in the download cache already
    expect(page.locator(".rw-remote-experiments-cells", has_text="kidney")).to_contain_text(
        "downloaded"
    )
    page.locator(".rw-remote-search input").fill("GSE100001")
    page.locator(".rw-remote-search input").press("Enter")
    expect(status).to_contain_text("refine.bio has 1 matching experiment(s)")
    expect(rows).to_have_count(1)
    expect(page.locator(".rw-remote-facet-technology select")).to_contain_text(
        "microarray (4 samples)"
    )
    box = page.locator(".rw-remote-experiments-checkbox", has_text="GSE100001").locator("input")
    box.check()
    expect(box).to_be_checked()
    page.locator(".rw-remote-add").click()
    expect(status).to_contain_text("Added 1 experiment(s) from refine.bio")
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("+1 to fetch")
    # the experiment to fetch is in the page's address (a reload or a shared link keeps it)
    expect(page).to_have_url(re.compile(r"[?&]remote=refinebio%3AGSE100001(&|$)"))
    page.reload()
    page.locator(".rw-search input").wait_for()
    expect(page.locator(".rw-status")).to_contain_text(
        "1 experiment(s) to fetch from refine.bio (GSE100001)"
    )
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text("+1 to fetch")

    tab(page, "My dataset")
    expect(page.locator(".rw-cart-pending")).to_contain_text("to fetch from refine.bio")
    # restored from the link by accession only, it gets its title once refine.bio answers
    expect(page.locator(".rw-cart-pending")).to_contain_text("Lung transcriptomes of COPD patients")
    expect(page.locator(".rw-cart-pending")).to_contain_text("4 to fetch")
    page.locator(".rw-build").click()
    # fetching (refine.bio prepares, sends, is asked what it left out), then building
    expect(page.locator(".rw-status")).to_contain_text("Built 1 group(s)", timeout=120_000)
    summary = page.locator(".rw-result-summary")
    with warnings.catch_warnings():  # refine.bio listed a sample it could not process
        warnings.simplefilter("ignore", rw.MetadataMismatchWarning)
        (path,) = [
            p for p in rw.remote.cached(service="refinebio", cache_dir=cache) if "GSE" in p.name
        ]
        both = rw.Catalog([*demo_cat.sources, *rw.open_catalog(path).sources])
    expected = rw.build(rw.Dataset({"GSE100001": ["ALL"]}), both)["GSE100001"]
    expect(summary).to_contain_text(
        f"GSE100001: {expected.n_obs:,} samples × {expected.n_vars:,} genes"
    )
    assert len(fake.seen("POST", "/v1/dataset/")) == created + 1  # one dataset, one download
    assert len(fake.seen("GET", "/files/datasets/")) == downloads + 1
    expect(page.locator(".rw-cart-pending")).to_have_count(0)
    expect(page.locator(".rw-cart-row", has_text="GSE100001")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"[?&]exp=GSE100001(&|$)"))  # fetched: at hand now
    assert "remote=" not in page.url


def test_without_the_service_the_app_says_so_and_opens_the_cache(page, remote_app):
    app, fake, cache = remote_app
    fake.stop()  # refine.bio is gone: connection refused
    n = len(rw.remote.cached(service="refinebio", cache_dir=cache))
    open_app(page, app.url)
    choose_source(page, "refine.bio")
    status = page.locator(".rw-remote-status")
    expect(status).to_contain_text(
        "refine.bio cannot be reached from this computer. Searching refine.bio failed: check "
        "this computer's network connection and try again."
    )
    expect(status).to_contain_text(
        f'"Open downloaded files" opens the {n} file(s) from refine.bio already in the download '
        "cache."
    )
    expect(page.locator(".rw-remote-status.rw-error")).to_have_count(1)
    assert "REFINEWIDGETS" not in status.inner_text()
    # the client's own words are folded away under "Technical details"
    details = page.locator(".rw-remote-details")
    refused = details.get_by_text(re.compile("connection refused"))
    expect(details).to_be_visible()
    expect(refused).to_be_hidden()
    details.get_by_text("Technical details").click()
    expect(refused).to_be_visible()
    expect(refused).to_contain_text("$REFINEWIDGETS_REFINEBIO_API")
    expect(page.locator(".rw-remote-experiments-next")).to_be_disabled()
    expect(page.locator(".rw-remote-spinner")).to_be_hidden()
    page.locator(".rw-remote-open-cache").click()
    expect(status).to_contain_text(f"Opened {n} downloaded file(s) from refine.bio")
    choose_source(page, "This computer")
    page.locator(".rw-search input").fill("E-MTAB-4001")
    expect(page.locator(".rw-experiments-row", has_text="E-MTAB-4001")).to_have_count(1)
