"""Downloads laid out exactly as refine.bio writes them (``tests/data/refinebio/``), read value by
value: every value must sit under its own accession, whatever the order of the metadata rows.

The fixtures encode each value from its accessions (see ``tests/data/refinebio/README.md``):
a matrix value is ``s + g / 1000`` with ``s`` and ``g`` the last three digits of the sample
accession and the gene id, so a value under the wrong sample is caught, never passed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.io.refinebio.download import NO_VALUES_REASON, align_samples

DATA = Path(__file__).parent / "data" / "refinebio"
REFINEBIO_NO_FILE = "This sample did not have a processed file associated with it in our database."


def _num(accession: str) -> int:
    return int(re.search(r"(\d+)(?:\.\d+)?$", accession).group(1)) % 1000


def _expected(genes, samples) -> np.ndarray:
    """samples x genes values of the encoding."""
    return np.array([[_num(s) + _num(g) / 1000 for g in genes] for s in samples])


def _assert_encoded(adata, nan=()):
    X = np.asarray(adata.X, dtype=float)
    expected = _expected(adata.var_names, adata.obs_names)
    for s, g in nan:
        i, j = list(adata.obs_names).index(s), list(adata.var_names).index(g)
        assert np.isnan(X[i, j])
        expected[i, j] = np.nan
    np.testing.assert_allclose(X, expected, rtol=1e-7, equal_nan=True)
    assert list(adata.obs["refinebio_accession_code"]) == list(adata.obs_names)


def _read(name):
    with pytest.warns(rw.MetadataMismatchWarning) if name.startswith("experiment") else _nothing():
        return rw.read_zip(DATA / name)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- every layout, value by value ------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["experiment_shuffled.zip", "experiment_shuffled", "species.zip", "all.zip"]
)
def test_smasher_downloads_read_every_value_under_its_accession(name):
    res = _read(name)
    meta = json.loads((DATA / "experiment_shuffled" / "aggregated_metadata.json").read_text())
    for key in res:
        nan = [("ERS1430758", "ENSG00000000419")] if key == "E-MTAB-4001" else []
        _assert_encoded(res[key], nan)
        obs = res[key].obs
        if name.startswith("experiment"):  # each row's metadata is its own sample's
            titles = {s: meta["samples"][s]["refinebio_title"] for s in obs.index}
            assert obs["refinebio_title"].to_dict() == titles


def test_experiment_download_matches_refinebio_content():
    with pytest.warns(rw.MetadataMismatchWarning) as caught:
        res = rw.read_zip(DATA / "experiment_shuffled.zip")
    (message,) = [str(w.message) for w in caught]
    assert (
        "1 sample(s) are listed in the metadata but have no values in the matrix (GSM3170190;"
        in message
    )
    assert list(res) == ["E-MTAB-4001", "GSE100001"]
    assert list(res["GSE100001"].obs_names) == ["GSM3170811", "GSM3170545", "GSM3170327"]
    assert list(res["E-MTAB-4001"].obs_names) == [
        "ERS1430433",
        "ERS1430216",
        "ERS1430904",
        "ERS1430758",
    ]
    filtered = res.filtered_samples.set_index("accession")
    assert filtered.loc["GSM3170672"].to_dict() == {
        "experiment": "GSE100001",
        "reason": REFINEBIO_NO_FILE,
    }
    assert filtered.loc["GSM3170190"].to_dict() == {
        "experiment": "GSE100001",
        "reason": NO_VALUES_REASON,
    }
    assert res.filtered_records["GSM3170672"]["refinebio_title"]
    geo = res.metadata("GSE100001").set_index("refinebio_accession_code")
    assert geo.loc["GSM3170811", "MetaSRA_age"] == "54.0"
    assert geo.loc["GSM3170811", "MetaSRA_age.unit"] == "year"
    assert geo.loc["GSM3170327", "characteristics_ch1_tissue"] == "lung"  # first value wins
    assert geo.loc["GSM3170811", "data_processing"] == "['SCAN', 'Brainarray ENSG mapping']"
    assert geo.loc["GSM3170811", "refinebio_age"] == 54.0
    assert bool(geo.loc["GSM3170811", "refinebio_processed"]) is True
    ae = res.metadata("E-MTAB-4001").set_index("refinebio_accession_code")
    assert ae.loc["ERS1430904", "refinebio_title"] == 'kidney "K2" donor 904'
    assert "µ" in ae.loc["ERS1430216", "refinebio_title"]
    assert set(ae["characteristic_dose"]) == {""}  # refine.bio drops ArrayExpress variables
    assert ae.loc["ERS1430433", "protocol"] == "['P-MTAB-1', 'P-MTAB-2']"
    assert ae.loc["ERS1430433", "refinebio_sex"] == "female"
    # the spec read back holds the samples present, not refine.bio's whole experiment lists
    assert res.dataset.data["GSE100001"] == ["GSM3170545", "GSM3170811", "GSM3170327"]


def test_species_compendium_with_root_matrix_and_empty_header_cell():
    text = zipfile.ZipFile(DATA / "compendium_HOMO_SAPIENS.zip").read("HOMO_SAPIENS.tsv")
    assert text.startswith(b"\tGSM7000234")
    res = rw.read_zip(DATA / "compendium_HOMO_SAPIENS.zip")
    adata = res["HOMO_SAPIENS"]
    assert list(adata.obs_names) == [
        "GSM7000234",
        "GSM7000567",
        "GSM7000901",
        "ERR4000123",
        "SRR8000456",
        "SRR8000789",
    ]
    _assert_encoded(adata)
    assert adata.obs.loc["SRR8000456", "MetaSRA_age"] == "29.0"
    assert adata.obs.loc["ERR4000123", "experiment_accession"] == "ERP500002"


def test_quantpendium_reads_transcripts_by_name():
    res = rw.read_zip(DATA / "quantpendium_HOMO_SAPIENS.zip")
    assert list(res) == ["SRP400001", "SRP400002"]
    for key in res:
        adata = res[key]
        assert adata.uns["refinewidgets"]["kind"] == "transcripts"
        s = np.array([_num(x) for x in adata.obs_names])[:, None]
        t = np.array([_num(x.rsplit(".", 1)[0]) for x in adata.var_names])[None, :]
        np.testing.assert_allclose(adata.X, s + t / 1000)
        np.testing.assert_allclose(adata.layers["TPM"], (s + t / 1000) / 10, rtol=1e-6)
        np.testing.assert_allclose(adata.layers["EffectiveLength"], 1000 + t - 50 - s % 7)
        np.testing.assert_array_equal(adata.var["Length"], 1000 + t[0])
        assert list(adata.obs["refinebio_accession_code"]) == list(adata.obs_names)
    assert res["SRP400001"].obs.loc["SRR9000118", "experiment_accession"] == "SRP400001"


def _length_scaled_tpm(quant: pd.DataFrame, tx2gene: pd.DataFrame) -> pd.Series:
    """tximport's lengthScaledTPM for one sample, the plain pandas way (all genes expressed)."""
    df = quant.join(tx2gene.set_index("transcript_id"), on="Name")
    abundance = df.groupby("gene_id")["TPM"].sum()
    length = (df["TPM"] * df["EffectiveLength"]).groupby(df["gene_id"]).sum() / abundance
    return abundance, length, df["NumReads"].sum()


