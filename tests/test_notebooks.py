"""The notebooks run from top to bottom without an error (executed with nbclient).

The kernel is this interpreter: a kernelspec pointing at ``sys.executable`` is written to a
temporary ``JUPYTER_PATH``, so the test does not depend on which ``python3`` kernel the machine
has installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from refinewidgets.testing.notebooks import execute_notebook  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["widgets.ipynb"])
def test_notebook_runs_without_error(name, kernel_name, tmp_path):
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        f"{name} is stored with outputs; clear them before committing"
    )
    work = tmp_path / "run"
    work.mkdir()
    # raises, with the cell and traceback, on any error
    nb = execute_notebook(nb, kernel_name, work)
    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
    assert (work / "demo_dataset.zip").exists()
    widget_views = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert len(widget_views) >= 3  # the app, the results view, the browser
