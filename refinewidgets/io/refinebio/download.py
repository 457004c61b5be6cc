"""The parts of a refine.bio download and how they fit together, aligned by accession.

A download (zip or unzipped folder) holds, per group ("key"), a matrix ``<KEY>/<KEY>.tsv`` (at the
root in species compendia, ``<KEY>/<KEY>.h5ad`` for our single-cell groups) or, in refine.bio's
RNA-seq quantpendia, one ``<KEY>/<accession>_quant.sf`` per sample; and a metadata file
``metadata_<KEY>.tsv``. refine.bio writes metadata rows in its own sample order, not in the order
of the matrix columns, and sometimes lists a sample in the metadata that has no column (it could
not be processed). So values and metadata are always paired by accession code here
(:func:`align_samples`), never by position: in linear time, with a warning that names what did
not pair up, and an error only when nothing pairs up or an accession is listed twice.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..._version import FORMAT_VERSION
from ...core.metadata import ACCESSION, metadata_frame
from ...errors import MetadataMismatchWarning, SourceFormatError, UnsafeArchiveError
from ..containers.stores import Store

__all__ = [
    "AGGREGATED",
    "FILTERED_JSON",
    "FILTERED_TSV",
    "NO_VALUES_REASON",
    "Alignment",
    "DownloadLayout",
    "align_samples",
]

AGGREGATED = "aggregated_metadata.json"
FILTERED_JSON = "filtered_samples_metadata.json"
FILTERED_TSV = "filtered_samples_metadata.tsv"
QUANT_SUFFIX = "_quant.sf"
#: The reason recorded for a sample that a download's metadata lists without values.
NO_VALUES_REASON = "listed in the metadata, no values in the matrix"
_SHOWN = 5  # accessions named in a message before "..."


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(map(str, items[:_SHOWN]))
    return shown + (f" ... ({len(items)} in all)" if len(items) > _SHOWN else "")


@dataclass
class Alignment:
    """How the columns of a matrix pair with the rows of its metadata.

    Attributes
    ----------
    rows
        For each matrix column, the position of its metadata row, or -1 when it has none.
    no_metadata
        Matrix columns without a metadata row (matrix order).
    no_values
        Metadata rows without a matrix column (metadata order).
    """

    rows: np.ndarray
    no_metadata: list[str]
    no_values: list[str]


def _duplicates(index: pd.Index) -> list[str]:
    return [str(x) for x in index[index.duplicated()].unique()]


def align_samples(
    columns: Sequence[str], rows: Sequence[str], *, matrix: str, metadata: str
) -> Alignment:
    """Pair matrix ``columns`` with metadata ``rows`` by accession code, in linear time.

    Raises SourceFormatError when an accession is listed twice on either side, or when the two
    sides share no accession at all (the files then do not belong together).

    Examples
    --------
    >>> a = align_samples(["S2", "S1", "S9"], ["S1", "S2", "S3"], matrix="m.tsv", metadata="md.tsv")
    >>> a.rows.tolist(), a.no_metadata, a.no_values
    ([1, 0, -1], ['S9'], ['S3'])
    """
    cols = pd.Index(list(columns), dtype=object)
    meta = pd.Index(list(rows), dtype=object)
    for index, name, where in ((cols, matrix, "header"), (meta, metadata, "rows")):
        dup = _duplicates(index)
        if dup:
            raise SourceFormatError(
                f"{name} lists the sample {dup[0]!r} twice in its {where}"
                f"{' (also: ' + _few(dup[1:]) + ')' if len(dup) > 1 else ''}: each accession may "
                "appear once, so its values or metadata would be ambiguous. Remove the duplicate."
            )
    pos = meta.get_indexer(cols)
    found = pos >= 0
    if len(cols) and len(meta) and not found.any():
        raise SourceFormatError(
            f"{matrix} and {metadata} share no sample accession: the matrix has "
            f"{_few(list(cols))}; the metadata has {_few(list(meta))}. They do not describe the "
            "same samples; check that the files come from the same download."
        )
    listed = np.zeros(len(meta), dtype=bool)
    listed[pos[found]] = True
    return Alignment(
        rows=pos,
        no_metadata=[str(c) for c in cols[~found]],
        no_values=[str(r) for r in meta[~listed]],
    )


def _text_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip the accession column's whitespace; names from headers lose a BOM and quotes."""
    frame.columns = [str(c).lstrip("\ufeff").strip().strip('"') for c in frame.columns]
    if ACCESSION in frame:
        frame[ACCESSION] = frame[ACCESSION].str.strip()
    return frame


