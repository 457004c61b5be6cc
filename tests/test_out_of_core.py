"""Builds on a Dask cluster (two local worker processes): the same results as in memory."""

from __future__ import annotations

from collections import Counter

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw

from .conftest import bulk_ids

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)


def _same(a: rw.Result, b: rw.Result) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        x, y = a[key], b[key]
        assert list(x.obs_names) == list(y.obs_names)
        assert list(x.var_names) == list(y.var_names)
        np.testing.assert_allclose(_dense(x.X), _dense(y.X), rtol=1e-12, atol=1e-12)
        pd.testing.assert_frame_equal(x.obs, y.obs)
        info_x, info_y = x.uns["refinewidgets"], y.uns["refinewidgets"]
        for name in ("gene_report", "transforms", "organisms", "genes_dropped_by_join"):
            assert info_x.get(name) == info_y.get(name), name
        qn_x, qn_y = info_x.get("quantile_normalization"), info_y.get("quantile_normalization")
        assert (qn_x is None) == (qn_y is None)
        if qn_x:
            assert qn_x["target"] == qn_y["target"]
            assert qn_x.get("ks_warning") == qn_y.get("ks_warning")
            if qn_x.get("ks_statistic") is None:
                assert qn_y.get("ks_statistic") is None
            else:
                assert qn_x["ks_statistic"] == pytest.approx(qn_y["ks_statistic"], abs=1e-12)
    pd.testing.assert_frame_equal(a.filtered_samples, b.filtered_samples)


@pytest.mark.parametrize(
    "options",
    [
        dict(aggregate_by="SPECIES", scale_by="STANDARD"),
        dict(aggregate_by="EXPERIMENT", scale_by="ROBUST"),
        dict(aggregate_by="ALL", quantile_normalize=False, scale_by="MINMAX", join="outer"),
        dict(aggregate_by="SPECIES", quantile_normalize=True, scale_by="NONE"),
    ],
)
def test_out_of_core_equals_in_memory(client, tmp_path, monkeypatch, options):
    monkeypatch.setenv("REFINEWIDGETS_BLOCK_SAMPLES", "4")  # many blocks per matrix
    cat = rw.open_catalog()
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, **options)
    in_memory = rw.build(ds, cat)
    out = rw.build(ds, cat, client=client, workdir=tmp_path)
    _same(in_memory, out)
    adata = next(iter(out.values()))
    import dask.array as da

    assert isinstance(adata.X, da.Array)  # nothing computed into memory by the build
    assert adata.uns["refinewidgets"]["out_of_core"]["blocks"] > 1
    zarr_files = list(tmp_path.rglob("*.zarr"))
    assert len(zarr_files) == len(out)
    assert not list(tmp_path.rglob("*.npy"))  # the blocks' files are cleaned up


def test_the_request_order_and_filtered_samples_are_kept(client, tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_BLOCK_SAMPLES", "3")
    cat = rw.open_catalog()
    first, second = bulk_ids(cat)[:2]
    ds = rw.Dataset(
        {second: cat.experiment_samples(second)[::-1], first: ["ALL"]},
        aggregate_by="ALL",
        quantile_normalize=False,
    )
    _same(rw.build(ds, cat), rw.build(ds, cat, client=client, workdir=tmp_path))


def test_written_to_zarr_and_h5ad_in_chunks(client, tmp_path):
    import anndata

    cat = rw.open_catalog()
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    res = rw.build(ds, cat, client=client, workdir=tmp_path / "work")
    key = next(iter(res))
    res[key].write_zarr(tmp_path / "out.zarr")
    back = anndata.read_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(np.asarray(back.X), np.asarray(res[key].X))
    res[key].write_h5ad(tmp_path / "out.h5ad")
    back = anndata.read_h5ad(tmp_path / "out.h5ad")
    np.testing.assert_array_equal(np.asarray(back.X), np.asarray(res[key].X))


def test_a_group_too_big_for_the_budget_starts_a_local_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_MEMORY_BUDGET", "1000000")  # 1 MB: every group is too big
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path))
    cat = rw.open_catalog()
    exp = bulk_ids(cat)[0]
    ds = rw.Dataset({exp: ["ALL"]})
    with pytest.warns(
        rw.OutOfCoreWarning, match=rf"Group {exp} has \d+ samples: about [\d.]+ MiB in memory"
    ):
        out = rw.build(ds, cat)
    monkeypatch.delenv("REFINEWIDGETS_MEMORY_BUDGET")
    _same(rw.build(ds, cat), out)


