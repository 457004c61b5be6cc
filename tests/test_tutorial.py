"""The tutorial notebook runs top to bottom on the demo (any error fails the test)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from refinewidgets.testing.notebooks import execute_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_tutorial_notebook_executes(tmp_path, kernel_name):
    nb = nbformat.read(NOTEBOOKS / "tutorial.ipynb", as_version=4)
    nb = execute_notebook(nb, kernel_name, tmp_path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "breast cancer" in text and "log1p CPM" in text
    assert "ds = rw.Dataset(" in text
    # the batch section prints what it measured, and the refusal of an empty covariate
    assert re.search(r"before: silhouette [-\d.]+, variance explained by the experiment", text)
    assert re.search(r"after: silhouette [-\d.]+, variance explained by the experiment", text)
    assert "the covariate 'refinebio_disease' is empty for 24 sample(s)" in text
    assert "org.Hs.eg.db" in text  # the gene symbols' release, from the h5ad read back
