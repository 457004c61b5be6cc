"""Tests of the Bgee droplet H5AD reader (refinewidgets.io.bgee.h5ad) and its generator."""

from __future__ import annotations

import tracemalloc
import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import refinewidgets as rw
from refinewidgets.errors import (
    DatasetSpecError,
    NotCountsWarning,
    OutputExistsError,
    SourceFormatError,
)
from refinewidgets.io.bgee.h5ad import UNIFIED_COLUMNS, BgeeH5ad
from refinewidgets.testing.bgee_files import VARIANTS, write_bgee_h5ad

# obs column of each concept, per variant, as the generator writes it
LIBRARY = {
    "bgee15_0": "libID",
    "bgee15_1": "library_id",
    "bgee15_2": "rnaSeqLibraryId",
    "newest": "library_id",
}
BARCODE = {
    "bgee15_0": "barcodes",
    "bgee15_1": "barcode",
    "bgee15_2": "barcode",
    "newest": "barcode",
}
CELL_TYPE = {
    "bgee15_0": "cellTypeName",
    "bgee15_1": "cellTypeName",
    "bgee15_2": "cellTypeName",
    "newest": "cell_type",
}
SEXES = {
    "bgee15_0": ["male", "female", "unknown", "unknown", "mixed"],
    "newest": ["male", "female", "unknown", "male", "female"],
}
TISSUES = ["blood", "spleen", "bone marrow", "liver", "blood"]
FILE_NAME = "Homo_sapiens_ERP999_droplet_based.h5ad"


