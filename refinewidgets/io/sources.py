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

from ..errors import ScaledSourceWarning, SourceFormatError
from .archive import open_store, read_matrix
from .refinebio_zip import DownloadLayout

__all__ = ["QN_TARGET_PATTERN", "QnTargetSource", "RefinebioSource"]

#: A quantile-normalization target file: one headerless column of numbers, named for its organism.
QN_TARGET_PATTERN = re.compile(r"^qn_target_([A-Za-z_]+)\.tsv$")


class RefinebioSource:
    """A refine.bio download (zip, or the folder it unzips to) as a catalog source.

    Examples
    --------
    >>> import refinewidgets as rw, tempfile, pathlib
    >>> cat = rw.open_catalog()
    >>> res = rw.build(rw.Dataset({cat.experiments.index[0]: ["ALL"]}), cat)
    >>> src = RefinebioSource(res.write_zip(pathlib.Path(tempfile.mkdtemp()) / "d.zip"))
    >>> list(src.experiments) == list(res.aggregated_metadata["experiments"])
    True
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._store = open_store(self.path)
        layout = DownloadLayout.scan(self._store)
        self._layout = layout
        meta = layout.meta
        self.aggregate_by = str(meta.get("aggregate_by") or "EXPERIMENT").upper()
        self.scale_by = str(meta.get("scale_by") or "NONE").upper()
        self.quantile_normalized = bool(meta.get("quantile_normalized"))
        self.log_scale = self.quantile_normalized or self.aggregate_by == "SPECIES"
        self.experiments = dict(meta.get("experiments") or {})
        self.samples = dict(meta.get("samples") or {})
        self.qn_targets: dict[str, np.ndarray] = {}
        if self.scale_by != "NONE":
            warnings.warn(
                f"{self.name} was scaled ({self.scale_by}) by the build that made it: its values are "
                "no longer on the expression scale and do not suit re-normalization or rescaling. "
                "Use an unscaled download (scale_by NONE) as a source.",
                ScaledSourceWarning,
                stacklevel=3,
            )
        self._matrices: dict[str, list[str]] = {}
        for key, member in layout.matrices.items():
            if member.endswith(".h5ad"):
                continue  # single-cell groups of our own zips are results, not bulk sources
            header = self._store.first_line(member).split("\t")[1:]
            metadata = layout.metadata_table(key)
            layout.check_columns(key, header, metadata)
            self._matrices[member] = header
            for s in header:
                self.samples.setdefault(s, {"refinebio_accession_code": s})
        self._fill_missing_experiments()

    def _fill_missing_experiments(self) -> None:
        """A sample with values but listed by no experiment joins the experiment of its metadata."""
        listed = {
            s for e in self.experiments.values() for s in e.get("sample_accession_codes") or ()
        }
        for key, member in self._layout.matrices.items():
            if member.endswith(".h5ad"):
                continue
            table = self._layout.metadata_table(key)
            if "experiment_accession" not in table:
                continue
            for acc, exp in zip(table["refinebio_accession_code"], table["experiment_accession"]):
                if acc in listed or not exp:
                    continue
                entry = self.experiments.setdefault(
                    exp, {"accession_code": exp, "sample_accession_codes": [], "organisms": []}
                )
                entry.setdefault("sample_accession_codes", []).append(acc)
                listed.add(acc)

    def matrices(self) -> dict[str, list[str]]:
        return self._matrices

    def read_matrix(self, matrix_id: str, samples: Sequence[str]) -> pd.DataFrame:
        genes, cols, X = read_matrix(self._store, matrix_id, list(samples))
        return pd.DataFrame(X.T, index=pd.Index(genes, dtype=object), columns=cols)

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return (
            f"<RefinebioSource {self.name!r}: {self.aggregate_by}, {len(self.experiments)} experiments, "
            f"{len(self.samples)} samples>"
        )


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
            values = pd.read_csv(self.path, header=None, sep="\t").iloc[:, 0].to_numpy(dtype=float)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise SourceFormatError(
                f"{self.path}: a QN target must be one column of numbers without a header ({exc})."
            ) from None
        values = np.sort(values[~np.isnan(values)])
        if values.size == 0:
            raise SourceFormatError(f"{self.path}: the QN target holds no number.")
        self.qn_targets = {match.group(1).upper(): values}

    def matrices(self) -> dict[str, list[str]]:
        return {}

    def read_matrix(
        self, matrix_id: str, samples: Sequence[str]
    ) -> pd.DataFrame:  # pragma: no cover
        raise KeyError(matrix_id)