@dataclass
class DownloadLayout:
    """Where a download keeps its parts.

    Attributes
    ----------
    store
        The zip or folder.
    meta
        The content of ``aggregated_metadata.json``.
    matrices
        ``key -> member`` of each matrix (``.tsv``, or ``.h5ad`` for a cell group).
    metadata
        ``key -> member`` of each ``metadata_<KEY>.tsv``.
    quant
        ``key -> {accession -> member}`` of refine.bio's per-sample ``quant.sf`` files.
    """

    store: Store
    meta: dict[str, Any]
    matrices: dict[str, str]
    metadata: dict[str, str]
    quant: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def scan(cls, store: Store) -> DownloadLayout:
        _check_left_out(store)
        if AGGREGATED not in store.names:
            raise SourceFormatError(
                f"{store.label} has no {AGGREGATED} at its root, so it is not a refine.bio download "
                "(or it was re-zipped inside a folder: zip the download's content, not its folder)."
            )
        meta = _load_json(store, AGGREGATED)
        if not isinstance(meta, dict):
            raise SourceFormatError(
                f"{store.label}: {AGGREGATED} must hold a JSON object, not {type(meta).__name__}."
            )
        ours = meta.get("refinewidgets") or {}
        version = ours.get("format_version", 0) if isinstance(ours, dict) else 0
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise SourceFormatError(
                f"{store.label} was written by a newer refinewidgets (format {version}; this one "
                f"reads up to {FORMAT_VERSION}). Upgrade refinewidgets to read it."
            )
        matrices: dict[str, str] = {}
        metadata: dict[str, str] = {}
        quant: dict[str, dict[str, str]] = {}
        for name in store.names:
            kind, key, sample = _member_kind(name)
            nested = "/" in name  # a group's folder wins over the root (species compendia)
            if kind == "matrix":
                matrices[key] = name if nested else matrices.get(key, name)
            elif kind == "metadata":
                metadata[key] = name if nested else metadata.get(key, name)
            elif kind == "quant":
                quant.setdefault(key, {})[sample] = name
        for key in list(quant):
            if key in matrices:
                del quant[key]  # a matrix is the group's values; its quant.sf files are extras
        return cls(store, meta, matrices, metadata, quant)

    @property
    def quant_sf_only(self) -> bool:
        return bool(self.meta.get("quant_sf_only")) or (bool(self.quant) and not self.matrices)

    @property
    def metadata_only_keys(self) -> list[str]:
        """Keys with a metadata file but no values (refine.bio's silently skipped groups)."""
        return [k for k in self.metadata if k not in self.matrices and k not in self.quant]

    def metadata_table(self, key: str) -> pd.DataFrame | None:
        """The rows of ``metadata_<KEY>.tsv`` as text (CRLF, BOM and quotes handled), or None."""
        name = self.metadata.get(key)
        if name is None:
            return None
        try:
            frame = pd.read_csv(
                io.BytesIO(self.store.read_bytes(name)),
                sep="\t",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
            )
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise SourceFormatError(
                f"{self.store.label}: cannot parse {name} ({exc}). A metadata file is UTF-8 text "
                "with one tab-separated row per sample."
            ) from None
        frame = _text_cells(frame)
        if ACCESSION not in frame.columns:
            raise SourceFormatError(
                f"{self.store.label}: {name} has no {ACCESSION} column; columns: "
                f"{list(frame.columns)[:8]}."
            )
        return frame

    def experiment_of(self) -> dict[str, str]:
        """``sample -> experiment``: the first experiment of ``aggregated_metadata.json`` listing it."""
        out: dict[str, str] = {}
        experiments = self.meta.get("experiments")
        if isinstance(experiments, Mapping):
            for acc, exp in experiments.items():
                codes = exp.get("sample_accession_codes") if isinstance(exp, Mapping) else None
                for s in codes if isinstance(codes, list) else ():
                    out.setdefault(str(s), str(acc))
        return out

    def records(self) -> dict[str, Any]:
        """``accession -> sample record`` of ``aggregated_metadata.json`` (an empty dict if none)."""
        samples = self.meta.get("samples")
        if samples is None:
            return {}
        if not isinstance(samples, Mapping) or not all(
            isinstance(v, Mapping) for v in samples.values()
        ):
            raise SourceFormatError(
                f"{self.store.label}: 'samples' in {AGGREGATED} must map each accession to an "
                "object of fields."
            )
        return dict(samples)

    def aligned_metadata(
        self, key: str, samples: Sequence[str], member: str
    ) -> tuple[pd.DataFrame, Alignment]:
        """The metadata rows of ``samples`` (matrix order), aligned by accession.

        A sample without a metadata row gets a minimal row (from ``aggregated_metadata.json``
        when it describes the sample). Returns ``(rows, alignment)``; the caller reports
        ``alignment.no_metadata`` and ``alignment.no_values``.
        """
        table = self.metadata_table(key)
        if table is None:
            table = pd.DataFrame(columns=[ACCESSION, "experiment_accession"], dtype=object)
            where = f"{member} (no metadata_{key}.tsv)"
        else:
            where = self.metadata[key]
        align = align_samples(
            samples,
            table[ACCESSION].tolist(),
            matrix=f"{self.store.label}: {member}",
            metadata=where,
        )
        if len(table):
            rows = table.iloc[np.maximum(align.rows, 0)].reset_index(drop=True)
        else:
            rows = pd.DataFrame("", index=pd.RangeIndex(len(samples)), columns=table.columns)
        if align.no_metadata:
            missing = np.flatnonzero(align.rows < 0)
            records = self.records()
            exp_of = self.experiment_of()
            if self.meta.get("aggregate_by") == "EXPERIMENT":
                exp_of = {s: exp_of.get(s, key) for s in align.no_metadata}
            filler = metadata_frame(
                align.no_metadata, exp_of, records, list(table.columns) or [ACCESSION]
            )
            for col in filler.columns:
                filler[col] = filler[col].map(_as_text)
            rows.iloc[missing] = filler.reindex(columns=rows.columns, fill_value="").to_numpy()
        return rows, align


