"""The filter text (CELLxGENE Census' syntax): read safely, checked against pandas' own
evaluation of the same condition (``DataFrame.query``), malformed texts refused with the place
they go wrong, and the text carried through a Bgee file, a build, a selection and a link."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refinewidgets as rw
from refinewidgets.core.cell_filter import freeze_cell_filter, match_cells, thaw_cell_filter
from refinewidgets.core.cell_query import And, Compare, Not, Or, parse_query
from refinewidgets.core.url_state import Link, dataset_from_query, link_query
from refinewidgets.errors import DatasetSpecError
from refinewidgets.io.bgee.h5ad import BgeeH5ad
from refinewidgets.testing.bgee_files import write_bgee_h5ad

RNG = np.random.default_rng(3)
N = 60
CELLS = pd.DataFrame(
    {
        "cell_type": RNG.choice(["B cell", "T cell", "monocyte", "unknown"], N),
        "tissue": pd.Categorical(RNG.choice(["blood", "spleen", "bone marrow"], N)),
        "total_counts": RNG.integers(50, 3000, N).astype(float),
        "n_genes_by_counts": RNG.integers(10, 900, N),
        "score": np.where(RNG.random(N) < 0.2, np.nan, RNG.normal(0, 1, N)),
    }
)
TEXT_VALUES = {
    "cell_type": ["B cell", "T cell", "monocyte", "unknown", "neuron"],
    "tissue": ["blood", "spleen", "bone marrow", "liver"],
}
NUMBER_VALUES = {
    "total_counts": st.integers(0, 3200),
    "n_genes_by_counts": st.integers(0, 1000),
    "score": st.floats(-2.5, 2.5, allow_nan=False).map(lambda x: round(x, 2)),
}


def _text_leaf(column):
    pool = st.sampled_from(TEXT_VALUES[column])
    return st.one_of(
        st.builds(lambda op, v: f"{column} {op} {v!r}", st.sampled_from(["==", "!="]), pool),
        st.builds(
            lambda op, vs: f"{column} {op} {vs!r}",
            st.sampled_from(["in", "not in"]),
            st.lists(pool, min_size=1, max_size=3),
        ),
        st.builds(lambda v: f"{v!r} == {column}", pool),  # the value on the left
    )


def _number_leaf(column):
    number = NUMBER_VALUES[column]
    return st.one_of(
        st.builds(
            lambda op, v: f"{column} {op} {v!r}",
            st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
            number,
        ),
        st.builds(lambda lo, hi: f"{lo!r} <= {column} < {hi!r}", number, number),  # chained
        st.builds(
            lambda op, vs: f"{column} {op} {vs!r}",
            st.sampled_from(["in", "not in"]),
            st.lists(number, min_size=1, max_size=3),
        ),
    )


LEAF = st.one_of(*map(_text_leaf, TEXT_VALUES), *map(_number_leaf, NUMBER_VALUES))
CONDITION = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a, b: f"({a}) & ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) | ({b})", inner, inner),
        st.builds(lambda a: f"~({a})", inner),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONDITION)
def test_a_filter_text_keeps_the_rows_pandas_keeps(text):
    expected = CELLS.eval(text, engine="python").to_numpy(dtype=bool)
    if expected.any():
        np.testing.assert_array_equal(match_cells(CELLS, text, "t"), expected)
    else:  # zero cells is an error, never a result
        with pytest.raises(DatasetSpecError, match=r"no cell of t meets the filter"):
            match_cells(CELLS, text, "t")


def test_the_tree_of_census_example():
    query = parse_query("cell_type == 'B cell' or tissue in ['spleen']")
    assert query.tree == Or(
        (Compare("cell_type", "==", "B cell"), Compare("tissue", "in", ("spleen",)))
    )
    assert parse_query("not (500 < total_counts <= 5000)").tree == Not(
        And((Compare("total_counts", ">", 500), Compare("total_counts", "<=", 5000)))
    )
    assert parse_query('attr("cell type (author)") != "B"').columns == ("cell type (author)",)
    assert parse_query("sex == 'x'\n  and tissue == 'y'").text == "sex == 'x'   and tissue == 'y'"


@pytest.mark.parametrize(
    ("text", "problem", "at"),
    [
        ("cell_type = 'B cell'", "invalid syntax (compare with ==, not =)", 11),
        ("cell_type == B_cell", "'B_cell' is taken as a column, but a value is expected", 14),
        ("cell_type == 'B' and", "it ends early: a value or a comparison is missing", 21),
        ("cell_type != 'B' tissue", "invalid syntax", None),
        ("tissue == 'a\x00'", "NUL character", None),
        ("(cell_type == 'B'", "'(' was never closed", 1),
        ("tissue in 'blood'", "'in' takes a list of values", 11),
        ("tissue in []", "'in' takes a non-empty list", 11),
        ("tissue == ['blood']", "compares with one value; use 'in' for a list", 11),
        ("total_counts > 'many'", "'>' compares numbers; 'many' is a text", 16),
        ("total_counts > None", "must be a quoted text or a number, not None", 16),
        (
            "cell_type == 'B' and len(tissue) > 2",
            "(a function call is not part of the filter language)",
            22,
        ),
        (
            "cell_type.lower() == 'b'",
            "a comparison needs a column on one side (a function call is not",
            1,
        ),
        ("tissue", "a condition is expected here", 1),
        ("cell_type is 'B'", "only ==, !=, <, <=, >, >=, in and not in compare", 1),
        ("'B' in cell_type", "the left of 'in' must be a column", 1),
        ("tissue == 'blood' | sex == 'male'", "put each comparison in parentheses", 11),
        ("tissue == total_counts", "'total_counts' is taken as a column", 11),
        ("total_counts + 1 > 5", "(arithmetic is not part of the filter language)", 1),
        ("tissu\u00e9 == 'x' and f()", "a function call is not part of the filter language", 19),
    ],
)
def test_malformed_texts_say_what_and_where(text, problem, at):
    with pytest.raises(DatasetSpecError) as info:
        parse_query(text)
    message = str(info.value)
    assert problem in message
    assert ("compare with ==, not =" in message) == (text == "cell_type = 'B cell'")
    if at is not None:
        assert f"at character {at}:" in message
        caret = message.splitlines()[-1]
        assert caret.index("^") - 4 == at - 1  # the caret under that character


def test_a_filter_text_is_never_run_as_python(tmp_path):
    marker = tmp_path / "ran"
    for text in (
        f"__import__('pathlib').Path({str(marker)!r}).touch() == 1",
        f"tissue == open({str(marker)!r}, 'w')",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "lambda: 1",
    ):
        with pytest.raises(DatasetSpecError, match="cannot be read"):
            parse_query(text)
    assert not marker.exists()
    with pytest.raises(DatasetSpecError, match="at most 10000"):
        parse_query("a == 1 or " * 2000 + "a == 1")
    with pytest.raises(DatasetSpecError, match="nested"):
        parse_query("(" * 400 + "a == 1" + ")" * 400)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "cell_type",
                "tissue",
                "==",
                "!=",
                "<",
                "in",
                "not",
                "and",
                "or",
                "(",
                ")",
                "[",
                "]",
                ",",
                "'B cell'",
                "3",
                "-",
                "&",
                "|",
                "~",
                "=",
                "'",
                '"',
                "attr",
                ".",
                "x()",
            ]
        ),
        max_size=12,
    ).map(" ".join)
)
def test_any_text_is_read_or_refused_with_a_spec_error(text):
    try:
        query = parse_query(text)
    except DatasetSpecError as exc:
        assert "filter" in str(exc)
    else:  # what is read is a tree of our nodes only
        assert isinstance(query.tree, (And, Or, Not, Compare))


def test_column_and_value_errors_name_what_exists():
    with pytest.raises(DatasetSpecError, match=r"'celltype' \(did you mean cell_type\?\)"):
        match_cells(CELLS, "celltype == 'B cell'", "t")
    with pytest.raises(DatasetSpecError, match="compares numbers, but t holds text in 'tissue'"):
        match_cells(CELLS, "tissue > 3", "t")
    with pytest.raises(DatasetSpecError) as info:
        match_cells(CELLS, "cell_type == 'neuron' and tissue == 'blood'", "t")
    assert "cell_type == 'neuron' matches none (values present: ['B cell', 'T cell'" in str(
        info.value
    )


def test_the_text_is_kept_through_spec_selection_and_link(sc_catalog):
    from refinewidgets.core.selection import Selection

    text = "cell_type == 'B cell' or (tissue in ['spleen'] and total_counts >= 500)"
    ds = rw.Dataset({"SC1": ["ALL"]}, quantile_normalize=False, cell_filter=text)
    assert ds.cell_filter == text
    assert rw.Dataset.from_dict(ds.to_dict()) == ds
    assert f"cell_filter={text!r}" in ds.to_code()
    assert thaw_cell_filter(freeze_cell_filter(text)) == text
    sel = (
        Selection(sc_catalog)
        .add({"SC1": None})
        .with_options(quantile_normalize=False, cell_filter=text)
    )
    assert sel.dataset.cell_filter == text
    from urllib.parse import urlencode

    query = urlencode(
        link_query(Link(ds.data, (), {"cell_filter": text, "quantile_normalize": False}))
    )
    assert dataset_from_query(query) == ds
    with pytest.raises(DatasetSpecError, match="at character 11"):
        rw.Dataset({"SC1": ["ALL"]}, cell_filter="cell_type = 'B cell'")


@pytest.mark.parametrize(
    "text", ["cell_type == 'B cell' and", "total_counts >=", "sex == 'male' or not"]
)
def test_a_text_that_ends_early_points_at_its_end(text):
    with pytest.raises(DatasetSpecError) as info:
        parse_query(text)
    message = str(info.value)
    assert "it ends early: a value or a comparison is missing" in message
    caret = message.splitlines()[-1]
    assert message.splitlines()[-2] == f"    {text}" and caret == " " * (4 + len(text)) + "^"


def test_options_panel_with_a_filter_text_disables_its_lists(sc_catalog):
    from refinewidgets.widgets.options import OptionsPanel
    from refinewidgets.widgets.state import AppState

    panel = OptionsPanel(state=AppState(sc_catalog))
    text = "cell_type == 'B cell' or sex != 'unknown'"
    panel.state.selection = panel.state.selection.add({"SC1": None}).with_options(
        quantile_normalize=False, cell_filter=text
    )
    assert all(box.disabled and box.value == () for box in panel.cell_filters.values())
    assert panel.state.selection.option_values["cell_filter"] == text


# --- on a Bgee file and in a build --------------------------------------------------------


@pytest.fixture(scope="module")
def bgee_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q")
    return write_bgee_h5ad(
        folder / "Homo_sapiens_ERP5_droplet_based.h5ad",
        variant="bgee15_1",
        experiment="ERP5",
        n_cells=400,
        n_genes=150,
        n_libraries=5,
        seed=5,
    )


def test_bgee_select_by_text_equals_pandas_on_the_cells_table(bgee_file):
    with BgeeH5ad(bgee_file) as bgee:
        cells = bgee.cells.reset_index(drop=True)
        libs = sorted(set(cells["library"].astype(str)))
        for text in (
            "cell_type == 'B cell' or tissue in ['spleen']",
            "not (cell_type in ['B cell', 'T cell']) and sex != 'unknown'",
            "cellTypeName == 'monocyte' or stage == 'x'",  # the file's own column name
        ):
            rows = bgee.select(text)
            expected = cells.assign(cellTypeName=cells["cell_type"]).eval(text, engine="python")
            np.testing.assert_array_equal(rows, np.flatnonzero(expected))
        rows = bgee.select("tissue == 'blood'", libraries=libs[:1])
        expected = (cells["tissue"] == "blood") & (cells["library"].astype(str) == libs[0])
        np.testing.assert_array_equal(rows, np.flatnonzero(expected))
        # a QC value is not known before the counts are read: every cell that may pass is kept
        rows = bgee.select("cell_type == 'B cell' or total_counts > 1e9")
        np.testing.assert_array_equal(rows, np.arange(len(cells)))
        rows = bgee.select("cell_type == 'B cell' and total_counts > 1e9")
        np.testing.assert_array_equal(rows, np.flatnonzero(cells["cell_type"] == "B cell"))
        with pytest.raises(DatasetSpecError, match=r"'tisue' \(did you mean tissue"):
            bgee.select("tisue == 'blood'")
        with pytest.raises(DatasetSpecError, match="cell_type == 'neuron' matches none"):
            bgee.select("cell_type == 'neuron' and total_counts > 3")


def test_build_with_a_text_keeps_the_cells_pandas_keeps_qc_values_included(bgee_file):
    cat = rw.open_catalog(bgee_file)
    everything = rw.build(rw.Dataset({"ERP5": ["ALL"]}, quantile_normalize=False), cat)["ERP5"]
    obs = everything.obs
    cut = float(np.median(obs["total_counts"]))
    text = f"(cell_type == 'B cell' and total_counts >= {cut}) or not tissue in ['blood', 'spleen']"
    res = rw.build(rw.Dataset({"ERP5": ["ALL"]}, quantile_normalize=False, cell_filter=text), cat)[
        "ERP5"
    ]
    expected = obs.index[obs.eval(text, engine="python").to_numpy(dtype=bool)]
    assert 0 < len(expected) < len(obs)
    assert sorted(res.obs_names) == sorted(expected)
    # values travel with their cells: the kept cells' counts are those of the unfiltered build
    full = everything[res.obs_names].layers["counts"]
    assert (res.layers["counts"] != full).nnz == 0
    # the dict form and the text give the same cells
    as_dict = rw.build(
        rw.Dataset(
            {"ERP5": ["ALL"]},
            quantile_normalize=False,
            cell_filter={"cell_type": ["B cell"], "total_counts": {"min": cut}},
        ),
        cat,
    )["ERP5"]
    as_text = rw.build(
        rw.Dataset(
            {"ERP5": ["ALL"]},
            quantile_normalize=False,
            cell_filter=f"cell_type == 'B cell' and total_counts >= {cut}",
        ),
        cat,
    )["ERP5"]
    assert list(as_dict.obs_names) == list(as_text.obs_names)
    assert as_text.uns["refinewidgets"]["cell_filter"] == (
        f"cell_type == 'B cell' and total_counts >= {cut}"
    )


# --- the var filter and the obs columns ---------------------------------------------------

NEWEST = "tests/data/bgee/Homo_sapiens_ERP400001_droplet_based.h5ad"  # the newest writer


def test_var_filter_on_the_files_gene_columns_keeps_the_genes_pandas_keeps():
    import anndata

    var = anndata.read_h5ad(NEWEST, backed="r").var
    cut = int(var["feature_length"].median())
    text = f"feature_chromosome in ['1', '3'] and feature_length >= {cut} or gene_symbol == 'RWG2'"
    expected = var.assign(gene_symbol=var["feature_name"]).eval(text, engine="python")
    assert 0 < expected.sum() < len(var)
    cat = rw.open_catalog(NEWEST)
    options = dict(quantile_normalize=False, counts_normalization="CPM")
    everything = rw.build(rw.Dataset({"ERP400001": ["ALL"]}, **options), cat)["ERP400001"]
    res = rw.build(rw.Dataset({"ERP400001": ["ALL"]}, var_filter=text, **options), cat)["ERP400001"]
    assert sorted(res.var_names) == sorted(var.index[expected.to_numpy(dtype=bool)])
    # the file's gene columns come with the genes, and CPM is over all genes (as with genes=)
    assert (res.var["feature_biotype"] == "gene").all()
    assert res.var["feature_length"].dtype.kind in "if"  # numbers stay numbers
    assert res.var.loc["ENSG90000000002", "gene_symbol"] == "RWG2"
    kept = everything[:, res.var_names]
    np.testing.assert_allclose(res.X.toarray(), kept.X.toarray())
    # with genes= too: both hold
    both = rw.build(
        rw.Dataset(
            {"ERP400001": ["ALL"]}, var_filter=text, genes=["RWG2", "RWG4", "RWG5"], **options
        ),
        cat,
    )["ERP400001"]
    assert list(both.var_names) == [
        g for g in ["ENSG90000000002", "ENSG90000000004", "ENSG90000000005"] if expected[g]
    ]


def test_var_filter_errors_name_the_gene_columns():
    cat = rw.open_catalog(NEWEST)
    with pytest.raises(DatasetSpecError) as info:
        rw.build(
            rw.Dataset(
                {"ERP400001": ["ALL"]}, quantile_normalize=False, var_filter="biotype == 'x'"
            ),
            cat,
        )
    message = str(info.value)
    assert "'biotype' (did you mean" in message and "feature_biotype" in message
    with pytest.raises(DatasetSpecError, match="no gene of .* meets the filter"):
        rw.build(
            rw.Dataset(
                {"ERP400001": ["ALL"]},
                quantile_normalize=False,
                var_filter="feature_biotype == 'lncRNA'",
            ),
            cat,
        )
    with pytest.raises(DatasetSpecError, match="The var filter .* at character 17"):
        rw.Dataset({"E": ["ALL"]}, var_filter="feature_biotype = 'x'")


def test_obs_columns_choose_the_cell_columns_returned(bgee_file):
    cat = rw.open_catalog(bgee_file)
    res = rw.build(
        rw.Dataset(
            {"ERP5": ["ALL"]},
            quantile_normalize=False,
            cell_filter="cell_type == 'B cell'",
            obs_columns=["cell_type", "total_counts"],
        ),
        cat,
    )["ERP5"]
    assert list(res.obs.columns) == ["library", "cell_type", "total_counts"]
    assert set(res.obs["cell_type"]) == {"B cell"}
    with pytest.raises(DatasetSpecError, match=r"'celltype' \(did you mean cell_type"):
        rw.build(
            rw.Dataset({"ERP5": ["ALL"]}, quantile_normalize=False, obs_columns=["celltype"]),
            cat,
        )
    with pytest.raises(DatasetSpecError, match="pseudobulk returns samples"):
        rw.Dataset({"ERP5": ["ALL"]}, pseudobulk="sample", obs_columns=["cell_type"])
    ds = rw.Dataset({"ERP5": ["ALL"]}, obs_columns="cell_type", var_filter="gene_id != 'x'")
    assert ds.obs_columns == ["library", "cell_type"]
    assert rw.Dataset.from_dict(ds.to_dict()) == ds


# --- a whole organism ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def species_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("species")
    for name, variant, experiment, organism, seed in (
        ("Homo_sapiens_ERP11_droplet_based.h5ad", "bgee15_1", "ERP11", "HOMO_SAPIENS", 1),
        ("Homo_sapiens_ERP12_droplet_based.h5ad", "newest", "ERP12", "HOMO_SAPIENS", 2),
        ("Mus_musculus_ERP12_droplet_based.h5ad", "bgee15_2", "ERP12", "MUS_MUSCULUS", 3),
        ("Mus_musculus_SRP13_droplet_based.h5ad", "bgee15_0", "SRP13", "MUS_MUSCULUS", 4),
    ):
        write_bgee_h5ad(
            folder / name,
            variant=variant,
            experiment=experiment,
            organism=organism,
            n_cells=150,
            n_genes=80,
            n_libraries=3,
            seed=seed,
        )
    return folder


def test_a_whole_organism_takes_its_libraries_of_every_experiment(species_folder):
    cat = rw.open_catalog(species_folder)
    text = "cell_type in ['B cell', 'T cell'] and sex != 'unknown'"
    ds = rw.organism_dataset(cat, "Homo sapiens", cell_filter=text, join="outer")
    human = {
        e: [
            s
            for s in cat.experiment_samples(e)
            if cat.sample_record(s)["refinebio_organism"] == "HOMO_SAPIENS"
        ]
        for e in ("ERP11", "ERP12")
    }
    assert ds.data == {"ERP11": ["ALL"], "ERP12": human["ERP12"]}
    assert len(human["ERP12"]) < len(cat.experiment_samples("ERP12"))  # mouse libraries left out
    assert (ds.aggregate_by, ds.quantile_normalize, ds.cell_filter) == ("SPECIES", False, text)
    res = rw.build(ds, cat)
    assert list(res.keys()) == ["HOMO_SAPIENS"]
    obs = res["HOMO_SAPIENS"].obs
    expected = []
    for experiment, libraries in human.items():
        cells = cat.cells(experiment)
        cells = cells[cells["library"].astype(str).isin(libraries)]
        expected += list(cells.index[cells.eval(text, engine="python").to_numpy(dtype=bool)])
    assert sorted(obs.index) == sorted(expected)
    assert set(obs["organism"]) == {"HOMO_SAPIENS"}
    assert rw.organism_dataset(cat, "mus_musculus").data == {
        "ERP12": [s for s in cat.experiment_samples("ERP12") if s not in human["ERP12"]],
        "SRP13": ["ALL"],
    }
    with pytest.raises(DatasetSpecError) as info:
        rw.organism_dataset(cat, "Homo sapien")
    assert "(did you mean HOMO_SAPIENS?)" in str(info.value)
    assert "HOMO_SAPIENS, MUS_MUSCULUS" in str(info.value)


def test_the_new_options_travel_in_a_link_and_a_selection(sc_catalog):
    from urllib.parse import urlencode

    from refinewidgets.core.selection import Selection

    options = {
        "quantile_normalize": False,
        "cell_filter": "tissue in ['blood'] or not cell_type == 'B cell'",
        "var_filter": "feature_biotype == 'protein_coding' and feature_length > 500",
        "obs_columns": ["library", "cell_type"],
        "exact": True,
    }
    ds = rw.Dataset({"SC1": ["ALL"]}, **options)
    query = urlencode(link_query(Link(ds.data, (), options)))
    assert dataset_from_query(query) == ds
    sel = Selection(sc_catalog).add({"SC1": None}).with_options(**options)
    assert sel.dataset == ds
    # the single-cell options go back to their defaults when no single cell is left
    assert sel.remove("SC1").option_values["var_filter"] is None
