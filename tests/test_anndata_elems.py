"""``io.anndata_elems.read_elem`` reads elements exactly as anndata does, without importing it.

anndata (``anndata.io.read_elem``) is the oracle: every encoded element of every Bgee fixture
(the four writers, anndata 0.6, 0.7 and 0.8+ encodings, R's and Julia's fixed-length string
attributes) and a file holding every encoding our reader handles are read both ways and
compared, values, dtypes and index names alike.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from refinewidgets.errors import SourceFormatError
from refinewidgets.io.anndata_elems import read_elem, write_elem
from refinewidgets.io.bgee.counts import sparse_layout
from refinewidgets.io.bgee.h5ad import BgeeH5ad

ROOT = Path(__file__).resolve().parent.parent
BGEE = ROOT / "tests" / "data" / "bgee"
FIXTURES = sorted(BGEE.rglob("*.h5ad"))


def _assert_same(ours, theirs, where: str) -> None:
    assert type(ours) is type(theirs), (where, type(ours), type(theirs))
    if isinstance(theirs, pd.DataFrame):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, obj=where)
        assert ours.index.name == theirs.index.name, where
        assert ours.index.dtype == theirs.index.dtype, where
    elif isinstance(theirs, pd.Categorical):
        pd.testing.assert_extension_array_equal(ours, theirs)
        assert ours.ordered == theirs.ordered, where
        assert ours.categories.dtype == theirs.categories.dtype, where
    elif isinstance(theirs, pd.api.extensions.ExtensionArray):
        pd.testing.assert_extension_array_equal(ours, theirs)
    elif isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        if theirs.dtype.kind == "f":
            np.testing.assert_array_equal(ours, theirs, err_msg=where)
        else:
            assert ours.tolist() == theirs.tolist(), where
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            _assert_same(ours[key], theirs[key], f"{where}/{key}")
    elif sp.issparse(theirs):  # inside a dict (layers): compared as stored
        for part in ("data", "indices", "indptr"):
            _assert_same(getattr(ours, part), getattr(theirs, part), f"{where}.{part}")
    else:
        assert ours == theirs, where


def _encoded_elements(file: h5py.File) -> list[str]:
    """Every element with an encoding, but sparse matrices (X: read by ``io.bgee.counts``)."""
    names = []

    def visit(name, obj):
        kind = obj.attrs.get("encoding-type")
        if kind is not None and not str(kind).endswith("matrix") and "matrix" not in repr(kind):
            names.append(name)

    file.visititems(visit)
    return names


def _compare_file(path: Path) -> int:
    with h5py.File(path, "r") as file, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's warnings on old encodings
        names = _encoded_elements(file)
        for name in names:
            _assert_same(read_elem(file[name]), anndata.io.read_elem(file[name]), f"{path}:{name}")
    return len(names)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(BGEE)))
def test_every_element_of_every_fixture_reads_as_anndata_reads_it(path):
    _compare_file(path)


def test_the_species_tarballs_members_read_as_anndata_reads_them(tmp_path):
    with tarfile.open(BGEE / "tarball" / "Danio_rerio_droplet_based_h5ad.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".h5ad")]
        assert members
        tar.extractall(tmp_path, members=members, filter="data")
    assert sum(_compare_file(tmp_path / m.name) for m in members) > 20


def _every_encoding(path: Path) -> list[str]:
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["B cell", "T cell", "B cell", None]),
            "stage": pd.Categorical(["early", "late", "late", "early"], ordered=True),
            "n_genes": pd.Categorical([3, 5, 3, 5]),  # numeric categories
            "qc": np.array([0.5, np.nan, 1.5, 2.0]),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "kept": pd.array([True, None, False, True], dtype="boolean"),
            "note": np.array(["a", "b", "", "d"], dtype=object),
        },
        index=pd.Index(["c1", "c2", "c3", "c4"], name="barcode"),
    )
    with h5py.File(path, "w") as f:
        write_elem(f, "obs", obs)
        write_elem(f, "no_columns", pd.DataFrame(index=["g1", "g2"]))
        write_elem(f, "scalar", 7)
        write_elem(f, "float_scalar", 2.5)
        write_elem(f, "text", "droplet-based")
        write_elem(f, "matrix", np.arange(6, dtype=np.int32).reshape(2, 3))
        write_elem(f, "words", np.array(["x", "yy", "zzz"], dtype=object))
        write_elem(f, "mapping", {"a": 1, "b": np.array([1.0, 2.0])})
        return _encoded_elements(f)


def test_every_encoding_read_here_matches_anndata(tmp_path, monkeypatch):
    path = tmp_path / "all.h5"
    names = _every_encoding(path)
    assert _compare_file(path) == len(names) >= 25
    delegated = []  # the elements handed to anndata
    monkeypatch.setattr(anndata.io, "read_elem", lambda elem: delegated.append(elem.name))
    with h5py.File(path, "r") as f:
        for name in names:
            read_elem(f[name])
    assert delegated == ["/mapping"]  # a dict goes to anndata; every other element is read here


def test_fixed_length_attributes_are_decoded(tmp_path):
    path = tmp_path / "fixed.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "cats", pd.Categorical(["a", "b", "a"]))
        ascii_ = h5py.string_dtype("ascii", 11)
        f["cats"].attrs.create("encoding-type", np.bytes_("categorical"), dtype=ascii_)
        f["cats"].attrs.create("encoding-version", np.bytes_("0.2.0"), dtype=ascii_)
    with h5py.File(path, "r") as f:
        values = read_elem(f["cats"])
        _assert_same(values, anndata.io.read_elem(f["cats"]), "cats")
    assert list(values) == ["a", "b", "a"]


def test_opening_a_catalog_does_not_import_anndata():
    code = (
        "import sys\n"
        "from refinewidgets.io.catalog_open import open_catalog\n"
        f"catalog = open_catalog({str(BGEE / 'Homo_sapiens_ERP400001_droplet_based.h5ad')!r})\n"
        "assert len(catalog.experiments) == 1, 'nothing opened'\n"
        "demo = open_catalog()\n"
        "print(sorted(m for m in ('anndata', 'dask', 'zarr') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"encoding-type": "csr_matrix", "shape": [5, 4]}, ("csr", (5, 4))),
        ({"encoding-type": np.bytes_("csc_matrix"), "shape": [5, 4]}, ("csc", (5, 4))),
        ({"h5sparse_format": "csr", "h5sparse_shape": [2, 3]}, ("csr", (2, 3))),
    ],
)
def test_sparse_layout_reads_every_writers_attributes(tmp_path, attrs, expected):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        group = f.create_group("X")
        group.attrs.update(attrs)
        assert sparse_layout(group) == expected


def test_an_x_of_an_unknown_layout_is_a_clear_error(tmp_path):
    source = BGEE / "Homo_sapiens_ERP132576_droplet_based.h5ad"
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    with h5py.File(path, "r+") as f:
        f["X"].attrs["encoding-type"] = "coo_matrix"
    with pytest.raises(
        SourceFormatError,
        match=r"X has an unknown encoding \(Unknown encoding "
        r"type coo\).*download it again",
    ):
        BgeeH5ad(path)
