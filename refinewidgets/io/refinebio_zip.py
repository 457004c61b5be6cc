"""The refine.bio download: write it from a Result, read any download back into one.

Layout (format spec §1-4): ``README.md``, ``LICENSE.TXT``, ``aggregated_metadata.json``,
``filtered_samples_metadata.{json,tsv}`` when samples were left out, and a folder per group
with ``<KEY>.tsv`` (genes x samples) and ``metadata_<KEY>.tsv`` (plus ``metadata_<KEY>.json``
when aggregated by SPECIES). Species compendia keep ``<KEY>.tsv`` at the root; both are read.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import FORMAT_VERSION, __version__
from ..core.metadata import ACCESSION
from ..core.progress import as_progress
from ..core.result import Result, is_cell_group, make_group
from ..core.spec import Dataset
from ..errors import DatasetSpecError, SourceFormatError
from .archive import Store, atomic_output, open_store, read_matrix, write_matrix

__all__ = ["DownloadLayout", "read_zip", "write_zip"]

AGGREGATED = "aggregated_metadata.json"
FILTERED_JSON = "filtered_samples_metadata.json"
FILTERED_TSV = "filtered_samples_metadata.tsv"


# -- reading ---------------------------------------------------------------------------------
@dataclass
class DownloadLayout:
    """Where a download keeps its parts: ``key -> member name`` of matrices and metadata."""

    store: Store
    meta: dict[str, Any]
    matrices: dict[str, str]
    metadata: dict[str, str]

    @classmethod
    def scan(cls, store: Store) -> DownloadLayout:
        if AGGREGATED not in store.names:
            raise SourceFormatError(
                f"{store.label} has no {AGGREGATED} at its root, so it is not a refine.bio download "
                "(or it was re-zipped inside a folder: zip the download's content, not its folder)."
            )
        try:
            meta = json.loads(store.read_text(AGGREGATED))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceFormatError(
                f"{store.label}: {AGGREGATED} is not valid JSON ({exc})."
            ) from None
        if not isinstance(meta, dict):
            raise SourceFormatError(f"{store.label}: {AGGREGATED} must hold a JSON object.")
        ours = meta.get("refinewidgets") or {}
        version = ours.get("format_version", 0) if isinstance(ours, dict) else 0
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise SourceFormatError(
                f"{store.label} was written by a newer refinewidgets (format {version}; this one "
                f"reads up to {FORMAT_VERSION}). Upgrade refinewidgets to read it."
            )
        names = set(store.names)
        matrices: dict[str, str] = {}
        metadata: dict[str, str] = {}
        for name in store.names:
            parts = name.split("/")
            if len(parts) == 2 and parts[1] in (f"{parts[0]}.tsv", f"{parts[0]}.h5ad"):
                matrices[parts[0]] = name
            elif (
                len(parts) == 1
                and name.endswith(".tsv")
                and not name.startswith(("metadata_", "filtered_"))
            ):
                key = name[: -len(".tsv")]
                matrices.setdefault(key, name)
        for key in matrices:
            for candidate in (f"{key}/metadata_{key}.tsv", f"metadata_{key}.tsv"):
                if candidate in names:
                    metadata[key] = candidate
                    break
            else:
                raise SourceFormatError(
                    f"{store.label}: the matrix {matrices[key]} has no metadata_{key}.tsv beside it."
                )
        return cls(store, meta, matrices, metadata)

    def metadata_table(self, key: str) -> pd.DataFrame:
        name = self.metadata[key]
        try:
            frame = pd.read_csv(
                io.BytesIO(self.store.read_bytes(name)), sep="\t", dtype=str, keep_default_na=False
            )
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise SourceFormatError(f"{self.store.label}: cannot parse {name} ({exc}).") from None
        if ACCESSION not in frame.columns:
            raise SourceFormatError(
                f"{self.store.label}: {name} has no {ACCESSION} column; columns: {list(frame.columns)[:8]}."
            )
        return frame

    def check_columns(self, key: str, matrix_samples: list[str], metadata: pd.DataFrame) -> None:
        rows = metadata[ACCESSION].tolist()
        if rows == matrix_samples:
            return
        in_matrix = [s for s in matrix_samples if s not in set(rows)]
        in_meta = [s for s in rows if s not in set(matrix_samples)]
        dup = (
            sorted({s for s in matrix_samples if matrix_samples.count(s) > 1})
            if len(set(matrix_samples)) < len(matrix_samples)
            else []
        )
        if in_matrix or in_meta or dup:
            raise SourceFormatError(
                f"{self.store.label}: the columns of {self.matrices[key]} do not match the rows of "
                f"{self.metadata[key]}: in the matrix only: {in_matrix}; in the metadata only: "
                f"{in_meta}{'; duplicated: ' + str(dup) if dup else ''}. The download is inconsistent; "
                "download it again."
            )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "refinebio_age" in frame:
        frame["refinebio_age"] = pd.to_numeric(
            frame["refinebio_age"].where(frame["refinebio_age"] != ""), errors="coerce"
        )
    if "refinebio_processed" in frame:
        flags = {"True": True, "False": False, "true": True, "false": False}
        frame["refinebio_processed"] = pd.array(
            [flags.get(v) for v in frame["refinebio_processed"]], dtype="boolean"
        )
    return frame


def _dataset_of(meta: Mapping[str, Any]) -> Dataset | None:
    ours = meta.get("refinewidgets")
    try:
        if isinstance(ours, Mapping) and isinstance(ours.get("dataset"), Mapping):
            return Dataset.from_dict(ours["dataset"])
        data = {
            acc: list(exp.get("sample_accession_codes") or [])
            for acc, exp in (meta.get("experiments") or {}).items()
            if exp.get("sample_accession_codes")
        }
        return Dataset(
            data,
            aggregate_by=meta.get("aggregate_by", "EXPERIMENT"),
            scale_by=meta.get("scale_by", "NONE") or "NONE",
            quantile_normalize=bool(meta.get("quantile_normalized", False)),
        )
    except DatasetSpecError:
        return None


def read_zip(path: str | os.PathLike, *, progress: Any = None) -> Result:
    """Read a refine.bio download (zip or unzipped folder), ours or refine.bio's, into a Result.

    Every group becomes an AnnData (samples x genes). Members are checked for unsafe names and
    matrices against their metadata; errors name the file and what is wrong.

    Examples
    --------
    >>> import refinewidgets as rw, tempfile, pathlib
    >>> cat = rw.open_catalog()
    >>> res = rw.build(rw.Dataset({cat.experiments.index[0]: ["ALL"]}), cat)
    >>> path = res.write_zip(pathlib.Path(tempfile.mkdtemp()) / "d.zip")
    >>> back = rw.read_zip(path)
    >>> back.expression(back.keys().__iter__().__next__()).shape == res.expression(next(iter(res))).shape
    True
    """
    prog = as_progress(progress)
    with open_store(path) as store:
        layout = DownloadLayout.scan(store)
        prog.start(len(layout.matrices) + 1, "reading")
        groups = {}
        columns: list[str] | None = None
        for key, name in layout.matrices.items():
            if name.endswith(".h5ad"):
                groups[key] = _read_cell_group(store, layout, key, name)
                prog.advance(key)
                continue
            genes, samples, X = read_matrix(store, name)
            meta_table = layout.metadata_table(key)
            layout.check_columns(key, samples, meta_table)
            if columns is None:
                columns = list(meta_table.columns)
            groups[key] = make_group(
                X, _typed(meta_table), pd.Index(genes), uns={"key": key, "source": store.label}
            )
            prog.advance(key)
        filtered, filtered_records = _read_filtered(store)
        prog.advance("done")
        prog.close()
        return Result(
            groups,
            layout.meta,
            filtered,
            metadata_columns=columns,
            dataset=_dataset_of(layout.meta),
            filtered_records=filtered_records,
        )


def _read_cell_group(store: Store, layout: DownloadLayout, key: str, name: str):
    import tempfile

    import anndata

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{key}.h5ad"
        with store.open(name) as src, open(path, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        try:
            adata = anndata.read_h5ad(path)
        except Exception as exc:  # h5py/anndata raise many kinds for a damaged file
            raise SourceFormatError(
                f"{store.label}: {name} is not a readable H5AD file ({exc})."
            ) from None
    cells = pd.read_csv(
        io.BytesIO(store.read_bytes(layout.metadata[key])), sep="\t", usecols=[0], dtype=str
    )
    if cells.iloc[:, 0].tolist() != list(adata.obs_names):
        raise SourceFormatError(
            f"{store.label}: the cells of {name} do not match the rows of {layout.metadata[key]}."
        )
    return adata


def _read_filtered(store: Store) -> tuple[pd.DataFrame, dict[str, Any]]:
    if FILTERED_JSON not in store.names:
        return pd.DataFrame(columns=["accession", "experiment", "reason"]), {}
    try:
        raw = json.loads(store.read_text(FILTERED_JSON))
    except json.JSONDecodeError as exc:
        raise SourceFormatError(
            f"{store.label}: {FILTERED_JSON} is not valid JSON ({exc})."
        ) from None
    items = raw.values() if isinstance(raw, dict) else raw
    rows, records = [], {}
    for item in items:
        acc = str(item.get(ACCESSION, ""))
        rows.append((acc, str(item.get("experiment_accession", "")), str(item.get("reason", ""))))
        records[acc] = {
            k: v for k, v in item.items() if k not in ("experiment_accession", "reason")
        }
    return pd.DataFrame(rows, columns=["accession", "experiment", "reason"]), records


# -- writing ---------------------------------------------------------------------------------
def _readme(result: Result) -> str:
    meta = result.aggregated_metadata
    lines = [
        "# Gene-expression dataset",
        "",
        f"Built by refinewidgets {__version__} on {meta.get('created_at', '')} (UTC), in the layout "
        "of a refine.bio download.",
        "",
        f"- Aggregated by: {result.aggregate_by}",
        f"- Quantile normalized: {meta.get('quantile_normalized')}",
        f"- Scaled by: {result.scale_by}",
        f"- Experiments: {meta.get('num_experiments')}; samples: {meta.get('num_samples')}",
        "",
        "## Contents",
        "",
    ]
    for key, adata in result.items():
        if is_cell_group(adata):
            what = adata.uns.get("refinewidgets", {}).get("values", "values")
            lines.append(
                f"- `{key}/{key}.h5ad`: AnnData of {adata.n_obs} cells x {adata.n_vars} genes; X holds {what}"
            )
            lines.append(f"- `{key}/metadata_{key}.tsv`: one row per cell")
            continue
        lines.append(
            f"- `{key}/{key}.tsv`: {adata.n_vars} genes (rows) x {adata.n_obs} samples (columns)"
        )
        lines.append(f"- `{key}/metadata_{key}.tsv`: one row per sample")
    if len(result.filtered_samples):
        lines.append(
            f"- `{FILTERED_TSV}` / `{FILTERED_JSON}`: {len(result.filtered_samples)} requested "
            "samples left out, each with the reason"
        )
    lines += [
        f"- `{AGGREGATED}`: the experiments, samples and options of this dataset",
        "",
        "## Loading",
        "",
        "```python",
        "import pandas as pd",
        "frame = pd.read_csv('KEY/KEY.tsv', sep='\\t', index_col=0)  # genes x samples",
        "",
        "import refinewidgets as rw",
        "res = rw.read_zip('this.zip')  # every group as AnnData",
        "```",
        "",
    ]
    return "\n".join(lines)


LICENSE_TEXT = (
    "The expression values and metadata in this download were processed from public data\n"
    "(GEO, ArrayExpress, SRA, Bgee, or the user's own files). Each original source's terms of use\n"
    "apply to its data; cite the original studies listed in aggregated_metadata.json.\n"
)


def _filtered_members(result: Result) -> tuple[str, str]:
    entries = {}
    for acc, exp, reason in result.filtered_samples[
        ["accession", "experiment", "reason"]
    ].itertuples(index=False):
        rec = {
            k: v
            for k, v in result.filtered_records.get(acc, {}).items()
            if k != "refinebio_annotations"
        }
        rec[ACCESSION] = acc
        entries[acc] = {**rec, "experiment_accession": exp, "reason": reason}
    head = [ACCESSION, "experiment_accession", "reason"]
    rest = sorted({k for e in entries.values() for k in e} - set(head))
    frame = pd.DataFrame(
        [[e.get(c, "") for c in head + rest] for e in entries.values()], columns=head + rest
    )
    return json.dumps(entries, indent=4, sort_keys=True), frame.to_csv(sep="\t", index=False)


def write_zip(
    result: Result, path: str | os.PathLike, *, overwrite: bool = False, progress: Any = None
) -> Path:
    """Write ``result`` as a refine.bio zip at ``path``; returns the path.

    The zip is written to a temporary file beside ``path`` and renamed when complete, so an
    interrupted write leaves no partial file. An existing ``path`` is kept unless
    ``overwrite=True``.
    """
    path = Path(path)
    prog = as_progress(progress)
    prog.start(len(result) + 1, "writing zip")
    meta = result.aggregated_metadata
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                zf.writestr("README.md", _readme(result))
                zf.writestr("LICENSE.TXT", LICENSE_TEXT)
                zf.writestr(
                    AGGREGATED, json.dumps(meta, indent=4, sort_keys=True, default=_json_default)
                )
                if len(result.filtered_samples):
                    fj, ft = _filtered_members(result)
                    zf.writestr(FILTERED_JSON, fj)
                    zf.writestr(FILTERED_TSV, ft)
                for key in result:
                    _write_group(zf, result, key)
                    prog.advance(f"{key} written")
    finally:
        prog.close()
    return path


def _write_cell_group(zf: zipfile.ZipFile, result: Result, key: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{key}.h5ad"
        result[key].write_h5ad(path, compression="gzip")
        zf.write(path, f"{key}/{key}.h5ad")
    zf.writestr(f"{key}/metadata_{key}.tsv", result.metadata(key).to_csv(sep="\t", index=False))


def _write_group(zf: zipfile.ZipFile, result: Result, key: str) -> None:
    adata = result[key]
    if is_cell_group(adata):
        _write_cell_group(zf, result, key)
        return
    X = adata.X
    if hasattr(X, "toarray"):
        X = X.toarray()
    with zf.open(f"{key}/{key}.tsv", "w", force_zip64=True) as fh:
        write_matrix(fh, adata.var_names.to_numpy(), list(adata.obs_names), np.asarray(X))
    meta_frame = result.metadata(key)
    zf.writestr(f"{key}/metadata_{key}.tsv", meta_frame.to_csv(sep="\t", index=False))
    if result.aggregate_by == "SPECIES":
        samples = result.aggregated_metadata.get("samples", {})
        content = {
            "species": key,
            "samples": [samples.get(s, {ACCESSION: s}) for s in adata.obs_names],
        }
        zf.writestr(
            f"{key}/metadata_{key}.json",
            json.dumps(content, indent=4, sort_keys=True, default=_json_default),
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