def test_cancel_between_steps_keeps_nothing(client, tmp_path):
    class Cancel:
        cancelled = False
        messages: list = []

        def __call__(self, done, total, message):
            self.messages.append(message)
            if "quantile-normalizing" in message:
                self.cancelled = True

    cat = rw.open_catalog()
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    target = Cancel()
    with pytest.raises(rw.BuildCancelled, match="nothing was kept"):
        rw.build(ds, cat, client=client, workdir=tmp_path, progress=target)
    assert any("reading on the Dask cluster" in m for m in target.messages)
    assert list(tmp_path.iterdir()) == []  # the group's work folder is gone


@pytest.mark.parametrize(
    "options",
    [
        dict(aggregate_by="SPECIES", pseudobulk="sample", counts_normalization="CPM", join="outer"),
        dict(aggregate_by="EXPERIMENT", quantile_normalize=False, counts_normalization="LOG1P_CPM"),
    ],
)
def test_cells_across_files_on_the_workers(client, tmp_path, options):
    """Each Bgee file read (and pseudobulked) on a worker: the same result as in memory."""
    cat = rw.open_catalog()
    cells = [e for e in cat.experiment_ids if cat.is_single_cell(e)]
    ds = rw.Dataset({e: ["ALL"] for e in cells}, **options)
    _same(rw.build(ds, cat), rw.build(ds, cat, client=client, workdir=tmp_path))


def test_warnings_raised_on_the_workers_reach_the_user(client, tmp_path):
    """A tarball member's counts are checked when first read, on a worker: its
    NotCountsWarning is raised again in the user's process, once."""
    import tarfile

    import h5py

    from refinewidgets.errors import NotCountsWarning
    from refinewidgets.testing.bgee_files import write_bgee_h5ad

    name = "Homo_sapiens_ERP901_droplet_based.h5ad"
    member = write_bgee_h5ad(
        tmp_path / name, variant="newest", experiment="ERP901", n_cells=60, n_genes=40, seed=4
    )
    with h5py.File(member, "r+") as f:
        data = f["X/data"][...]
        data[:5] = -data[:5]
        f["X/data"][...] = data
    tarball = tmp_path / "Homo_sapiens_droplet_based_h5ad.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(member, arcname=f"Homo_sapiens/{name}")
    member.unlink()
    cat = rw.open_catalog(tarball, cache_dir=tmp_path / "cache")  # counts not read yet
    ds = rw.Dataset({"ERP901": ["ALL"]}, quantile_normalize=False, pseudobulk="sample")
    with pytest.warns(NotCountsWarning, match="negative") as caught:
        rw.build(ds, cat, client=client, workdir=tmp_path / "work")
    assert len([w for w in caught if issubclass(w.category, NotCountsWarning)]) == 1


def test_a_species_tarball_member_is_extracted_on_a_worker(client, tmp_path):
    from pathlib import Path

    tarball = Path(__file__).parent / "data" / "bgee" / "tarball"
    cat = rw.open_catalog(tarball, cache_dir=tmp_path / "cache")
    ds = rw.Dataset({"SRP310001": ["ALL"]}, quantile_normalize=False, pseudobulk="sample")
    out = rw.build(ds, cat, client=client, workdir=tmp_path / "work")
    fresh = rw.open_catalog(tarball, cache_dir=tmp_path / "cache2")
    _same(rw.build(ds, fresh), out)


