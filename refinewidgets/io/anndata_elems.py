"""anndata's element-level API (``read_elem``, ``write_elem``, ``sparse_dataset``), imported in
one place: ``anndata.io`` (anndata 0.11 and later; we require 0.12.5, see pyproject.toml).

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

from anndata.io import read_elem, sparse_dataset, write_elem

__all__ = ["read_elem", "sparse_dataset", "write_elem"]
