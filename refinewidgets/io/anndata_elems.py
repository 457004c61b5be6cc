"""anndata's element-level API (``read_elem``, ``write_elem``, ``sparse_dataset``), from where
the installed anndata keeps it: ``anndata.io`` since 0.11, ``anndata.experimental`` in 0.10 (the
lowest anndata we support and test, see ``.ci/constraints-lowest.txt``).

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

try:  # anndata >= 0.11
    from anndata.io import read_elem, sparse_dataset, write_elem
except ImportError:  # anndata 0.10 (exercised by CI's lowest-versions run)
    from anndata.experimental import read_elem, sparse_dataset, write_elem

__all__ = ["read_elem", "sparse_dataset", "write_elem"]