def test_quantpendium_builds_gene_values_with_a_transcript_to_gene_table():
    path = DATA / "quantpendium_HOMO_SAPIENS.zip"
    cat = rw.open_catalog(path)
    ds = rw.Dataset({"SRP400001": ["ALL"]}, quantile_normalize=False)
    with pytest.raises(rw.DatasetSpecError, match="transcript-to-gene table.*tx2gene="):
        rw.build(ds, cat)
    cat = rw.open_catalog(path, tx2gene=DATA / "tx2gene_HOMO_SAPIENS.tsv")
    res = rw.build(ds, cat)
    got = res.expression("SRP400001")
    tx2gene = pd.read_csv(DATA / "tx2gene_HOMO_SAPIENS.tsv", sep="\t")
    parts = {}
    with zipfile.ZipFile(path) as zf:
        for s in got.columns:
            quant = pd.read_csv(io.BytesIO(zf.read(f"SRP400001/{s}_quant.sf")), sep="\t")
            parts[s] = _length_scaled_tpm(quant, tx2gene)
    mean_length = pd.concat({s: p[1] for s, p in parts.items()}, axis=1).mean(axis=1)
    for s, (abundance, _, total) in parts.items():
        new = abundance * mean_length
        expected = new * total / new.sum()
        np.testing.assert_allclose(got[s].to_numpy(), expected.loc[got.index].to_numpy())
    assert list(got.index) == ["ENSG00000000003", "ENSG00000000005", "ENSG00000000419"]


