"""Shared fixtures: seeded synthetic compendia and catalogs; the bundled demo."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import pytest

import refinewidgets as rw
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing import single_cell_tables, synthetic_compendium

# the caches (parsed matrices, Bgee tarball indexes) of the whole run go to a folder of its own,
# never the user's ~/.cache; subprocesses (the CLI, Voila) inherit it
os.environ.setdefault("REFINEWIDGETS_CACHE", tempfile.mkdtemp(prefix="refinewidgets-test-cache-"))


@pytest.fixture
def comp():
    """Two species, microarray and RNA-seq, 4 experiments x 6 samples, 300 genes."""
    return synthetic_compendium(
        n_experiments=4,
        samples_per_experiment=6,
        n_genes=300,
        organisms=("HOMO_SAPIENS", "MUS_MUSCULUS"),
        seed=7,
    )


@pytest.fixture
def cat(comp):
    return rw.Catalog([InMemorySource.from_compendium(comp)])


@pytest.fixture
def sc_catalog():
    """A browse-only catalog with one single-cell and one bulk experiment."""
    return rw.Catalog.from_tables(*single_cell_tables())


@pytest.fixture(scope="session")
def demo_cat():
    return rw.open_catalog()


def experiments_of(comp, organism=None, technology=None):
    return [
        acc
        for acc, rec in comp.experiments.items()
        if (organism is None or rec["organisms"] == [organism])
        and (technology is None or rec["technology"] == technology)
    ]


def bulk_ids(catalog):
    """The catalog's bulk (non single-cell) experiment accessions, in catalog order."""
    return [e for e in catalog.experiment_ids if not catalog.is_single_cell(e)]


KERNEL = "refinewidgets-test-python"


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernelspec running this interpreter, in a temporary JUPYTER_PATH (notebook tests)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "refinewidgets tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def pytest_collection_modifyitems(items):
    """Browser tests are slow tests too: ``pytest -m "not slow"`` is the fast layer."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
