"""Bgee files laid out as Bgee's four writers, older anndata encodings and Bgee's distribution
write them (``tests/data/bgee``, see its README), read by refinewidgets and checked against
anndata's own reader and the fixtures' documented content (``expected.json``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import refinewidgets as rw
from refinewidgets.errors import DatasetSpecError, GeneOverlapError, SourceFormatError
from refinewidgets.io.bgee.h5ad import BgeeH5ad

# anndata's own reads of the old-encoding fixtures (the oracle) warn that they are old
pytestmark = pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning")

DATA = Path(__file__).parent / "data" / "bgee"
EXPECTED = json.loads((DATA / "expected.json").read_text())
FILES = sorted(name for name in EXPECTED if "!" not in name)
WRITERS = {
    "W1": "Bgee 15.1",
    "W2": "Bgee 15.2",
    "W3": "Bgee after 15.2",
    "W4": "Bgee newest (scFAIR)",
}


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_reads_as_anndata_reads_it(name):
    """Cells, libraries, cell types (names, never category codes) and every count equal
    anndata's full read of the same file, whatever the writer or encoding."""
    path = DATA / name
    expected = EXPECTED[name]
    oracle = anndata.read_h5ad(path)
    with BgeeH5ad(path) as bgee:
        assert (bgee.experiment, bgee.organism) == (expected["experiment"], expected["organism"])
        assert bgee.n_cells == expected["n_obs"] and bgee.n_genes == expected["n_vars"]
        assert list(bgee.cells.index) == list(oracle.obs_names)
        assert list(bgee.genes.index) == list(oracle.var_names)
        assert (
            dict(bgee.cells["cell_type"].astype(str).value_counts())
            == (expected["cells_per_cell_type"])
        )
        assert (
            dict(bgee.cells["library"].astype(str).value_counts())
            == (expected["cells_per_library"])
        )
        counts = bgee.read_counts(np.arange(bgee.n_cells))
        np.testing.assert_array_equal(counts.toarray(), _dense(oracle.X).astype(np.float32))
        # a scattered selection, in the order asked
        rows = np.array([bgee.n_cells - 1, 0, 5, 3, 3])
        np.testing.assert_array_equal(
            bgee.read_counts(rows).toarray(), _dense(oracle.X)[rows].astype(np.float32)
        )
        if expected["writer"] in WRITERS:
            assert bgee.writer == expected["writer"]
            assert bgee.release == WRITERS[expected["writer"]]


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("Homo_sapiens_ERP700007_droplet_based.h5ad", "anndata 0.7 (categories as attributes)"),
        ("Mus_musculus_SRP600006_droplet_based.h5ad", "anndata 0.6 (compound obs and var)"),
        ("Mus_musculus_SRP800008_droplet_based.h5ad", "fixed-length string attributes"),
        ("Homo_sapiens_ERP132576_droplet_based.h5ad", "anndata 0.8 or later"),
    ],
)
def test_older_encodings_are_read_and_named(name, encoding):
    with BgeeH5ad(DATA / name) as bgee:
        assert encoding in bgee.encoding
        assert "0" not in set(bgee.cells["cell_type"].astype(str))  # names, not codes
        assert {"B cell", "T cell"} <= set(bgee.cells["cell_type"].astype(str))


def test_release_writer_and_encoding_are_recorded_in_uns():
    cat = rw.open_catalog(DATA / "Homo_sapiens_ERP700007_droplet_based.h5ad")
    res = rw.build(rw.Dataset({"ERP700007": ["ALL"]}, quantile_normalize=False), cat)
    files = res["ERP700007"].uns["refinewidgets"]["files"]
    assert files == {
        "Homo_sapiens_ERP700007_droplet_based.h5ad": {
            "file": "Homo_sapiens_ERP700007_droplet_based.h5ad",
            "experiment": "ERP700007",
            "organism": "HOMO_SAPIENS",
            "bgee_release": "Bgee 15.2",
            "bgee_writer": "W2",
            "file_name_convention": "Bgee 15.2+",
            "encoding": "anndata 0.7 (categories as attributes)",
            "assay": "droplet-based scRNA-seq",
            "unit": "UMI counts",
        }
    }


