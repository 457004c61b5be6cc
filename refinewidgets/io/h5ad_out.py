"""A result as AnnData files: one ``.h5ad`` per group.

One file per group, because a group is one AnnData: groups differ in genes (species) and in
what a row is (samples, cells), so they do not stack into one matrix. Each file holds the
group as built (``X``, ``obs``, ``var``, ``obsm`` such as Harmony's ``X_pca_harmony``, ``layers``)
and, in ``uns["refinewidgets"]``, how it was built, the ``format_version`` of refinewidgets'
files and the whole ``aggregated_metadata.json`` of the result (as a JSON string: ``.h5ad`` has
no JSON null). Files are written as the zip is: through :func:`~.archive.atomic_output` (a
temporary file renamed when complete), never over an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._version import FORMAT_VERSION
from ..core.names import ACCESSION_PATTERN
from ..errors import OutputError, OutputExistsError
from .containers.atomic import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from ..core.result import Result

__all__ = ["h5ad_paths", "write_h5ad"]


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
    path = Path(path)
    if group is not None:
        result[group]  # an unknown key names the groups there are
        return {group: path}
    keys = list(result)
    if not keys:
        raise OutputError("The result has no group to write.")
    if len(keys) == 1:
        return {keys[0]: path}
    suffix = path.suffix or ".h5ad"
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
            with atomic_output(target, overwrite=overwrite) as tmp:
                _group_for_file(result, key).write_h5ad(tmp, compression=compression)
            written.append(target)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    return targets