# -- alignment by accession ----------------------------------------------------------------
def _shuffle_metadata(src: Path, dst: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if "/metadata_" in info.filename and info.filename.endswith(".tsv"):
                lines = data.decode().split("\r\n")
                body = [x for x in lines[1:] if x]
                body = [body[i] for i in rng.permutation(len(body))]
                data = "\r\n".join([lines[0], *body, ""]).encode()
            zout.writestr(info, data)


def test_our_zip_with_shuffled_metadata_reads_the_same_values(cat, comp, tmp_path):
    data = {e: ["ALL"] for e in comp.experiments}
    res = rw.build(rw.Dataset(data, aggregate_by="SPECIES", quantile_normalize=False), cat)
    path = res.write_zip(tmp_path / "ours.zip")
    shuffled = tmp_path / "shuffled.zip"
    _shuffle_metadata(path, shuffled, seed=3)
    back = rw.read_zip(shuffled)
    for key in res:
        order = pd.read_csv(
            io.BytesIO(zipfile.ZipFile(shuffled).read(f"{key}/metadata_{key}.tsv")), sep="\t"
        )["refinebio_accession_code"].tolist()
        assert order != list(res[key].obs_names)  # really shuffled
        pd.testing.assert_frame_equal(back.expression(key), res.expression(key))
        meta = back.metadata(key).set_index("refinebio_accession_code")
        original = res.metadata(key).set_index("refinebio_accession_code")
        assert meta["refinebio_title"].to_dict() == original["refinebio_title"].to_dict()
    # the same file as a build source: each sample keeps its values
    rebuilt = rw.build(
        rw.Dataset(data, aggregate_by="SPECIES", quantile_normalize=False),
        rw.open_catalog(shuffled),
    )
    for key in res:
        pd.testing.assert_frame_equal(rebuilt.expression(key), res.expression(key))


def test_alignment_of_20000_samples_is_linear_and_exact():
    rng = np.random.default_rng(0)
    columns = [f"GSM{i:07d}" for i in range(20_000)]
    rows = [columns[i] for i in rng.permutation(len(columns))]
    align = align_samples(columns, rows, matrix="m", metadata="md")
    assert [rows[i] for i in align.rows] == columns
    assert align.no_metadata == [] and align.no_values == []


def test_metadata_group_without_matrix_lists_its_samples_as_filtered(tmp_path):
    # refine.bio writes a group's metadata even when none of its samples could be smashed
    src = DATA / "experiment_shuffled.zip"
    dst = tmp_path / "skipped.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != "E-MTAB-4001/E-MTAB-4001.tsv":
                zout.writestr(info, zin.read(info))
    with pytest.warns(rw.MetadataMismatchWarning, match="GSM3170190, ERS1430758"):
        res = rw.read_zip(dst)
    assert list(res) == ["GSE100001"]
    lost = res.filtered_samples[res.filtered_samples["reason"] == NO_VALUES_REASON]
    assert sorted(lost["accession"]) == sorted(
        ["GSM3170190", "ERS1430758", "ERS1430216", "ERS1430904", "ERS1430433"]
    )
    assert set(lost.loc[lost["accession"] != "GSM3170190", "experiment"]) == {"E-MTAB-4001"}


# -- building from a real download ---------------------------------------------------------
def test_build_from_a_real_download_keeps_values_attributes_and_reasons(tmp_path):
    with pytest.warns(rw.MetadataMismatchWarning, match="GSM3170190"):
        cat = rw.open_catalog(DATA / "experiment_shuffled.zip")
    assert not cat.samples.loc["GSM3170190", "processed"]
    ds = rw.Dataset({"GSE100001": ["ALL"], "E-MTAB-4001": ["ALL"]}, quantile_normalize=False)
    res = rw.build(ds, cat)
    for key in res:
        X = res[key].X
        expected = np.log2(_expected(res[key].var_names, res[key].obs_names))  # > 100: log2
        if key == "E-MTAB-4001":
            obs, var = list(res[key].obs_names), list(res[key].var_names)
            expected[obs.index("ERS1430758"), var.index("ENSG00000000419")] = np.nan
        np.testing.assert_allclose(X, expected, equal_nan=True, rtol=1e-12)
    reasons = res.filtered_samples.set_index("accession")["reason"].to_dict()
    assert reasons == {
        "GSM3170999": "no processed expression values in the source",
        "GSM3170190": NO_VALUES_REASON,
    }
    meta = res.metadata("GSE100001").set_index("refinebio_accession_code")
    assert meta.loc["GSM3170811", "MetaSRA_age"] == "54.0"  # SampleAttribute columns kept
    assert meta.loc["GSM3170545", "MetaSRA_age.unit"] == "year"
    assert meta.loc["GSM3170327", "MetaSRA_age"] == ""
    # written again as refine.bio writes: SampleAttribute columns among the sorted annotation
    # columns, multi-valued cells as Python's list text, CRLF line ends
    with zipfile.ZipFile(res.write_zip(tmp_path / "again.zip")) as zf:
        raw = zf.read("GSE100001/metadata_GSE100001.tsv")
    assert raw.count(b"\r\n") == 4 and b"\n" not in raw.replace(b"\r\n", b"")
    written = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, keep_default_na=False)
    header = list(written.columns)
    submitter = header[header.index("refinebio_treatment") + 1 :]
    assert submitter == sorted(submitter) and "MetaSRA_age.unit" in submitter
    row = written.set_index("refinebio_accession_code").loc["GSM3170811"]
    assert row["data_processing"] == "['SCAN', 'Brainarray ENSG mapping']"
    assert (row["MetaSRA_age"], row["MetaSRA_age.unit"]) == ("54.0", "year")


