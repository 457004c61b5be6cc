"""A result as AnnData files: one ``.h5ad`` file (or ``.zarr`` store) per group.

One file per group, because a group is one AnnData: groups differ in genes (species) and in
what a row is (samples, cells), so they do not stack into one matrix. Each file holds the
group as built (``X``, ``obs``, ``var``, ``obsm`` such as Harmony's ``X_pca_harmony``, ``layers``)
and, in ``uns["refinewidgets"]``, how it was built, the ``format_version`` of refinewidgets'
files and the whole ``aggregated_metadata.json`` of the result (as a JSON string: ``.h5ad`` has
no JSON null). Files are written as the zip is: through :func:`~.containers.atomic.atomic_output` (a
temporary file renamed when complete), never over an existing file unless ``overwrite=True``.

A group built out of core (``rw.build(..., client=)``) has a Dask array over a zarr array as
``X``: it is written chunk by chunk (anndata's ``write_elem`` of a Dask array stores one chunk
at a time), so the whole matrix is never in memory (measured by
``benchmarks/bench_ooc_write.py``). :func:`write_zarr` gives the zarr store the Dask array's
chunks, so each chunk is written whole, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .._version import FORMAT_VERSION
from ..core.names import ACCESSION_PATTERN
from ..errors import OutputError, OutputExistsError
from .containers.atomic import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from ..core.result import Result

__all__ = ["h5ad_paths", "write_h5ad", "write_zarr"]


def h5ad_paths(
    result: Result, path: str | os.PathLike, group: str | None = None
) -> dict[str, Path]:
    """Where :func:`write_h5ad` writes each group: ``{key: path}``.

    ``path`` itself for one group (``group=`` chosen, or a result of one group); for several, the
    group's key before the suffix (``d.h5ad`` -> ``d_HOMO_SAPIENS.h5ad``, ``d_MUS_MUSCULUS.h5ad``).

    Examples
    --------
    >>> import refinewidgets as rw
    >>> res = rw.build(rw.Dataset({"GSE71102": ["ALL"], "SRP091833": ["ALL"]}), rw.open_catalog())
    >>> {k: p.name for k, p in h5ad_paths(res, "/tmp/d.h5ad").items()}
    {'GSE71102': 'd_GSE71102.h5ad', 'SRP091833': 'd_SRP091833.h5ad'}
    >>> {k: p.name for k, p in h5ad_paths(res, "/tmp/d.h5ad", group="SRP091833").items()}
    {'SRP091833': 'd.h5ad'}
    """
    return _paths(result, path, group, ".h5ad")


def _paths(result: Result, path: str | os.PathLike, group: str | None, suffix: str):
    """:func:`h5ad_paths` with ``suffix`` for a ``path`` without one."""
    path = Path(path)
    if group is not None:
        result[group]  # an unknown key names the groups there are
        return {group: path}
    keys = list(result)
    if not keys:
        raise OutputError("The result has no group to write.")
    if len(keys) == 1:
        return {keys[0]: path}
    suffix = path.suffix or suffix
    out = {}
    for key in keys:
        if not ACCESSION_PATTERN.fullmatch(key):  # keys are checked names; never a path here
            raise OutputError(
                f"The group key {key!r} cannot be part of a file name; write that group with "
                "write_h5ad(path, group=...) to a name of your choice."
            )
        out[key] = path.with_name(f"{path.stem}_{key}{suffix}")
    return out


def _group_for_file(result: Result, key: str):
    """The group with what the file must carry in ``uns`` (arrays shared, not copied)."""
    import anndata

    adata = result[key]
    ours = dict(adata.uns.get("refinewidgets", {}))
    ours["format_version"] = FORMAT_VERSION
    ours["aggregated_metadata_json"] = json.dumps(
        result.aggregated_metadata, sort_keys=True, default=str
    )
    return anndata.AnnData(
        X=adata.X,
        obs=adata.obs,
        var=adata.var,
        obsm=dict(adata.obsm),
        layers=dict(adata.layers),
        uns={**adata.uns, "refinewidgets": ours},
    )


def write_h5ad(
    result: Result,
    path: str | os.PathLike,
    *,
    group: str | None = None,
    overwrite: bool = False,
    compression: str | None = "gzip",
) -> dict[str, Path]:
    """Write the result's groups as ``.h5ad`` files; returns ``{key: path written}``.

    Where each group goes: :func:`h5ad_paths`. Every target is checked before anything is
    written (an existing one stops the write unless ``overwrite=True``), and if one group fails
    the files this call wrote are removed, so a failed call leaves nothing behind.

    Examples
    --------
    >>> import anndata, tempfile, pathlib, refinewidgets as rw
    >>> res = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), rw.open_catalog())
    >>> written = write_h5ad(res, pathlib.Path(tempfile.mkdtemp()) / "d.h5ad")
    >>> back = anndata.read_h5ad(written["SRP091833"])
    >>> back.shape == res["SRP091833"].shape, back.uns["refinewidgets"]["format_version"]
    (True, 1)
    """
    targets = h5ad_paths(result, path, group)
    if not overwrite:
        for target in targets.values():
            if os.path.lexists(target):
                raise OutputExistsError(
                    f"{target} exists; choose another name or pass overwrite=True to replace it."
                )
    written: list[Path] = []
    try:
        for key, target in targets.items():
            with atomic_output(target, overwrite=overwrite) as tmp, _one_chunk_at_a_time():
                _group_for_file(result, key).write_h5ad(tmp, compression=compression)
            written.append(target)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    return targets


def write_zarr(
    result: Result,
    path: str | os.PathLike,
    *,
    group: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the result's groups as AnnData zarr stores (folders); returns ``{key: path}``.

    The same content as :func:`write_h5ad` (``uns["refinewidgets"]`` with ``format_version``
    and the result's ``aggregated_metadata.json``), the same names (``d.zarr`` ->
    ``d_HOMO_SAPIENS.zarr`` for several groups) and the same rules: every target is checked
    first, an existing one is replaced only with ``overwrite=True``, and each store is written
    in a hidden folder beside it that is renamed when complete (a failed call leaves nothing).
    A Dask-backed ``X`` (a group built out of core) is stored with its chunks, one chunk at a
    time.

    Examples
    --------
    >>> import anndata, tempfile, pathlib, refinewidgets as rw
    >>> res = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), rw.open_catalog())
    >>> written = write_zarr(res, pathlib.Path(tempfile.mkdtemp()) / "d.zarr")
    >>> back = anndata.read_zarr(written["SRP091833"])
    >>> back.shape == res["SRP091833"].shape, back.uns["refinewidgets"]["format_version"]
    (True, 1)
    """
    targets = _paths(result, path, group, ".zarr")
    for target in targets.values():
        _check_store(target, overwrite)
    written: list[Path] = []
    try:
        for key, target in targets.items():
            adata = _group_for_file(result, key)
            chunks = getattr(adata.X, "chunksize", None)  # a Dask array's: whole chunks
            with _atomic_folder(target, overwrite) as tmp, _zarr_format() as text:
                metadata = adata.uns["refinewidgets"].pop("aggregated_metadata_json")
                with _one_chunk_at_a_time():
                    adata.write_zarr(tmp, chunks=tuple(chunks) if chunks else None)
                text(tmp, "uns/refinewidgets", "aggregated_metadata_json", metadata)
            written.append(target)
    except BaseException:
        for done in written:
            shutil.rmtree(done, ignore_errors=True)
        raise
    return targets