def test_duplicates_keep_the_newest_release_and_name_both_files():
    with pytest.warns(rw.DuplicateSourceWarning) as caught:
        cat = rw.open_catalog(DATA / "duplicates")
    message = str(caught[0].message)
    assert "ERP132576 (HOMO_SAPIENS) is in 2 files" in message
    assert "ERP132576_sc_droplet_based.h5ad (Bgee 15.2, file named as BgeeDB)" in message
    assert "Homo_sapiens_SC_RNA-Seq_read_counts_CPM_ERP132576.h5ad (Bgee 15.1" in message
    assert "Using " + str(DATA / "duplicates" / "ERP132576_sc_droplet_based.h5ad") in message
    assert len(cat.cells("ERP132576")) == 90  # the 15.2 copy's cells, once; not 70, not 160
    res = rw.build(rw.Dataset({"ERP132576": ["ALL"]}, quantile_normalize=False), cat)
    assert res["ERP132576"].shape == (90, 48)


def test_an_experiment_of_two_species_builds_one_group_per_species():
    cat = rw.open_catalog(DATA / "two_species")
    assert cat.experiments.loc["ERP900009", "organisms"] == "HOMO_SAPIENS; MUS_MUSCULUS"
    ds = rw.Dataset({"ERP900009": ["ALL"]}, quantile_normalize=False)
    res = rw.build(ds, cat)
    assert sorted(res) == ["ERP900009_HOMO_SAPIENS", "ERP900009_MUS_MUSCULUS"]
    human, mouse = res["ERP900009_HOMO_SAPIENS"], res["ERP900009_MUS_MUSCULUS"]
    assert human.shape == (46, 44) and mouse.shape == (50, 44)
    assert set(human.obs["organism"]) == {"HOMO_SAPIENS"}
    assert human.var_names[0].startswith("ENSG") and mouse.var_names[0].startswith("ENSMUSG")
    by_species = rw.build(
        rw.Dataset({"ERP900009": ["ALL"]}, aggregate_by="SPECIES", quantile_normalize=False), cat
    )
    assert sorted(by_species) == ["HOMO_SAPIENS", "MUS_MUSCULUS"]
    with pytest.raises(GeneOverlapError, match="share no gene"):  # never 96 cells x 0 genes
        rw.build(
            rw.Dataset({"ERP900009": ["ALL"]}, aggregate_by="ALL", quantile_normalize=False), cat
        )