def _write(folder, variant, name=FILE_NAME, **kwargs):
    options = dict(
        variant=variant, experiment="ERP123456", n_cells=400, n_genes=120, n_libraries=5, seed=7
    )
    options.update(kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    return write_bgee_h5ad(folder / name, **options)


def _drop_obs_columns(path, *names):
    with h5py.File(path, "r+") as f:
        obs = f["obs"]
        for name in names:
            del obs[name]
        order = [str(c) for c in obs.attrs["column-order"] if str(c) not in names]
        obs.attrs["column-order"] = np.array(order, dtype=object)


def _edit_x_data(path, edit):
    with h5py.File(path, "r+") as f:
        data = f["X/data"][:]
        indptr = f["X/indptr"][:]
        f["X/data"][:] = edit(data, indptr).astype(np.float32)


@pytest.fixture(scope="module", params=VARIANTS)
def variant_file(request, tmp_path_factory):
    variant = request.param
    path = _write(tmp_path_factory.mktemp(variant), variant)
    return variant, path, ad.read_h5ad(path)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """20,000 cells x 2,000 genes, about 4 million stored values (32 MB of data + indices)."""
    path = _write(
        tmp_path_factory.mktemp("big"), "bgee15_2", n_cells=20_000, n_genes=2_000, density=0.1
    )
    with h5py.File(path, "r") as f:
        x_bytes = f["X/data"].nbytes + f["X/indices"].nbytes
    return path, x_bytes


# --- the unified cells table -------------------------------------------------------------


def test_cells_table_every_variant(variant_file):
    variant, path, adata = variant_file
    with BgeeH5ad(path) as bgee:
        cells = bgee.cells
    assert list(cells.columns) == [*UNIFIED_COLUMNS, "experiment"]
    assert list(cells.index) == list(adata.obs_names)
    assert bgee.n_cells == 400 and bgee.n_genes == 120
    obs = adata.obs
    np.testing.assert_array_equal(cells["library"].astype(str), obs[LIBRARY[variant]].astype(str))
    np.testing.assert_array_equal(cells["barcode"], obs[BARCODE[variant]].astype(str))
    np.testing.assert_array_equal(
        cells["cell_type"].astype(str), obs[CELL_TYPE[variant]].astype(str)
    )
    assert list(cells.index) == [f"{b}_{lib}" for b, lib in zip(cells["barcode"], cells["library"])]
    assert set(cells["cell_type"]) == {"B cell", "T cell", "monocyte"}
    assert set(cells["cell_type_id"]) == {"CL:0000236", "CL:0000084", "CL:0000576"}
    pairs = set(zip(cells["cell_type"], cells["cell_type_id"]))
    assert pairs == {("B cell", "CL:0000236"), ("T cell", "CL:0000084"), ("monocyte", "CL:0000576")}
    assert set(cells["tissue"]) == {"blood", "spleen", "bone marrow", "liver"}
    assert set(cells["tissue_id"]) == {
        "UBERON:0000178",
        "UBERON:0002106",
        "UBERON:0002371",
        "UBERON:0002107",
    }
    assert set(cells["stage"]) == {"human adult stage"}
    assert set(cells["stage_id"]) == {"HsapDv:0000087"}
    # one vocabulary: the older writers' "not annotated" and "NA" are "unknown" here, and
    # their own words stay in their own column (``sex`` is ours: ``obs_sex``)
    assert set(cells["sex"]) == {"male", "female", "unknown"} | (
        {"mixed"} if variant != "newest" else set()
    )
    if variant != "newest":
        assert bgee.placeholder_columns == ["sex"]
        with BgeeH5ad(path) as again:
            own = pd.Series(np.asarray(again.extra("obs_sex")), index=cells.index)
        assert set(own) == {"male", "female", "not annotated", "NA", "mixed"}
        assert set(own[cells["sex"] == "unknown"]) == {"not annotated", "NA"}
        raw = pd.Series(obs["sex"].astype(str).to_numpy(), index=obs.index)
        pd.testing.assert_series_equal(own.loc[raw.index], raw, check_names=False)
    assert set(cells["strain"]) == {"wild-type"}
    for column in ("library", "cell_type", "tissue", "sex", "experiment"):
        assert cells[column].dtype == "category"
    # bgee15_0 has no experiment column: the file name's accession; the others carry theirs
    expected = "ERP999" if variant == "bgee15_0" else "ERP123456"
    assert bgee.experiment == expected
    assert set(cells["experiment"]) == {expected}
    assert bgee.organism == "HOMO_SAPIENS"


def test_library_column_prefers_libid_over_sampleid(tmp_path):
    path = _write(tmp_path, "bgee15_0")
    adata = ad.read_h5ad(path)
    with BgeeH5ad(path) as bgee:
        assert bgee.column_map["library"] == "libID"
        assert set(bgee.cells["library"]) == set(adata.obs["libID"])
        assert not set(bgee.cells["library"]) & set(adata.obs["SampleId"])
    _drop_obs_columns(path, "libID")  # SampleId is the last resort
    with BgeeH5ad(path) as bgee:
        assert bgee.column_map["library"] == "SampleId"
        assert set(bgee.cells["library"]) == {f"ERP123456_sample{i}" for i in range(1, 6)}


def test_barcode_from_obs_names_when_no_barcode_column(tmp_path):
    path = _write(tmp_path, "bgee15_1")
    adata = ad.read_h5ad(path)
    _drop_obs_columns(path, "barcode")
    with BgeeH5ad(path) as bgee:
        np.testing.assert_array_equal(bgee.cells["barcode"], adata.obs["barcode"].astype(str))


def test_libraries_summary(variant_file):
    variant, path, adata = variant_file
    with BgeeH5ad(path) as bgee:
        table = bgee.libraries()
    assert list(table.columns) == [
        "n_cells",
        "cell_types",
        "tissues",
        "stages",
        "sexes",
        "experiment",
        "organism",
    ]
    counts = adata.obs[LIBRARY[variant]].astype(str).value_counts()
    assert table["n_cells"].to_dict() == counts.to_dict()
    assert table["n_cells"].sum() == 400 and len(table) == 5
    assert list(table.index) == sorted(counts.index)
    assert set(table["cell_types"]) == {"B cell; T cell; monocyte"}
    assert list(table["tissues"]) == TISSUES  # libraries are numbered in creation order
    assert list(table["sexes"]) == SEXES.get(variant, SEXES["bgee15_0"])
    assert set(table["stages"]) == {"human adult stage"}
    assert set(table["experiment"]) == {bgee.experiment}
    assert set(table["organism"]) == {"HOMO_SAPIENS"}


def test_libraries_join_several_values_sorted(tmp_path):
    path = _write(tmp_path, "bgee15_2", n_libraries=1, n_cells=50)
    adata = ad.read_h5ad(path)
    adata.obs["sex"] = pd.Categorical(np.where(np.arange(50) % 2, "male", "female"))
    adata.obs.loc[adata.obs_names[:3], "cellTypeName"] = "B cell"
    adata.write_h5ad(path)
    with BgeeH5ad(path) as bgee:
        table = bgee.libraries()
    assert table["sexes"].tolist() == ["female; male"]
    assert table["cell_types"].tolist() == ["B cell; T cell; monocyte"]


def test_genes_and_symbols(tmp_path):
    old = _write(tmp_path / "old", "bgee15_0", intergenic=True)
    new = _write(tmp_path / "new", "newest", organism="MUS_MUSCULUS")
    with BgeeH5ad(old) as bgee:
        genes = bgee.genes
        assert list(genes.columns) == ["gene_symbol", "intergenic"]
        assert list(genes.index) == list(ad.read_h5ad(old).var_names)
        assert set(genes["gene_symbol"]) == {""}
        assert genes.index[0].startswith("ENSG") and len(genes.index[0]) == 15
        assert genes["intergenic"].sum() == 12
        assert set(genes.index[genes["intergenic"]].str.split("_").str[0]) == {
            "upstream",
            "downstream",
        }
    with BgeeH5ad(new) as bgee:
        assert bgee.genes.index[0].startswith("ENSMUSG")
        assert bgee.genes["gene_symbol"].iloc[:3].tolist() == ["Rwg1", "Rwg2", "Rwg3"]
        assert not bgee.genes["intergenic"].any()


# --- organism and experiment -------------------------------------------------------------


def test_organism_from_taxon_wins_over_file_name(tmp_path):
    path = _write(tmp_path, "bgee15_0", organism="MUS_MUSCULUS")  # file says Homo_sapiens
    with BgeeH5ad(path) as bgee:
        assert bgee.organism == "MUS_MUSCULUS"
        assert bgee.genes.index[0].startswith("ENSMUSG")


def test_organism_from_uns_in_newest(tmp_path):
    path = _write(tmp_path, "newest", organism="DANIO_RERIO")
    assert ad.read_h5ad(path).uns["organism"] == "Danio rerio"
    with BgeeH5ad(path) as bgee:
        assert "taxon" not in bgee.column_map
        assert bgee.organism == "DANIO_RERIO"
        assert set(bgee.libraries()["organism"]) == {"DANIO_RERIO"}


def test_organism_and_experiment_from_file_name(tmp_path):
    path = _write(
        tmp_path,
        "bgee15_0",
        name="Drosophila_melanogaster_SRP42_droplet_based.h5ad",
        organism="DROSOPHILA_MELANOGASTER",
    )
    _drop_obs_columns(path, "speciesId")
    with BgeeH5ad(path) as bgee:
        assert (bgee.organism, bgee.experiment) == ("DROSOPHILA_MELANOGASTER", "SRP42")
        assert bgee.genes.index[0].startswith("FBgn")


def test_organism_unknown_and_experiment_from_stem(tmp_path):
    path = _write(tmp_path, "bgee15_0", name="my_cells.h5ad")
    _drop_obs_columns(path, "speciesId")
    with BgeeH5ad(path) as bgee:
        assert (bgee.organism, bgee.experiment) == ("UNKNOWN", "my_cells")


def test_file_name_with_three_part_species(tmp_path):
    path = _write(tmp_path, "bgee15_0", name="Canis_lupus_familiaris_E-MTAB-7_full_length.h5ad")
    _drop_obs_columns(path, "speciesId")
    with BgeeH5ad(path) as bgee:
        assert (bgee.organism, bgee.experiment) == ("CANIS_LUPUS_FAMILIARIS", "E-MTAB-7")


# --- select -------------------------------------------------------------------------------


def test_select_filters(variant_file):
    variant, path, adata = variant_file
    obs = adata.obs
    cell_type = obs[CELL_TYPE[variant]].astype(str).to_numpy()
    library = obs[LIBRARY[variant]].astype(str).to_numpy()
    libs = sorted(set(library))
    with BgeeH5ad(path) as bgee:
        rows = bgee.select({"cell_type": ["B cell"]})
        assert rows.dtype == np.int64
        np.testing.assert_array_equal(rows, np.flatnonzero(cell_type == "B cell"))
        rows = bgee.select({"cell_type": ["B cell", "monocyte"]}, libraries=libs[:2])
        expected = np.flatnonzero(
            np.isin(cell_type, ["B cell", "monocyte"]) & np.isin(library, libs[:2])
        )
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(bgee.select(), np.arange(400))
        np.testing.assert_array_equal(
            bgee.select(libraries=libs[1]), np.flatnonzero(library == libs[1])
        )
        # sex is compared case-insensitively; a list may name values the file lacks
        # libraries 0..4: tissues blood, spleen, bone marrow, liver, blood; sexes male,
        # female, then (old) not annotated, NA, mixed or (newest) unknown, male, female
        rows = bgee.select(
            {"sex": ["MALE", "Female", "hermaphrodite"], "tissue": ["blood", "spleen"]}
        )
        kept = libs[:2] + ([libs[4]] if variant == "newest" else [])
        np.testing.assert_array_equal(rows, np.flatnonzero(np.isin(library, kept)))


def test_select_value_matching_nothing_lists_existing_values(tmp_path):
    path = _write(tmp_path, "bgee15_1")
    with BgeeH5ad(path) as bgee:
        with pytest.raises(DatasetSpecError) as info:
            bgee.select({"cell_type": ["neuron", "glia"]})
        message = str(info.value)
        assert "'cell_type'" in message and "neuron" in message and "glia" in message
        for present in ("B cell", "T cell", "monocyte"):
            assert present in message
        with pytest.raises(DatasetSpecError, match="ERX0"):
            bgee.select(libraries=["ERX0"])
        with pytest.raises(DatasetSpecError, match="'tissue'"):
            bgee.select({"tissue": []})


def test_select_unknown_column_lists_the_files_columns(tmp_path):
    path = _write(tmp_path, "bgee15_1")
    with BgeeH5ad(path) as bgee, pytest.raises(DatasetSpecError) as info:
        bgee.select({"cell_typ": ["B cell"]})
    message = str(info.value)
    assert "'cell_typ' (did you mean cell_type" in message and path.name in message
    assert all(column in message for column in UNIFIED_COLUMNS if column != "barcode")
    assert "total_counts" in message  # the QC values are named too


def test_select_by_the_files_own_column_names(tmp_path):
    """A file's own name of a unified column (``cellTypeName``) selects like the unified one."""
    path = _write(tmp_path, "bgee15_1")
    with BgeeH5ad(path) as bgee:
        own = bgee.select({"cellTypeName": ["B cell"]})
        unified = bgee.select({"cell_type": ["B cell"]})
        assert own.size > 0 and np.array_equal(own, unified)
        assert (bgee.cells["cell_type"].iloc[own] == "B cell").all()


def test_select_columns_matching_but_never_together(tmp_path):
    path = _write(tmp_path, "bgee15_1")
    with BgeeH5ad(path) as bgee, pytest.raises(DatasetSpecError, match="together"):
        bgee.select({"tissue": ["blood"], "sex": ["female"]})  # blood libraries are male


# --- read_counts --------------------------------------------------------------------------


def _assert_same_rows(matrix, full, rows):
    expected = sp.csr_matrix(full[rows])
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.dtype == np.float32 and matrix.shape == expected.shape
    matrix.sort_indices()
    expected.sort_indices()
    np.testing.assert_array_equal(matrix.indptr, expected.indptr)
    np.testing.assert_array_equal(matrix.indices, expected.indices)
    np.testing.assert_array_equal(matrix.data, expected.data)


def test_read_counts_equals_full_load(variant_file):
    variant, path, adata = variant_file
    full = sp.csr_matrix(adata.X)
    rng = np.random.default_rng(1)
    with BgeeH5ad(path) as bgee:
        selections = [
            bgee.select({"cell_type": ["T cell"]}),
            np.sort(rng.choice(400, size=37, replace=False)),
            np.arange(400),
            np.arange(100, 180),
            np.array([0, 399]),
            np.array([], dtype=np.int64),
        ]
        for rows in selections:
            _assert_same_rows(bgee.read_counts(rows), full, rows)
        unsorted = np.array([5, 3, 3, 250, 0])  # served in the order given
        _assert_same_rows(bgee.read_counts(unsorted), full, unsorted)
        mask = np.zeros(400, dtype=bool)
        mask[[2, 9]] = True
        _assert_same_rows(bgee.read_counts(mask), full, np.array([2, 9]))
        with pytest.raises(IndexError):
            bgee.read_counts([400])
        with pytest.raises(TypeError):
            bgee.read_counts([0.5])


@pytest.mark.parametrize("layout", ["dense", "csc"])
def test_read_counts_dense_and_csc_x(tmp_path, layout):
    path = _write(tmp_path, "bgee15_2")
    adata = ad.read_h5ad(path)
    full = sp.csr_matrix(adata.X)
    adata.X = full.toarray() if layout == "dense" else sp.csc_matrix(full)
    other = tmp_path / f"Homo_sapiens_ERP1_{layout}.h5ad"
    adata.write_h5ad(other)
    rows = np.array([0, 1, 2, 50, 51, 399])
    with BgeeH5ad(other) as bgee:
        _assert_same_rows(bgee.read_counts(rows), full, rows)
        _assert_same_rows(bgee.read_counts(np.arange(400)), full, np.arange(400))


def test_read_counts_reads_only_selected_rows(big_file):
    path, _ = big_file
    rows = np.array([3, 9000, 19_999])  # far apart: one read each, of exactly their values
    with BgeeH5ad(path) as bgee:
        matrix = bgee.read_counts(rows)
        plan = bgee.last_read  # the reads of X's data and indices (see io/csr_rows.py)
        assert plan.n_reads == 3
        assert plan.values_read == matrix.nnz > 0


def test_read_counts_memory_stays_far_below_x(big_file):
    path, x_bytes = big_file
    assert x_bytes > 25e6
    with BgeeH5ad(path) as bgee:
        tracemalloc.start()
        try:
            matrix = bgee.read_counts(np.array([10, 11, 5000, 12_345]))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert matrix.shape == (4, 2000) and matrix.nnz > 0
    assert peak < x_bytes / 20, f"peak {peak} bytes while X holds {x_bytes}"


def test_read_after_close_raises(tmp_path):
    bgee = BgeeH5ad(_write(tmp_path, "bgee15_0"))
    bgee.close()
    assert len(bgee.cells) == 400 and len(bgee.libraries()) == 5
    with pytest.raises(ValueError, match="closed"):
        bgee.read_counts([0])


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.integers(0, 399), max_size=60))
def test_read_counts_any_rows_property(rows, variant_file):
    _, path, adata = variant_file
    rows = np.asarray(rows, dtype=np.int64)
    with BgeeH5ad(path) as bgee:
        _assert_same_rows(bgee.read_counts(rows), sp.csr_matrix(adata.X), rows)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0005])
