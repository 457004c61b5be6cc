"""The Bgee fixtures in tests/data/bgee/ are what their README says, checked with anndata.

anndata is the oracle here: it reads every encoding these files use (0.6, 0.7, 0.8+,
fixed-length string attributes). These tests do not use refinewidgets' reader.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "bgee"
SCRIPT = ROOT / "scripts" / "make_bgee_fixtures.py"
TARBALL = "tarball/Danio_rerio_droplet_based_h5ad.tar.gz"

BLOOD4 = ["B cell", "T cell", "monocyte", "natural killer cell"]
BLOOD3 = BLOOD4[:3]
LIVER3 = ["endothelial cell", "hepatocyte", "macrophage"]

# file -> (library column, cell-type column, n_obs, n_vars, {library: cells}, cell types)
EXPECTED = {
    "Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614.h5ad": (
        "libID",
        "cellTypeName",
        80,
        40,
        {"SRX6088001": 30, "SRX6088002": 26, "SRX6088003": 24},
        BLOOD3,
    ),
    "Homo_sapiens_ERP132576_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        90,
        48,
        {"ERX9000101": 50, "ERX9000102": 40},
        BLOOD4,
    ),
    "Danio_rerio_SRP300001_droplet_based.h5ad": (
        "rnaSeqLibraryId",
        "cellTypeName",
        60,
        42,
        {"SRX10000011": 20, "SRX10000012": 22, "SRX10000013": 18},
        LIVER3,
    ),
    "Homo_sapiens_ERP400001_droplet_based.h5ad": (
        "rnaSeqLibraryId",
        "cell_type",
        66,
        44,
        {"ERX4000011": 36, "ERX4000012": 30},
        BLOOD3,
    ),
    "Homo_sapiens_ERP700007_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        64,
        48,
        {"ERX7000071": 34, "ERX7000072": 30},
        BLOOD4,
    ),
    "Mus_musculus_SRP600006_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        52,
        48,
        {"SRX6000061": 28, "SRX6000062": 24},
        BLOOD3,
    ),
    "Mus_musculus_SRP800008_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        68,
        48,
        {"SRX8000081": 26, "SRX8000082": 22, "SRX8000083": 20},
        BLOOD3,
    ),
    "duplicates/ERP132576_sc_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        90,
        48,
        {"ERX9000101": 50, "ERX9000102": 40},
        BLOOD4,
    ),
    "duplicates/Homo_sapiens_SC_RNA-Seq_read_counts_CPM_ERP132576.h5ad": (
        "libID",
        "cellTypeName",
        70,
        40,
        {"ERX9000101": 38, "ERX9000102": 32},
        BLOOD4,
    ),
    "two_species/Homo_sapiens_ERP900009_droplet_based.h5ad": (
        "rnaSeqLibraryId",
        "cell_type",
        46,
        44,
        {"ERX9000091": 24, "ERX9000092": 22},
        BLOOD4,
    ),
    "two_species/Mus_musculus_ERP900009_droplet_based.h5ad": (
        "rnaSeqLibraryId",
        "cell_type",
        50,
        44,
        {"ERX9000093": 30, "ERX9000094": 20},
        BLOOD3,
    ),
    "full_length/Mus_musculus_SRP500005_full_length.h5ad": (
        "library_id",
        "cellTypeName",
        24,
        30,
        {f"SRX{5_000_500 + i}": 1 for i in range(24)},
        BLOOD3,
    ),
    f"{TARBALL}!Danio_rerio/Danio_rerio_SRP310001_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        48,
        48,
        {"SRX11000011": 26, "SRX11000012": 22},
        LIVER3,
    ),
    f"{TARBALL}!Danio_rerio/Danio_rerio_SRP310002_droplet_based.h5ad": (
        "library_id",
        "cellTypeName",
        64,
        48,
        {"SRX11000021": 30, "SRX11000022": 18, "SRX11000023": 16},
        LIVER3,
    ),
}


def _read(rel: str, tmp_path: Path) -> anndata.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OldFormatWarning for the 0.6/0.7 files
        if "!" in rel:
            archive, member = rel.split("!")
            with tarfile.open(DATA / archive) as tar:
                data = tar.extractfile(member).read()
            path = tmp_path / Path(member).name
            path.write_bytes(data)
            return anndata.read_h5ad(path)
        return anndata.read_h5ad(DATA / rel)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_anndata_reads_documented_content(rel, tmp_path):
    lib_col, type_col, n_obs, n_vars, per_library, cell_types = EXPECTED[rel]
    adata = _read(rel, tmp_path)
    assert adata.shape == (n_obs, n_vars)
    types = adata.obs[type_col]
    assert sorted(str(t) for t in types.unique()) == cell_types
    assert all(isinstance(t, str) for t in types)  # names, never codes "0".."3"
    assert adata.obs[lib_col].astype(str).value_counts().to_dict() == per_library
    assert adata.obs_names.is_unique
    assert adata.X.dtype == np.float32 and adata.X.format == "csr"
    # obs names are <barcode>_<library> for droplet files
    if "full_length" not in rel:
        barcode_col = "barcodes" if "barcodes" in adata.obs else "barcode"
        expected_names = [
            f"{b}_{lib}" for b, lib in zip(adata.obs[barcode_col], adata.obs[lib_col])
        ]
        assert list(adata.obs_names) == expected_names


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_marker_genes_mark_their_cell_type(rel, tmp_path):
    """Cell type k (sorted by first appearance in the writer: documented order in README)
    has marker genes 4k..4k+3 at ~12 counts; other cells ~0.4."""
    lib_col, type_col, *_, cell_types = EXPECTED[rel]
    adata = _read(rel, tmp_path)
    order = (
        BLOOD4 if cell_types[0] == "B cell" else ["hepatocyte", "endothelial cell", "macrophage"]
    )
    dense = adata.X.toarray()
    if "full_length" in rel:
        dense = dense / dense.sum(axis=1, keepdims=True) * 1000
    for k, name in enumerate(order[: len(cell_types)]):
        own = np.asarray(adata.obs[type_col] == name)
        markers = dense[:, 4 * k : 4 * k + 4]
        assert markers[own].mean() > 5 * markers[~own].mean(), name


def test_expected_json_matches_anndata(tmp_path):
    expected = json.loads((DATA / "expected.json").read_text())
    assert set(expected) == set(EXPECTED)
    for rel, info in expected.items():
        lib_col, type_col, n_obs, n_vars, per_library, cell_types = EXPECTED[rel]
        assert (info["n_obs"], info["n_vars"]) == (n_obs, n_vars)
        assert info["cells_per_library"] == per_library
        assert info["cell_types"] == cell_types


def test_fixture_sizes_are_small():
    for path in DATA.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 200_000, path


# ---------------------------------------------------------------- writer specifics


def test_w1_layout():
    adata = _read("Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614.h5ad", None)
    assert list(adata.obs.columns) == [
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
    assert {"not annotated", "NA"} <= set(adata.obs["sex"].astype(str))
    assert set(adata.obs["SampleId"].astype(str)) == {"104511", "104518", "104525"}
    assert adata.obs["speciesId"].dtype == np.int64
    assert not any("experiment" in c for c in adata.obs.columns)


def test_w2_layout():
    adata = _read("Homo_sapiens_ERP132576_droplet_based.h5ad", None)
    assert list(adata.obs.columns[:4]) == [
        "barcodes",
        "experiment_id",
        "library_id",
        "anatEntityId",
    ]
    assert set(adata.obs["experiment_id"]) == {"ERP132576"}
    assert "cellTypeAuthorAnnotation" in adata.obs
    assert adata.obs["speciesId"].dtype == np.int64 and set(adata.obs["speciesId"]) == {9606}
    assert list(adata.var["gene_id"]) == list(adata.var_names)
    assert adata.uns["matrix_descriptions"] == {
        "X": "raw UMIs count",
        "layers": {"abundance": "Counts Per Million"},
    }
    np.testing.assert_allclose(adata.layers["abundance"].sum(axis=1), 1e6, rtol=1e-4)
    # bustools --em: some counts are fractional
    assert np.any(adata.X.data != np.round(adata.X.data))


def test_w3_layout():
    rel = "Danio_rerio_SRP300001_droplet_based.h5ad"
    adata = _read(rel, None)
    for column in ("barcode", "anatId", "rnaSeqLibraryId"):
        assert column in adata.obs
    assert not any("experiment" in c for c in adata.obs.columns)
    intergenic = [g for g in adata.var_names if g.startswith(("upstream_", "downstream_"))]
    assert len(intergenic) == 6
    assert adata[:, intergenic].X.sum() > 0
    with h5py.File(DATA / rel) as f:
        assert f["X/data"].compression == "gzip"
        assert f["obs/cellTypeName/codes"].compression == "gzip"


def test_w4_layout():
    adata = _read("Homo_sapiens_ERP400001_droplet_based.h5ad", None)
    for column in (
        "tissue",
        "tissue_ontology_term_id",
        "cell_type",
        "cell_type_ontology_term_id",
        "development_stage",
        "development_stage_ontology_term_id",
        "sex",
        "bgeeSex",
        "speciesId",
        "experiment_id",
        "donor_id",
        "assay",
        "suspension_type",
        "is_primary_data",
    ):
        assert column in adata.obs, column
    assert "cellTypeName" not in adata.obs and "anatEntityId" not in adata.obs
    assert set(adata.obs["sex"]) == {"unknown", "male"}
    assert set(adata.obs["bgeeSex"]) == {"not annotated", "male"}
    assert adata.uns["organism"] == "Homo sapiens"
    assert adata.uns["organism_ontology_term_id"] == "NCBITaxon:9606"
    assert list(adata.uns["batch_condition"]) == ["rnaSeqLibraryId"]
    assert adata.var["feature_name"].iloc[0] == "RWG1"
    assert {c for c in adata.var.columns if c.startswith("feature_")} >= {
        "feature_name",
        "feature_type",
        "feature_length",
        "feature_is_filtered",
    }
    assert not any(g.startswith(("upstream_", "downstream_")) for g in adata.var_names)


def test_two_species_files_share_no_gene():
    human = _read("two_species/Homo_sapiens_ERP900009_droplet_based.h5ad", None)
    mouse = _read("two_species/Mus_musculus_ERP900009_droplet_based.h5ad", None)
    assert set(human.obs["experiment_id"]) == set(mouse.obs["experiment_id"]) == {"ERP900009"}
    assert not set(human.var_names) & set(mouse.var_names)
    assert human.uns["organism"] == "Homo sapiens" and mouse.uns["organism"] == "Mus musculus"


def test_duplicates_folder():
    bgeedb = DATA / "duplicates" / "ERP132576_sc_droplet_based.h5ad"
    assert bgeedb.read_bytes() == (DATA / "Homo_sapiens_ERP132576_droplet_based.h5ad").read_bytes()
    assert sorted(p.name for p in (DATA / "duplicates").iterdir()) == [
        "ERP132576_sc_droplet_based.h5ad",
        "Homo_sapiens_SC_RNA-Seq_read_counts_CPM_ERP132576.h5ad",
    ]


def test_full_length_layout():
    adata = _read("full_length/Mus_musculus_SRP500005_full_length.h5ad", None)
    assert adata.obs["library_id"].is_unique  # one row per library
    assert np.all(adata.X.data == np.round(adata.X.data))  # read counts
    assert adata.uns["matrix_descriptions"]["layers"]["abundance"] == "Transcripts Per Million"


# ---------------------------------------------------------------- encodings


def test_anndata_07_encoding():
    with h5py.File(DATA / "Homo_sapiens_ERP700007_droplet_based.h5ad") as f:
        obs = f["obs"]
        assert obs.attrs["encoding-version"] == "0.1.0"
        codes = obs["cellTypeName"]
        assert isinstance(codes, h5py.Dataset) and codes.dtype.kind == "i"
        ref = codes.attrs["categories"]
        assert isinstance(ref, h5py.Reference)
        assert f[ref].name == "/obs/__categories/cellTypeName"
        assert "encoding-type" not in f["uns"].attrs


def test_anndata_06_encoding():
    with h5py.File(DATA / "Mus_musculus_SRP600006_droplet_based.h5ad") as f:
        assert isinstance(f["obs"], h5py.Dataset) and f["obs"].dtype.names[0] == "index"
        assert isinstance(f["var"], h5py.Dataset)
        assert "cellTypeName_categories" in f["uns"]
        assert f["X"].attrs["h5sparse_format"] == "csr"
        assert tuple(f["X"].attrs["h5sparse_shape"]) == (52, 48)
        assert "encoding-type" not in f.attrs


def test_fixed_length_string_attributes():
    with h5py.File(DATA / "Mus_musculus_SRP800008_droplet_based.h5ad") as f:
        for obj, name in (
            (f, "encoding-type"),
            (f["obs"], "_index"),
            (f["obs"], "column-order"),
            (f["X"], "encoding-type"),
            (f["obs/cellTypeName"], "encoding-type"),
        ):
            type_ = obj.attrs.get_id(name).get_type()
            assert isinstance(type_, h5py.h5t.TypeStringID), (obj.name, name)
            assert not type_.is_variable_str(), (obj.name, name)


def test_modern_files_use_variable_length_attributes():
    with h5py.File(DATA / "Homo_sapiens_ERP132576_droplet_based.h5ad") as f:
        assert f["obs"].attrs.get_id("encoding-type").get_type().is_variable_str()
        assert f["obs/cellTypeName"].attrs["encoding-type"] == "categorical"


# ---------------------------------------------------------------- tarballs


def _names(path: Path) -> list[tuple[str, bool]]:
    with tarfile.open(path) as tar:
        return [(m.name, m.issym()) for m in tar.getmembers()]


def test_species_tarball_members():
    assert _names(DATA / TARBALL) == [
        ("Danio_rerio", False),
        ("Danio_rerio/Danio_rerio_SRP310001_droplet_based.h5ad", False),
        ("Danio_rerio/Danio_rerio_SRP310001_droplet_based.tsv", False),
        ("Danio_rerio/Danio_rerio_SRP310002_droplet_based.h5ad", False),
        ("Danio_rerio/Danio_rerio_SRP310002_droplet_based.tsv", False),
    ]
    with tarfile.open(DATA / TARBALL) as tar:
        tsv = tar.extractfile("Danio_rerio/Danio_rerio_SRP310001_droplet_based.tsv").read()
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid) == (1_700_000_000, 1000, 1000)
    header = tsv.decode().splitlines()[0].split("\t")
    assert header[:4] == ["", "barcodes", "experiment_id", "library_id"]


def test_bad_tarballs():
    bad = DATA / "bad"
    name = "Danio_rerio_droplet_based_h5ad.tar.gz"
    good = ("Danio_rerio/Danio_rerio_SRP310001_droplet_based.h5ad", False)
    assert _names(bad / "escape_tarball" / name)[1:] == [good, ("../escape.h5ad", False)]
    assert _names(bad / "absolute_tarball" / name)[1:] == [
        good,
        ("/tmp/refinewidgets_absolute.h5ad", False),
    ]
    assert _names(bad / "symlink_tarball" / name)[1:] == [
        good,
        ("Danio_rerio/Danio_rerio_SRP310009_droplet_based.h5ad", True),
    ]
    with tarfile.open(bad / "symlink_tarball" / name) as tar:
        link = tar.getmember("Danio_rerio/Danio_rerio_SRP310009_droplet_based.h5ad")
        assert link.linkname == "../../../etc/passwd"
    truncated = (bad / "truncated_tarball" / name).read_bytes()
    assert truncated == (DATA / TARBALL).read_bytes()[: len(truncated)]
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        with tarfile.open(fileobj=io.BytesIO(truncated)) as tar:
            for member in tar:
                if member.isfile():
                    tar.extractfile(member).read()


# ---------------------------------------------------------------- bad H5ADs


def test_bad_h5ads():
    bad = DATA / "bad"
    with h5py.File(bad / "out_of_range_indices" / "Homo_sapiens_ERP990001_droplet_based.h5ad") as f:
        n_vars = f["X"].attrs["shape"][1]
        assert f["X/indices"][()].max() >= n_vars
    with h5py.File(bad / "broken_indptr" / "Homo_sapiens_ERP990002_droplet_based.h5ad") as f:
        assert np.any(np.diff(f["X/indptr"][()]) < 0)
    adata = _read("bad/no_library_column/Homo_sapiens_ERP990003_droplet_based.h5ad", None)
    library_like = {"libID", "library_id", "rnaSeqLibraryId", "SampleId", "donor_id"}
    assert not library_like & set(adata.obs.columns)
    assert "cellTypeName" in adata.obs and adata.n_obs == 42
    assert not any("_" in name for name in adata.obs_names)


# ---------------------------------------------------------------- determinism


def test_generator_reproduces_identical_bytes(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], check=True, cwd=tmp_path)
    committed = sorted(
        p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file() and p.name != "README.md"
    )
    regenerated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == regenerated
    for rel in committed:
        assert (DATA / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
