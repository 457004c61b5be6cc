"""The result of a build (or of reading a refine.bio zip): one AnnData per group.

``res[key]`` is an AnnData with ``obs`` = one row per sample in refine.bio's metadata column
order, ``var`` = genes, ``X`` = the values (samples x genes), and ``uns["refinewidgets"]`` =
what was built and how. :meth:`Result.expression` and :meth:`Result.metadata` give the same data
in refine.bio's orientation; :meth:`Result.write_zip` writes the standard download and
:meth:`Result.write_h5ad` one AnnData file per group.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import UnknownAccessionError
from .provenance import UNS_KEY

if TYPE_CHECKING:  # pragma: no cover
    import anndata

    from .spec import Dataset

__all__ = ["Result", "is_cell_group", "make_cell_group", "make_group"]


def make_group(
    X: Any, obs: pd.DataFrame, genes: pd.Index, *, uns: Mapping[str, Any]
) -> anndata.AnnData:
    """An AnnData for one group: ``obs`` rows indexed by sample accession, ``var`` by gene id."""
    import anndata

    obs = obs.copy()
    obs.index = pd.Index(obs["refinebio_accession_code"].astype(str).to_numpy(), dtype=object)
    var = pd.DataFrame(index=pd.Index(np.asarray(genes, dtype=object).astype(str), dtype=object))
    return anndata.AnnData(X=X, obs=obs, var=var, uns={UNS_KEY: {"kind": "samples", **dict(uns)}})


def make_cell_group(
    X: Any,
    cells: pd.DataFrame,
    genes: pd.DataFrame,
    layers: Mapping[str, Any] | None = None,
    *,
    uns: Mapping[str, Any],
) -> anndata.AnnData:
    """An AnnData for a single-cell group: ``obs`` one row per cell, ``var`` genes (and symbols),
    ``layers`` (raw ``counts``). X log1p'd (``counts_normalization="LOG1P_CPM"``) gets scanpy's
    mark, ``uns["log1p"] = {"base": None}`` (natural log), so ``sc.pp.log1p`` does not log it
    again."""
    import anndata

    scverse: dict[str, Any] = {}
    if uns.get("counts_normalization") == "LOG1P_CPM":
        scverse["log1p"] = {"base": None}

    obs = cells.copy()
    obs.index = pd.Index(obs.index.astype(str), dtype=object)
    var = genes.copy()
    var.index = pd.Index(var.index.astype(str), dtype=object)
    return anndata.AnnData(
        X=X,
        obs=obs,
        var=var,
        layers=dict(layers or {}),
        uns={UNS_KEY: {"kind": "cells", **dict(uns)}, **scverse},
    )


def is_cell_group(adata: anndata.AnnData) -> bool:
    """Whether a group's rows are single cells (rather than samples)."""
    return adata.uns.get(UNS_KEY, {}).get("kind") == "cells"


