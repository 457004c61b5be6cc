"""The ``obs`` and ``var`` of an H5AD file, read as anndata reads them and kept as plain values.

``obs`` and ``var`` are read as anndata reads them (``read_elem``, which reads the common
encodings with h5py alone; anndata's own reader for files older than 0.7), so every encoding
anndata reads is read: categoricals as codes plus a ``categories``
attribute (0.7), compound datasets (0.6), fixed-length string attributes (R and Julia writers).
String arrays are read in blocks (:mod:`.h5_strings`). Values are kept as categoricals of
stripped text (missing values as ``""``), numbers as they are. Used by
:class:`~refinewidgets.io.bgee.h5ad.BgeeH5ad`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ...errors import SourceFormatError
from ..anndata_elems import read_elem
from .h5_strings import is_string_array, read_strings

__all__ = [
    "as_categorical",
    "as_kept",
    "as_names",
    "as_text",
    "attr_text",
    "read_column",
    "read_frames",
]


def as_text(value) -> str:
    """A stored value as stripped text (bytes decoded, whole floats without ``.0``).

    >>> as_text(b" B cell "), as_text(9606.0)
    ('B cell', '9606')
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


def as_categorical(values, lower=False) -> pd.Categorical:
    """Values as a categorical of stripped strings; missing values become ``""``.

    >>> list(as_categorical(["F ", None, "M"], lower=True))
    ['f', '', 'm']
    """
    if isinstance(values, pd.Categorical):  # as stored by anndata: no per-cell work
        codes, uniques = values.codes, values.categories
    else:
        codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)))
    labels = np.array([as_text(u) for u in uniques] + [""], dtype=object)
    if lower:
        labels = np.array([label.lower() for label in labels], dtype=object)
    categories, inverse = np.unique(labels, return_inverse=True)
    return pd.Categorical.from_codes(
        inverse[codes], categories=categories
    ).remove_unused_categories()


def as_names(values) -> pd.Index:
    """Obs names as an Index of ``str``.

    >>> as_names(["AAACCTG_L1", 7]).tolist()
    ['AAACCTG_L1', '7']
    """
    return pd.Index(np.asarray(values, dtype=object)).astype(str)


def as_kept(values) -> Any:
    """An obs column as we keep it: categoricals of stripped text, numbers as they are.

    >>> as_kept(np.array([3, 5])), list(as_kept(np.array(["a ", "b"], dtype=object)))
    (array([3, 5]), ['a', 'b'])
    """
    if isinstance(values, pd.Categorical) or not np.issubdtype(np.asarray(values).dtype, np.number):
        return as_categorical(values)
    return np.asarray(values)


def attr_text(attrs, key: str) -> str | None:
    """An HDF5 attribute as text (variable- or fixed-length strings alike); None when absent.

    >>> attr_text({"encoding-type": np.array(b"dataframe")}, "encoding-type")
    'dataframe'
    """
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def read_column(elem) -> Any:
    """``read_elem``; string arrays read in blocks (see :mod:`.h5_strings`)."""
    return read_strings(elem) if is_string_array(elem) else read_elem(elem)


def read_frames(file: h5py.File, path: Path) -> tuple[pd.DataFrame | None, pd.DataFrame, str]:
    """``(obs, var, encoding)`` of an open H5AD ``file`` (at ``path``), as anndata reads them.

    obs is None when its columns can be read one by one with :func:`read_column` (anndata 0.8
    or later: only the columns used are read). ``encoding`` names the anndata version (and
    writer kind) the file's encoding comes from.
    """
    if all(_unencoded(file[key]) for key in ("obs", "var")):
        obs, var = (_plain_frame(file[key], path) for key in ("obs", "var"))
        return obs, var, "no anndata encoding (plain HDF5 datasets, as h5py writes them)"
    if isinstance(file["obs"], h5py.Group) and isinstance(file["var"], h5py.Group):
        obs_attrs = file["obs"].attrs
        legacy_categories = any(
            isinstance(item, h5py.Dataset) and "categories" in item.attrs
            for item in file["obs"].values()
        )
        encoding = (
            "anndata 0.7 (categories as attributes)"
            if legacy_categories
            else "anndata 0.8 or later"
        )
        if isinstance(obs_attrs.get("encoding-type", obs_attrs.get("_index")), bytes):
            encoding += ", fixed-length string attributes (an R or Julia writer)"
        by_column = not legacy_categories and attr_text(obs_attrs, "encoding-version") == "0.2.0"
        obs = None if by_column else read_elem(file["obs"])
        return obs, read_elem(file["var"]), encoding
    # anndata before 0.7: obs and var are compound datasets, categories live in uns;
    # anndata's own reader (backed, so X stays on disk) undoes both
    import anndata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = anndata.read_h5ad(path, backed="r")
    try:
        obs, var = adata.obs.copy(), adata.var.copy()
    finally:
        adata.file.close()
    return obs, var, "anndata 0.6 (compound obs and var)"


def _unencoded(elem) -> bool:
    """A group of plain datasets, without the attributes anndata writes (a file hand-made with
    h5py): anndata would read it as a mapping, not a table."""
    return (
        isinstance(elem, h5py.Group)
        and "encoding-type" not in elem.attrs
        and "_index" not in elem.attrs
        and all(isinstance(item, h5py.Dataset) for item in elem.values())
    )


def _plain_frame(group: h5py.Group, path: Path) -> pd.DataFrame:
    """A table of ``group``'s one-dimensional datasets, indexed by its ``_index`` dataset (the
    index column's name anndata uses) or, without one, by row numbers as anndata does."""
    columns, lengths = {}, {}
    for name, item in group.items():
        values = item[()]
        if values.ndim != 1:
            raise SourceFormatError(
                f"{path}: {group.name}/{name} has {values.ndim} dimensions; a column of a table "
                "has one. Write the file with anndata (AnnData.write_h5ad)."
            )
        if values.dtype.kind in "SO":
            values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
        columns[name], lengths[name] = values, len(values)
    if len(set(lengths.values())) > 1:
        raise SourceFormatError(
            f"{path}: the columns of {group.name} differ in length ("
            + ", ".join(f"{k}: {n}" for k, n in lengths.items())
            + "). Write the file with anndata (AnnData.write_h5ad)."
        )
    index = columns.pop("_index", None)
    n = next(iter(lengths.values()), 0)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n) if index is None else index)
    frame.index = frame.index.astype(str)
    return frame