def test_intergenic_features_are_left_out_unless_kept():
    path = DATA / "Danio_rerio_SRP300001_droplet_based.h5ad"
    oracle = anndata.read_h5ad(path)
    genic = ~oracle.var_names.str.startswith(("upstream_", "downstream_"))
    cat = rw.open_catalog(path)
    base = dict(data={"SRP300001": ["ALL"]}, quantile_normalize=False)
    default = rw.build(rw.Dataset(**base, counts_normalization="CPM"), cat)["SRP300001"]
    assert default.n_vars == 36 and not default.var_names.str.startswith("upstream_").any()
    raw = _dense(oracle.X)[:, genic]
    np.testing.assert_allclose(default.obs["total_counts"], raw.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(_dense(default.X).sum(axis=1), 1e6, rtol=1e-5)  # CPM over genes
    kept = rw.build(rw.Dataset(**base, keep_intergenic=True), cat)["SRP300001"]
    assert kept.n_vars == 42
    np.testing.assert_allclose(kept.obs["total_counts"], _dense(oracle.X).sum(axis=1), rtol=1e-6)
    pseudo = rw.build(rw.Dataset(**base, pseudobulk="sample"), cat)["SRP300001"]
    library = oracle.obs["rnaSeqLibraryId"].astype(str).to_numpy()
    for lib in pseudo.obs_names:
        np.testing.assert_allclose(
            _dense(pseudo[lib].X).ravel(),
            raw[library == lib].sum(axis=0)[np.argsort(oracle.var_names[genic])],
            rtol=1e-6,
        )


def test_symbols_raw_counts_layer_and_gene_selection():
    path = DATA / "Homo_sapiens_ERP400001_droplet_based.h5ad"
    oracle = anndata.read_h5ad(path)
    cat = rw.open_catalog(path)
    res = rw.build(
        rw.Dataset(
            {"ERP400001": ["ALL"]}, quantile_normalize=False, counts_normalization="LOG1P_CPM"
        ),
        cat,
    )
    adata = res["ERP400001"]
    assert adata.var.loc["ENSG90000000001", "gene_symbol"] == "RWG1"
    order = oracle.obs_names.get_indexer(adata.obs_names)
    columns = oracle.var_names.get_indexer(adata.var_names)
    np.testing.assert_array_equal(
        _dense(adata.layers["counts"]), _dense(oracle.X)[order][:, columns]
    )
    assert "log1p CPM" in adata.uns["refinewidgets"]["values"]
    assert "raw UMI counts" in adata.uns["refinewidgets"]["layers"]["counts"]
    picked = rw.build(
        rw.Dataset(
            {"ERP400001": ["ALL"]},
            quantile_normalize=False,
            counts_normalization="LOG1P_CPM",
            genes=["rwg3", "ENSG90000000001"],
        ),
        cat,
    )["ERP400001"]
    assert list(picked.var_names) == ["ENSG90000000003", "ENSG90000000001"]
    np.testing.assert_allclose(  # normalized over every gene, then subset
        _dense(picked.X), _dense(adata[:, list(picked.var_names)].X), rtol=1e-6
    )
    with pytest.warns(rw.GeneSelectionWarning, match="1 of the 2 genes asked for.*NOTAGENE"):
        rw.build(
            rw.Dataset(
                {"ERP400001": ["ALL"]}, quantile_normalize=False, genes=["RWG2", "NOTAGENE"]
            ),
            cat,
        )
    with pytest.raises(DatasetSpecError, match="None of the genes asked for"):
        rw.build(
            rw.Dataset({"ERP400001": ["ALL"]}, quantile_normalize=False, genes=["NOTAGENE"]), cat
        )


def test_cell_filter_exclusions_own_columns_and_qc_ranges():
    path = DATA / "Homo_sapiens_ERP400001_droplet_based.h5ad"
    oracle = anndata.read_h5ad(path)
    cat = rw.open_catalog(path)

    def cells(cell_filter):
        ds = rw.Dataset({"ERP400001": ["ALL"]}, quantile_normalize=False, cell_filter=cell_filter)
        return rw.build(ds, cat)["ERP400001"]

    known = cells({"sex": {"not_in": ["unknown"]}})
    assert known.n_obs == 30 and set(known.obs["sex"]) == {"male"}
    by_bgee_sex = cells({"bgeeSex": ["not annotated"]})  # Bgee's own column, by its name
    assert by_bgee_sex.n_obs == 36
    author = cells({"cellTypeAuthorAnnotation": ["B_c"], "sex": ["male"]})
    assert author.n_obs == 10 and set(author.obs["cell_type"]) == {"B cell"}
    totals = np.asarray(_dense(oracle.X).sum(axis=1)).ravel()
    low = float(np.median(totals))
    rich = cells({"total_counts": {"min": low}})
    assert rich.n_obs == int((totals >= low).sum())
    assert (rich.obs["total_counts"] >= low).all()
    detected = (_dense(oracle.X) > 0).sum(axis=1)
    few = cells({"n_genes_by_counts": {"max": int(np.median(detected))}})
    assert few.n_obs == int((detected <= np.median(detected)).sum())
    with pytest.raises(DatasetSpecError, match="numeric range needs numbers"):
        cells({"cell_type": {"min": 3}})
    with pytest.raises(DatasetSpecError, match=r"'celltype' \(did you mean cell_type"):
        cells({"celltype": ["B cell"]})


def test_a_filter_value_missing_in_one_experiment_filters_its_libraries(tmp_path):
    for name in (
        "Homo_sapiens_ERP400001_droplet_based.h5ad",
        "Homo_sapiens_ERP132576_droplet_based.h5ad",
    ):
        shutil.copy(DATA / name, tmp_path / name)
    cat = rw.open_catalog(tmp_path)
    ds = rw.Dataset(
        {"ERP400001": ["ALL"], "ERP132576": ["ALL"]},
        quantile_normalize=False,
        cell_filter={"cell_type": ["natural killer cell"]},
    )
    res = rw.build(ds, cat)  # ERP400001 has no NK cells: its libraries are filtered, no abort
    assert list(res) == ["ERP132576"] and res["ERP132576"].n_obs == 22
    filtered = res.filtered_samples.set_index("accession")
    assert sorted(filtered.index) == ["ERX4000011", "ERX4000012"]
    assert filtered["reason"].str.contains("no cell passes the cell filter").all()
    assert filtered["reason"].str.contains("values present").all()


def test_full_length_files_are_described_as_read_counts():
    path = DATA / "full_length" / "Mus_musculus_SRP500005_full_length.h5ad"
    cat = rw.open_catalog(path)
    assert "full-length scRNA-seq" in cat.experiments.loc["SRP500005", "title"]
    assert "read counts" in cat.experiments.loc["SRP500005", "description"]
    assert set(cat.samples["refinebio_platform"]) == {"full-length scRNA-seq"}
    res = rw.build(rw.Dataset({"SRP500005": ["ALL"]}, quantile_normalize=False), cat)
    info = res["SRP500005"].uns["refinewidgets"]
    assert info["values"] == "read counts"
    assert "UMI" not in info["values"]


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("out_of_range_indices", "outside the 48 genes"),
        ("broken_indptr", "X's indptr is broken"),
    ],
)
def test_damaged_matrices_are_clear_errors(folder, message):
    path = next((DATA / "bad" / folder).glob("*.h5ad"))
    with BgeeH5ad(path) as bgee, pytest.raises(SourceFormatError) as info:
        bgee.read_counts(np.arange(bgee.n_cells))
    assert message in str(info.value) and path.name in str(info.value)
    assert "download it again" in str(info.value)