class Result(Mapping):
    """Groups of a built dataset, with refine.bio's metadata.

    Parameters
    ----------
    groups
        ``key -> AnnData``.
    aggregated_metadata
        The content of ``aggregated_metadata.json``.
    filtered_samples
        DataFrame with columns ``accession``, ``experiment``, ``reason``.
    metadata_columns
        The header of every ``metadata_<KEY>.tsv`` of the download.
    dataset
        The spec that built it (None when read from a zip that did not record one).
    filtered_records
        ``accession -> sample record`` of the filtered samples, for their metadata files.
    """

    def __init__(
        self,
        groups: Mapping[str, anndata.AnnData],
        aggregated_metadata: Mapping[str, Any],
        *,
        filtered_samples: pd.DataFrame | None = None,
        metadata_columns: list[str] | None = None,
        dataset: Dataset | None = None,
        filtered_records: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._groups = dict(groups)
        self.aggregated_metadata = dict(aggregated_metadata)
        if filtered_samples is None:
            filtered_samples = pd.DataFrame(columns=["accession", "experiment", "reason"])
        self.filtered_samples = filtered_samples
        if metadata_columns is None:
            metadata_columns = (
                list(next(iter(self._groups.values())).obs.columns) if self._groups else []
            )
        self.metadata_columns = list(metadata_columns)
        self.dataset = dataset
        self.filtered_records = dict(filtered_records or {})

    # -- mapping --------------------------------------------------------------------------
    def __getitem__(self, key: str) -> anndata.AnnData:
        try:
            return self._groups[key]
        except KeyError:
            raise UnknownAccessionError(
                f"No group {key!r} in this result; groups: {list(self._groups)}."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    # -- views ----------------------------------------------------------------------------
    @property
    def aggregate_by(self) -> str:
        return str(self.aggregated_metadata.get("aggregate_by", "EXPERIMENT"))

    @property
    def scale_by(self) -> str:
        return str(self.aggregated_metadata.get("scale_by", "NONE"))

    def expression(self, key: str) -> pd.DataFrame:
        """The group's values as a genes x samples DataFrame (refine.bio's orientation).

        For a single-cell group, a genes x cells DataFrame with sparse columns.
        """
        adata = self[key]
        X = adata.X
        if is_cell_group(adata) and hasattr(X, "tocsc"):
            frame = pd.DataFrame.sparse.from_spmatrix(
                X.T.tocsr(), index=adata.var_names.copy(), columns=adata.obs_names.copy()
            )
            frame.index.name = "Gene"
            return frame
        if hasattr(X, "toarray"):
            X = X.toarray()
        frame = pd.DataFrame(
            np.asarray(X).T, index=adata.var_names.copy(), columns=adata.obs_names.copy()
        )
        frame.index.name = "Gene"
        frame.columns.name = None
        return frame

    def metadata(self, key: str) -> pd.DataFrame:
        """The group's sample metadata, one row per sample, refine.bio's column order.

        For a single-cell group, one row per cell: ``cell_id`` then the cell columns.
        """
        adata = self[key]
        obs = adata.obs
        if is_cell_group(adata):
            frame = obs.copy()
            frame.insert(0, "cell_id", obs.index.to_numpy())
            return frame.reset_index(drop=True)
        cols = [c for c in self.metadata_columns if c in obs.columns]
        return obs.loc[:, cols].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """One row per group: samples, genes, and how its values were normalized."""
        rows = []
        for key, adata in self._groups.items():
            info = adata.uns.get(UNS_KEY, {})
            qn = info.get("quantile_normalization", {})
            genes = info.get("gene_report") or {}
            rows.append(
                {
                    "group": key,
                    "kind": info.get("kind", "samples"),
                    "samples": info.get("num_libraries", adata.n_obs)
                    if is_cell_group(adata)
                    else adata.n_obs,
                    "cells": adata.n_obs if is_cell_group(adata) else 0,
                    "genes": adata.n_vars,
                    "genes_dropped_by_join": genes.get("dropped", 0),
                    "low_gene_overlap": bool(genes.get("low_overlap", False)),
                    "quantile_normalized": bool(qn)
                    or bool(self.aggregated_metadata.get("quantile_normalized")),
                    "qn_target": qn.get("target", ""),
                    "scale_by": self.scale_by,
                    "values": info.get("values", ""),
                }
            )
        return pd.DataFrame(rows).set_index("group") if rows else pd.DataFrame()

    def __repr__(self) -> str:
        parts = [
            f"{k}: {a.n_obs} {'cells' if is_cell_group(a) else 'samples'} x {a.n_vars} "
            f"{'transcripts' if a.uns.get(UNS_KEY, {}).get('kind') == 'transcripts' else 'genes'}"
            for k, a in self._groups.items()
        ]
        filtered = len(self.filtered_samples)
        return (
            f"<Result aggregate_by={self.aggregate_by} scale_by={self.scale_by} "
            f"groups=[{'; '.join(parts)}] filtered={filtered}>"
        )

    # -- output ---------------------------------------------------------------------------
    def write_zip(
        self, path: Any, *, overwrite: bool = False, progress: Any = None, float32: bool = False
    ) -> Any:
        """Write the standard refine.bio zip to ``path`` (atomic; no overwrite unless asked).

        ``float32=True`` writes each value as the shortest text of its float32 rounding: a
        smaller file, for users who ask for one. Returns the path written.
        """
        from ..io.refinebio.zip import write_zip

        return write_zip(self, path, overwrite=overwrite, progress=progress, float32=float32)

    def write_h5ad(
        self,
        path: Any,
        *,
        group: str | None = None,
        overwrite: bool = False,
        compression: str | None = "gzip",
    ) -> dict[str, Any]:
        """Write one AnnData ``.h5ad`` file per group; returns ``{key: path written}``.

        One file per group, as a group is one AnnData (groups differ in genes or in what a row
        is). A result of one group, or ``group=key``, is written to ``path`` itself; several
        groups go beside it with their key before the suffix (``d.h5ad`` ->
        ``d_HOMO_SAPIENS.h5ad``). Each file keeps ``obs``, ``var``, ``obsm`` (e.g. Harmony's
        ``X_pca_harmony``) and ``layers``, and records in ``uns["refinewidgets"]`` how the group
        was built, ``format_version`` and the result's ``aggregated_metadata.json`` (as a
        JSON string). Atomic, and never over an existing file unless ``overwrite=True``; a
        failed call leaves none of its files behind.

        Examples
        --------
        >>> import anndata, tempfile, pathlib, refinewidgets as rw
        >>> res = rw.build(rw.Dataset({"GSE71102": ["ALL"], "SRP091833": ["ALL"]}),
        ...                rw.open_catalog())
        >>> written = res.write_h5ad(pathlib.Path(tempfile.mkdtemp()) / "d.h5ad")
        >>> sorted(p.name for p in written.values())
        ['d_GSE71102.h5ad', 'd_SRP091833.h5ad']
        >>> anndata.read_h5ad(written["GSE71102"]).shape == res["GSE71102"].shape
        True
        """
        from ..io.h5ad_out import write_h5ad

        return write_h5ad(self, path, group=group, overwrite=overwrite, compression=compression)

    def write_zarr(
        self, path: Any, *, group: str | None = None, overwrite: bool = False
    ) -> dict[str, Any]:
        """Write one AnnData zarr store per group; returns ``{key: path written}``.

        The same content, names and rules as :meth:`write_h5ad` (``d.zarr`` ->
        ``d_HOMO_SAPIENS.zarr`` for several groups); a group built out of core is written one
        chunk at a time, never whole in memory.

        Examples
        --------
        >>> import anndata, tempfile, pathlib, refinewidgets as rw
        >>> res = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), rw.open_catalog())
        >>> written = res.write_zarr(pathlib.Path(tempfile.mkdtemp()) / "d.zarr")
        >>> anndata.read_zarr(written["SRP091833"]).shape == res["SRP091833"].shape
        True
        """
        from ..io.h5ad_out import write_zarr

        return write_zarr(self, path, group=group, overwrite=overwrite)
