"""The refine.bio zip: exact layout, content, round trip, and bad input."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.io.refinebio import matrix

from .conftest import experiments_of


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _read(path, name):
    with zipfile.ZipFile(path) as zf:
        return zf.read(name).decode()


@pytest.fixture
def species_result(comp, cat):
    data = {e: ["ALL"] for e in comp.experiments}
    return rw.build(rw.Dataset(data, aggregate_by="SPECIES", scale_by="STANDARD"), cat)


def test_species_layout(species_result, tmp_path):
    path = species_result.write_zip(tmp_path / "d.zip")
    assert _members(path) == [
        "README.md",
        "LICENSE.TXT",
        "aggregated_metadata.json",
        "HOMO_SAPIENS/HOMO_SAPIENS.tsv",
        "HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv",
        "HOMO_SAPIENS/metadata_HOMO_SAPIENS.json",
        "MUS_MUSCULUS/MUS_MUSCULUS.tsv",
        "MUS_MUSCULUS/metadata_MUS_MUSCULUS.tsv",
        "MUS_MUSCULUS/metadata_MUS_MUSCULUS.json",
    ]
    species_json = _read(path, "HOMO_SAPIENS/metadata_HOMO_SAPIENS.json")
    parsed = json.loads(species_json)
    assert parsed["species"] == "HOMO_SAPIENS"
    assert [s["refinebio_accession_code"] for s in parsed["samples"]] == list(
        species_result["HOMO_SAPIENS"].obs_names
    )
    assert "refinebio_annotations" in parsed["samples"][0]
    assert species_json == json.dumps(parsed, indent=4, sort_keys=True)


def test_experiment_and_all_layouts(comp, cat, tmp_path):
    exps = experiments_of(comp, "HOMO_SAPIENS")
    by_exp = rw.build(rw.Dataset({e: ["ALL"] for e in exps}), cat).write_zip(tmp_path / "e.zip")
    expected = ["README.md", "LICENSE.TXT", "aggregated_metadata.json"]
    for e in exps:
        expected += [f"{e}/{e}.tsv", f"{e}/metadata_{e}.tsv"]
    assert _members(by_exp) == expected
    all_ = rw.build(rw.Dataset({e: ["ALL"] for e in exps}, aggregate_by="ALL"), cat).write_zip(
        tmp_path / "a.zip"
    )
    assert _members(all_)[3:] == ["ALL/ALL.tsv", "ALL/metadata_ALL.tsv"]


def test_matrix_and_metadata_content(species_result, tmp_path):
    path = species_result.write_zip(tmp_path / "d.zip")
    text = _read(path, "HOMO_SAPIENS/HOMO_SAPIENS.tsv")
    header = text.split("\n", 1)[0].split("\t")
    assert header[0] == "Gene"
    assert header[1:] == list(species_result["HOMO_SAPIENS"].obs_names)
    frame = pd.read_csv(io.StringIO(text), sep="\t", index_col=0, float_precision="round_trip")
    expected = species_result.expression("HOMO_SAPIENS")
    assert list(frame.index) == list(expected.index)
    np.testing.assert_array_equal(
        frame.to_numpy(), expected.to_numpy()
    )  # exact: shortest round-trip text
    meta = pd.read_csv(
        io.StringIO(_read(path, "HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv")),
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    assert list(meta.columns) == species_result.metadata_columns
    assert meta["refinebio_accession_code"].tolist() == header[1:]


def test_aggregated_metadata(species_result, tmp_path):
    path = species_result.write_zip(tmp_path / "d.zip")
    text = _read(path, "aggregated_metadata.json")
    meta = json.loads(text)
    assert text == json.dumps(meta, indent=4, sort_keys=True)
    for key in (
        "aggregate_by",
        "created_at",
        "experiments",
        "ks_pvalue",
        "ks_statistic",
        "ks_warning",
        "num_experiments",
        "num_samples",
        "quant_sf_only",
        "quantile_normalized",
        "samples",
        "scale_by",
    ):
        assert key in meta
    assert meta["aggregate_by"] == "SPECIES" and meta["scale_by"] == "STANDARD"
    assert meta["quant_sf_only"] is False and meta["quantile_normalized"] is True
    assert meta["num_samples"] == sum(a.n_obs for a in species_result.values())
    assert meta["num_experiments"] == len(meta["experiments"]) == 4
    exp = next(iter(meta["experiments"].values()))
    assert set(exp) >= {
        "accession_code",
        "title",
        "organisms",
        "sample_accession_codes",
        "technology",
        "pubmed_id",
    }
    assert len(meta["created_at"]) == 19 and meta["created_at"][10] == "T"
    assert meta["refinewidgets"]["format_version"] == 1


def test_round_trip_keeps_the_content(species_result, tmp_path):
    first = species_result.write_zip(tmp_path / "a.zip")
    back = rw.read_zip(first)
    assert list(back) == list(species_result)
    assert back.dataset == species_result.dataset
    for key in species_result:
        pd.testing.assert_frame_equal(back.expression(key), species_result.expression(key))
        pd.testing.assert_frame_equal(
            back.metadata(key), species_result.metadata(key), check_dtype=False
        )
    second = back.write_zip(tmp_path / "b.zip")
    with zipfile.ZipFile(first) as za, zipfile.ZipFile(second) as zb:
        assert za.namelist() == zb.namelist()
        for name in za.namelist():
            assert za.read(name) == zb.read(name), name


def test_filtered_samples_are_written_and_read_back(tmp_path):
    from refinewidgets.core.sources import InMemorySource

    values = {"E1": pd.DataFrame({"S1": [1.0, 2.0], "S2": [np.nan, np.nan]}, index=["G1", "G2"])}
    cat = rw.Catalog(
        [
            InMemorySource(
                {
                    "E1": {
                        "accession_code": "E1",
                        "organisms": ["HOMO_SAPIENS"],
                        "technology": "MICROARRAY",
                        "sample_accession_codes": ["S1", "S2"],
                    }
                },
                {
                    s: {"refinebio_accession_code": s, "refinebio_organism": "HOMO_SAPIENS"}
                    for s in ("S1", "S2")
                },
                values,
            )
        ]
    )
    res = rw.build(rw.Dataset({"E1": ["ALL"]}), cat)
    path = res.write_zip(tmp_path / "f.zip")
    names = _members(path)
    assert "filtered_samples_metadata.json" in names and "filtered_samples_metadata.tsv" in names
    entries = json.loads(_read(path, "filtered_samples_metadata.json"))
    assert entries["S2"]["reason"].startswith("no usable values")
    tsv = pd.read_csv(io.StringIO(_read(path, "filtered_samples_metadata.tsv")), sep="\t")
    assert tsv["refinebio_accession_code"].tolist() == ["S2"]
    back = rw.read_zip(path)
    assert back.filtered_samples.to_dict("records") == res.filtered_samples.to_dict("records")


def _write_zip(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _refinebio_style_members(matrix_at_root=False):
    """A download as refine.bio writes it: pandas floats, no refinewidgets key, extra columns."""
    meta = {
        "aggregate_by": "SPECIES",
        "created_at": "2020-01-01T00:00:00",
        "scale_by": "NONE",
        "quantile_normalized": True,
        "quant_sf_only": False,
        "num_samples": 2,
        "num_experiments": 1,
        "ks_pvalue": None,
        "ks_statistic": None,
        "ks_warning": None,
        "experiments": {
            "GSE9": {
                "accession_code": "GSE9",
                "organisms": ["HOMO_SAPIENS"],
                "technology": "MICROARRAY",
                "sample_accession_codes": ["GSM1", "GSM2"],
                "title": "t",
            }
        },
        "samples": {
            s: {
                "refinebio_accession_code": s,
                "refinebio_organism": "HOMO_SAPIENS",
                "refinebio_annotations": [],
            }
            for s in ("GSM1", "GSM2")
        },
    }
    matrix = "Gene\tGSM1\tGSM2\nENSG1\t1.0\t2.5\nENSG2\t3.0\t\n"
    metadata = (
        "refinebio_accession_code\texperiment_accession\trefinebio_organism\tcharacteristics_ch1_tissue\n"
        "GSM1\tGSE9\tHOMO_SAPIENS\tlung\nGSM2\tGSE9\tHOMO_SAPIENS\tliver\n"
    )
    members = {"aggregated_metadata.json": json.dumps(meta)}
    members["HOMO_SAPIENS.tsv" if matrix_at_root else "HOMO_SAPIENS/HOMO_SAPIENS.tsv"] = matrix
    members["HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv"] = metadata
    return members


@pytest.mark.parametrize("matrix_at_root", [False, True])
def test_reads_refinebio_written_downloads(tmp_path, matrix_at_root):
    path = _write_zip(tmp_path / "rb.zip", _refinebio_style_members(matrix_at_root))
    res = rw.read_zip(path)
    frame = res.expression("HOMO_SAPIENS")
    assert frame.loc["ENSG1", "GSM2"] == 2.5 and np.isnan(frame.loc["ENSG2", "GSM2"])
    assert res.metadata("HOMO_SAPIENS")["characteristics_ch1_tissue"].tolist() == ["lung", "liver"]
    assert res.dataset == rw.Dataset({"GSE9": ["GSM1", "GSM2"]}, aggregate_by="SPECIES")
    assert res["HOMO_SAPIENS"].X.shape == (2, 2)


# -- bad input ------------------------------------------------------------------------------
def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_text("this is not a zip")
    with pytest.raises(
        rw.SourceFormatError, match="is not a readable zip file.*truncated or corrupt"
    ):
        rw.read_zip(bad)


def test_truncated_zip(species_result, tmp_path):
    good = species_result.write_zip(tmp_path / "good.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(rw.SourceFormatError, match="cut.zip"):
        rw.read_zip(cut)


def test_zip_without_aggregated_metadata(tmp_path):
    path = _write_zip(tmp_path / "x.zip", {"GSE1/GSE1.tsv": "Gene\tS1\nG1\t1\n"})
    with pytest.raises(rw.SourceFormatError, match="has no aggregated_metadata.json at its root"):
        rw.read_zip(path)
    with pytest.raises(rw.SourceFormatError, match="has no aggregated_metadata.json"):
        rw.open_catalog(path)


def test_matrix_columns_not_matching_metadata_rows_are_kept_and_reported(tmp_path):
    members = _refinebio_style_members()
    members["HOMO_SAPIENS/HOMO_SAPIENS.tsv"] = "Gene\tGSM1\tGSM3\nENSG1\t1.0\t2.5\n"
    path = _write_zip(tmp_path / "m.zip", members)
    with pytest.warns(rw.MetadataMismatchWarning) as caught:
        res = rw.read_zip(path)
    messages = [str(w.message) for w in caught]
    assert any("1 matrix column(s) have no metadata row (GSM3;" in m for m in messages)
    assert any(
        "listed in the metadata but have no values in the matrix (GSM2;" in m for m in messages
    )
    assert list(res["HOMO_SAPIENS"].obs_names) == ["GSM1", "GSM3"]
    assert res.expression("HOMO_SAPIENS").loc["ENSG1", "GSM3"] == 2.5
    assert res.metadata("HOMO_SAPIENS")["characteristics_ch1_tissue"].tolist() == ["lung", ""]
    assert res.filtered_samples.to_dict("records") == [
        {
            "accession": "GSM2",
            "experiment": "GSE9",
            "reason": "listed in the metadata, no values in the matrix",
        }
    ]


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
def test_unsafe_member_names_are_refused(tmp_path, evil):
    members = _refinebio_style_members()
    members[evil] = "gotcha"
    target = tmp_path / "inside"
    target.mkdir()
    path = _write_zip(target / "evil.zip", members)
    with pytest.raises(rw.UnsafeArchiveError, match="unsafe member name"):
        rw.read_zip(path)
    with pytest.raises(rw.UnsafeArchiveError):
        rw.open_catalog(path)
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in target.iterdir()) == ["evil.zip"]


def test_non_numeric_value_names_file_and_line(tmp_path):
    members = _refinebio_style_members()
    members["HOMO_SAPIENS/HOMO_SAPIENS.tsv"] = (
        "Gene\tGSM1\tGSM2\nENSG1\t1.0\t2.5\nENSG2\t3.0\tabc\n"
    )
    path = _write_zip(tmp_path / "n.zip", members)
    with pytest.raises(rw.SourceFormatError) as info:
        rw.read_zip(path)
    msg = str(info.value)
    assert (
        "HOMO_SAPIENS/HOMO_SAPIENS.tsv" in msg
        and "line 3" in msg
        and "'GSM2'" in msg
        and "'abc'" in msg
    )


def test_existing_output_is_not_overwritten(species_result, tmp_path):
    path = tmp_path / "d.zip"
    path.write_text("precious")
    with pytest.raises(
        rw.OutputExistsError, match="exists; choose another name or pass overwrite=True"
    ):
        species_result.write_zip(path)
    assert path.read_text() == "precious"
    species_result.write_zip(path, overwrite=True)
    assert zipfile.is_zipfile(path)


def test_interrupted_write_leaves_nothing(species_result, tmp_path, monkeypatch):
    calls = []
    real = matrix.write_matrix

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("refinewidgets.io.refinebio.zip.write_matrix", interrupted)
    with pytest.raises(KeyboardInterrupt):
        species_result.write_zip(tmp_path / "d.zip")
    assert list(tmp_path.iterdir()) == []


def test_output_folder_must_exist(species_result, tmp_path):
    with pytest.raises(rw.RefineWidgetsError, match="does not exist; create it first"):
        species_result.write_zip(tmp_path / "nope" / "d.zip")


def test_scaled_source_opens_with_a_warning(comp, cat, tmp_path):
    exp = next(iter(comp.experiments))
    path = rw.build(rw.Dataset({exp: ["ALL"]}, scale_by="MINMAX"), cat).write_zip(
        tmp_path / "s.zip"
    )
    with pytest.warns(
        rw.ScaledSourceWarning, match=r"was scaled \(MINMAX\).*do not suit re-normalization"
    ):
        scaled = rw.open_catalog(path)
    assert exp in scaled.experiment_ids


def test_newer_format_is_refused(tmp_path):
    members = _refinebio_style_members()
    meta = json.loads(members["aggregated_metadata.json"])
    meta["refinewidgets"] = {"format_version": 99}
    members["aggregated_metadata.json"] = json.dumps(meta)
    with pytest.raises(rw.SourceFormatError, match="newer refinewidgets"):
        rw.read_zip(_write_zip(tmp_path / "v.zip", members))


def test_groups_write_as_h5ad(species_result, tmp_path):
    import anndata

    adata = species_result["HOMO_SAPIENS"]
    adata.write_h5ad(tmp_path / "g.h5ad")
    back = anndata.read_h5ad(tmp_path / "g.h5ad")
    assert back.obs["refinebio_processed"].tolist() == adata.obs["refinebio_processed"].tolist()
    np.testing.assert_array_equal(back.X, adata.X)
