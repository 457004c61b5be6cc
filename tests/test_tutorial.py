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
    assert "the covariate 'refinebio_disease' is empty for 6 sample(s)" in text
    assert "org.Hs.eg.db" in text  # the gene symbols' release, from the h5ad read back


def _requirement_names(extra: str, seen: set[str] | None = None) -> set[str]:
    """Distribution names installed by ``pip install ".[extra]"`` (core included), from pyproject."""
    import tomllib

    project = tomllib.loads((NOTEBOOKS.parent / "pyproject.toml").read_text())["project"]
    seen = set() if seen is None else seen
    names = {_dist_name(r) for r in project["dependencies"]}
    for req in project["optional-dependencies"][extra]:
        name = _dist_name(req)
        if name == "refinewidgets":
            for inner in req.split("[", 1)[1].rstrip("]").split(","):
                if inner not in seen:
                    seen.add(inner)
                    names |= _requirement_names(inner.strip(), seen)
        else:
            names.add(name)
    return names


def _dist_name(requirement: str) -> str:
    import re

    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_tutorial_imports_are_installed_by_the_extra_it_names():
    nb = nbformat.read(NOTEBOOKS / "tutorial.ipynb", as_version=4)
    assert 'pip install ".[tutorial]"' in nb.cells[0].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imported = set()
    for line in code.splitlines():
        words = line.split()
        if words[:1] in (["import"], ["from"]):
            imported.add(words[1].split(".")[0])
    third_party = imported - {"pathlib", "tempfile", "zipfile", "json", "refinewidgets"}
    dists = third_party  # the tutorial's modules are named as their distributions
    installed = _requirement_names("tutorial")
    assert dists <= installed, f"the tutorial imports {sorted(dists - installed)} beyond its extra"
    assert "scanpy" in dists  # the check above sees the notebook's imports


def test_tutorial_search_keeps_breast_samples_only():
    import refinewidgets as rw

    nb = nbformat.read(NOTEBOOKS / "tutorial.ipynb", as_version=4)
    line = next(
        ln for c in nb.cells for ln in c.source.splitlines() if ln.startswith("hits = cat.search(")
    )
    namespace = {"cat": rw.open_catalog()}
    exec(line, namespace)
    hits = namespace["hits"]
    assert set(hits["refinebio_specimen_part"]) == {"breast"}
    assert len(hits) == 50
