"""anndata's element-level API (``read_elem``, ``write_elem``), in one place.

Importing anndata costs about half a second of CPU: it imports dask and zarr when they are
installed. Opening a catalog reads the ``obs``, ``var`` and ``uns`` of Bgee's files, and the
app opens one in every kernel it keeps ready for a visitor, so :func:`read_elem` reads the
encodings those elements use with h5py alone, exactly as ``anndata.io.read_elem`` reads them:
``dataframe``, ``categorical``, ``string-array``, ``array``, ``string`` and ``numeric-scalar``
(0.2.0), ``nullable-integer`` and ``nullable-boolean`` (0.1.0). Any other element (another
encoding or version, none at all, a zarr store) goes to anndata itself, imported then.
``tests/test_anndata_elems.py`` reads every fixture's elements both ways and compares them.
``write_elem`` is anndata's (``anndata.io``, anndata 0.11 and later; we require 0.12.5, see
pyproject.toml), imported when first called.

Examples
--------
>>> import tempfile, pathlib, h5py, numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "e.h5"
>>> with h5py.File(path, "w") as f:
...     write_elem(f, "x", np.arange(3))
...     read_elem(f["x"]).tolist()
[0, 1, 2]
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["read_elem", "write_elem"]


def _attr(attrs, name: str, default: Any = None) -> Any:
    """An attribute as anndata reads it: fixed-length strings (R's and Julia's writers) decoded."""
    if name not in attrs:
        return default
    value = attrs[name]
    info = h5py.check_string_dtype(attrs.get_id(name).dtype)
    if info is None or info.length is None:
        return value
    if np.ndim(value) == 0:
        return value.decode("utf-8") if isinstance(value, bytes) else value
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]


def _spec(elem) -> tuple[str, str] | None:
    """``(encoding-type, encoding-version)`` of an HDF5 element; None for anything else."""
    if not isinstance(elem, (h5py.Dataset, h5py.Group)) or isinstance(elem, h5py.File):
        return None
    kind, version = _attr(elem.attrs, "encoding-type"), _attr(elem.attrs, "encoding-version")
    return (kind, version) if isinstance(kind, str) and isinstance(version, str) else None


def _categorical(elem: h5py.Group):
    import pandas as pd

    return pd.Categorical.from_codes(
        codes=read_elem(elem["codes"]),
        categories=read_elem(elem["categories"]),
        ordered=bool(_attr(elem.attrs, "ordered")),
    )


def _dataframe(elem: h5py.Group):
    import pandas as pd

    columns = list(_attr(elem.attrs, "column-order"))
    index_key = _attr(elem.attrs, "_index")
    frame = pd.DataFrame(
        {key: read_elem(elem[key]) for key in columns},
        index=read_elem(elem[index_key]),
        columns=columns if columns else None,
    )
    if index_key != "_index":
        frame.index.name = index_key
    return frame


def _nullable(elem: h5py.Group, kind: str):
    import pandas as pd

    array_type = pd.arrays.IntegerArray if kind == "nullable-integer" else pd.arrays.BooleanArray
    return array_type(read_elem(elem["values"]), mask=read_elem(elem["mask"]))


#: The encodings read here, as ``(encoding-type, encoding-version, HDF5 kind)``: their readers.
_READERS = {
    ("array", "0.2.0", h5py.Dataset): lambda elem: elem[()],
    ("string-array", "0.2.0", h5py.Dataset): lambda elem: elem.asstr()[()],
    ("string", "0.2.0", h5py.Dataset): lambda elem: elem.asstr()[()],
    ("numeric-scalar", "0.2.0", h5py.Dataset): lambda elem: elem[()].item(),
    ("categorical", "0.2.0", h5py.Group): _categorical,
    ("dataframe", "0.2.0", h5py.Group): _dataframe,
    ("nullable-integer", "0.1.0", h5py.Group): lambda elem: _nullable(elem, "nullable-integer"),
    ("nullable-boolean", "0.1.0", h5py.Group): lambda elem: _nullable(elem, "nullable-boolean"),
}


def read_elem(elem) -> Any:
    """An element of an H5AD file, as ``anndata.io.read_elem`` reads it (see the module's text:
    the common encodings with h5py alone, anything else by anndata)."""
    spec = _spec(elem)
    kind = h5py.Dataset if isinstance(elem, h5py.Dataset) else h5py.Group
    reader = _READERS.get((*spec, kind)) if spec is not None else None
    if reader is not None:
        return reader(elem)
    from anndata.io import read_elem as anndata_read_elem

    return anndata_read_elem(elem)


def write_elem(store, key: str, elem: Any, **kwargs) -> None:
    """``anndata.io.write_elem``."""
    from anndata.io import write_elem as anndata_write_elem

    anndata_write_elem(store, key, elem, **kwargs)
