"""Catalog sources over files: refine.bio downloads (zip or folder) and QN target files.

Opening a source reads its metadata and the header line of each matrix; values are read when a
build asks for them, and only the columns it needs.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...core.metadata import ACCESSION, ANNOTATIONS, SAMPLE_ATTRIBUTES, flatten_annotations
from ...errors import DatasetSpecError, ScaledSourceWarning, SourceFormatError
from ..containers.stores import open_store
from .download import NO_VALUES_REASON, QUANT_SUFFIX, DownloadLayout, align_samples, warn_mismatch
from .matrix import matrix_header, read_matrix, read_matrix_blocks
from .parsed_cache import ParsedCache
from .quant_sf import read_quant_group, read_tx2gene, summarize_to_genes

__all__ = ["QN_TARGET_PATTERN", "QnTargetSource", "RefinebioSource"]

#: A quantile-normalization target file: one headerless column of numbers, named for its organism.
QN_TARGET_PATTERN = re.compile(r"^qn_target_([A-Za-z_]+)\.tsv$")


class RefinebioSource:
    """A refine.bio download (zip, or the folder it unzips to) as a catalog source.

    Samples are paired with their values by accession code. A sample the metadata lists
    without values (refine.bio writes such rows) stays in the catalog, unprocessed, and a
    build lists it in ``filtered_samples`` with the reason. Columns of the metadata files that
    the sample records do not hold (refine.bio's SampleAttribute columns such as
    ``MetaSRA_age``) are kept with the samples and written again by a build.

    Parameters
    ----------
    path
        The zip or folder.
    tx2gene
        For quant.sf-only downloads (RNA-seq quantpendia): a transcript-to-gene table (path,
        two-column DataFrame or mapping), used to sum transcripts into genes when building.

    Examples
    --------
    >>> import refinewidgets as rw, tempfile, pathlib
    >>> cat = rw.open_catalog()
    >>> res = rw.build(rw.Dataset({cat.experiments.index[0]: ["ALL"]}), cat)
    >>> src = RefinebioSource(res.write_zip(pathlib.Path(tempfile.mkdtemp()) / "d.zip"))
    >>> list(src.experiments) == list(res.aggregated_metadata["experiments"])
    True
    """

    def __init__(self, path: str | os.PathLike, *, tx2gene: Any = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._store = open_store(self.path)
        #: Parsed values of this source's matrices, kept on disk for the next read (see
        #: :mod:`.parsed_cache`); ``ParsedCache(max_bytes=0)`` turns it off.
        self.parsed_cache = ParsedCache()
        layout = DownloadLayout.scan(self._store)
        self._layout = layout
        meta = layout.meta
        self.aggregate_by = str(meta.get("aggregate_by") or "EXPERIMENT").upper()
        self.scale_by = str(meta.get("scale_by") or "NONE").upper()
        self.quantile_normalized = bool(meta.get("quantile_normalized"))
        self.quant_sf_only = layout.quant_sf_only
        #: Built by refinewidgets (not a refine.bio download): its values were processed already.
        self.derived = isinstance(meta.get("refinewidgets"), dict)
        self.log_scale = self.quantile_normalized or self.aggregate_by == "SPECIES"
        self.experiments = self._checked_experiments(meta.get("experiments") or {})
        self.samples: dict[str, dict[str, Any]] = {k: dict(v) for k, v in layout.records().items()}
        self.qn_targets: dict[str, np.ndarray] = {}
        self._tx2gene = None if tx2gene is None else read_tx2gene(tx2gene)
        #: ``accession -> reason`` for samples listed without values.
        self.missing_values: dict[str, str] = {}
        if self.scale_by != "NONE":
            warnings.warn(
                f"{self.name} was scaled ({self.scale_by}) by the build that made it: its values are "
                "no longer on the expression scale and do not suit re-normalization or rescaling. "
                "Use an unscaled download (scale_by NONE) as a source.",
                ScaledSourceWarning,
                stacklevel=3,
            )
        self._matrices: dict[str, list[str]] = {}
        tables, no_metadata, no_values = self._align(layout)
        lost = self._without_values(no_values)
        self._add_metadata_rows(tables)
        self._fill_missing_experiments(tables)
        warn_mismatch(self.name, no_metadata, lost)

    def _checked_experiments(self, experiments: Any) -> dict[str, dict]:
        """``experiments`` of aggregated_metadata.json, each with a list of sample accessions."""
        if not isinstance(experiments, dict) or not all(
            isinstance(e, dict) for e in experiments.values()
        ):
            raise SourceFormatError(
                f"{self.name}: 'experiments' in its aggregated_metadata.json must map each "
                "accession to an object of fields."
            )
        for acc, exp in experiments.items():
            codes = exp.get("sample_accession_codes", [])
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise SourceFormatError(
                    f"{self.name}: 'sample_accession_codes' of experiment {acc!r} in its "
                    "aggregated_metadata.json must be a list of accession strings."
                )
        return {k: dict(v) for k, v in experiments.items()}

    def _align(self, layout: DownloadLayout) -> tuple[list, dict, dict]:
        """Align each group's values with its metadata by accession; note every matrix's
        samples. ``(metadata tables, samples without metadata, samples without values)``."""
        no_metadata: dict[str, list[str]] = {}
        no_values: dict[str, list[str]] = {}
        tables = []
        for key in [*layout.matrices, *layout.quant, *layout.metadata_only_keys]:
            member = layout.matrices.get(key)
            if member is not None and member.endswith(".h5ad"):
                continue  # single-cell groups of our own zips are results, not bulk sources
            table = layout.metadata_table(key)
            if table is not None:
                tables.append((key, table))
            if member is None and key not in layout.quant:
                if table is not None and len(table):
                    no_values[layout.metadata[key]] = table[ACCESSION].tolist()
                continue
            if member is not None:
                header = matrix_header(self._store, member)[1:]
            else:
                member = f"{key}/*{QUANT_SUFFIX}"
                header = list(layout.quant[key])
            rows = [] if table is None else table[ACCESSION].tolist()
            align = align_samples(
                header, rows, matrix=f"{self.name}: {member}", metadata=layout.metadata.get(key, "")
            )
            if align.no_metadata and table is not None:
                no_metadata[member] = align.no_metadata
            if align.no_values:
                no_values[layout.metadata[key]] = align.no_values
            self._matrices[member] = header
            for s in header:
                self.samples.setdefault(s, {ACCESSION: s})
        return tables, no_metadata, no_values

    def _without_values(self, no_values: dict[str, list[str]]) -> dict[str, list[str]]:
        """The samples listed in metadata that no matrix holds, by metadata file; each gets its
        reason in ``missing_values``."""
        with_values = {s for cols in self._matrices.values() for s in cols}
        lost = {}
        for where, accs in no_values.items():
            kept = [s for s in accs if s not in with_values]
            if kept:
                lost[where] = kept
                for s in kept:
                    self.missing_values.setdefault(s, NO_VALUES_REASON)
        return lost

    def _add_metadata_rows(self, tables: list[tuple[str, pd.DataFrame]]) -> None:
        """Samples known only from a metadata file, and the columns the records do not hold.

        refine.bio's metadata files carry SampleAttribute columns (``MetaSRA_age``,
        ``MetaSRA_age.unit``) that ``aggregated_metadata.json`` does not: they are kept in
        each record's ``sample_attributes`` so that a build writes them again.
        """
        from_annotations = {
            c for rec in self.samples.values() for c in flatten_annotations(rec.get(ANNOTATIONS))
        }
        for _, table in tables:
            extra = [
                c
                for c in table.columns
                if c not in (ACCESSION, "experiment_accession")
                and not c.startswith("refinebio_")
                and c not in from_annotations
            ]
            harmonized = [c for c in table.columns if c.startswith("refinebio_") and c != ACCESSION]
            for i, acc in enumerate(table[ACCESSION]):
                rec = self.samples.get(acc)
                if rec is None:  # listed only in the metadata file: its row is its record
                    rec = self.samples[acc] = {ACCESSION: acc}
                    for c in harmonized:
                        value = table[c].iat[i]
                        if value != "" and c != ANNOTATIONS:
                            rec[c] = value
                attributes = {c: table[c].iat[i] for c in extra if table[c].iat[i] != ""}
                if attributes:
                    rec.setdefault(SAMPLE_ATTRIBUTES, {}).update(attributes)

    def _fill_missing_experiments(self, tables: list[tuple[str, pd.DataFrame]]) -> None:
        """A sample listed by no experiment joins the experiment of its metadata row."""
        listed = {
            s for e in self.experiments.values() for s in e.get("sample_accession_codes") or ()
        }
        for key, table in tables:
            if "experiment_accession" in table:
                pairs = zip(table[ACCESSION], table["experiment_accession"])
            elif self.aggregate_by == "EXPERIMENT":
                pairs = ((acc, key) for acc in table[ACCESSION])
            else:
                continue
            for acc, exp in pairs:
                if acc in listed or not exp:
                    continue
                entry = self.experiments.setdefault(
                    exp, {"accession_code": exp, "sample_accession_codes": [], "organisms": []}
                )
                entry.setdefault("sample_accession_codes", []).append(acc)
                listed.add(acc)

    def matrices(self) -> dict[str, list[str]]:
        return self._matrices

    def __reduce__(self):
        """Pickled as its path (and transcript table): a Dask worker opens the file itself."""
        return (_reopen, (str(self.path), self._tx2gene))

    def read_matrix(self, matrix_id: str, samples: Sequence[str]) -> pd.DataFrame:
        if matrix_id.endswith(QUANT_SUFFIX):
            return self._read_quant(matrix_id, samples)
        file = self.path / matrix_id if self.path.is_dir() else self.path
        genes, cols, X = self.parsed_cache.read(
            file,
            matrix_id,
            list(samples),
            self._matrices.get(matrix_id, list(samples)),
            self._store.size(matrix_id),
            lambda wanted: read_matrix(self._store, matrix_id, wanted),
            lambda: read_matrix_blocks(self._store, matrix_id),  # a compendium: parsed once
        )
        return pd.DataFrame(X.T, index=pd.Index(genes, dtype=object), columns=cols)

    def _read_quant(self, matrix_id: str, samples: Sequence[str]) -> pd.DataFrame:
        if self._tx2gene is None:
            raise DatasetSpecError(
                f"{self.name} holds transcript-level quant.sf files (a refine.bio quantpendium), "
                "not gene values: give a transcript-to-gene table to sum transcripts into genes, "
                f"rw.open_catalog({str(self.path)!r}, tx2gene='tx2gene.tsv') (two columns: "
                "transcript id, gene id), or read the transcripts with rw.read_zip."
            )
        key = matrix_id.split("/", 1)[0]
        files = self._layout.quant[key]
        group = read_quant_group(self._store, {s: files[s] for s in samples})
        values, _ = summarize_to_genes(group, self._tx2gene)
        return values

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return (
            f"<RefinebioSource {self.name!r}: {self.aggregate_by}, {len(self.experiments)} experiments, "
            f"{len(self.samples)} samples>"
        )


def _reopen(path: str, tx2gene) -> RefinebioSource:
    """A source opened again from its path, in another process (its warnings were given when
    it was first opened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RefinebioSource(path, tx2gene=tx2gene)


class QnTargetSource:
    """A quantile-normalization target file ``qn_target_<ORGANISM>.tsv`` (one number per line)."""

    experiments: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    log_scale = False

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        match = QN_TARGET_PATTERN.match(self.path.name)
        if not match:
            raise SourceFormatError(
                f"{self.path.name} is not named like a QN target file: expected qn_target_<ORGANISM>.tsv."
            )
        try:
            table = pd.read_csv(self.path, header=None, sep="\t")
            values = table.iloc[:, 0].to_numpy(dtype=float)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise SourceFormatError(
                f"{self.path}: a QN target must be one column of numbers without a header ({exc})."
            ) from None
        if table.shape[1] != 1:
            raise SourceFormatError(
                f"{self.path}: the QN target has {table.shape[1]} tab-separated columns; "
                "refine.bio's target is one column of numbers (one value per line, no header), "
                "so it is unclear which column is the target. Keep only the target's column."
            )
        values = np.sort(values[~np.isnan(values)])
        if values.size == 0:
            raise SourceFormatError(f"{self.path}: the QN target holds no number.")
        if not np.isfinite(values).all():
            raise SourceFormatError(
                f"{self.path}: the QN target holds an infinite value; a target is the mean "
                "sorted expression vector of its organism, all finite numbers."
            )
        if values[0] == values[-1]:
            raise SourceFormatError(
                f"{self.path}: the QN target holds {values.size} value(s), all equal to "
                f"{values[0]:g}: quantile normalization against it would set every value to "
                f"{values[0]:g}. A target holds one value per gene (thousands), sorted."
            )
        self.qn_targets = {match.group(1).upper(): values}

    def matrices(self) -> dict[str, list[str]]:
        return {}

    def read_matrix(
        self, matrix_id: str, samples: Sequence[str]
    ) -> pd.DataFrame:  # pragma: no cover
        raise KeyError(matrix_id)