def _member_kind(name: str) -> tuple[str | None, str, str]:
    """``(kind, key, sample)`` of a member name: ``"matrix"``, ``"metadata"``, ``"quant"`` or
    None for a part that is not a group's (README, JSON files, QN targets)."""
    parts = name.split("/")
    if len(parts) == 2 and parts[1] in (f"{parts[0]}.tsv", f"{parts[0]}.h5ad"):
        return "matrix", parts[0], ""
    if len(parts) == 2 and parts[1] == f"metadata_{parts[0]}.tsv":
        return "metadata", parts[0], ""
    if len(parts) == 2 and parts[1].endswith(QUANT_SUFFIX):
        return "quant", parts[0], parts[1][: -len(QUANT_SUFFIX)]
    if len(parts) == 1 and name.endswith(".tsv"):
        stem = name[: -len(".tsv")]
        if stem.startswith("metadata_"):
            return "metadata", stem[len("metadata_") :], ""
        if not stem.startswith(("filtered_", "qn_target")):
            return "matrix", stem, ""
    return None, "", ""


def _check_left_out(store: Store) -> None:
    """Refuse a folder whose values or metadata are files it does not read: a symbolic link
    out of the folder, a pipe or a device (its group would otherwise lose its values)."""
    for names, why, fix in (
        (
            getattr(store, "outside", ()),
            "a symbolic link to a file outside the download folder, which is never read",
            "copy the file into the folder in place of the link",
        ),
        (
            getattr(store, "special", ()),
            "not a regular file (a named pipe, socket or device): reading it could wait forever",
            "replace it with the file itself",
        ),
    ):
        for name in names:
            if name == AGGREGATED or _member_kind(name)[0] is not None:
                raise UnsafeArchiveError(
                    f"{store.label}: {name} is {why}, so the download was refused (its samples "
                    f"would have no values or metadata). To read it, {fix}."
                )


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _load_json(store: Store, name: str) -> Any:
    try:
        return json.loads(store.read_text(name))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceFormatError(
            f"{store.label}: {name} is not valid JSON ({type(exc).__name__}: {exc})."
        ) from None


def read_filtered(store: Store) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``filtered_samples_metadata.json`` as ``(accession, experiment, reason)`` rows and records.

    Reads refine.bio's shape (a dict keyed by accession, entries with ``reason`` and
    ``experiment_accession_code``; quant.sf failures carry only ``reason``) and a plain list.
    """
    empty = pd.DataFrame(columns=["accession", "experiment", "reason"])
    if FILTERED_JSON not in store.names:
        return empty, {}
    raw = _load_json(store, FILTERED_JSON)
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = [(None, v) for v in raw]
    else:
        items = None
    if items is None or not all(isinstance(v, Mapping) for _, v in items):
        raise SourceFormatError(
            f"{store.label}: {FILTERED_JSON} must hold an object mapping each sample accession "
            "to its fields (or a list of such objects)."
        )
    rows, records = [], {}
    for key, item in items:
        acc = str(item.get(ACCESSION) or key or "")
        exp = item.get("experiment_accession_code", item.get("experiment_accession", ""))
        rows.append((acc, "" if exp is None else str(exp), str(item.get("reason") or "")))
        records[acc] = {
            k: v
            for k, v in item.items()
            if k not in ("experiment_accession_code", "experiment_accession", "reason")
        }
        records[acc].setdefault(ACCESSION, acc)
    return pd.DataFrame(rows, columns=["accession", "experiment", "reason"]), records


def warn_mismatch(
    label: str, no_metadata: Mapping[str, list[str]], no_values: Mapping[str, list[str]]
) -> None:
    """One warning per kind of mismatch, naming how many samples, which (first few) and where."""
    lost = [s for v in no_values.values() for s in v]
    bare = [s for v in no_metadata.values() for s in v]
    if bare:
        warnings.warn(
            f"{label}: {len(bare)} matrix column(s) have no metadata row ({_few(bare)}; in "
            f"{', '.join(no_metadata)}). Their values were kept, with a minimal metadata row.",
            MetadataMismatchWarning,
            stacklevel=3,
        )
    if lost:
        warnings.warn(
            f"{label}: {len(lost)} sample(s) are listed in the metadata but have no values in the "
            f"matrix ({_few(lost)}; in {', '.join(no_values)}). They are in filtered_samples with "
            f"the reason '{NO_VALUES_REASON}'; refine.bio writes such rows for samples it could "
            "not process.",
            MetadataMismatchWarning,
            stacklevel=3,
        )