def test_an_obs_without_library_column_lists_the_columns_found():
    path = next((DATA / "bad" / "no_library_column").glob("*.h5ad"))
    with pytest.raises(SourceFormatError) as info:
        rw.open_catalog(path)
    message = str(info.value)
    assert "has no library column: obs columns found: [" in message
    assert "'barcode'" in message and "'anatId'" in message
    assert (
        "accepted library columns: ['libID', 'library_id', 'rnaSeqLibraryId', 'SampleId']"
        in message
    )


def test_a_species_tarball_is_a_source(tmp_path):
    tarball = DATA / "tarball" / "Danio_rerio_droplet_based_h5ad.tar.gz"
    cat = rw.open_catalog(tarball, cache_dir=tmp_path / "cache")
    assert sorted(cat.experiment_ids) == ["SRP310001", "SRP310002"]
    members = sorted((tmp_path / "cache").rglob("members/*.h5ad"))
    assert members == []  # indexed, nothing extracted yet
    res = rw.build(rw.Dataset({"SRP310002": ["ALL"]}, quantile_normalize=False), cat)
    extracted = sorted(p.name for p in (tmp_path / "cache").rglob("members/*.h5ad"))
    assert extracted == ["Danio_rerio_SRP310002_droplet_based.h5ad"]  # only the one asked for
    # the same values as the member extracted by hand and opened as a file
    import tarfile

    with tarfile.open(tarball) as tar:
        member = tar.getmember("Danio_rerio/Danio_rerio_SRP310002_droplet_based.h5ad")
        (tmp_path / "by_hand.h5ad").write_bytes(tar.extractfile(member).read())
    oracle = anndata.read_h5ad(tmp_path / "by_hand.h5ad")
    adata = res["SRP310002"]
    order = oracle.obs_names.get_indexer(adata.obs_names)
    columns = oracle.var_names.get_indexer(adata.var_names)
    np.testing.assert_array_equal(_dense(adata.X), _dense(oracle.X)[order][:, columns])
    assert (
        adata.n_obs
        == EXPECTED[
            "tarball/Danio_rerio_droplet_based_h5ad.tar.gz!Danio_rerio/Danio_rerio_SRP310002_droplet_based.h5ad"
        ]["n_obs"]
    )


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("truncated_tarball", "truncated or corrupt"),
        ("escape_tarball", "../escape.h5ad"),
        ("absolute_tarball", "/tmp/refinewidgets_absolute.h5ad"),
        ("symlink_tarball", "link"),
    ],
)
def test_bad_tarballs_are_refused_through_open_catalog(tmp_path, folder, message):
    tarball = next((DATA / "bad" / folder).glob("*.tar.gz"))
    with pytest.raises(SourceFormatError) as info:
        rw.open_catalog(tarball, cache_dir=tmp_path / "cache")
    assert message in str(info.value)
    assert not Path("/tmp/refinewidgets_absolute.h5ad").exists()
    assert not list((tmp_path / "cache").rglob("*.h5ad"))


