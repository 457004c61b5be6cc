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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..._version import __version__
from ...core.metadata import (
    ACCESSION,
    ANNOTATIONS,
    SAMPLE_ATTRIBUTES,
    sample_fields,
    typed_metadata,
)
from ...core.progress import as_progress
from ...core.provenance import dataset_of, recorded_group_info
from ...core.result import Result, is_cell_group, make_group
from ...errors import SourceFormatError
from ..containers.atomic import atomic_output
from ..containers.deflate import fast_deflate
from ..containers.names import check_name_part
from ..containers.stores import Store, open_store
from .download import (
    AGGREGATED,
    FILTERED_JSON,
    FILTERED_TSV,
    NO_VALUES_REASON,
    QUANT_SUFFIX,
    DownloadLayout,
    align_samples,
    read_filtered,
    warn_mismatch,
)
from .matrix import read_matrix, write_matrix
from .quant_sf import read_quant_group

__all__ = ["read_zip", "write_zip"]


#: refine.bio writes metadata TSVs with Python's csv module defaults: CRLF line ends.
CRLF = "\r\n"


# -- reading ---------------------------------------------------------------------------------
def read_zip(path: str | os.PathLike, *, progress: Any = None) -> Result:
    """Read a refine.bio download (zip or unzipped folder), ours or refine.bio's, into a Result.

    Every group becomes an AnnData: samples x genes, or, for refine.bio's quant.sf-only
    downloads (RNA-seq quantpendia), samples x transcripts with ``X`` = ``NumReads``,
    ``layers["TPM"]``, ``layers["EffectiveLength"]`` and ``var["Length"]``. Values are paired
    with metadata rows by accession code, whatever the order of either: a matrix column
    without a metadata row is kept with a minimal row, and a metadata row without values goes
    to ``res.filtered_samples`` (both with a :class:`~refinewidgets.errors.MetadataMismatchWarning`).

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
        keys = [*layout.matrices, *layout.quant]
        prog.start(len(keys) + 1, "reading")
        reading = _Reading(store, layout)
        try:
            for key in keys:
                reading.read_group(key)
                prog.advance(key)
            reading.metadata_without_values()
        finally:
            prog.advance("done")
            prog.close()
        return reading.result()


class _Reading:
    """The groups of one download as they are read, and what did not pair up."""

    def __init__(self, store: Store, layout: DownloadLayout) -> None:
        self.store, self.layout = store, layout
        self.groups: dict[str, Any] = {}
        self.columns: list[str] | None = None
        self.no_metadata: dict[str, list[str]] = {}
        self.no_values: dict[str, list[tuple[str, str]]] = {}

    def read_group(self, key: str) -> None:
        """One group: its values (matrix, H5AD or quant.sf files) and its metadata rows."""
        store, layout = self.store, self.layout
        name = layout.matrices.get(key)
        if name is not None and name.endswith(".h5ad"):
            self.groups[key] = _read_cell_group(store, layout, key, name)
            return
        if name is not None:
            genes, samples, X = read_matrix(store, name)
            member = name
        else:
            quant = read_quant_group(store, layout.quant[key])
            samples, member = quant.samples, f"{key}/*_quant.sf"
        rows, align = layout.aligned_metadata(key, samples, member)
        if align.no_metadata:
            self.no_metadata[member] = align.no_metadata
        if align.no_values:
            self.no_values[layout.metadata[key]] = _with_experiment(
                layout.metadata_table(key), align.no_values, key
            )
        if self.columns is None and key in layout.metadata:
            self.columns = list(rows.columns)
        uns = {**recorded_group_info(layout.meta, key), "key": key, "source": store.label}
        if name is not None:
            self.groups[key] = make_group(X, typed_metadata(rows), pd.Index(genes), uns=uns)
        else:
            self.groups[key] = _transcript_group(quant, typed_metadata(rows), uns)

    def metadata_without_values(self) -> None:
        """Groups refine.bio skipped: a metadata file, no values; their samples are filtered."""
        for key in self.layout.metadata_only_keys:
            table = self.layout.metadata_table(key)
            if table is not None and len(table):
                self.no_values[self.layout.metadata[key]] = _with_experiment(
                    table, table[ACCESSION].tolist(), key
                )

    def result(self) -> Result:
        """The Result, with every sample listed without values in ``filtered_samples``."""
        store, layout = self.store, self.layout
        filtered, filtered_records = read_filtered(store)
        present = {s for g in self.groups.values() for s in _samples_of(g)}
        extra, lost = [], {}
        for where, items in self.no_values.items():
            kept = [(s, e) for s, e in items if s not in present]
            if kept:
                lost[where] = [s for s, _ in kept]
            extra += [(s, e, NO_VALUES_REASON) for s, e in kept]
        if extra:
            filtered = pd.concat(
                [filtered, pd.DataFrame(extra, columns=["accession", "experiment", "reason"])],
                ignore_index=True,
            ).drop_duplicates(subset=["accession", "experiment"], ignore_index=True)
            records = layout.records()
            for s, _, _ in extra:
                filtered_records.setdefault(s, dict(records.get(s) or {ACCESSION: s}))
        warn_mismatch(store.label, self.no_metadata, lost)
        if not self.groups:
            where = "quant.sf files, " if layout.quant_sf_only else ""
            raise SourceFormatError(
                f"{store.label} holds no expression values: no matrix ({where}<KEY>/<KEY>.tsv or "
                f"<KEY>.tsv) beside its metadata ({len(filtered)} sample(s) listed without "
                "values). refine.bio writes such a download when none of the samples could be "
                "processed; choose samples with processed values and download again."
            )
        return Result(
            self.groups,
            layout.meta,
            filtered_samples=filtered,
            metadata_columns=self.columns,
            dataset=dataset_of(layout.meta, present),
            filtered_records=filtered_records,
        )


def _samples_of(adata) -> list[str]:
    if is_cell_group(adata):
        return list(dict.fromkeys(adata.obs.get("library", pd.Series(dtype=str)).astype(str)))
    return list(adata.obs_names)


def _with_experiment(table: pd.DataFrame | None, accessions: list[str], key: str):
    """``(accession, experiment)`` pairs, the experiment from the metadata row (else ``key``)."""
    if table is None or "experiment_accession" not in table:
        return [(s, key) for s in accessions]
    exp = dict(zip(table[ACCESSION], table["experiment_accession"]))
    return [(s, exp.get(s) or key) for s in accessions]


def _transcript_group(quant, obs: pd.DataFrame, uns: Mapping[str, Any]):
    """A quant.sf group as AnnData: samples x transcripts, X = NumReads, TPM as a layer."""
    adata = make_group(quant.num_reads, obs, quant.transcripts, uns={**uns, "kind": "transcripts"})
    adata.var["Length"] = quant.length
    with np.errstate(all="ignore"):
        adata.var["EffectiveLength"] = np.nanmedian(quant.effective_length, axis=0)
    adata.layers["TPM"] = quant.tpm
    adata.layers["EffectiveLength"] = quant.effective_length
    adata.uns["refinewidgets"]["values"] = "Salmon NumReads (estimated reads per transcript)"
    return adata


def _read_cell_group(store: Store, layout: DownloadLayout, key: str, name: str):
    import tempfile

    import anndata

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "group.h5ad"
        with store.open(name) as src, open(path, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        try:
            adata = anndata.read_h5ad(path)
        except Exception as exc:  # h5py/anndata raise many kinds for a damaged file
            raise SourceFormatError(
                f"{store.label}: {name} is not a readable H5AD file ({exc})."
            ) from None
    # The H5AD's own obs describes its cells; the metadata file repeats it, in any order.
    if key in layout.metadata:
        try:
            cells = pd.read_csv(
                io.BytesIO(store.read_bytes(layout.metadata[key])),
                sep="\t",
                usecols=[0],
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
            ).iloc[:, 0]
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise SourceFormatError(
                f"{store.label}: cannot read the cells of {layout.metadata[key]} ({exc}). Its "
                "cell metadata is UTF-8 text with a header and one tab-separated row per cell, "
                f"the cell's name first; write it again (Result.write_zip), or remove it to "
                f"read {name} alone."
            ) from None
        align_samples(
            list(adata.obs_names),
            cells.tolist(),
            matrix=f"{store.label}: {name}",
            metadata=layout.metadata[key],
        )
    return adata


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
    """``filtered_samples_metadata.json`` and ``.tsv`` in refine.bio's shape.

    The JSON maps each accession to the sample's record (annotations included) plus ``reason``
    and ``experiment_accession_code``; the TSV has one row per sample, its columns ordered as
    refine.bio orders them (accession, ``experiment_accession``, the other fields sorted, then
    the flattened annotations sorted).
    """
    entries: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for acc, exp, reason in result.filtered_samples[
        ["accession", "experiment", "reason"]
    ].itertuples(index=False):
        record = dict(result.filtered_records.get(acc) or {})
        record[ACCESSION] = acc
        record.setdefault(ANNOTATIONS, [])
        entries[acc] = {**record, "reason": reason, "experiment_accession_code": exp}
        row = sample_fields(record)
        row.update(reason=reason, experiment_accession_code=exp, experiment_accession=exp)
        rows.append(row)
    fields = {k for e in entries.values() for k in e if k not in (ANNOTATIONS, SAMPLE_ATTRIBUTES)}
    fields -= {ACCESSION, "experiment_accession"}
    submitter = {k for r in rows for k in r} - fields - {ACCESSION, "experiment_accession"}
    columns = [ACCESSION, "experiment_accession", *sorted(fields), *sorted(submitter)]
    frame = pd.DataFrame([[_tsv_cell(r.get(c)) for c in columns] for r in rows], columns=columns)
    return (
        json.dumps(entries, indent=4, sort_keys=True, default=_json_default),
        frame.to_csv(sep="\t", index=False, lineterminator=CRLF),
    )


def _tsv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def write_zip(
    result: Result,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Any = None,
    float32: bool = False,
) -> Path:
    """Write ``result`` as a refine.bio zip at ``path``; returns the path.

    The zip is written to a temporary file beside ``path`` and renamed when complete, so an
    interrupted write leaves no partial file. An existing ``path`` is kept unless
    ``overwrite=True``. Matrices are deflated with ISA-L (plain deflate: any zip reader opens
    them) while the next rows are formatted. Each value is written as the shortest text that
    parses back to the same float64; ``float32=True`` rounds the values to float32 first (about
    7 significant digits, a smaller file; each text is float32's shortest, so parsed as
    float32 it gives exactly the rounded values).

    Examples
    --------
    >>> import refinewidgets as rw, tempfile, pathlib
    >>> cat = rw.open_catalog()
    >>> res = rw.build(rw.Dataset({cat.experiments.index[0]: ["ALL"]}), cat)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> small = write_zip(res, folder / "small.zip", float32=True)
    >>> small.stat().st_size < write_zip(res, folder / "full.zip").stat().st_size
    True
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
                    _write_group(zf, result, key, float32=float32)
                    prog.advance(f"{key} written")
    finally:
        prog.close()
    return path