def _one_chunk_at_a_time():
    """anndata stores a Dask array with Dask's threaded scheduler; with one thread each chunk is
    read and written before the next is read, so one chunk is in memory by construction. More
    threads gain nothing here (the file takes one write at a time: anndata stores with a lock)
    and may read chunks ahead of the writer. Measured on a 2,000 x 20,000 zarr array: the same
    peak either way on a quiet machine; this is a bound, not a speed-up."""
    try:
        import dask
    except ImportError:  # no Dask: no Dask array to write
        return contextlib.nullcontext()
    return dask.config.set(num_workers=1)


@contextlib.contextmanager
def _zarr_format():
    """Stores in zarr's format 3 when zarr 3 is installed (anndata 0.12 still writes format 2
    by default, with a warning that this will change), unsharded; format 2 with zarr 2.

    Yields the writer of a long text into the store (the result's metadata JSON): anndata
    writes a text scalar as a fixed-width string, and zarr took 290 MB to store a 0.6 MB one
    (2,000 samples' metadata: ``write_zarr``'s peak was 1.3x the 305 MB matrix in
    ``benchmarks/bench_ooc_write.py --quick``; 95 MB above the baseline after, the same result
    written by hand), so in format 3 it is stored as a variable-length string, with anndata's
    encoding attributes."""
    import anndata
    import zarr

    if int(zarr.__version__.split(".")[0]) < 3:  # pragma: no cover - zarr 2
        yield _text_by_anndata
        return
    # no shards: anndata's automatic ones (1 GB) are held whole in memory before writing
    with anndata.settings.override(zarr_write_format=3, auto_shard_zarr_v3=False):
        with warnings.catch_warnings():
            # anndata consolidates the metadata (its readers use it); zarr 3 warns that the
            # consolidated file is not in the format 3 specification yet, on every write
            warnings.filterwarnings("ignore", "Consolidated metadata", category=UserWarning)
            yield _text_v3


