"""The DatasetBuilder in JupyterLab 4, light and dark, with the file browser open beside it.

A real ``jupyter lab`` server (its own settings, workspaces and runtime folders, a token) serves a
notebook that shows the builder with a dataset; the browser runs the cell, builds, and checks that
nothing is clipped, that axe-core finds no critical or serious issue in the builder, and that in
the dark theme the text and the plots are light on dark. Skipped when JupyterLab is not installed
(it is not a dependency of the package, only of these tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from refinewidgets.app import free_port

from .axe import assert_no_serious_violations
from .conftest import ARTIFACTS
from .server import wait_for
from .test_app_flows import CLIPPED

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab")
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "builder",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": [
                "import refinewidgets as rw\n",
                "builder = rw.DatasetBuilder()\n",
                'builder.restore(rw.Dataset({"SRP091833": ["ALL"], "GSE71102": ["ALL"]}, '
                'aggregate_by="SPECIES"))\n',
                "builder",
            ],
        }
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@pytest.fixture(scope="module", params=list(THEMES))
def lab(request, tmp_path_factory):
    """``jupyter lab`` on a free port, in the given theme; yields (url of the notebook, theme)."""
    root = tmp_path_factory.mktemp("lab")
    (root / "builder.ipynb").write_text(json.dumps(NOTEBOOK))
    settings = root.parent / f"{root.name}-settings"
    theme_file = settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    theme_file.parent.mkdir(parents=True)
    theme_file.write_text(json.dumps({"theme": THEMES[request.param]}))
    port, token = free_port(), "rw-lab-test-token"
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(root.parent / f"{root.name}-workspaces"),
        JUPYTER_RUNTIME_DIR=str(root.parent / f"{root.name}-runtime"),
    )
    log = open(root.parent / f"{root.name}.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--allow-root",  # CI containers run as root
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    try:
        log_path = Path(log.name)
        wait_for(
            lambda: proc.poll() is not None or f":{port}/lab" in log_path.read_text(),
            120,
            "jupyter lab to start",
        )
        assert proc.poll() is None, log_path.read_text()
        yield f"http://127.0.0.1:{port}/lab/tree/builder.ipynb?token={token}", request.param
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_first_cell(page) -> None:
    """Run the notebook's cell. Just after the page opens, JupyterLab can drop an execution
    request while its kernel connection settles (the prompt stays ``[ ]``): then ask again."""
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    prompt = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt")
    for attempt in range(3):
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
        page.keyboard.press("Control+Enter")  # run, stay on the cell
        try:
            expect(prompt).not_to_have_text(re.compile(r"^\[\s*\]:$"), timeout=20_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def test_the_builder_in_jupyterlab_with_the_sidebar_open(browser, lab):
    url, theme = lab
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        assert page.evaluate("document.body.dataset.jpThemeLight") == str(theme == "light").lower()
        # the file browser is open on the left: the notebook has what is left of 1280 px
        expect(page.locator(".jp-FileBrowser")).to_be_visible()
        run_first_cell(page)
        builder = page.locator(".rw-builder")
        try:
            builder.wait_for()
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{theme}-failed.png"))
            raise
        page.locator(".rw-builder .lm-TabBar-tab", has_text="My dataset").first.click()
        expect(page.locator(".rw-cart-row")).to_have_count(2)
        page.locator(".rw-build").click()
        expect(page.locator(".rw-progress-label")).to_contain_text("done in", timeout=120_000)
        page.locator(".rw-plot-pca .rw-plot-img svg").wait_for()

        output = page.locator(".jp-OutputArea-output").first.bounding_box()
        found = page.evaluate(
            CLIPPED.replace("window.innerWidth", str(int(output["x"] + output["width"])))
        )
        assert not found["out"], f"clipped in JupyterLab ({theme}): {found}"
        assert_no_serious_violations(page, context=".rw-builder")

        # text and plot ink follow the theme: light on dark, dark on light
        ink = page.evaluate(
            """() => {
                const lum = c => {
                    const [r, g, b] = c.match(/[\\d.]+/g).map(Number);
                    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
                };
                const text = lum(getComputedStyle(document.querySelector('.rw-result-summary')).color);
                const plot = lum(getComputedStyle(document.querySelector('.rw-plot-pca svg text')).fill);
                return {text, plot};
            }"""
        )
        if theme == "dark":
            assert ink["text"] > 0.6 and ink["plot"] > 0.6, ink
        else:
            assert ink["text"] < 0.4 and ink["plot"] < 0.4, ink
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{theme}.png"))
    finally:
        context.close()


def test_the_lab_notebook_is_a_valid_notebook():
    import nbformat

    nbformat.validate(nbformat.from_dict(NOTEBOOK))
    assert re.search(r"rw\.DatasetBuilder\(\)", "".join(NOTEBOOK["cells"][0]["source"]))
