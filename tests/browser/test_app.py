"""The Voila app in a real browser: select, build, download; single cells; an error path.

Expected shapes come from the core API on the same demo catalog, so the page and the library must
agree. Waits are on widget selectors and texts, never on sleeps.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

import refinewidgets as rw

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def demo():
    return rw.open_catalog()


def open_app(page, url):
    page.goto(url)
    page.locator(".rw-search input").wait_for()


def tick(page, kind, accession):
    """Tick a row's box and wait until the kernel has it. A click that lands while the
    kernel is still rendering the page's first state can be undone by that render (seen once
    in CI right after the page opened): then the box is clicked again, after 3 s."""
    box = page.locator(f".rw-{kind}-checkbox", has_text=accession).locator("input")
    for _ in range(3):
        if box.is_checked():
            break
        box.click()
        try:
            expect(box).to_be_checked(timeout=3000)
            break
        except AssertionError:
            continue
    expect(box).to_be_checked()


def wait_for_build(page):
    """Wait until the build started by "Build" has ended and its results are on the page (the
    build runs in the kernel's background thread; the progress bar says "done in" then)."""
    expect(page.locator(".rw-progress-label")).to_contain_text("done in", timeout=120_000)


def tab(page, title):
    page.locator(".lm-TabBar-tab", has_text=title).first.click()


def test_select_two_experiments_build_by_species_and_download(page, voila_url, demo, tmp_path):
    open_app(page, voila_url)
    page.locator(".rw-search input").fill("breast")
    rows = page.locator(".rw-experiments-row")
    expect(rows.filter(has_text="GSE71102")).to_have_count(1)
    expect(rows.filter(has_text="GSE84422")).to_have_count(0)  # brain: filtered out by the search
    tick(page, "experiments", "GSE71102")
    tick(page, "experiments", "SRP091833")
    # the sample picker lists both experiments' samples; take all but one
    n = len(demo.experiment_samples("GSE71102")) + len(demo.experiment_samples("SRP091833"))
    expect(page.locator(".rw-samples-page-label")).to_contain_text(f"({n} rows)")
    page.locator(".rw-select-all").click()
    expect(page.locator(".rw-selection-count")).to_have_text(f"{n} selected")
    dropped = demo.experiment_samples("GSE71102")[0]
    box = page.locator(".rw-samples-checkbox", has_text=dropped).locator("input")
    expect(box).to_be_checked()
    box.uncheck()
    expect(page.locator(".rw-selection-count")).to_have_text(f"{n - 1} selected")
    page.locator(".rw-add-to-dataset").click()
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text(f"({n - 1})")
    tab(page, "My dataset")
    page.locator(".rw-aggregate button", has_text="Species").click()
    page.locator(".rw-transformation select").select_option(label="Z-score")
    page.locator(".rw-build").click()

    data = {
        "GSE71102": [s for s in demo.experiment_samples("GSE71102") if s != dropped],
        "SRP091833": ["ALL"],
    }
    expected = rw.build(rw.Dataset(data, aggregate_by="SPECIES", scale_by="STANDARD"), demo)[
        "HOMO_SAPIENS"
    ]
    wait_for_build(page)
    summary = page.locator(".rw-result-summary")
    expect(summary).to_contain_text(
        f"Homo sapiens (HOMO_SAPIENS): {expected.n_obs:,} samples × {expected.n_vars:,} genes"
    )
    expect(summary).to_contain_text("Z-score")
    page.locator(".rw-plot-pca .rw-plot-img").wait_for()
    page.set_viewport_size({"width": 1300, "height": 2300})  # the whole results view
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-built.png"), full_page=True)

    link = page.locator(".rw-download a.rw-download-link")
    href = link.get_attribute("href")
    assert href.startswith("/refinewidgets/download/") and href.endswith(".zip")  # a real file
    with page.expect_download() as info:
        link.click()
    path = tmp_path / "download.zip"
    info.value.save_as(path)
    # the file is served to the page's session only: without the token, the login page
    import urllib.request
    from urllib.parse import urljoin

    with urllib.request.urlopen(urljoin(voila_url, href), timeout=60) as anonymous:
        assert "/login" in anonymous.url and not anonymous.read().startswith(b"PK")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [
            "README.md",
            "LICENSE.TXT",
            "aggregated_metadata.json",
            "HOMO_SAPIENS/HOMO_SAPIENS.tsv",
            "HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv",
            "HOMO_SAPIENS/metadata_HOMO_SAPIENS.json",
        ]
        header = zf.read("HOMO_SAPIENS/HOMO_SAPIENS.tsv").split(b"\n", 1)[0].decode().split("\t")
        meta = json.loads(zf.read("aggregated_metadata.json"))
        matrix_rows = io.BytesIO(zf.read("HOMO_SAPIENS/HOMO_SAPIENS.tsv")).read().count(b"\n") - 1
    assert header[0] == "Gene" and header[1:] == list(expected.obs_names)
    assert matrix_rows == expected.n_vars
    assert meta["aggregate_by"] == "SPECIES" and meta["scale_by"] == "STANDARD"
    assert dropped not in meta["samples"]


def test_single_cell_selection_with_cell_type_filter_and_pseudobulk(page, voila_url, demo):
    open_app(page, voila_url)
    page.locator(".rw-search input").fill("ERP900101")
    expect(page.locator(".rw-experiments-row")).to_have_count(1)
    tick(page, "experiments", "ERP900101")
    libraries = demo.experiment_samples("ERP900101")
    expect(page.locator(".rw-samples-page-label")).to_contain_text(f"({len(libraries)} rows)")
    page.locator(".rw-select-all").click()
    expect(page.locator(".rw-selection-count")).to_have_text(f"{len(libraries)} selected")
    page.locator(".rw-add-to-dataset").click()
    expect(page.locator(".lm-TabBar-tab", has_text="My dataset")).to_contain_text(
        f"({len(libraries)})"
    )
    tab(page, "My dataset")
    options = page.locator(".rw-single-cell-options")
    expect(options).to_be_visible()
    page.locator(".rw-cell-filter-cell-type select").select_option(["B cell"])
    page.locator(".rw-pseudobulk select").select_option(label="Per library")
    page.locator(".rw-build").click()
    wait_for_build(page)

    expected = rw.build(
        rw.Dataset(
            {"ERP900101": ["ALL"]}, pseudobulk="sample", cell_filter={"cell_type": ["B cell"]}
        ),
        demo,
    )["ERP900101"]
    summary = page.locator(".rw-result-summary")
    expect(summary).to_contain_text(
        f"ERP900101: {expected.n_obs:,} samples × {expected.n_vars:,} genes"
    )
    preview = page.locator(".rw-preview")
    for library in expected.obs_names:
        expect(preview).to_contain_text(library)


def test_building_with_nothing_selected_shows_the_message(page, voila_url):
    open_app(page, voila_url)
    tab(page, "My dataset")
    page.locator(".rw-build").click()
    status = page.locator(".rw-status")
    expect(status).to_contain_text("Nothing selected")
    expect(page.locator(".rw-status .rw-error, .rw-status.rw-error")).to_have_count(1)


def build_one_experiment(page, accession):
    """Tick one experiment, take all its samples, build with the default options."""
    page.locator(".rw-search input").fill(accession)
    expect(page.locator(".rw-experiments-row")).to_have_count(1)
    tick(page, "experiments", accession)
    page.locator(".rw-select-all").click()
    page.locator(".rw-add-to-dataset").click()
    tab(page, "My dataset")
    page.locator(".rw-build").click()
    wait_for_build(page)
    expect(page.locator(".rw-result-summary")).to_contain_text(f"{accession}:")


def test_save_writes_a_name_inside_the_output_folder_only(page, voila_server, demo):
    from refinewidgets.app import app_notebook

    open_app(page, voila_server.url)
    build_one_experiment(page, "SRP091833")
    folder = voila_server.cwd.resolve()
    expect(page.locator(".rw-save-folder")).to_contain_text(str(folder))
    before = set(folder.iterdir())
    name = page.locator(".rw-save-path input")
    status = page.locator(".rw-save-status")

    name.fill("../x.zip")
    page.locator(".rw-save").click()
    expect(status).to_contain_text("'../x.zip' is not a file name")
    expect(page.locator(".rw-save-status.rw-error")).to_have_count(1)
    assert not (folder.parent / "x.zip").exists() and set(folder.iterdir()) == before

    name.fill("mine.zip")
    page.locator(".rw-save").click()
    expect(status).to_contain_text(f"Saved {folder / 'mine.zip'}")
    assert set(folder.iterdir()) - before == {folder / "mine.zip"}
    assert not (app_notebook().parent / "mine.zip").exists()  # not the kernel's folder
    expected = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), demo)["SRP091833"]
    with zipfile.ZipFile(folder / "mine.zip") as zf:
        header = zf.read("SRP091833/SRP091833.tsv").split(b"\n", 1)[0].decode().split("\t")
    assert header[1:] == list(expected.obs_names)


def test_closing_the_page_shuts_its_kernel_down(browser, voila_server):
    """The page runs on a kernel of the app's ready pool (a new one refills the pool); closing
    the page ends that kernel, and only that one."""
    from .server import alive, cmdline, wait_for

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        open_app(page, voila_server.url)
        kernel_id = page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
        )
        assert re.fullmatch(r"[0-9a-f-]{36}", kernel_id), kernel_id
        (kernel,) = wait_for(
            lambda: [p for p in voila_server.kernels() if f"kernel-{kernel_id}" in cmdline(p)],
            60,
            f"the process of kernel {kernel_id}",
        )
        others = set(voila_server.kernels()) - {kernel}
        page.close(run_before_unload=True)  # Voila's beforeunload posts /voila/api/shutdown/<id>
        wait_for(lambda: not alive(kernel), 30, f"kernel process {kernel} to end")
        assert others <= set(voila_server.kernels())  # the pool's kernels live on
    finally:
        context.close()