def _text_by_anndata(store: Path, group: str, name: str, text: str) -> None:  # pragma: no cover
    import zarr

    from .anndata_elems import write_elem

    write_elem(zarr.open_group(store, mode="r+", path=group), name, text)
    zarr.consolidate_metadata(str(store))


def _text_v3(store: Path, group: str, name: str, text: str) -> None:
    import zarr

    array = zarr.open_group(store, mode="r+", path=group).create_array(name, shape=(), dtype=str)
    array[()] = text
    array.attrs.update({"encoding-type": "string", "encoding-version": "0.2.0"})
    zarr.consolidate_metadata(str(store))


def _check_store(target: Path, overwrite: bool) -> None:
    """Refuse a store's target before anything is written: an existing one (unless
    ``overwrite``; a file is never replaced by a store), a missing folder."""
    if os.path.lexists(target):
        if not overwrite:
            raise OutputExistsError(
                f"{target} exists; choose another name or pass overwrite=True to replace it."
            )
        if not target.is_dir() or target.is_symlink():
            raise OutputExistsError(
                f"{target} exists and is not a folder; a zarr store is a folder: choose "
                "another name."
            )
    if not target.parent.is_dir():
        raise OutputError(f"The folder {target.parent} does not exist; create it first.")


class _atomic_folder:
    """A hidden folder beside ``target``, renamed to it when the block succeeds, removed when it
    fails (an old store is moved aside first and removed after, with ``overwrite``)."""

    def __init__(self, target: Path, overwrite: bool) -> None:
        self.target, self.overwrite = target, overwrite

    def __enter__(self) -> Path:
        try:
            self.tmp = Path(
                tempfile.mkdtemp(
                    prefix=f".{self.target.name}.{os.getpid()}.",
                    suffix=".partial",
                    dir=self.target.parent,
                )
            )
        except OSError as exc:
            raise OutputError(
                f"Cannot write in {self.target.parent} ({exc.strerror or exc}): choose a folder "
                "you can write to."
            ) from None
        return self.tmp

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if os.path.lexists(self.target):
            if not self.overwrite:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise OutputExistsError(
                    f"{self.target} exists; choose another name or pass overwrite=True to "
                    "replace it."
                )
            old = self.tmp.with_name(self.tmp.name.replace(".partial", ".old.partial"))
            os.rename(self.target, old)
        os.rename(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
