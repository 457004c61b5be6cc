"""The counts matrix ``X`` of a Bgee H5AD file: opened, read by rows, checked.

:class:`BgeeCounts` is the part of :class:`~refinewidgets.io.bgee.h5ad.BgeeH5ad` that reads ``X``.
``X``'s layout and shape are read as anndata's backed sparse dataset reads them (legacy
``h5sparse_*`` attributes too, :func:`sparse_layout`); :meth:`BgeeCounts.read_counts` reads only the rows asked for,
and checks ``indptr`` and the column indices it reads, so a damaged file is an error, never
wrong values or a crash. Its stored values are read by :mod:`.csr_rows` (few planned reads
straight into the result; plain file reads when ``X`` is stored uncompressed).

- Layout of ``X``: CSR (what Bgee writes) is read selectively. A dense ``X`` is read by row
  blocks (also selective). A CSC ``X`` cannot be sliced by rows: it is streamed column block by
  column block, keeping only the selected rows (bounded memory, but a full scan of the file).
- ``read_counts`` does not check the values; call :meth:`BgeeCounts.check_counts` for that.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from ...errors import NotCountsWarning, SourceFormatError
from . import csr_rows
from .obs import attr_text

__all__ = ["BgeeCounts", "sparse_layout", "unreadable"]

_BLOCK = 1 << 22  # stored values per read of a dense or CSC X (bounds the temporary buffers)


def unreadable(path, err) -> SourceFormatError:
    """The error for a file that is not a readable H5AD file (``err`` says what is wrong).

    >>> print(unreadable("a.h5ad", "no X element"))  # doctest: +ELLIPSIS
    a.h5ad is not a readable H5AD file (no X element): it may be truncated or corrupt; ...
    """
    return SourceFormatError(
        f"{path} is not a readable H5AD file ({err}): it may be truncated "
        "or corrupt; download it again"
    )


def sparse_layout(group: h5py.Group) -> tuple[str, tuple[int, int]]:
    """``(layout, shape)`` of a sparse matrix stored as anndata stores it: ``"csr"`` or ``"csc"``
    from its ``encoding-type`` (``csr_matrix``) or, in files written before anndata 0.7, its
    ``h5sparse_format``; the shape from ``shape`` or ``h5sparse_shape``, as anndata's
    ``sparse_dataset`` reads them. Any other layout is a ``ValueError``.

    >>> import tempfile, pathlib, scipy.sparse as sp
    >>> from refinewidgets.io.anndata_elems import write_elem
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.h5"
    >>> with h5py.File(path, "w") as f:
    ...     write_elem(f, "X", sp.random(4, 3, density=0.5, format="csc"))
    ...     sparse_layout(f["X"])
    ('csc', (4, 3))
    """
    attrs = group.attrs
    layout = attr_text(attrs, "h5sparse_format")
    if layout is None:
        kind = attr_text(attrs, "encoding-type")
        if kind is None:
            raise KeyError("no encoding-type attribute")
        layout = kind.removesuffix("_matrix")
    if layout not in ("csr", "csc"):
        raise ValueError(f"Unknown encoding type {layout}")
    shape = attrs.get("shape", attrs.get("h5sparse_shape"))
    if shape is None:
        raise KeyError("no shape attribute")
    rows, columns = (int(v) for v in np.ravel(shape))
    return layout, (rows, columns)


class BgeeCounts:
    """Reading the counts matrix ``X`` of an open Bgee file (a base of
    :class:`~refinewidgets.io.bgee.h5ad.BgeeH5ad`, which gives ``path``, ``n_cells``, ``n_genes``,
    the open ``_file`` and, for a stub, ``_counts_file``)."""

    _x_file: h5py.File | None = None  # a stub's extracted member, opened on first read
    _x = None  # X (the group of a sparse X, the dense h5py.Dataset) once opened
    _x_group: h5py.Group | h5py.Dataset  # X as stored
    _layout: str  # "csr", "csc" or "dense"
    _indptr: np.ndarray | None = None  # checked (see _checked_indptr)
    _stored = None  # X's data and indices as read (csr_rows.FileArray or h5py.Dataset)
    #: The :class:`~refinewidgets.io.bgee.csr_rows.ReadPlan` of the last read of a CSR ``X``
    #: (how many reads, how many stored values they covered), for tests and benchmarks.
    last_read = None

    def _open_x(self, file: h5py.File) -> None:
        """Open ``X`` (its layout and shape, read as anndata reads them) and check it fits obs x
        var."""
        x = file["X"]
        if isinstance(x, h5py.Dataset):
            self._layout, shape = "dense", x.shape
        else:
            try:
                self._layout, shape = sparse_layout(x)
            except (ValueError, KeyError, TypeError, OSError) as err:
                raise unreadable(self.path, f"X has an unknown encoding ({err})") from None
            major = shape[0] if self._layout == "csr" else shape[1]
            if x["indptr"].shape[0] != major + 1 or x["data"].shape != x["indices"].shape:
                raise unreadable(self.path, "X's sparse arrays do not fit its shape")
        self._x = x
        if tuple(int(v) for v in shape) != (self.n_cells, self.n_genes):
            raise unreadable(
                self.path,
                f"X has shape {tuple(shape)} but obs x var is {(self.n_cells, self.n_genes)}",
            )
        values = x if isinstance(x, h5py.Dataset) else x.get("data")
        kind = getattr(getattr(values, "dtype", None), "kind", "f")
        if kind not in "biuf":  # text or objects: numbers written as strings are not counts
            raise SourceFormatError(
                f"{self.path}: X holds {values.dtype} values (text), not numbers: counts are "
                "stored as integers or floats. Write the file again with numeric X "
                "(e.g. adata.X = adata.X.astype('float32'))."
            )
        self._x_group = x
        self._stored = None

    def _ensure_x(self) -> None:
        if self._x is not None:
            return
        path = Path(self._counts_file())  # a tarball member, extracted on first use
        try:
            self._x_file = h5py.File(path, "r")
        except (OSError, RuntimeError) as err:
            raise unreadable(path, err) from None
        if "X" not in self._x_file:
            raise unreadable(path, "no X element")
        self._open_x(self._x_file)

    def _require_open(self) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
        self._ensure_x()

    def read_counts(self, rows) -> sp.csr_matrix:
        """Counts of the given cells: ``float32`` CSR, one row per entry of ``rows``.

        Only the stored values of the selected rows are read from a CSR ``X`` (after its
        ``indptr``), in contiguous runs of at most a few million values: memory grows with the
        selection, not the file. ``rows`` are positions (e.g. from :meth:`BgeeH5ad.select`) or a
        boolean mask; unsorted or repeated positions are served in the order given. A dense
        ``X`` is read by row blocks; a CSC ``X`` is streamed whole, keeping only these rows.
        """
        self._require_open()
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape == (self.n_cells,):
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError("rows must be a 1-d array of integer positions")
        rows = rows.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_cells):
            raise IndexError(
                f"row positions must be in [0, {self.n_cells}); got {rows.min()}..{rows.max()}"
            )
        unique, inverse = np.unique(rows, return_inverse=True)
        reader = {"csr": self._read_csr, "csc": self._read_csc, "dense": self._read_dense}
        try:
            matrix = reader[self._layout](unique)
        except SourceFormatError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            raise unreadable(self.path, err) from None  # h5py reports damage in many ways
        if unique.size != rows.size or not np.array_equal(unique, rows):
            matrix = matrix[inverse]
        return sp.csr_matrix(matrix, dtype=np.float32)

    def _checked_indptr(self) -> np.ndarray:
        """X's ``indptr``, checked before any use: from 0, never decreasing, ending at nnz."""
        if self._indptr is None:
            x = self._x_group
            indptr = x["indptr"][:].astype(np.int64)
            nnz = x["data"].shape[0]
            if (
                indptr.size == 0
                or indptr[0] != 0
                or indptr[-1] != nnz
                or np.any(np.diff(indptr) < 0)
            ):
                raise unreadable(
                    self.path,
                    f"X's indptr is broken (it must start at 0, never decrease and end at the "
                    f"{nnz:,} stored values; it starts at {indptr[:1].tolist()} and ends at "
                    f"{indptr[-1:].tolist()})",
                )
            self._indptr = indptr
        return self._indptr

    def _check_indices(self, indices: np.ndarray, bound: int, what: str) -> None:
        if indices.size and (indices.min() < 0 or indices.max() >= bound):
            raise unreadable(
                self.path,
                f"X's indices hold {int(indices.min())}..{int(indices.max())}, outside the "
                f"{bound:,} {what}",
            )

    def _read_csr(self, rows) -> sp.csr_matrix:
        """The asked rows' stored values, read in few contiguous reads of X's ``data`` and
        ``indices`` straight into the result (see :mod:`.csr_rows`).

        Reading spans directly, rather than through ``CSRDataset.__getitem__``, is measured: that
        call costs about 27 ms of package-metadata lookups each time here, and a scattered
        selection needs thousands of them (``benchmarks/bench_single_cell.py``)."""
        if self._stored is None:  # plain bytes in the file are read without HDF5
            x = self._x_group
            self._stored = tuple(
                csr_rows.FileArray.of(x[name]) or csr_rows.without_chunk_cache(x[name])
                for name in ("data", "indices")
            )
        indptr = self._checked_indptr()
        plan = csr_rows.plan_reads(
            indptr,
            rows,
            gap=csr_rows.read_gap(*self._stored),
            window=csr_rows.read_window(*self._stored),
        )
        self.last_read = plan
        with contextlib.ExitStack() as files:
            stored_data, stored_indices = (
                files.enter_context(s.open()) if isinstance(s, csr_rows.FileArray) else s
                for s in self._stored
            )
            try:
                return csr_rows.read_csr_rows(
                    stored_data,
                    stored_indices,
                    indptr,
                    rows,
                    self.n_genes,
                    columns="genes",
                    plan=plan,
                )
            except csr_rows.DamagedIndicesError as err:
                raise unreadable(self.path, err) from None

    def _read_dense(self, rows) -> sp.csr_matrix:
        x, parts = self._x, []
        step = max(1, _BLOCK // max(1, self.n_genes))
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(rows, breaks):
            for i in range(0, run.size, step):
                chunk = run[i : i + step]
                parts.append(sp.csr_matrix(x[chunk[0] : chunk[-1] + 1].astype(np.float32)))
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.n_genes))

    def _read_csc(self, rows) -> sp.csr_matrix:
        """Column blocks of the sparse dataset, keeping only these rows (a full scan of the
        file: a CSC matrix cannot be sliced by rows)."""
        x = self._x_group
        indptr = self._checked_indptr()
        position = np.full(self.n_cells, -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        kept_rows, kept_cols, kept_data = [], [], []
        column = 0
        while column < self.n_genes:  # stream column blocks of about _BLOCK stored values
            end = max(column + 1, int(np.searchsorted(indptr, indptr[column] + _BLOCK)) - 1)
            end = min(end, self.n_genes)
            begin, stop = indptr[column], indptr[end]
            stored = x["indices"][begin:stop]
            self._check_indices(stored, self.n_cells, "cells")
            where = position[stored]
            keep = where >= 0
            kept_rows.append(where[keep])
            kept_data.append(x["data"][begin:stop][keep].astype(np.float32))
            cols = np.repeat(np.arange(column, end), np.diff(indptr[column : end + 1]))
            kept_cols.append(cols[keep])
            column = end
        coo = sp.coo_matrix(
            (
                np.concatenate(kept_data or [[]]),
                (np.concatenate(kept_rows or [[]]), np.concatenate(kept_cols or [[]])),
            ),
            shape=(rows.size, self.n_genes),
        )
        return coo.tocsr()

    def check_counts(self, sample_rows=10000) -> None:
        """Warn :class:`~refinewidgets.errors.NotCountsWarning` if ``X`` does not hold counts.

        Reads at most ``sample_rows`` cells (20 evenly spread blocks) and looks at their stored
        values. Warns on negative or non-finite values, and on log-transformed values: all below
        30 (the log of any realistic count) with either most values non-integer, or the values
        being exactly ``log2/ln/log10`` of integers + 1 while some are non-integer. Fractional
        values alone are normal: bustools ``--em`` splits ambiguous UMIs among genes, but most
        values stay integers.
        """
        self._require_open()
        n = self.n_cells
        if self._layout == "csr":  # about 1M stored values are plenty, whatever the density
            self._checked_indptr()
            per_row = max(1.0, self._indptr[-1] / max(n, 1))
            sample_rows = int(min(sample_rows, max(200, 1_000_000 // per_row)))
        if n <= sample_rows:
            rows = np.arange(n)
        else:
            size = max(1, sample_rows // 20)
            starts = np.linspace(0, n - size, 20).astype(np.int64)
            rows = np.unique((starts[:, None] + np.arange(size)).ravel())
        values = self.read_counts(rows).data.astype(np.float64)
        found = None
        where = f"{values.size} stored values of {rows.size} sampled cells"
        if not np.isfinite(values).all():
            found = f"has NaN or infinite values (among {where})"
        elif values.size and values.min() < 0:
            found = (
                f"has negative values (minimum {values.min():.4g}, {int((values < 0).sum())} "
                f"of {where})"
            )
        elif values.size >= 50 and values.max() < 30:
            non_integer = np.abs(values - np.round(values)) > 1e-4
            share = non_integer.mean()
            if share > 0.5:
                found = (
                    f"looks log-transformed: {share:.0%} of {where} are non-integers and the "
                    f"largest is {values.max():.4g}"
                )
            elif share > 0.02:
                for base, name in [(2.0, "log2"), (np.e, "ln"), (10.0, "log10")]:
                    back = np.power(base, values) - 1
                    if (np.abs(back - np.round(back)) <= 1e-3 * np.maximum(1, back)).mean() > 0.99:
                        found = (
                            f"looks log-transformed: {where} are exactly {name}(integer + 1)"
                            f" with {share:.0%} non-integers; largest {values.max():.4g}"
                        )
                        break
        if found:
            warnings.warn(
                f"{self.path} {found}; Bgee droplet files hold UMI counts (possibly fractional "
                "from bustools --em), so this file was transformed after Bgee wrote it: use the "
                "file as downloaded from Bgee",
                NotCountsWarning,
                stacklevel=2,
            )

    def _close_x(self) -> None:
        """Close a stub's extracted member and forget ``X`` (read again on next use)."""
        if self._x_file is not None:
            self._x_file.close()
        self._x_file = None
        self._x = None
        self._stored = None
