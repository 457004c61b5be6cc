"""The fast single-cell read path: planned reads of X's rows (refinewidgets.io.bgee.csr_rows), string
arrays read in blocks or by rows (refinewidgets.io.bgee.h5_strings), and obs names and barcodes read
for the selected cells only (BgeeH5ad.cell_rows). Every value must equal the plain ways."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import refinewidgets as rw
from refinewidgets.errors import SourceFormatError
from refinewidgets.io.anndata_elems import read_elem, write_elem
from refinewidgets.io.bgee.csr_rows import (
    DamagedIndicesError,
    FileArray,
    plan_reads,
    read_csr_rows,
    read_gap,
    read_window,
    without_chunk_cache,
)
from refinewidgets.io.bgee.h5_strings import is_string_array, read_strings
from refinewidgets.io.bgee.h5ad import BgeeH5ad
from refinewidgets.testing.bgee_files import VARIANTS, write_bgee_h5ad

DATA = Path(__file__).parent / "data" / "bgee"


def _matrix(seed=0, n_rows=300, n_cols=50, density=0.2, empty_every=7):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    m.data = np.round(m.data * 20, 1) + 0.5
    m = m.tolil()
    m[::empty_every] = 0  # some empty rows
    m = m.tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    return m.astype(np.float32)


def _store(path, m, *, data_dtype="<f4", index_dtype="<i4", **options):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=m.data.astype(data_dtype), **options)
        f.create_dataset("indices", data=m.indices.astype(index_dtype), **options)
    return path


def _same(result, m, rows):
    expected = m[rows]
    assert isinstance(result, sp.csr_matrix) and result.dtype == np.float32
    assert result.shape == expected.shape and result.indices.dtype == np.int32
    np.testing.assert_array_equal(result.indptr, expected.indptr)
    np.testing.assert_array_equal(result.indices, expected.indices)
    np.testing.assert_array_equal(result.data, expected.data)


STORAGE = {
    "contiguous": {},
    "chunked": {"chunks": (64,)},
    "gzip": {"chunks": (50,), "compression": "gzip"},
    "float64 and int64, big-endian": {
        "chunks": (33,),
        "data_dtype": ">f8",
        "index_dtype": ">i8",
    },
}


@pytest.mark.parametrize("storage", list(STORAGE))
def test_read_csr_rows_equals_scipy_rows_whatever_the_plan(tmp_path, storage):
    m = _matrix()
    path = _store(tmp_path / "m.h5", m, **STORAGE[storage])
    rng = np.random.default_rng(1)
    selections = [
        np.arange(m.shape[0]),
        np.sort(rng.choice(m.shape[0], 40, replace=False)),
        np.arange(0, m.shape[0], 7),  # only empty rows
        np.array([m.shape[0] - 1]),
        np.array([], dtype=np.int64),
    ]
    with h5py.File(path, "r") as f:
        for data, indices in ((f["data"], f["indices"]), (f["data"][:], f["indices"][:])):
            for rows in selections:
                for gap, window in [(0, 1), (0, 5), (10, 64), (1 << 15, 1 << 18), (10**9, 10**9)]:
                    result = read_csr_rows(
                        without_chunk_cache(data),
                        without_chunk_cache(indices),
                        m.indptr,
                        rows,
                        m.shape[1],
                        gap=gap,
                        window=window,
                    )
                    _same(result, m, rows)


@pytest.mark.parametrize("storage", list(STORAGE))
def test_file_array_reads_plain_bytes_and_refuses_the_rest(tmp_path, storage):
    m = _matrix()
    path = _store(tmp_path / "m.h5", m, **STORAGE[storage])
    rows = np.sort(np.random.default_rng(2).choice(m.shape[0], 90, replace=False))
    plain = storage in ("contiguous", "chunked")
    with h5py.File(path, "r") as f:
        data, indices = FileArray.of(f["data"]), FileArray.of(f["indices"])
        assert (data is not None) == plain and (indices is not None) == plain
        if not plain:
            return
        assert read_gap(data, indices) == 1 << 12
        with data.open() as opened_data, indices.open() as opened_indices:
            for gap, window in [(0, 1), (0, 64), (100, 1000), (10**9, 10**9)]:
                result = read_csr_rows(
                    opened_data, opened_indices, m.indptr, rows, m.shape[1], gap=gap, window=window
                )
                _same(result, m, rows)
        with pytest.raises(ValueError, match="inside 'with array.open"):
            data.read(0, 1, np.empty(1, np.float32))


def test_file_array_refuses_a_file_cut_short(tmp_path):
    m = _matrix()
    path = _store(tmp_path / "m.h5", m)
    with h5py.File(path, "r") as f:
        data = FileArray.of(f["data"])
    with open(path, "r+b") as fh:
        fh.truncate(data.addresses[0] + 8)
    with data.open() as opened, pytest.raises(OSError, match="ended early"):
        opened.read(0, 10, np.empty(10, np.float32))


def test_bgee_reads_x_without_hdf5_when_it_can(tmp_path):
    path = write_bgee_h5ad(tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", n_cells=300)
    oracle = sp.csr_matrix(ad.read_h5ad(path).X)
    rows = np.arange(0, 300, 3)
    with BgeeH5ad(path) as bgee:
        _same(bgee.read_counts(rows), oracle, rows)
        assert all(isinstance(a, FileArray) for a in bgee._stored)
    gz = tmp_path / "Homo_sapiens_ERP2_droplet_based.h5ad"
    ad.read_h5ad(path).write_h5ad(gz, compression="gzip")
    with BgeeH5ad(gz) as bgee:
        _same(bgee.read_counts(rows), oracle, rows)
        assert not any(isinstance(a, FileArray) for a in bgee._stored)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.sets(st.integers(0, 299), max_size=120),
    gap=st.integers(0, 400),
    window=st.integers(1, 2000),
)
def test_read_csr_rows_any_rows_property(rows, gap, window):
    m = _matrix(seed=3)
    rows = np.array(sorted(rows), dtype=np.int64)
    plan = plan_reads(m.indptr, rows, gap=gap, window=window)
    # every read stays within a window, and reads cover exactly the asked values
    starts, stops = plan.starts, plan.stops
    for first, last in zip(plan.reads[:-1], plan.reads[1:]):
        assert stops[last - 1] - starts[first] <= window
    assert (stops - starts).sum() == plan.indptr[-1]
    _same(read_csr_rows(m.data, m.indices, m.indptr, rows, m.shape[1], plan=plan), m, rows)


def test_plan_merges_small_gaps_and_splits_at_windows():
    indptr = np.arange(0, 1001, 10)  # 100 rows of 10 values
    rows = np.arange(0, 100, 2)  # every other row: gaps of 10 values
    assert plan_reads(indptr, rows, gap=9).n_reads == 50
    assert plan_reads(indptr, rows, gap=10, window=10**6).n_reads == 1
    plan = plan_reads(indptr, rows, gap=10, window=100)
    assert plan.n_reads == 10 and plan.values_read == 10 * 90
    every = plan_reads(indptr, np.arange(100), gap=0, window=64)  # one run, cut at windows
    assert every.n_reads == 16 and every.values_read == 1000


def test_gap_and_window_follow_the_storage(tmp_path):
    m = _matrix()
    with h5py.File(_store(tmp_path / "a.h5", m, chunks=(64,)), "r") as f:
        assert read_gap(f["data"], f["indices"]) == 1 << 15
        assert read_window(f["data"], f["indices"]) % 64 == 0
    with h5py.File(_store(tmp_path / "b.h5", m, chunks=(2048,), compression="gzip"), "r") as f:
        assert read_gap(f["data"], f["indices"]) == 4096  # a read costs more than 4,096 values
        assert read_window(f["data"], f["indices"]) % 2048 == 0


@pytest.mark.parametrize("bad", [-1, 50, 2**40])
def test_damaged_indices_raise(tmp_path, bad):
    m = _matrix()
    indices = m.indices.astype(np.int64)
    indices[m.indptr[5] + 1] = bad
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["data"], f["indices"] = m.data, indices
        with pytest.raises(DamagedIndicesError, match="outside the 50 genes"):
            read_csr_rows(f["data"], f["indices"], m.indptr, np.array([1, 5]), 50, columns="genes")
        read_csr_rows(
            f["data"], f["indices"], m.indptr, np.array([1, 6]), 50, gap=10**9
        )  # read, not kept


def test_bgee_damaged_indices_are_a_source_format_error(tmp_path):
    path = write_bgee_h5ad(tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", n_cells=60)
    with h5py.File(path, "r+") as f:
        f["X/indices"][3] = 10_000
    with BgeeH5ad(path) as bgee, pytest.raises(SourceFormatError, match="outside the"):
        bgee.read_counts(np.arange(10))


def test_read_strings_blocks_and_rows_equal_read_elem(tmp_path, monkeypatch):
    monkeypatch.setattr("refinewidgets.io.bgee.h5_strings.BLOCK", 7)  # many blocks
    values = np.array([f"cell_{i}_é" for i in range(100)], dtype=object)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        write_elem(f, "names", values)
        write_elem(f, "codes", pd.Categorical(["a", "b"] * 50))
        assert is_string_array(f["names"]) and not is_string_array(f["codes"])
        whole = read_strings(f["names"])
        assert whole.dtype == object and whole.tolist() == read_elem(f["names"]).tolist()
        for rows in ([], [99, 0, 0, 50], list(range(0, 100, 3)), [6, 7]):
            got = read_strings(f["names"], np.array(rows, dtype=np.int64))
            assert got.tolist() == values[rows].tolist()


@pytest.mark.parametrize("variant", VARIANTS)
def test_cell_rows_equal_the_rows_of_the_full_table(tmp_path, variant):
    path = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant=variant, n_cells=120
    )
    rows = np.array([0, 5, 6, 7, 119, 3])
    with BgeeH5ad(path) as lazy:
        part = lazy.cell_rows(rows)
    with BgeeH5ad(path) as full:
        expected = full.cells.iloc[rows]
        pd.testing.assert_frame_equal(part, expected)
        pd.testing.assert_frame_equal(full.cell_rows(rows), expected)  # after cells was read
    assert list(part.columns) == list(expected.columns)


@pytest.mark.parametrize(
    "name",
    [
        "Homo_sapiens_ERP132576_droplet_based.h5ad",
        "Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614.h5ad",
        "Mus_musculus_SRP600006_droplet_based.h5ad",
    ],
)
def test_real_layout_cells_and_cell_rows_equal_anndata(name):
    path = DATA / name
    with warnings.catch_warnings():  # old anndata encodings
        warnings.simplefilter("ignore")
        oracle = ad.read_h5ad(path)
    with BgeeH5ad(path) as bgee:
        rows = np.arange(0, bgee.n_cells, 3)
        part = bgee.cell_rows(rows)
        assert list(part.index) == list(oracle.obs_names.astype(str)[rows])
    assert list(bgee.cells.index) == list(oracle.obs_names.astype(str))  # read before closing
    pd.testing.assert_frame_equal(part, bgee.cells.iloc[rows])


def test_build_reads_the_names_of_the_selected_cells_only(tmp_path):
    path = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", n_cells=400, n_genes=80
    )
    cat = rw.open_catalog(path)
    source = cat.sources[0]
    res = rw.build(
        rw.Dataset(
            {"ERP1": ["ALL"]},
            quantile_normalize=False,
            counts_normalization="LOG1P_CPM",
            cell_filter={"cell_type": ["B cell"]},
        ),
        cat,
    )
    assert source._file._full is None  # the table of all cells was never made
    adata = res["ERP1"]
    cells = source.cell_table()
    expected = cells[cells["cell_type"] == "B cell"]
    assert list(adata.obs_names) == list(expected.index)
    assert list(adata.obs["barcode"]) == list(expected["barcode"])
    X, counts = adata.X, adata.layers["counts"]
    assert np.shares_memory(counts.indices, X.indices) and X.indices.dtype == np.int32
    assert np.shares_memory(counts.indptr, X.indptr)
    assert not np.shares_memory(counts.data, X.data)


def test_reads_in_threads_share_no_file_handle(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = write_bgee_h5ad(tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", n_cells=400)
    oracle = sp.csr_matrix(ad.read_h5ad(path).X)
    selections = [np.arange(k, 400, 7) for k in range(7)] * 4
    with BgeeH5ad(path) as bgee, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(bgee.read_counts, selections))
    for rows, result in zip(selections, results):
        _same(result, oracle, rows)
