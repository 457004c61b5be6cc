"""The catalog: every experiment and sample the user can choose from, across sources.

A :class:`Catalog` indexes the metadata of its sources (no expression values are read) and
answers the questions a build and a browser ask: which samples an experiment has, which of
them have values, where those values are, and which samples match a search.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import (
    DatasetSpecError,
    SourceFormatError,
    SourceOverlapWarning,
    UnknownAccessionError,
)
from .browse import MEMBER_TEXT, TableIndex
from .metadata import ACCESSION, ANNOTATIONS, HARMONIZED_FIELDS, typed_metadata
from .names import check_accession, check_organism
from .sources import Source
from .spec import LIBRARY_FIELDS, SINGLE_CELL

__all__ = ["Catalog"]

EXPERIMENT_COLUMNS = (
    "title",
    "description",
    "technology",
    "organisms",
    "platforms",
    "num_samples",
    "num_processed",
    "num_cells",
    "source",
    "submitter_institution",
    "has_publication",
    "pubmed_id",
    "source_first_published",
)
SAMPLE_TEXT_COLUMNS = (
    "refinebio_title",
    "refinebio_specimen_part",
    "refinebio_disease",
    "refinebio_cell_line",
)
#: Per-sample summaries of single-cell libraries, present in ``cat.samples`` when a source has cells.
SINGLE_CELL_FIELDS = LIBRARY_FIELDS


class Catalog:
    """Experiments and samples of one or more sources.

    Parameters
    ----------
    sources
        Objects following :class:`refinewidgets.core.sources.Source`. When two sources hold the
        same experiment, their sample lists are merged; a sample's record and values come from
        the first source that has them.

    Examples
    --------
    >>> from refinewidgets.testing.compendium import synthetic_compendium
    >>> from refinewidgets.core.sources import InMemorySource
    >>> cat = Catalog([InMemorySource.from_compendium(synthetic_compendium(n_experiments=2))])
    >>> len(cat.experiments)
    2
    """

    def __init__(self, sources: Iterable[Source] = ()) -> None:
        self.sources: list[Source] = list(sources)
        self._exp_records: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._sample_records: dict[str, Mapping[str, Any]] = {}
        self._sample_exps: dict[str, list[str]] = {}
        self._sample_source: dict[str, str] = {}
        self._location: dict[str, tuple[int, str]] = {}
        self._qn_targets: dict[str, tuple[np.ndarray, str]] = {}
        self._missing: dict[str, str] = {}
        for i, src in enumerate(self.sources):
            self._add(i, src)
        self._experiments: pd.DataFrame | None = None
        self._samples: pd.DataFrame | None = None
        self._search_text: TableIndex | None = None

    def _check_names(self, src: Source) -> None:
        """Refuse names that could not safely become keys, file names or headers (see names)."""
        where = str(getattr(src, "name", "source"))
        for acc, rec in src.experiments.items():
            check_accession(acc, "experiment", where)
            for organism in rec.get("organisms") or ():
                check_organism(str(organism).upper(), where)
            for s in rec.get("sample_accession_codes") or ():
                check_accession(s, "sample", where)
        for acc, rec in src.samples.items():
            check_accession(acc, "sample", where)
            organism = rec.get("refinebio_organism")
            if organism:
                check_organism(str(organism).upper(), where)
        for acc, rec in src.experiments.items():
            cells = str(rec.get("technology") or "").upper() == SINGLE_CELL
            for s in rec.get("sample_accession_codes") or ():
                known = self._sample_exps.get(s)
                if known and self.is_single_cell(known[0]) != cells:
                    kind = "a single-cell library" if cells else "a bulk sample"
                    raise SourceFormatError(
                        f"{where}: {s} is {kind} of {acc}, but {s} is already "
                        f"{'a bulk sample' if cells else 'a single-cell library'} of {known[0]} "
                        f"(from {self._exp_records[known[0]]['source']}). An accession must name "
                        "one sample across the sources: open them in separate catalogs, or "
                        "rename the library."
                    )

    def _add(self, i: int, src: Source) -> None:
        self._check_names(src)
        shared = [  # the same samples twice; an experiment's other files (species) are not,
            acc  # nor a source that only says why samples lack values (accounts_only)
            for acc, rec in src.experiments.items()
            if acc in self._exp_records
            and not getattr(src, "accounts_only", False)
            and set(rec.get("sample_accession_codes") or ()) & set(self._members[acc])
        ]
        if shared:
            first = self._exp_records[shared[0]]["source"]
            warnings.warn(
                f"{len(shared)} experiment(s) of {src.name} are also in {first}"
                f" ({', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''}): their samples' "
                f"records and values come from {first}, the source opened first. Open one "
                "of them only if they are two copies of the same data.",
                SourceOverlapWarning,
                stacklevel=4,
            )
        for acc, rec in src.experiments.items():
            if acc not in self._exp_records:
                self._exp_records[acc] = dict(rec, source=src.name)
                self._members[acc] = []
            else:  # another file of the experiment (Bgee: one file per species)
                known = self._exp_records[acc]
                organisms = list(known.get("organisms") or ())
                organisms += [o for o in rec.get("organisms") or () if o not in organisms]
                known["organisms"] = organisms
            members = self._members[acc]
            for s in rec.get("sample_accession_codes", ()):
                if s not in members:
                    members.append(s)
                    self._sample_exps.setdefault(s, []).append(acc)
        for acc, rec in src.samples.items():
            if acc not in self._sample_records:
                self._sample_records[acc] = rec
                self._sample_source[acc] = src.name
        for matrix_id, samples in src.matrices().items():
            for s in samples:
                self._location.setdefault(s, (i, matrix_id))
        for acc, reason in (getattr(src, "missing_values", None) or {}).items():
            self._missing.setdefault(acc, reason)
        for organism, target in src.qn_targets.items():
            self._qn_targets.setdefault(organism, (np.asarray(target, dtype=float), src.name))

    @classmethod
    def from_tables(cls, experiments: pd.DataFrame, samples: pd.DataFrame) -> Catalog:
        """A browse-only catalog over ready-made tables (no source, so nothing can be built).

        ``experiments`` is indexed by accession; ``samples`` is indexed by accession and has an
        ``experiment_accession`` column. Used for very large listings (a catalog of a whole
        repository) and in benchmarks.

        Examples
        --------
        >>> exps = pd.DataFrame({"title": ["t"], "technology": ["RNA-SEQ"]}, index=["E1"])
        >>> samples = pd.DataFrame({"experiment_accession": ["E1", "E1"]}, index=["S1", "S2"])
        >>> Catalog.from_tables(exps, samples).experiment_samples("E1")
        ['S1', 'S2']
        """
        cat = cls(())
        if "experiment_accession" not in samples.columns:
            raise DatasetSpecError("`samples` needs an experiment_accession column.")
        unknown = set(samples["experiment_accession"].unique()) - set(experiments.index)
        if unknown:
            raise DatasetSpecError(
                f"Samples refer to experiments missing from `experiments`: {sorted(unknown)[:5]}."
            )
        index = samples.index.astype(str)
        positions = samples.groupby("experiment_accession", sort=False).indices
        cat._members = {str(exp): index[pos].tolist() for exp, pos in positions.items()}
        for exp in experiments.index:
            cat._members.setdefault(str(exp), [])
        cat._sample_exps = dict(
            zip(index, ([e] for e in samples["experiment_accession"].astype(str)))
        )
        techs = (
            experiments["technology"]
            if "technology" in experiments
            else pd.Series("", index=experiments.index)
        )
        cat._exp_records = {
            str(acc): {"accession_code": str(acc), "technology": str(t), "source": "table"}
            for acc, t in zip(experiments.index, techs)
        }
        cat._experiments = experiments
        cat._samples = samples
        return cat

    # -- lookups used by the spec and the build --------------------------------------------
    @property
    def experiment_ids(self) -> list[str]:
        """Every experiment accession, in source order."""
        return list(self._exp_records)

    def has_sample(self, accession: str) -> bool:
        return accession in self._sample_exps or accession in self._sample_records

    def experiment_samples(self, experiment: str) -> list[str]:
        """The samples an experiment lists (processed or not)."""
        try:
            return self._members[experiment]
        except (KeyError, TypeError):
            raise self._unknown_experiment(experiment) from None

    def _unknown_experiment(self, experiment: Any) -> UnknownAccessionError:
        known = list(self._exp_records)
        near = [e for e in known if str(experiment).strip().upper() == e.upper()]
        hint = (
            f"did you mean {near[0]!r}?"
            if near
            else f"it has {len(known)}: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''}"
        )
        return UnknownAccessionError(
            f"Experiment {experiment!r} is not in the catalog ({hint}). Use one of "
            "cat.experiment_ids, or open the file that holds it."
        )

    def has_values(self, accession: str) -> bool:
        """Whether some source holds expression values of the sample (a sample an experiment
        lists without values is known to the catalog but has none)."""
        return accession in self._location

    def usable_samples(self, experiment: str) -> set[str]:
        """The samples of ``experiment`` that have expression values in some source."""
        return {s for s in self.experiment_samples(experiment) if s in self._location}

    def missing_reason(self, accession: str) -> str:
        """Why a sample has no values: what its source says, else that it has none."""
        return self._missing.get(accession, "no processed expression values in the source")

    def sample_experiments(self, accession: str) -> list[str]:
        """The experiments that list ``accession``, in catalog order."""
        return list(self._sample_exps.get(accession, ()))

    def sample_record(self, accession: str) -> Mapping[str, Any]:
        """The sample's refine.bio record (a minimal one when no source describes it)."""
        return self._sample_records.get(accession, {ACCESSION: accession})

    def experiment_record(self, accession: str) -> dict[str, Any]:
        try:
            return self._exp_records[accession]
        except (KeyError, TypeError):
            raise self._unknown_experiment(accession) from None

    def technology(self, experiment: str) -> str:
        return str(self.experiment_record(experiment).get("technology") or "").upper()

    def locate(self, accession: str) -> tuple[Source, str]:
        """The source and matrix id holding the sample's values."""
        i, matrix_id = self._location[accession]
        return self.sources[i], matrix_id

    def by_matrix(self, accessions: Iterable[str]) -> dict[tuple[Source, str], list[str]]:
        """``accessions`` grouped by where their values are: ``(source, matrix id) -> samples``,
        in order of first appearance (a build reads each matrix once)."""
        out: dict[tuple[int, str], list[str]] = {}
        for acc in accessions:
            out.setdefault(self._location[acc], []).append(acc)
        return {(self.sources[i], matrix_id): accs for (i, matrix_id), accs in out.items()}

    def is_single_cell(self, experiment: str) -> bool:
        """Whether the experiment holds single cells (its samples are libraries of cells)."""
        return self.technology(experiment) == SINGLE_CELL

    def cells(self, experiment: str) -> pd.DataFrame:
        """The cell table of a single-cell experiment, with unified column names
        (``library``, ``barcode``, ``cell_type``, ``cell_type_id``, ``tissue``, ``tissue_id``,
        ``stage``, ``stage_id``, ``sex``, ``strain``, ``experiment``). Reads no counts."""
        if not self.is_single_cell(experiment):
            raise DatasetSpecError(
                f"{experiment} is not a single-cell experiment; it has no cell table."
            )
        members = self.experiment_samples(experiment)
        frames = []
        for i, src in enumerate(self.sources):
            if hasattr(src, "cell_table") and experiment in src.experiments:
                # each library's cells from the source its values come from: a second copy of
                # a file (another release) adds no cell twice
                own = {s for s in members if self._location.get(s, (None,))[0] == i}
                table = src.cell_table()
                frames.append(table[table["library"].astype(str).isin(own)])
        return pd.concat(frames) if len(frames) > 1 else frames[0]

    def qn_target(self, organism: str) -> tuple[np.ndarray, str] | None:
        """``(target, source name)`` when a source ships a target for ``organism``."""
        return self._qn_targets.get(organism)

    # -- tables ---------------------------------------------------------------------------
    @property
    def samples(self) -> pd.DataFrame:
        """One row per sample, indexed by accession: ``refinebio_*`` fields, ``experiment_accession``
        (the first experiment listing it), ``technology``, ``processed`` (values available) and
        ``source``."""
        if self._samples is None:
            rows = []
            for acc, exps in self._sample_exps.items():
                rec = self.sample_record(acc)
                row = {f: rec.get(f) for f in HARMONIZED_FIELDS}
                for key, value in rec.items():
                    if key.startswith("refinebio_") and key not in (ACCESSION, ANNOTATIONS):
                        row[key] = value
                for key in SINGLE_CELL_FIELDS:
                    if key in rec:
                        row[key] = rec[key]
                row["experiment_accession"] = exps[0]
                row["technology"] = self.technology(exps[0])
                row["processed"] = acc in self._location
                row["source"] = self._sample_source.get(acc, self._exp_records[exps[0]]["source"])
                rows.append(row)
            frame = pd.DataFrame(
                rows, index=pd.Index(list(self._sample_exps), name="accession", dtype=object)
            )
            if not rows:  # no sample at all: the columns still exist
                frame = pd.DataFrame(
                    columns=[*HARMONIZED_FIELDS, "experiment_accession", "technology", "processed"]
                    + ["source"],
                    index=frame.index,
                )
            processed = frame.pop("processed").astype(bool)
            counts = frame.pop("n_cells") if "n_cells" in frame else None
            frame = typed_metadata(frame)
            frame["processed"] = processed
            if counts is not None:
                frame["n_cells"] = pd.to_numeric(counts, errors="coerce").fillna(0).astype(np.int64)
            self._samples = frame
        return self._samples

    @property
    def experiments(self) -> pd.DataFrame:
        """One row per experiment, indexed by accession."""
        if self._experiments is None:
            rows = []
            for acc, rec in self._exp_records.items():
                members = self._members[acc]
                platforms = sorted(
                    {str(self.sample_record(s).get("refinebio_platform") or "") for s in members}
                    - {""}
                )
                rows.append(
                    {
                        "title": rec.get("title", ""),
                        "description": rec.get("description", ""),
                        "technology": self.technology(acc),
                        "organisms": "; ".join(rec.get("organisms") or ()),
                        "platforms": "; ".join(platforms),
                        "num_samples": len(members),
                        "num_processed": sum(s in self._location for s in members),
                        "num_cells": sum(
                            int(self.sample_record(s).get("n_cells") or 0) for s in members
                        ),
                        "source": rec["source"],
                        "submitter_institution": rec.get("submitter_institution", ""),
                        "has_publication": bool(rec.get("has_publication", False)),
                        "pubmed_id": rec.get("pubmed_id", "") or "",
                        "source_first_published": rec.get("source_first_published", "") or "",
                    }
                )
            self._experiments = pd.DataFrame(
                rows,
                index=pd.Index(self.experiment_ids, name="accession", dtype=object),
                columns=list(EXPERIMENT_COLUMNS),
            )
        return self._experiments

    # -- search ---------------------------------------------------------------------------
    def _search_index(self) -> TableIndex:
        """The text index of the samples (the same engine as the browser's tables)."""
        if self._search_text is None:
            s = self.samples
            exp = self.experiments
            # the same sample columns the experiment browser finds experiments by
            columns = dict.fromkeys(("experiment_accession", *SAMPLE_TEXT_COLUMNS, *MEMBER_TEXT))
            table = s[[c for c in columns if c in s]].copy()
            owner = s["experiment_accession"]
            table["experiment_title"] = owner.map(exp["title"]).fillna("")
            table["experiment_description"] = owner.map(exp["description"]).fillna("")
            self._search_text = TableIndex(table, text_columns=list(table.columns))
        return self._search_text

    def search(self, text: str | None = None, **filters: Any) -> pd.DataFrame:
        """Samples whose text matches every word of ``text`` and every field filter.

        ``text`` is matched, case-insensitively, against the sample and experiment accessions,
        the sample's title, organism, platform, tissue, disease, cell line and (single cells)
        cell types, and the experiment's title and description: the text the experiment
        browser finds experiments by. Each filter ``column=value`` (or a list of values) keeps samples whose
        ``cat.samples[column]`` equals one of the values (case-insensitive for text).

        Examples
        --------
        >>> from refinewidgets.testing.compendium import synthetic_compendium
        >>> from refinewidgets.core.sources import InMemorySource
        >>> cat = Catalog([InMemorySource.from_compendium(synthetic_compendium(n_experiments=2))])
        >>> len(cat.search(technology="RNA-SEQ")) == int((cat.samples["technology"] == "RNA-SEQ").sum())
        True
        """
        samples = self.samples
        mask = self._search_index().text_mask(text)
        for column, wanted in filters.items():
            if column not in samples.columns:
                raise DatasetSpecError(
                    f"Cannot filter on {column!r}: no such column. Columns: {list(samples.columns)}."
                )
            values = [wanted] if isinstance(wanted, (str, bool, int, float)) else list(wanted)
            col = samples[column]
            if col.dtype == object:
                lowered = {str(v).lower() for v in values}
                mask &= col.str.lower().isin(lowered).to_numpy()
            else:
                mask &= col.isin(values).to_numpy()
        return samples[mask]

    def __repr__(self) -> str:
        return (
            f"<Catalog: {len(self._exp_records)} experiments, {len(self._sample_exps)} samples "
            f"from {len(self.sources)} source(s)>"
        )
