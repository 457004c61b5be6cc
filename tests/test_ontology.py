"""Cell types and tissues match their ontology descendants (Cell Ontology, UBERON), from the
tables shipped with the package; ``exact=True`` keeps label-only matching."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.ontology import TermMatcher, normal_id
from refinewidgets.io.ontology_tables import load_ontology, term_matcher
from refinewidgets.testing.bgee_files import write_bgee_h5ad

# Known pairs (term, descendant), as the Cell Ontology and UBERON releases state them
# (is_a / part_of paths); and pairs that are not.
CL_PAIRS = [
    ("CL:0000084", "CL:0000624"),  # T cell > CD4-positive, alpha-beta T cell
    ("CL:0000084", "CL:0000625"),  # T cell > CD8-positive, alpha-beta T cell
    ("CL:0000084", "CL:0000815"),  # T cell > regulatory T cell
    ("CL:0000236", "CL:0000788"),  # B cell > naive B cell
    ("CL:0000236", "CL:0000787"),  # B cell > memory B cell
    ("CL:0000542", "CL:0000084"),  # lymphocyte > T cell
    ("CL:0000542", "CL:0000236"),  # lymphocyte > B cell
    ("CL:0000000", "CL:0000576"),  # cell > monocyte
]
CL_NOT = [
    ("CL:0000084", "CL:0000236"),  # T cell is not above B cell
    ("CL:0000236", "CL:0000624"),
    ("CL:0000624", "CL:0000084"),  # nor a child above its parent
    ("CL:0000542", "CL:0000576"),  # a monocyte is not a lymphocyte
]
UBERON_PAIRS = [
    ("UBERON:0002048", "UBERON:0002167"),  # lung > right lung
    ("UBERON:0002048", "UBERON:0002168"),  # lung > left lung
    ("UBERON:0000178", "UBERON:0013756"),  # blood > venous blood
]


def test_shipped_tables_record_their_release_and_hold_a_closed_graph():
    for name, size in (("CL", 3000), ("UBERON", 14000)):
        ontology = load_ontology(name)
        assert ontology.version.startswith("v20") and "cellxgene-ontology-guide" in ontology.version
        assert len(ontology.labels) > size
        parents = {p for ps in ontology.parents.values() for p in ps}
        assert parents <= set(ontology.labels)  # every parent is a term of the table
        path = resources.files("refinewidgets") / "data" / "ontology" / f"{name}.tsv.gz"
        with path.open("rb") as raw, gzip.open(raw, "rt") as f:
            assert f.readline() == f"# {name} {ontology.version}\n"


@pytest.mark.parametrize(("term", "child"), CL_PAIRS)
def test_known_cell_ontology_descendants(term, child):
    assert child in load_ontology("CL").descendants(term)


@pytest.mark.parametrize(("term", "other"), CL_NOT)
def test_unrelated_cell_types_are_not_descendants(term, other):
    assert other not in load_ontology("CL").descendants(term)


@pytest.mark.parametrize(("term", "child"), UBERON_PAIRS)
def test_known_uberon_descendants(term, child):
    assert child in load_ontology("UBERON").descendants(term)


def test_values_resolve_by_label_or_id_in_either_spelling():
    cl = load_ontology("CL")
    assert cl.resolve("T cell") == cl.resolve("t CELL") == ["CL:0000084"]
    assert cl.resolve("CL_0000084") == cl.resolve("CL:0000084") == ["CL:0000084"]
    assert cl.resolve("unknown") == [] and cl.resolve("B_naive") == []
    assert normal_id("UBERON_0002048") == "UBERON:0002048"


def test_matcher_keeps_descendants_and_labels_the_ontology_lacks():
    cells = pd.DataFrame(
        {
            "cell_type": pd.Categorical(
                ["T cell", "CD4-positive, alpha-beta T cell", "B cell", "unknown", "my T cells"]
            ),
            "cell_type_id": pd.Categorical(
                ["CL:0000084", "CL_0000624", "CL:0000236", "unknown", "CL:9999999"]
            ),
            "tissue": ["lung", "left lung", "blood", "venous blood", "spleen"],
            "tissue_id": [
                "UBERON:0002048",
                "UBERON:0002168",
                "UBERON:0000178",
                "UBERON:0013756",
                "x",
            ],
        }
    )
    terms = term_matcher()
    assert terms.mask(cells, "cell_type", ["T cell"]).tolist() == [1, 1, 0, 0, 0]
    assert terms.mask(cells, "cell_type", ["lymphocyte"]).tolist() == [1, 1, 1, 0, 0]
    assert terms.mask(cells, "cell_type_id", ["CL:0000084"]).tolist() == [1, 1, 0, 0, 0]
    assert terms.mask(cells, "cell_type", ["unknown", "my T cells"]).tolist() == [0, 0, 0, 1, 1]
    assert terms.mask(cells, "tissue", ["lung"]).tolist() == [1, 1, 0, 0, 0]
    assert terms.mask(cells, "tissue", ["blood"]).tolist() == [0, 0, 1, 1, 0]
    assert terms.mask(cells, "sex", ["male"]) is None  # not a term column
    assert TermMatcher({}).mask(cells, "cell_type", ["T cell"]) is None


# --- in a build -----------------------------------------------------------------------------

TYPES = ("T cell", "CD4-positive, alpha-beta T cell", "regulatory T cell", "B cell", "naive B cell")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    path = write_bgee_h5ad(
        tmp_path_factory.mktemp("onto") / "Homo_sapiens_ERP77_droplet_based.h5ad",
        variant="bgee15_2",
        experiment="ERP77",
        n_cells=300,
        n_genes=60,
        cell_types=TYPES,
        seed=11,
    )
    return rw.open_catalog(path)


def _build(catalog, cell_filter, **options):
    ds = rw.Dataset(
        {"ERP77": ["ALL"]}, quantile_normalize=False, cell_filter=cell_filter, **options
    )
    return rw.build(ds, catalog)["ERP77"]


@pytest.mark.parametrize(
    ("cell_filter", "kept", "exact_kept"),
    [
        ({"cell_type": ["T cell"]}, TYPES[:3], TYPES[:1]),
        ("cell_type == 'T cell'", TYPES[:3], TYPES[:1]),
        ("cell_type == 'CL:0000084'", TYPES[:3], None),  # by id: nothing has that label
        ({"cell_type": {"not_in": ["T cell"]}}, TYPES[3:], TYPES[1:]),
        (
            "cell_type not in ['B cell'] and cell_type != 'regulatory T cell'",
            TYPES[:2],
            (*TYPES[:2], "naive B cell"),  # by label, only "B cell" itself is dropped
        ),
        ({"cell_type": ["lymphocyte"]}, TYPES, None),
    ],
)
def test_a_term_keeps_its_descendants_and_exact_its_label(catalog, cell_filter, kept, exact_kept):
    cells = catalog.cells("ERP77")
    ids = {t: load_ontology("CL").resolve(t)[0] for t in TYPES}
    assert set(cells["cell_type_id"].astype(str)) == set(ids.values())  # the file's ids
    res = _build(catalog, cell_filter)
    expected = cells.index[cells["cell_type"].isin(kept)]
    assert sorted(res.obs_names) == sorted(expected)
    assert res.uns["refinewidgets"]["ontology"] == {
        "CL": load_ontology("CL").version,
        "UBERON": load_ontology("UBERON").version,
    }
    if exact_kept is None:
        with pytest.raises(rw.DatasetSpecError):
            _build(catalog, cell_filter, exact=True)
    else:
        exact = _build(catalog, cell_filter, exact=True)
        assert sorted(exact.obs_names) == sorted(cells.index[cells["cell_type"].isin(exact_kept)])
        assert "ontology" not in exact.uns["refinewidgets"]


def test_a_filter_without_terms_records_no_ontology(catalog):
    res = _build(catalog, {"sex": {"not_in": ["unknown"]}})
    assert "ontology" not in res.uns["refinewidgets"]
    assert np.isin(res.obs["cell_type"].astype(str), TYPES).all()


# --- on the real writers' layouts (tests/data/bgee) -------------------------------------------

REAL = sorted(p for p in (Path(__file__).parent / "data" / "bgee").glob("*.h5ad"))


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_every_writers_cells_match_by_term(path):
    """Each real layout's cell type and anatomy ids (CL, UBERON) give descendant matching:
    "lymphocyte" keeps B, T and NK cells, "leukocyte" monocytes and macrophages too, and
    "abdomen" the spleen and liver (UBERON's part_of) but not blood."""
    catalog = rw.open_catalog(path)
    (experiment,) = [e for e in catalog.experiment_ids if catalog.is_single_cell(e)]
    cells = catalog.cells(experiment)
    for cell_filter, kept in (
        ("cell_type == 'lymphocyte'", {"B cell", "T cell", "natural killer cell"}),
        (
            "cell_type in ['leukocyte']",
            {"B cell", "T cell", "natural killer cell", "monocyte", "macrophage"},
        ),
        ({"tissue": ["abdomen"]}, None),
    ):
        if kept is None:
            expected = cells.index[cells["tissue"].isin(["spleen", "liver"])]
        else:
            expected = cells.index[cells["cell_type"].isin(kept)]
        ds = rw.Dataset({experiment: ["ALL"]}, quantile_normalize=False, cell_filter=cell_filter)
        if len(expected) == 0:
            with pytest.raises(rw.DatasetSpecError):
                rw.build(ds, catalog)
            continue
        obs = rw.build(ds, catalog)[experiment].obs
        assert sorted(obs.index) == sorted(expected)


# --- the app's facets -------------------------------------------------------------------------


def _expected_facet_counts(table, column, cl):
    """Per value of ``column`` (``"; "``-joined labels), the rows holding it or a label below
    it, from the ontology's descendants (the index works upwards, from each label's ancestors)."""
    held = table[column].fillna("").astype(str).str.split("; ").map(set)
    values = sorted(set().union(*held) - {""})
    below = {
        v: {cl.labels[t] for term in cl.resolve(v) for t in cl.descendants(term)} for v in values
    }
    return {v: sum(bool(h & (below[v] | {v})) for h in held) for v in values}


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    folder = tmp_path_factory.mktemp("facets")
    for experiment, types, seed in (
        ("ERP77", TYPES, 11),
        ("ERP78", ("naive B cell", "regulatory T cell"), 12),
    ):
        write_bgee_h5ad(
            folder / f"Homo_sapiens_{experiment}_droplet_based.h5ad",
            variant="bgee15_2",
            experiment=experiment,
            n_cells=120,
            n_genes=40,
            n_libraries=4,
            cell_types=types,
            seed=seed,
        )
    return rw.open_catalog(folder)


def test_cell_type_facets_count_and_find_rows_by_term(two_experiments):
    from refinewidgets.core.browse import experiment_index, sample_index
    from refinewidgets.io.ontology_tables import load_ontology

    cl = load_ontology("CL")
    catalog = two_experiments
    experiments = experiment_index(catalog)
    counts = experiments.facet_counts()["cell type"].to_dict()
    # "B cell" stands for ERP77's B cells and ERP78's naive B cells: both experiments
    assert counts["B cell"] == counts["T cell"] == counts["naive B cell"] == 2
    assert counts == _expected_facet_counts(experiments.table, "cell_types", cl)
    assert experiments.facets["cell type"].narrower["T cell"] == (
        "CD4-positive, alpha-beta T cell",
        "regulatory T cell",
    )
    assert sorted(experiments.keys(filters={"cell type": ["B cell"]})) == ["ERP77", "ERP78"]
    # labels only: ERP78 names no "B cell" nor "T cell" itself
    labels = experiment_index(catalog, ontologies={})
    assert labels.facet_counts()["cell type"]["B cell"] == 1
    assert labels.keys(filters={"cell type": ["T cell"]}) == ["ERP77"]

    libraries = sample_index(catalog, ["ERP77", "ERP78"])
    got = libraries.facet_counts()["cell type"].to_dict()
    assert got == _expected_facet_counts(libraries.table, "cell_types", cl)
    assert got["T cell"] == len(libraries.table) == 8  # every library holds a T cell or below
    erp78 = libraries.table.index[libraries.table["experiment_accession"] == "ERP78"]
    assert set(erp78) <= set(libraries.keys(filters={"cell type": ["T cell"]}))
    assert not set(erp78) & set(
        libraries.keys(filters={"cell type": ["CD4-positive, alpha-beta T cell"]})
    )


def test_the_browsers_cell_type_list_says_what_a_term_stands_for(two_experiments):
    from refinewidgets.widgets import ExperimentBrowser

    browser = ExperimentBrowser(two_experiments)
    box = browser.facets["cell type"]
    labels = dict((value, text) for text, value in box.options)
    assert labels["T cell"] == "T cell (2, incl. 2 narrower terms)"
    assert labels["B cell"] == "B cell (2, incl. 1 narrower term)"
    assert labels["regulatory T cell"] == "regulatory T cell (2)"
    box.value = ("T cell",)  # ERP78 holds regulatory T cells only: it is listed too
    assert sorted(browser.table.row_keys) == ["ERP77", "ERP78"]
    box.value = ("CD4-positive, alpha-beta T cell",)
    assert browser.table.row_keys == ["ERP77"]