def _write_cell_group(zf: zipfile.ZipFile, result: Result, key: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "group.h5ad"
        result[key].write_h5ad(path, compression="gzip")  # a fixed name: keys never become paths
        zf.write(path, f"{key}/{key}.h5ad")
    zf.writestr(
        f"{key}/metadata_{key}.tsv",
        result.metadata(key).to_csv(sep="\t", index=False, lineterminator=CRLF),
    )


def _write_transcript_group(zf: zipfile.ZipFile, result: Result, key: str) -> None:
    """A quant.sf group as refine.bio ships it: ``<KEY>/<accession>_quant.sf`` per sample."""
    adata = result[key]
    length = adata.var["Length"].to_numpy()
    lengths = (
        pd.array(length.round().astype("int64")) if np.all(length == length.round()) else length
    )
    for i, acc in enumerate(adata.obs_names):
        check_name_part(acc, "sample accession")
        table = pd.DataFrame(
            {
                "Name": adata.var_names,
                "Length": lengths,
                "EffectiveLength": np.asarray(adata.layers["EffectiveLength"][i]),
                "TPM": np.asarray(adata.layers["TPM"][i]),
                "NumReads": np.asarray(adata.X[i]),
            }
        )
        zf.writestr(f"{key}/{acc}{QUANT_SUFFIX}", table.to_csv(sep="\t", index=False))


def _write_group(zf: zipfile.ZipFile, result: Result, key: str, *, float32: bool) -> None:
    check_name_part(key, "group key")
    adata = result[key]
    if is_cell_group(adata):
        _write_cell_group(zf, result, key)
        return
    if adata.uns.get("refinewidgets", {}).get("kind") == "transcripts":
        _write_transcript_group(zf, result, key)
        zf.writestr(
            f"{key}/metadata_{key}.tsv",
            result.metadata(key).to_csv(sep="\t", index=False, lineterminator=CRLF),
        )
        return
    X = adata.X
    if hasattr(X, "toarray"):
        X = X.toarray()
    with ThreadPoolExecutor(1, thread_name_prefix="refinewidgets-json") as pool:
        # The metadata texts are made in Python while the matrix is formatted and deflated
        # by libraries that release the GIL: the two overlap.
        metadata_tsv = pool.submit(
            lambda: result.metadata(key).to_csv(sep="\t", index=False, lineterminator=CRLF)
        )
        species = result.aggregate_by == "SPECIES"
        species_json = pool.submit(_species_json, result, key) if species else None
        with zf.open(f"{key}/{key}.tsv", "w", force_zip64=True) as fh:
            fast_deflate(fh)
            write_matrix(
                fh,
                adata.var_names.to_numpy(),
                list(adata.obs_names),
                X if hasattr(X, "chunks") else np.asarray(X),  # a Dask array: block by block
                float32=float32,
            )
        zf.writestr(f"{key}/metadata_{key}.tsv", metadata_tsv.result())
        if species_json is not None:
            zf.writestr(f"{key}/metadata_{key}.json", species_json.result())


def _species_json(result: Result, key: str) -> str:
    """``metadata_<SPECIES>.json``: the species and its samples' records, as refine.bio."""
    samples = result.aggregated_metadata.get("samples", {})
    content = {
        "species": key,
        "samples": [samples.get(s, {ACCESSION: s}) for s in result[key].obs_names],
    }
    return json.dumps(content, indent=4, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
