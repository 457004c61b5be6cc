"""The dataset specification: what to build, as plain JSON-able data.

A :class:`Dataset` says which samples of which experiments to take and how to combine them. It
is validated on its own (shape, option values, duplicates) when created, and against a catalog
(existence, membership) by :meth:`Dataset.resolve`, which the build calls.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, fields
from typing import Any

from ..errors import DatasetSpecError, UnknownAccessionError
from .cell_filter import parse_cell_filter
from .cell_query import parse_query

__all__ = [
    "AGGREGATE_BY",
    "BATCH_CORRECTION",
    "COUNTS_NORMALIZATION",
    "JOIN",
    "LIBRARY_FIELDS",
    "LIBRARY_SUMMARY",
    "PSEUDOBULK",
    "SCALE_BY",
    "SINGLE_CELL",
    "UNIFIED_CELL_COLUMNS",
    "Dataset",
    "ResolvedSample",
]

AGGREGATE_BY = ("EXPERIMENT", "SPECIES", "ALL")
#: The technology of droplet single-cell experiments (Bgee's files), beside refine.bio's
#: MICROARRAY and RNA-SEQ.
SINGLE_CELL = "SINGLE-CELL"
SCALE_BY = ("NONE", "MINMAX", "STANDARD", "ROBUST")
JOIN = ("inner", "outer")
COUNTS_NORMALIZATION = ("NONE", "CPM", "LOG1P_CPM")
PSEUDOBULK = ("sample", "sample_cell_type")
#: Batch corrections (see :mod:`refinewidgets.core.batch`).
BATCH_CORRECTION = ("combat", "harmony")
#: The unified columns of a single-cell table (what every reader maps its files' columns onto).
UNIFIED_CELL_COLUMNS = (
    "barcode",
    "library",
    "cell_type",
    "cell_type_id",
    "tissue",
    "tissue_id",
    "stage",
    "stage_id",
    "sex",
    "strain",
)
#: A single-cell library's summary, as a sample record carries it: cell column -> the record's
#: field listing the distinct values of the library's cells (joined with "; ").
LIBRARY_SUMMARY = {
    "cell_type": "cell_types",
    "tissue": "tissues",
    "stage": "stages",
    "sex": "sexes",
}
#: Every summary field of a library's record: its number of cells, then the summaries.
LIBRARY_FIELDS = ("n_cells", *LIBRARY_SUMMARY.values())
ALL_SAMPLES = "ALL"
#: The version of the spec's JSON form; readers refuse a newer one.
SPEC_VERSION = 1
#: Options written by :meth:`Dataset.to_dict` even at their default (refine.bio's own, and join).
_ALWAYS_WRITTEN = ("aggregate_by", "scale_by", "quantile_normalize", "join")


def _choice(name: str, value: Any, allowed: tuple[str, ...], *, upper: bool = True) -> str:
    if not isinstance(value, str):
        raise DatasetSpecError(f"`{name}` must be one of {list(allowed)}, got {value!r}.")
    norm = value.upper() if upper else value.lower()
    if norm not in allowed:
        raise DatasetSpecError(f"`{name}` must be one of {list(allowed)}, got {value!r}.")
    return norm


def _close(value: str, candidates, n: int = 3) -> str:
    found = difflib.get_close_matches(value, list(candidates), n=n, cutoff=0.6)
    return f" (did you mean {', '.join(found)}?)" if found else ""


@dataclass(frozen=True)
class ResolvedSample:
    """One requested sample after the spec was checked against a catalog."""

    accession: str
    experiment: str


@dataclass
class Dataset:
    """What to build: samples per experiment and how to aggregate and normalize them.

    Parameters
    ----------
    data
        ``{experiment_accession: [sample accessions]}``; ``["ALL"]`` takes every usable sample
        of that experiment.
    aggregate_by
        ``"EXPERIMENT"`` (one group per experiment), ``"SPECIES"`` (one per organism) or
        ``"ALL"`` (one group). A single-cell experiment with libraries of several species
        (Bgee writes one file per experiment and species) gives one group per species under
        ``EXPERIMENT``, keyed ``<EXPERIMENT>_<ORGANISM>`` (e.g. ``ERP1_HOMO_SAPIENS``).
    scale_by
        ``"NONE"``, ``"MINMAX"``, ``"STANDARD"`` or ``"ROBUST"``: each gene scaled across the
        samples of its group, after quantile normalization.
    quantile_normalize
        Quantile-normalize each group against its organism's target.
    join
        ``"inner"`` (refine.bio's rule: only genes present in every sample of a group) or
        ``"outer"`` (every gene; missing values are NaN for bulk values, 0 for counts).
    cell_filter
        Single-cell only: which cells to keep, ``{column: condition}`` (all must hold). A column
        is a unified cell column (``cell_type``, ``tissue``, ``stage``, ``sex``, ``strain``,
        ``library`` and the ``*_id`` columns), any column of the file's own ``obs`` (author
        annotations), or a QC value (``total_counts``, ``n_genes_by_counts``); a condition is a
        list of values, ``{"not_in": [...]}`` or a numeric range ``{"min": a, "max": b}``. See
        :mod:`refinewidgets.core.cell_filter`. Or a text in CELLxGENE Census' syntax, such as
        ``"cell_type == 'B cell' or tissue in ['spleen']"`` (``and``, ``or``, ``not``, ``in``,
        comparisons on QC values): see :mod:`refinewidgets.core.cell_query`.
    counts_normalization
        Single-cell only: ``"NONE"`` (raw UMI counts), ``"CPM"`` or ``"LOG1P_CPM"``.
    pseudobulk
        Single-cell only: ``None`` (cells stay cells), ``"sample"`` (sum counts per library) or
        ``"sample_cell_type"`` (per library and cell type); pseudo-samples then behave as bulk
        RNA-seq samples.
    keep_intergenic
        Single-cell only: keep the intergenic features (``upstream_*`` / ``downstream_*`` ids)
        one of Bgee's writers stores beside genes. Off by default: they are not genes, and
        would count in CPM totals, QC values and pseudobulk sums.
    genes
        Gene ids or symbols; only these genes' columns are returned (CPM and QC values, quantile
        normalization and batch correction still use every gene). None: every gene. Bulk
        symbols come from :mod:`refinewidgets.io.gene_symbols` (human offline; other
        organisms once fetched into the cache); a symbol naming several ids keeps them all,
        with a warning naming them.
    exact
        Single-cell only: match the ``cell_type`` and ``tissue`` values of ``cell_filter`` by
        label only. By default a value (a label or an id such as ``CL:0000084``) also matches
        its descendants in the Cell Ontology / UBERON ("T cell" keeps "CD4-positive,
        alpha-beta T cell"); see :mod:`refinewidgets.core.ontology`.
    var_filter
        Single-cell only: which genes to return, a filter text on the gene columns as Census'
        ``var_value_filter`` takes it: ``gene_id``, ``gene_symbol`` and the file's own var
        columns (the newest Bgee writer's ``feature_biotype``, ``feature_length``...), e.g.
        ``"feature_biotype == 'protein_coding'"``. Like ``genes`` (both may be given), it
        chooses returned columns only: CPM and QC values are computed over all genes.
    obs_columns
        Single-cell only: the cell columns to return (Census' ``column_names={"obs": [...]}``);
        ``library`` is always kept (it ties each cell to its sample). None: every column.
    batch_correction
        ``None`` (default), ``"combat"`` or ``"harmony"``. ComBat (as Bioconductor's
        ``sva::ComBat``) adjusts each group's values after quantile normalization and before
        scaling; samples only (pseudobulk single cells). Harmony corrects the PCA embedding of
        each group's final values into ``obsm["X_pca_harmony"]`` (``obsm["X_pca"]`` beside it),
        leaving ``X`` as it is; samples and cells. See :mod:`refinewidgets.core.batch`.
    batch_key
        The metadata column naming each sample's batch (default ``"experiment_accession"``).
    batch_covariates
        ComBat only: metadata columns whose effect is kept (e.g. ``["refinebio_disease"]``).

    Examples
    --------
    >>> ds = Dataset({"GSE1": ["GSM1", "GSM2"]}, aggregate_by="species")
    >>> ds.aggregate_by
    'SPECIES'
    >>> Dataset.from_dict(ds.to_dict()) == ds
    True
    """

    data: dict[str, list[str]]
    _: KW_ONLY
    aggregate_by: str = "EXPERIMENT"
    scale_by: str = "NONE"
    quantile_normalize: bool = True
    join: str = "inner"
    cell_filter: dict[str, Any] | str | None = None
    counts_normalization: str = "NONE"
    pseudobulk: str | None = None
    keep_intergenic: bool = False
    genes: list[str] | None = None
    exact: bool = False
    var_filter: str | None = None
    obs_columns: list[str] | None = None
    batch_correction: str | None = None
    batch_key: str = "experiment_accession"
    batch_covariates: list[str] | None = None

    def __post_init__(self) -> None:
        self.data = self._check_data(self.data)
        self.aggregate_by = _choice("aggregate_by", self.aggregate_by, AGGREGATE_BY)
        self.scale_by = _choice("scale_by", self.scale_by, SCALE_BY)
        self.join = _choice("join", self.join, JOIN, upper=False)
        self.counts_normalization = _choice(
            "counts_normalization", self.counts_normalization, COUNTS_NORMALIZATION
        )
        if self.pseudobulk is not None:
            self.pseudobulk = _choice("pseudobulk", self.pseudobulk, PSEUDOBULK, upper=False)
        self.cell_filter = parse_cell_filter(self.cell_filter)
        for name in ("quantile_normalize", "keep_intergenic", "exact"):
            if not isinstance(getattr(self, name), bool):
                raise DatasetSpecError(
                    f"`{name}` must be True or False, got {getattr(self, name)!r}."
                )
        self.genes = self._check_genes(self.genes)
        if self.var_filter is not None:
            self.var_filter = parse_query(self.var_filter, what="var filter", unit="gene").text
        self.obs_columns = self._check_obs_columns(self.obs_columns, self.pseudobulk)
        self._check_batch()

    @staticmethod
    def _check_obs_columns(columns: Any, pseudobulk: str | None) -> list[str] | None:
        if columns is None:
            return None
        if isinstance(columns, str):
            columns = [columns]
        if (
            not isinstance(columns, (list, tuple))
            or not columns
            or not all(isinstance(c, str) and c.strip() for c in columns)
        ):
            raise DatasetSpecError(
                f"`obs_columns` must be a non-empty list of cell column names, got {columns!r}."
            )
        if pseudobulk is not None:
            raise DatasetSpecError(
                "`obs_columns` chooses the columns of cells, but pseudobulk returns samples: "
                "drop obs_columns, or set pseudobulk=None."
            )
        columns = [c.strip() for c in columns]
        return list(dict.fromkeys(["library", *columns]))

    def _check_batch(self) -> None:
        if self.batch_correction is not None:
            self.batch_correction = _choice(
                "batch_correction", self.batch_correction, BATCH_CORRECTION, upper=False
            )
        if not isinstance(self.batch_key, str) or not self.batch_key.strip():
            raise DatasetSpecError(
                f"`batch_key` must be a metadata column name, got {self.batch_key!r}."
            )
        self.batch_key = self.batch_key.strip()
        covs = self.batch_covariates
        if covs is not None:
            if isinstance(covs, str):
                covs = [covs]
            if not isinstance(covs, (list, tuple)) or any(
                not isinstance(c, str) or not c.strip() for c in covs
            ):
                raise DatasetSpecError(
                    f"`batch_covariates` must be a list of metadata column names, got {covs!r}."
                )
            covs = list(dict.fromkeys(c.strip() for c in covs)) or None
        self.batch_covariates = covs
        if covs and self.batch_correction != "combat":
            raise DatasetSpecError(
                f"`batch_covariates` {covs} are kept by ComBat only; set "
                'batch_correction="combat" or remove them.'
            )
        if covs and self.batch_key in covs:
            raise DatasetSpecError(
                f"The batch key {self.batch_key!r} is also a covariate: a covariate's effect is "
                "kept, the batch's removed. Remove it from batch_covariates."
            )

    @staticmethod
    def _check_genes(genes: Any) -> list[str] | None:
        if genes is None:
            return None
        if isinstance(genes, str):
            genes = [genes]
        if not isinstance(genes, (list, tuple)) or not genes:
            raise DatasetSpecError(
                f"`genes` must be a non-empty list of gene ids or symbols, got {genes!r}."
            )
        bad = [g for g in genes if not isinstance(g, str) or not g.strip()]
        if bad:
            raise DatasetSpecError(f"`genes` must hold non-empty strings; got {bad[:5]!r}.")
        return list(dict.fromkeys(g.strip() for g in genes))

    @staticmethod
    def _check_data(data: Any) -> dict[str, list[str]]:
        if not isinstance(data, Mapping):
            raise DatasetSpecError(
                f"`data` must be a dict of lists, got {type(data).__name__}: "
                'use {"GSE123": ["GSM1", "GSM2"]} or {"GSE123": ["ALL"]}.'
            )
        if not data:
            raise DatasetSpecError("`data` must contain at least one experiment.")
        clean: dict[str, list[str]] = {}
        duplicates: list[str] = []
        for key, samples in data.items():
            if not isinstance(key, str) or not key.strip():
                raise DatasetSpecError(
                    f"Experiment accessions must be non-empty strings, got {key!r}."
                )
            if isinstance(samples, str) or not isinstance(samples, (list, tuple)) or not samples:
                raise DatasetSpecError(
                    "`data` must be a dict of lists, each with one or more elements. "
                    f"Problem with `{key}`: got {samples!r}."
                )
            bad = [s for s in samples if not isinstance(s, str) or not s.strip()]
            if bad:
                raise DatasetSpecError(
                    f"Sample accessions must be non-empty strings. Problem with `{key}`: {bad!r}."
                )
            items = [s.strip() for s in samples]
            if ALL_SAMPLES in items and len(items) > 1:
                raise DatasetSpecError(
                    f'`{key}` lists "ALL" together with samples {[s for s in items if s != ALL_SAMPLES]}: '
                    'use ["ALL"] alone, or list the samples.'
                )
            seen: set[str] = set()
            for s in items:
                if s in seen:
                    duplicates.append(f"{key}: {s}")
                seen.add(s)
            first = next((k for k in data if isinstance(k, str) and k.strip() == key.strip()), key)
            if key.strip() in clean:  # " GSE1" and "GSE1": one would silently replace the other
                raise DatasetSpecError(
                    f"`data` lists the experiment {key.strip()!r} twice ({first!r} and {key!r}): "
                    "list all of its samples under one key."
                )
            clean[key.strip()] = items
        if duplicates:
            raise DatasetSpecError(
                f"Duplicate values detected in {duplicates}: list each sample once per experiment."
            )
        return clean

    # -- serialisation: every form derives from the fields declared above ----------------
    @classmethod
    def options(cls) -> dict[str, Any]:
        """Every option (all fields but ``data``) and its default.

        Examples
        --------
        >>> Dataset.options()["aggregate_by"], Dataset.options()["pseudobulk"]
        ('EXPERIMENT', None)
        """
        return {f.name: f.default for f in fields(cls) if f.name != "data"}

    def _set_options(self, always: tuple[str, ...] = _ALWAYS_WRITTEN) -> dict[str, Any]:
        """The options to write: those in ``always``, and the others when not at their default."""
        return {
            name: getattr(self, name)
            for name, default in self.options().items()
            if name in always or getattr(self, name) != default
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` turns back into an equal Dataset."""
        out: dict[str, Any] = {"data": {k: list(v) for k, v in self.data.items()}}
        for name, value in self._set_options().items():
            out[name] = json.loads(json.dumps(value))  # a deep, JSON-able copy
        out["spec_version"] = SPEC_VERSION
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dataset:
        """Rebuild a Dataset from :meth:`to_dict` output (unknown keys are an error)."""
        if not isinstance(d, Mapping):
            raise DatasetSpecError(f"A dataset spec must be a dict, got {type(d).__name__}.")
        d = dict(d)
        version = d.pop("spec_version", SPEC_VERSION)
        if not isinstance(version, int) or version > SPEC_VERSION:
            raise DatasetSpecError(
                f"The dataset spec has spec_version {version!r}; this refinewidgets reads up to "
                f"{SPEC_VERSION}. Upgrade refinewidgets to read it."
            )
        known = {"data", *cls.options()}
        extra = sorted(set(d) - known)
        if extra:
            raise DatasetSpecError(
                f"Unknown key(s) {extra} in the dataset spec; known keys: {sorted(known)}."
            )
        if "data" not in d:
            raise DatasetSpecError("The dataset spec has no `data` key.")
        return cls(**d)

    def to_json(self) -> str:
        """The spec as JSON text (what ``refinewidgets build SPEC.json`` reads)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_code(self) -> str:
        """Python source that rebuilds this dataset with the core API."""
        args = [f"    data={json.dumps(self.data)},"]
        for name, value in self._set_options(_ALWAYS_WRITTEN[:3]).items():
            text = json.dumps(value) if isinstance(value, dict) else repr(value)
            args.append(f"    {name}={text},")
        return "ds = rw.Dataset(\n" + "\n".join(args) + "\n)"

    # -- resolution against a catalog ------------------------------------------------------
    def resolve(self, catalog) -> tuple[list[ResolvedSample], list[tuple[str, str, str]]]:
        """Check the spec against ``catalog`` and expand ``["ALL"]``.

        Returns the requested samples (in request order, a sample once per experiment that lists
        it) and the samples to filter ``(accession, experiment, reason)``: samples that exist
        but have no values to build from.
        """
        unknown_exp = [e for e in self.data if e not in catalog.experiment_ids]
        if unknown_exp:
            hints = "; ".join(f"{e}{_close(e, catalog.experiment_ids)}" for e in unknown_exp)
            raise UnknownAccessionError(
                f"Experiment(s) not in the catalog: {hints}. "
                "Check the accession, or open the source that holds it with rw.open_catalog(...)."
            )
        resolved: list[ResolvedSample] = []
        filtered: list[tuple[str, str, str]] = []
        unknown: list[str] = []
        wrong: list[str] = []
        for exp, samples in self.data.items():
            members = catalog.experiment_samples(exp)
            usable = catalog.usable_samples(exp)
            if samples == [ALL_SAMPLES]:
                chosen = list(members)
            else:
                chosen = []
                for s in samples:
                    if s in members:
                        chosen.append(s)
                    elif catalog.has_sample(s):
                        owners = catalog.sample_experiments(s)
                        wrong.append(
                            f"{s} is listed under {exp} but belongs to {', '.join(owners)}"
                        )
                    else:
                        unknown.append(f"{s}{_close(s, members)}")
            for s in chosen:
                if s in usable:
                    resolved.append(ResolvedSample(s, exp))
                else:
                    filtered.append((s, exp, catalog.missing_reason(s)))
        if unknown:
            raise UnknownAccessionError(
                f"Sample(s) in dataset do not exist in the catalog: {'; '.join(unknown)}. "
                "Remove them or open the source that holds them."
            )
        if wrong:
            raise DatasetSpecError(
                "Sample(s) listed under an experiment they do not belong to: "
                + "; ".join(wrong)
                + ". Move each sample under its own experiment."
            )
        return resolved, filtered
