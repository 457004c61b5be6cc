"""AnnData out (issue 25): ``Result.write_h5ad`` and the app's "AnnData (.h5ad)" download."""

from __future__ import annotations

import json
import re

import anndata
import numpy as np
import pytest

import refinewidgets as rw
from refinewidgets.errors import OutputExistsError, UnknownAccessionError

BREAST = {"GSE71102": ["ALL"], "SRP091833": ["ALL"]}


def test_one_group_is_one_file_with_values_metadata_embedding_and_provenance(demo_cat, tmp_path):
    ds = rw.Dataset(BREAST, aggregate_by="SPECIES", batch_correction="harmony")
    res = rw.build(ds, demo_cat)
    written = res.write_h5ad(tmp_path / "breast.h5ad")
    assert written == {"HOMO_SAPIENS": tmp_path / "breast.h5ad"}
    back = anndata.read_h5ad(tmp_path / "breast.h5ad")
    built = res["HOMO_SAPIENS"]
    # values by accession and gene, not by position
    sample, gene = built.obs_names[30], built.var_names[100]
    assert back[sample, gene].X[0, 0] == built[sample, gene].X[0, 0]
    assert back.obs.loc[sample, "experiment_accession"] == "SRP091833"
    assert list(back.obs.columns) == list(built.obs.columns)
    assert np.array_equal(back.obsm["X_pca_harmony"], built.obsm["X_pca_harmony"])
    ours = back.uns["refinewidgets"]
    assert ours["format_version"] == 1
    assert ours["batch_correction"]["method"] == "harmony"
    meta = json.loads(ours["aggregated_metadata_json"])
    assert meta["refinewidgets"]["dataset"]["batch_correction"] == "harmony"
    assert rw.Dataset.from_dict(meta["refinewidgets"]["dataset"]) == ds
    assert not list(tmp_path.glob("*.partial"))


def test_several_groups_are_one_file_each_named_by_key(demo_cat, tmp_path):
    res = rw.build(rw.Dataset(BREAST), demo_cat)  # aggregated by experiment: two groups
    written = res.write_h5ad(tmp_path / "d.h5ad")
    assert {k: p.name for k, p in written.items()} == {
        "GSE71102": "d_GSE71102.h5ad",
        "SRP091833": "d_SRP091833.h5ad",
    }
    for key, path in written.items():
        back = anndata.read_h5ad(path)
        assert list(back.obs_names) == list(res[key].obs_names)
        assert set(back.obs["experiment_accession"]) == {key}
    one = res.write_h5ad(tmp_path / "mine.h5ad", group="SRP091833")
    assert one == {"SRP091833": tmp_path / "mine.h5ad"}
    with pytest.raises(UnknownAccessionError, match="No group 'GSE1'.*GSE71102"):
        res.write_h5ad(tmp_path / "x.h5ad", group="GSE1")
    assert not (tmp_path / "x.h5ad").exists()


def test_existing_files_are_kept_unless_overwrite_and_a_failure_leaves_nothing(demo_cat, tmp_path):
    res = rw.build(rw.Dataset(BREAST), demo_cat)
    (tmp_path / "d_SRP091833.h5ad").write_text("mine")
    with pytest.raises(OutputExistsError, match="d_SRP091833.h5ad exists.*overwrite=True"):
        res.write_h5ad(tmp_path / "d.h5ad")
    assert not (tmp_path / "d_GSE71102.h5ad").exists()  # checked before writing anything
    assert (tmp_path / "d_SRP091833.h5ad").read_text() == "mine"
    res.write_h5ad(tmp_path / "d.h5ad", overwrite=True)
    assert anndata.read_h5ad(tmp_path / "d_SRP091833.h5ad").n_obs == res["SRP091833"].n_obs
    # the second file cannot be written (a folder has its name): the first one is removed too
    (tmp_path / "e_SRP091833.h5ad").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"):
        res.write_h5ad(tmp_path / "e.h5ad", overwrite=True)
    assert not (tmp_path / "e_GSE71102.h5ad").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_cells_and_their_counts_round_trip(demo_cat, tmp_path):
    res = rw.build(
        rw.Dataset({"ERP900101": ["ALL"]}, quantile_normalize=False, counts_normalization="CPM"),
        demo_cat,
    )
    path = res.write_h5ad(tmp_path / "cells.h5ad")["ERP900101"]
    back, built = anndata.read_h5ad(path), res["ERP900101"]
    assert back.shape == built.shape and back.uns["refinewidgets"]["kind"] == "cells"
    assert (back.layers["counts"] != built.layers["counts"]).nnz == 0
    assert np.allclose(back.X.toarray(), built.X.toarray())


def test_the_app_serves_the_h5ad_download(tmp_path, monkeypatch, demo_cat):
    from refinewidgets.widgets import SavePanel
    from refinewidgets.widgets.save import DOWNLOADS_ENV

    monkeypatch.setenv(DOWNLOADS_ENV, str(tmp_path))
    panel = SavePanel()
    panel.result = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), demo_cat)
    panel.format.value = "h5ad:SRP091833"
    href = re.search(r'href="([^"]+)"', panel.download.value).group(1)
    key, name = href.removeprefix("/refinewidgets/download/").split("/")
    assert name == "SRP091833.h5ad"
    back = anndata.read_h5ad(tmp_path / key / name)
    assert list(back.obs_names) == list(panel.result["SRP091833"].obs_names)