def test_truncated_file(tmp_path, keep):
    path = _write(tmp_path, "bgee15_0")
    content = path.read_bytes()
    cut = tmp_path / "Homo_sapiens_ERP2_droplet_based.h5ad"
    cut.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(SourceFormatError) as info:
        BgeeH5ad(cut)
    message = str(info.value)
    assert str(cut) in message and "truncated or corrupt" in message and "download" in message


def test_not_hdf5_file(tmp_path):
    path = tmp_path / "Homo_sapiens_ERP3_droplet_based.h5ad"
    path.write_text("<html>404 Not Found</html>\n")
    with pytest.raises(SourceFormatError, match="is not a readable H5AD file"):
        BgeeH5ad(path)


def test_hdf5_that_is_not_anndata(tmp_path):
    path = tmp_path / "other.h5ad"
    with h5py.File(path, "w") as f:
        f["matrix"] = np.zeros(3)
    with pytest.raises(SourceFormatError, match="no X, obs, var element"):
        BgeeH5ad(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.h5ad"):
        BgeeH5ad(tmp_path / "nothing.h5ad")


def test_no_library_column_lists_columns(tmp_path):
    path = _write(tmp_path, "bgee15_0")
    _drop_obs_columns(path, "libID", "SampleId")
    with pytest.raises(SourceFormatError) as info:
        BgeeH5ad(path)
    message = str(info.value)
    assert "no library column" in message
    for found in ("barcodes", "cellTypeName", "unique_cell_ids"):
        assert found in message
    for accepted in ("libID", "library_id", "rnaSeqLibraryId", "SampleId"):
        assert accepted in message


# --- check_counts -------------------------------------------------------------------------


def test_fractional_counts_do_not_warn(variant_file):
    _, path, adata = variant_file
    data = adata.X.data
    assert (data != np.round(data)).mean() > 0.02  # bustools --em style fractional counts
    with BgeeH5ad(path) as bgee, warnings.catch_warnings():
        warnings.simplefilter("error", NotCountsWarning)
        bgee.check_counts()
        bgee.check_counts(sample_rows=50)


def test_many_fractional_counts_do_not_warn(tmp_path):
    path = _write(tmp_path, "bgee15_2")
    rng = np.random.default_rng(0)
    _edit_x_data(path, lambda data, _: np.where(rng.random(data.size) < 0.3, data + 0.5, data))
    with BgeeH5ad(path) as bgee, warnings.catch_warnings():
        warnings.simplefilter("error", NotCountsWarning)
        bgee.check_counts()


def test_negative_values_warn(tmp_path):
    path = _write(tmp_path, "bgee15_2")
    _edit_x_data(path, lambda data, _: data - 2.0)
    with BgeeH5ad(path) as bgee, pytest.warns(NotCountsWarning, match="negative values") as info:
        bgee.check_counts()
    assert str(path) in str(info[0].message) and "UMI counts" in str(info[0].message)


def _log_normalized(data, indptr):
    sums = np.add.reduceat(data, indptr[:-1]) if data.size else data
    lengths = np.diff(indptr)
    return np.log1p(data / np.repeat(sums, lengths) * 1e4)


def test_log_transformed_values_warn(tmp_path):
    path = _write(tmp_path, "bgee15_2")
    _edit_x_data(path, _log_normalized)
    with BgeeH5ad(path) as bgee, pytest.warns(NotCountsWarning, match="log-transformed") as info:
        bgee.check_counts()
    assert str(path) in str(info[0].message)


def test_log2_of_raw_counts_warns(tmp_path):
    path = _write(tmp_path, "bgee15_2")
    _edit_x_data(path, lambda data, _: np.log2(np.ceil(data) + 1))
    with BgeeH5ad(path) as bgee, pytest.warns(NotCountsWarning, match=r"log2\(integer \+ 1\)"):
        bgee.check_counts()


def test_integer_counts_do_not_warn(tmp_path):
    path = _write(tmp_path, "bgee15_2")
    _edit_x_data(path, lambda data, _: np.ceil(data))
    with BgeeH5ad(path) as bgee, warnings.catch_warnings():
        warnings.simplefilter("error", NotCountsWarning)
        bgee.check_counts()


# --- the generator ------------------------------------------------------------------------


def test_generator_bgee15_0_has_documented_columns(tmp_path):
    obs = ad.read_h5ad(_write(tmp_path, "bgee15_0")).obs
    documented = [
        "barcodes",
        "SampleId",
        "anatEntityId",
        "stageId",
        "cellTypeId",
        "strain",
        "sex",
        "speciesId",
        "anatEntityName",
        "stageName",
        "cellTypeName",
        "libID",
        "unique_cell_ids",
    ]
    assert list(obs.columns) == [*documented, "cellTypeAuthorAnnotation"]
    assert set(obs["speciesId"]) == {9606}
    assert list(obs["unique_cell_ids"]) == list(obs.index)


def test_generator_newest_columns(tmp_path):
    adata = ad.read_h5ad(_write(tmp_path, "newest"))
    assert set(adata.obs.columns) == {
        "barcode",
        "library_id",
        "experiment_id",
        "tissue_ontology_term_id",
        "tissue",
        "development_stage_ontology_term_id",
        "development_stage",
        "cell_type_ontology_term_id",
        "cell_type",
        "strain_or_genetic_background",
        "sex",
    }
    assert "unknown" in set(adata.obs["sex"])
    assert list(adata.var.columns) == ["feature_name"]
    assert adata.uns["organism"] == "Homo sapiens" and "schema_version" in adata.uns


def test_generator_abundance_layer(tmp_path):
    adata = ad.read_h5ad(_write(tmp_path, "bgee15_1"))
    assert set(adata.uns["matrix_descriptions"]) == {"X", "abundance"}
    cpm = adata.layers["abundance"]
    assert isinstance(cpm, sp.csr_matrix)
    np.testing.assert_array_equal(cpm.indices, adata.X.indices)
    sums = np.asarray(cpm.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1e6, rtol=1e-4)
    plain = ad.read_h5ad(_write(tmp_path / "plain", "bgee15_1", abundance_layer=False))
    assert not plain.layers and "matrix_descriptions" not in plain.uns
    other = ad.read_h5ad(_write(tmp_path / "other", "bgee15_0", abundance_layer=True))
    assert "abundance" in other.layers


def test_generator_is_seeded_and_has_cell_type_signal(tmp_path):
    first = ad.read_h5ad(_write(tmp_path / "a", "bgee15_2", n_cells=600))
    again = ad.read_h5ad(_write(tmp_path / "b", "bgee15_2", n_cells=600))
    other = ad.read_h5ad(_write(tmp_path / "c", "bgee15_2", n_cells=600, seed=8))
    assert (first.X != again.X).nnz == 0 and list(first.obs_names) == list(again.obs_names)
    assert (first.X != other.X).nnz > 0
    assert first.X.dtype == np.float32 and isinstance(first.X, sp.csr_matrix)
    assert first.obs_names.is_unique
    barcodes = first.obs.groupby("rnaSeqLibraryId", observed=True)["barcode"].apply(set)
    assert all(
        len(b) == n
        for b, n in zip(
            barcodes, first.obs["rnaSeqLibraryId"].value_counts(sort=False)[barcodes.index]
        )
    )  # unique within a library
    assert not first.obs["barcode"].is_unique  # but reused across libraries
    dense = first.X.toarray()
    cell_type = first.obs["cellTypeName"].astype(str).to_numpy()
    size = 120 // 12  # marker block of each type
    for k, name in enumerate(["B cell", "T cell", "monocyte"]):
        block = dense[:, k * size : (k + 1) * size]
        inside, outside = block[cell_type == name].mean(), block[cell_type != name].mean()
        assert inside > 5 * outside, (name, inside, outside)


def test_generator_refuses_to_overwrite(tmp_path):
    path = _write(tmp_path, "bgee15_0")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        _write(tmp_path, "bgee15_0")
    _write(tmp_path, "bgee15_0", overwrite=True, seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    with pytest.raises(ValueError, match="unknown variant"):
        _write(tmp_path, "bgee99", name="x.h5ad")


@pytest.mark.parametrize(
    "name,experiment,organism",
    [
        ("Homo_sapiens_ERP132576_droplet_based.h5ad", "ERP132576", "HOMO_SAPIENS"),
        ("Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614.h5ad", "SRP200614", "MUS_MUSCULUS"),
        ("Callithrix_jacchus_SRP300001_droplet_based.h5ad", "SRP300001", "CALLITHRIX_JACCHUS"),
    ],
)
def test_every_bgee_file_name_gives_experiment_and_organism(tmp_path, name, experiment, organism):
    # bgee15_0 files have no experiment column and a speciesId: the name must give the experiment
    path = write_bgee_h5ad(tmp_path / name, variant="bgee15_0", organism=organism, n_cells=60)
    cat = rw.open_catalog(path)
    assert cat.experiment_ids == [experiment]
    assert set(cat.samples["refinebio_organism"]) == {organism}


def test_bgeedb_file_names_give_the_experiment(tmp_path):
    path = write_bgee_h5ad(
        tmp_path / "ERP132576_sc_droplet_based.h5ad", variant="bgee15_0", n_cells=60
    )
    cat = rw.open_catalog(path)
    assert cat.experiment_ids == ["ERP132576"]
    assert set(cat.samples["refinebio_organism"]) == {"HOMO_SAPIENS"}  # from speciesId


def test_species_bgee_ships_droplet_data_for_have_names():
    from refinewidgets.io.bgee.h5ad import ORGANISM_BY_TAXON

    assert ORGANISM_BY_TAXON[9483] == "CALLITHRIX_JACCHUS"
    assert ORGANISM_BY_TAXON[9595] == "GORILLA_GORILLA"
    assert ORGANISM_BY_TAXON[10181] == "HETEROCEPHALUS_GLABER"


def test_the_same_experiment_twice_adds_no_cell_twice(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_bgee_h5ad(
        tmp_path / "a" / "Homo_sapiens_ERP77_droplet_based.h5ad",
        variant="bgee15_2",
        experiment="ERP77",
        n_cells=90,
    )
    second = tmp_path / "b" / first.name
    second.write_bytes(first.read_bytes())  # another copy (another release) of the same file
    alone = rw.open_catalog(first).cells("ERP77")
    with pytest.warns(
        rw.DuplicateSourceWarning, match="ERP77 \\(HOMO_SAPIENS\\) is in 2 files"
    ) as caught:
        both = rw.open_catalog(tmp_path)
    assert len(both.cells("ERP77")) == len(alone) == 90
    # equal copies: the path found first is used
    assert f"Using {first} only" in str(caught[0].message)
    assert [src.path for src in both.sources] == [first]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_writers_not_known_is_unknown_and_kept_in_its_own_column(tmp_path, variant):
    """Bgee's older writers' cell type ``cellular_component`` (``GO:0005575``) and sex ``NA`` /
    ``not annotated`` are ``unknown`` in the unified columns, so one filter means the same on
    every layout; the file's own words stay in the file's own columns."""
    path = _write(
        tmp_path, variant, cell_types=("B cell", "cellular_component", "T cell"), n_libraries=5
    )
    raw = ad.read_h5ad(path).obs
    with BgeeH5ad(path) as bgee:
        cells = bgee.cells
        ours = {own: name for name, own in bgee.extra_columns.items()}  # cell_type: obs_...
        own_type = pd.Series(np.asarray(bgee.extra(ours[CELL_TYPE[variant]])), index=cells.index)
        own_id = pd.Series(
            np.asarray(bgee.extra(ours[bgee.column_map["cell_type_id"]])), index=cells.index
        )
        kept = bgee.select({"sex": {"not_in": ["unknown"]}, "cell_type": {"not_in": ["unknown"]}})
    placeholder_type = raw[CELL_TYPE[variant]].astype(str) == "cellular_component"
    assert placeholder_type.any()
    expected_type = np.where(placeholder_type, "unknown", raw[CELL_TYPE[variant]].astype(str))
    np.testing.assert_array_equal(cells.loc[raw.index, "cell_type"].astype(str), expected_type)
    assert set(cells.loc[placeholder_type.to_numpy(), "cell_type_id"]) == {"unknown"}
    # the file's own values, by cell name
    pd.testing.assert_series_equal(
        own_type.loc[raw.index], raw[CELL_TYPE[variant]].astype(str), check_names=False
    )
    assert set(own_id[placeholder_type.to_numpy()]) == {"GO:0005575"}
    # the filter drops the same cells on every layout: those whose own words say "not known"
    sex = raw["sex"].astype(str).str.lower()
    expected = ~placeholder_type.to_numpy() & ~sex.isin(["na", "not annotated", "unknown"])
    positions = pd.Series(np.arange(len(cells)), index=cells.index).loc[raw.index]
    np.testing.assert_array_equal(np.sort(positions[expected].to_numpy()), kept)
    assert 0 < kept.size < len(cells)


def test_the_files_own_column_selects_its_own_words(tmp_path):
    path = _write(tmp_path, "bgee15_1", cell_types=("B cell", "cellular_component"))
    with BgeeH5ad(path) as bgee:
        own = bgee.select({"cellTypeName": ["cellular_component"]})
        unified = bgee.select({"cell_type": ["unknown"]})
        np.testing.assert_array_equal(own, unified)
        assert "cellTypeName" in bgee.filter_columns and "cellTypeId" in bgee.filter_columns
        with pytest.raises(DatasetSpecError, match=r"values present: \['B cell', 'unknown'\]"):
            bgee.select({"cell_type": ["cellular_component"]})  # the values present are named