def test_info_on_a_species_tarball_lists_experiments_cells_and_cell_types(tmp_path):
    tarball = DATA / "tarball" / "Danio_rerio_droplet_based_h5ad.tar.gz"
    out = subprocess.run(
        [sys.executable, "-m", "refinewidgets.cli", "info", str(tarball)],
        capture_output=True,
        text=True,
        check=True,
        env={"REFINEWIDGETS_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stdout
    lines = {line.split(" ")[0]: line for line in out.splitlines()}
    for key in ("SRP310001", "SRP310002"):
        expected = EXPECTED[
            f"tarball/Danio_rerio_droplet_based_h5ad.tar.gz!Danio_rerio/Danio_rerio_{key}_droplet_based.h5ad"
        ]
        line = lines[key]
        assert (
            f"{key} (DANIO_RERIO): {len(expected['libraries'])} libraries, {expected['n_obs']} cells"
            in line
        )
        for cell_type, count in expected["cells_per_cell_type"].items():
            assert f"{cell_type} {count}" in line


SEX_COLUMNS = ("sex",)
STRAIN_COLUMNS = ("strain", "strain_or_genetic_background")


@pytest.mark.parametrize("name", FILES)
def test_every_fixtures_not_known_reads_unknown(name):
    """Each writer's own "not known" (sex ``NA`` / ``not annotated``, strain ``NA``) is
    ``unknown`` in the unified columns, cell by cell (checked against anndata's read of the
    file's own column), and the file's own words stay in its own column."""
    path = DATA / name
    raw = anndata.read_h5ad(path, backed="r").obs.copy()
    with BgeeH5ad(path) as bgee:
        cells = bgee.cells
        own = {bgee.extra_columns[n]: np.asarray(bgee.extra(n)) for n in bgee.extra_columns}
    for concept, names in (("sex", SEX_COLUMNS), ("strain", STRAIN_COLUMNS)):
        column = next(c for c in names if c in raw.columns)
        values = raw[column].astype(str)
        placeholder = values.str.strip().str.lower().isin(["na", "not annotated", "unknown"])
        unified = cells.loc[raw.index, concept].astype(str)
        np.testing.assert_array_equal(unified == "unknown", placeholder.to_numpy())
        if placeholder.any() and not (values[placeholder] == "unknown").all():
            kept = pd.Series(own[column], index=cells.index).loc[raw.index]
            np.testing.assert_array_equal(kept.astype(str), values)


def test_one_filter_means_the_same_on_a_group_mixing_writers():
    """A species group of the 15.1 layout (sex ``NA`` / ``not annotated``) and the newest
    (``unknown``): ``sex not in ['unknown']`` keeps exactly the annotated cells of both."""
    files = [
        DATA / "duplicates" / "Homo_sapiens_SC_RNA-Seq_read_counts_CPM_ERP132576.h5ad",
        DATA / "Homo_sapiens_ERP400001_droplet_based.h5ad",
    ]
    cat = rw.open_catalog(*files)
    ds = rw.Dataset(
        {"ERP132576": ["ALL"], "ERP400001": ["ALL"]},
        aggregate_by="SPECIES",
        quantile_normalize=False,
        cell_filter={"sex": {"not_in": ["unknown"]}},
    )
    adata = rw.build(ds, cat)["HOMO_SAPIENS"]
    expected = 0
    for path in files:
        obs = anndata.read_h5ad(path, backed="r").obs
        expected += int((~obs["sex"].astype(str).isin(["NA", "not annotated", "unknown"])).sum())
    assert adata.n_obs == expected
    assert set(adata.obs["sex"].astype(str)) == {"male"}