def test_the_zip_is_written_block_by_block_from_the_zarr_array(client, tmp_path):
    """The out-of-core result's zip reads back as the in-memory build's values."""
    cat = rw.open_catalog()
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    out = rw.build(ds, cat, client=client, workdir=tmp_path / "work")
    key = next(iter(out))
    assert hasattr(out[key].X, "chunks")  # X stayed a Dask array over the zarr array
    out.write_zip(tmp_path / "out.zip")
    back = rw.read_zip(tmp_path / "out.zip")
    np.testing.assert_allclose(
        np.asarray(back[key].X), np.asarray(rw.build(ds, cat)[key].X), rtol=1e-12, atol=1e-12
    )
    assert list(back[key].var_names) == list(out[key].var_names)
    assert list(back[key].obs_names) == list(out[key].obs_names)


class _CountedReads:
    """An array-like that records every slice Dask reads from it."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, 2
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.values[key]


def test_a_chunked_matrix_is_formatted_one_chunk_of_genes_at_a_time():
    """Each chunk of genes is read once, all samples at a time (slicing by the formatter's
    batches would read a chunk again for every batch that crosses it), and the text is the
    same as from the array in memory."""
    from refinewidgets.io.refinebio.matrix_tsv import _text_rows

    values = np.random.default_rng(3).normal(size=(600, 200))  # formatted 87 genes at a time
    values[2, 5] = np.nan
    source = _CountedReads(values)
    X = da.from_array(source, chunks=(200, 96), asarray=True)
    genes = np.array([f"G{i}" for i in range(200)], dtype=object)
    samples = [f"S{i}" for i in range(600)]
    text = b"".join(_text_rows(genes, samples, X, float32=False))
    assert text == b"".join(_text_rows(genes, samples, values, float32=False))
    reads = Counter((k[1].start, k[1].stop) for k in source.reads)  # 3 chunks of samples
    reads.pop((0, 0), None)  # Dask's probe of the array's type (an empty slice)
    assert reads == {(0, 96): 3, (96, 192): 3, (192, 200): 3}


def test_the_app_builds_on_a_given_cluster_and_links_its_dashboard(client, tmp_path):
    """``DatasetBuilder(cat, client=...)`` builds bulk groups out of core on the cluster and
    shows a link to its dashboard."""
    cat = rw.open_catalog()
    builder = rw.DatasetBuilder(cat, client=client, workdir=tmp_path / "work")
    link = client.dashboard_link
    assert (
        f'<a href="{link}"' in builder.dashboard.value
        and "Dask dashboard" in builder.dashboard.value
    )
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    builder.restore(ds)
    result = builder.build()
    assert result is not None, builder.status.text
    key = next(iter(result))
    assert hasattr(result[key].X, "chunks")  # a Dask array over the cluster's zarr array
    assert str(tmp_path / "work") in result[key].uns["refinewidgets"]["out_of_core"]["workdir"]
    _same(rw.build(ds, cat), result)
    assert rw.DatasetBuilder(cat).dashboard.value == ""  # no cluster, no link


def test_the_result_is_written_as_h5ad_and_zarr_equal_to_the_in_memory_build(client, tmp_path):
    """``Result.write_h5ad`` and ``Result.write_zarr`` of an out-of-core result: the in-memory
    build's values (1e-12), names and gene symbols, the provenance in ``uns``; X stays on
    disk."""
    import json

    import anndata

    cat = rw.open_catalog()
    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    symbols = dict(offline=True, skip_missing=True)  # human from the shipped table, no network
    out = rw.build(ds, cat, client=client, workdir=tmp_path / "work")
    out = rw.add_gene_symbols(out, **symbols)
    in_memory = rw.add_gene_symbols(rw.build(ds, cat), **symbols)
    assert "HOMO_SAPIENS" in in_memory
    h5ad = out.write_h5ad(tmp_path / "d.h5ad")
    zarr = out.write_zarr(tmp_path / "d.zarr")
    assert sorted(h5ad) == sorted(zarr) == sorted(in_memory)
    for key, built in in_memory.items():
        assert isinstance(out[key].X, da.Array)  # writing computed nothing into the result
        for back in (anndata.read_h5ad(h5ad[key]), anndata.read_zarr(zarr[key])):
            assert isinstance(back.X, np.ndarray) and back.X.dtype == np.float64
            assert list(back.obs_names) == list(built.obs_names)
            assert list(back.var_names) == list(built.var_names)
            np.testing.assert_allclose(back.X, built.X, rtol=1e-12, atol=1e-12)
            ours = back.uns["refinewidgets"]
            assert ours["format_version"] == 1
            assert ours["out_of_core"]["blocks"] >= 1
            assert (
                ours["quantile_normalization"]["target"]
                == built.uns["refinewidgets"]["quantile_normalization"]["target"]
            )
            if key == "HOMO_SAPIENS":
                assert back.var["gene_symbol"].tolist() == built.var["gene_symbol"].tolist()
                assert (back.var["gene_symbol"] != "").sum() > 0
                assert ours["gene_symbols"]["organism"] == "HOMO_SAPIENS"
            meta = json.loads(ours["aggregated_metadata_json"])
            assert sorted(meta["samples"]) == sorted(out.aggregated_metadata["samples"])
            assert list(back.obs.columns) == list(built.obs.columns)
            for column in ("refinebio_accession_code", "experiment_accession"):
                assert back.obs[column].astype(str).tolist() == built.obs[column].tolist()


def test_a_dask_backed_matrix_is_read_one_chunk_at_a_time_by_the_writers(tmp_path):
    """Neither writer computes the whole matrix: each reads every chunk of X once, and the zarr
    store gets X's chunks."""
    import anndata
    import zarr

    cat = rw.open_catalog()
    exp = bulk_ids(cat)[0]
    res = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)
    values = np.asarray(res[exp].X).copy()
    n, g = values.shape
    chunks = (max(1, n // 3), max(1, g // 4))
    for write, name in ((res.write_h5ad, "d.h5ad"), (res.write_zarr, "d.zarr")):
        source = _CountedReads(values)
        res[exp].X = da.from_array(source, chunks=chunks, asarray=True)
        path = write(tmp_path / name)[exp]
        reads = Counter(
            tuple((k.start, k.stop) for k in key)
            for key in source.reads
            if key != (slice(0, 0),) * 2
        )
        expected = {
            ((r, min(r + chunks[0], n)), (c, min(c + chunks[1], g))): 1
            for r in range(0, n, chunks[0])
            for c in range(0, g, chunks[1])
        }
        assert dict(reads) == expected, name
        back = anndata.read_h5ad(path) if name.endswith("h5ad") else anndata.read_zarr(path)
        np.testing.assert_array_equal(back.X, values)
    assert zarr.open_group(tmp_path / "d.zarr", mode="r")["X"].chunks == chunks


def test_write_zarr_checks_every_target_and_leaves_nothing_on_failure(tmp_path):
    import anndata

    cat = rw.open_catalog()
    first, second = bulk_ids(cat)[:2]
    res = rw.build(rw.Dataset({first: ["ALL"], second: ["ALL"]}), cat)
    (tmp_path / f"d_{second}.zarr").mkdir()
    with pytest.raises(rw.OutputExistsError, match=rf"d_{second}.zarr exists.*overwrite=True"):
        res.write_zarr(tmp_path / "d.zarr")
    assert not (tmp_path / f"d_{first}.zarr").exists()  # checked before writing anything
    written = res.write_zarr(tmp_path / "d.zarr", overwrite=True)
    assert anndata.read_zarr(written[second]).n_obs == res[second].n_obs
    (tmp_path / "e.zarr").write_text("mine")
    with pytest.raises(rw.OutputExistsError, match="is not a folder"):
        res.write_zarr(tmp_path / "e.zarr", group=first, overwrite=True)
    assert (tmp_path / "e.zarr").read_text() == "mine"
    with pytest.raises(rw.OutputError, match="does not exist; create it first"):
        res.write_zarr(tmp_path / "no" / "d.zarr")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