def test_written_zip_reads_with_refinebios_example_pandas_code(tmp_path):
    cat = rw.open_catalog(DATA / "compendium_HOMO_SAPIENS.zip")
    ds = rw.Dataset({e: ["ALL"] for e in cat.experiment_ids}, aggregate_by="SPECIES")
    res = rw.build(ds, cat)
    path = res.write_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(path) as zf:
        expression = pd.read_csv(zf.open("HOMO_SAPIENS/HOMO_SAPIENS.tsv"), sep="\t", index_col=0)
        metadata = pd.read_csv(zf.open("HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv"), sep="\t")
        assert b"\r\n" in zf.read("HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv")
        exact = pd.read_csv(
            zf.open("HOMO_SAPIENS/HOMO_SAPIENS.tsv"),
            sep="\t",
            index_col=0,
            float_precision="round_trip",
        )
    rna = metadata.loc[metadata["refinebio_accession_code"].str.startswith("SRR")]
    chosen = expression[rna["refinebio_accession_code"]]
    ours = res.expression("HOMO_SAPIENS")[chosen.columns]
    assert list(chosen.columns) == ["SRR8000456", "SRR8000789"] or len(chosen.columns) == 2
    # pandas' default float parser may differ in the last bit; the text itself is exact
    np.testing.assert_allclose(chosen.to_numpy(), ours.to_numpy(), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(exact[chosen.columns].to_numpy(), ours.to_numpy())


# -- writing as refine.bio writes ----------------------------------------------------------
def test_filtered_samples_files_have_refinebios_shape(tmp_path):
    with pytest.warns(rw.MetadataMismatchWarning):
        cat = rw.open_catalog(DATA / "experiment_shuffled")
    res = rw.build(rw.Dataset({"GSE100001": ["ALL"]}, quantile_normalize=False), cat)
    path = res.write_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(path) as zf:
        entries = json.loads(zf.read("filtered_samples_metadata.json"))
        tsv = zf.read("filtered_samples_metadata.tsv").decode()
        meta = json.loads(zf.read("aggregated_metadata.json"))
    assert sorted(entries) == ["GSM3170190", "GSM3170999"]
    entry = entries["GSM3170190"]
    assert entry["experiment_accession_code"] == "GSE100001"
    assert entry["reason"] == NO_VALUES_REASON
    assert entry["refinebio_title"] == "COPD lung 4" or entry["refinebio_title"]
    assert isinstance(entry["refinebio_annotations"], list) and entry["refinebio_annotations"]
    header = tsv.split("\r\n", 1)[0].split("\t")
    assert header[:2] == ["refinebio_accession_code", "experiment_accession"]
    assert "reason" in header and "experiment_accession_code" in header
    assert header.index("experiment_accession_code") < header.index("refinebio_title")
    # refine.bio's meaning: every sample of the experiment minus the filtered ones
    assert meta["experiments"]["GSE100001"]["sample_accession_codes"] == [
        "GSM3170545",
        "GSM3170811",
        "GSM3170327",
    ]
    assert meta["num_experiments"] == 1 and meta["num_samples"] == 3
    back = rw.read_zip(path)
    assert back.filtered_samples.set_index("accession")["experiment"].to_dict() == {
        "GSM3170190": "GSE100001",
        "GSM3170999": "GSE100001",
    }


# -- bad input -----------------------------------------------------------------------------
def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


_META = json.dumps({"aggregate_by": "EXPERIMENT", "experiments": {}, "samples": {}})
_HEADER = "refinebio_accession_code\texperiment_accession\n"


def test_metadata_and_matrix_sharing_no_accession_name_both_sides(tmp_path):
    path = _zip(
        tmp_path / "x.zip",
        {
            "aggregated_metadata.json": _META,
            "E1/E1.tsv": "Gene\tGSM1\tGSM2\nG1\t1\t2\n",
            "E1/metadata_E1.tsv": _HEADER + "SRR7\tE1\nSRR8\tE1\n",
        },
    )
    with pytest.raises(rw.SourceFormatError) as info:
        rw.read_zip(path)
    message = str(info.value)
    assert "share no sample accession" in message
    assert "the matrix has GSM1, GSM2" in message and "the metadata has SRR7, SRR8" in message


@pytest.mark.parametrize(
    "matrix,metadata,named",
    [
        ("Gene\tGSM1\tGSM1\nG1\t1\t2\n", "GSM1\tE1\n", "'GSM1' twice in its header"),
        (
            "Gene\tGSM1\tGSM2\nG1\t1\t2\n",
            "GSM1\tE1\nGSM2\tE1\nGSM2\tE1\n",
            "'GSM2' twice in its rows",
        ),
    ],
)
def test_duplicate_accessions_are_named(tmp_path, matrix, metadata, named):
    path = _zip(
        tmp_path / "x.zip",
        {
            "aggregated_metadata.json": _META,
            "E1/E1.tsv": matrix,
            "E1/metadata_E1.tsv": _HEADER + metadata,
        },
    )
    with pytest.raises(rw.SourceFormatError, match=re.escape(named)):
        rw.read_zip(path)


def test_quant_sf_with_missing_columns_names_file_and_column(tmp_path):
    path = _zip(
        tmp_path / "q.zip",
        {
            "aggregated_metadata.json": json.dumps({"quant_sf_only": True, "samples": {}}),
            "E1/SRR1_quant.sf": "Name\tLength\tTPM\tNumReads\nENST1\t100\t1.0\t2.0\n",
            "E1/metadata_E1.tsv": _HEADER + "SRR1\tE1\n",
        },
    )
    with pytest.raises(rw.SourceFormatError) as info:
        rw.read_zip(path)
    assert "E1/SRR1_quant.sf" in str(info.value) and "'EffectiveLength'" in str(info.value)
