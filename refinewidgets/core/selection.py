"""The app's one state: what is selected ("My dataset") and how it will be built.

A :class:`Selection` is an immutable value: the chosen experiments and their samples (or every
sample, refine.bio's ``["ALL"]``), and the build options (the options of
:class:`~refinewidgets.core.spec.Dataset`, declared there once). Every change is a pure method
that returns a new Selection (:meth:`~Selection.add`, :meth:`~Selection.remove`,
:meth:`~Selection.clear`, :meth:`~Selection.with_options`), applying the rules that tie the
options to the samples: refine.bio's page rule for skipping quantile normalization
(:func:`quantile_rule`), and single-cell options only while single cells are selected. Views
(the widgets) observe one Selection and render from it; two equal selections are one state, so
rendering never loops. :attr:`Selection.dataset` is the spec a build uses, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import pandas as pd

from ..errors import DatasetSpecError, UnknownAccessionError
from .cell_filter import freeze_cell_filter, parse_cell_filter, thaw_cell_filter
from .pending import RemoteExperiment, fetch_code
from .spec import ALL_SAMPLES, LIBRARY_SUMMARY, SINGLE_CELL, Dataset

__all__ = [
    "CELL_FILTER_SOURCES",
    "SINGLE_CELL",
    "QuantileRule",
    "Selection",
    "quantile_rule",
    "rebuild_code",
]

#: Cell-filter column -> the samples column listing a library's distinct values.
CELL_FILTER_SOURCES = LIBRARY_SUMMARY
#: The options that only apply to single cells (reset when no single cell is selected).
SINGLE_CELL_OPTIONS = (
    "cell_filter",
    "counts_normalization",
    "pseudobulk",
    "keep_intergenic",
    "genes",
    "exact",
    "var_filter",
    "obs_columns",
)
NOTHING_SELECTED = (
    'Nothing selected: choose experiments, tick samples and press "Add to dataset" '
    "(or add whole experiments) before building."
)


def _frozen_filter(cell_filter: Mapping[str, Any] | None):
    return freeze_cell_filter(parse_cell_filter(cell_filter))


def _frozen(name: str, value: Any):
    """An option's value in a hashable form."""
    if name == "cell_filter":
        return _frozen_filter(value)
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Selection:
    """Experiments with their chosen samples, and the build options; an immutable value.

    Parameters
    ----------
    catalog
        The :class:`~refinewidgets.core.catalog.Catalog` the accessions come from (not part of
        the value: two selections with the same samples and options are equal).
    items
        ``((experiment, samples or None for every sample), ...)`` in the order added.
    options
        ``((option, value), ...)``: every option of :class:`Dataset`, in its order.
    pending
        Experiments chosen from refine.bio or Bgee and not downloaded yet
        (:class:`~refinewidgets.core.pending.RemoteExperiment`), in the order added: a build
        fetches them first (:meth:`with_fetched`). They count in :meth:`technologies` (so the
        options follow them) but not in :attr:`data`, :attr:`dataset` or the sample counts.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> sel = Selection(cat).add({"GSE71102": cat.experiment_samples("GSE71102")[:2]})
    >>> sel = sel.add({"SRP091833": None}).with_options(aggregate_by="SPECIES")
    >>> sel.data["SRP091833"], sel.n_samples, sel.dataset.aggregate_by
    (['ALL'], 22, 'SPECIES')
    >>> sel.totals("technology").to_dict()
    {'MICROARRAY': 2, 'RNA-SEQ': 20}
    """

    catalog: Any = field(compare=False, repr=False)
    items: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
    options: tuple[tuple[str, Any], ...] = tuple(
        (k, _frozen(k, v)) for k, v in Dataset.options().items()
    )
    pending: tuple[RemoteExperiment, ...] = ()

    # -- changes: each returns a new Selection --------------------------------------------
    def add(self, selection: Mapping[str, Sequence[str] | None]) -> Selection:
        """Add ``{experiment: [samples] or None (every sample)}``.

        Samples already chosen stay; a union covering the whole experiment becomes ``["ALL"]``.
        """
        items = dict(self.items)
        for experiment, samples in selection.items():
            members = self.catalog.experiment_samples(experiment)  # raises for an unknown one
            if samples is None or list(samples) == [ALL_SAMPLES]:
                items[experiment] = None
                continue
            known = set(members)
            outside = [s for s in samples if s not in known]
            if outside:
                raise DatasetSpecError(
                    f"Sample(s) {outside[:5]} are not samples of {experiment}: choose among its "
                    f"{len(members)} samples."
                )
            current = items.get(experiment, ())
            if current is None:
                continue
            merged = tuple(dict.fromkeys([*current, *samples]))
            items[experiment] = None if set(merged) >= known else merged
        return replace(self, items=tuple(items.items()))._settled(force=True)

    def add_whole(self, experiments: Iterable[str]) -> Selection:
        """Add every sample of ``experiments``, except those already chosen: an experiment the
        user trimmed to some samples keeps them (:meth:`trimmed` lists it; adding the rest is an
        explicit :meth:`add` of ``{experiment: None}``).

        Examples
        --------
        >>> import refinewidgets as rw
        >>> cat = rw.open_catalog()
        >>> sel = Selection(cat).add({"GSE71102": cat.experiment_samples("GSE71102")[:16]})
        >>> sel = sel.add_whole(["GSE71102", "SRP091833"])
        >>> sel.trimmed(), sel.data["SRP091833"]
        ({'GSE71102': (16, 24)}, ['ALL'])
        """
        return self.add({e: None for e in experiments if e not in self})

    def trimmed(self) -> dict[str, tuple[int, int]]:
        """``{experiment: (chosen, total)}`` for each experiment with some but not all of its
        samples chosen, in the order added."""
        out = {}
        for experiment, samples in self.items:
            if samples is not None:
                out[experiment] = (len(samples), len(self.catalog.experiment_samples(experiment)))
        return out

    def remove(self, experiment: str, samples: Iterable[str] | None = None) -> Selection:
        """Remove ``experiment`` (or only some of its samples; an emptied experiment goes).

        ``experiment`` may also be the :attr:`~refinewidgets.core.pending.RemoteExperiment.key`
        of a pending experiment, which is then no longer fetched.
        """
        items = dict(self.items)
        if experiment not in items and samples is None:
            left = tuple(p for p in self.pending if p.key != experiment)
            if len(left) < len(self.pending):
                return replace(self, pending=left)._settled(force=True)
        if experiment not in items:
            raise UnknownAccessionError(
                f"{experiment} is not in the dataset; it has "
                f"{self.experiments + [p.key for p in self.pending]}."
            )
        if samples is None:
            del items[experiment]
        else:
            drop = set(samples)
            left = tuple(s for s in self.samples(experiment) if s not in drop)
            if left:
                items[experiment] = left
            else:
                del items[experiment]
        return replace(self, items=tuple(items.items()))._settled(force=True)

    def clear(self) -> Selection:
        """Nothing selected, nothing to fetch (the options stay)."""
        return replace(self, items=(), pending=())._settled(force=True)

    def add_remote(self, experiments: Iterable[RemoteExperiment]) -> Selection:
        """Add experiments to fetch from refine.bio or Bgee (:attr:`pending`).

        One already in the catalog (fetched before, or opened from the cache) is added as a
        local experiment with every sample instead; one already pending is kept once.
        """
        local, pending = self._split_remote(experiments)
        added = replace(self, pending=pending)
        return added.add(dict.fromkeys(local)) if local else added._settled(force=True)

    def _split_remote(
        self, experiments: Iterable[RemoteExperiment]
    ) -> tuple[list[str], tuple[RemoteExperiment, ...]]:
        """The accessions of ``experiments`` already in the catalog, and :attr:`pending` with
        the others added (each key once)."""
        local: list[str] = []
        pending = list(self.pending)
        keys = {p.key for p in pending}
        known = set(self.catalog.experiment_ids) if self.catalog is not None else set()
        for exp in experiments:
            if not isinstance(exp, RemoteExperiment):
                raise DatasetSpecError(
                    f"Experiments to fetch are RemoteExperiment values, got {type(exp).__name__}."
                )
            if exp.accession and exp.accession in known:
                local.append(exp.accession)
            elif exp.key not in keys:
                pending.append(exp)
                keys.add(exp.key)
        return local, tuple(pending)

    def with_fetched(self, catalog, fetched: Mapping[str, Sequence[str]]) -> Selection:
        """The selection over ``catalog`` (which now holds the downloads): each pending
        experiment named in ``fetched`` (``{key: [experiments found in its downloads]}``)
        becomes local experiments with every sample; the others stay pending.

        Raises :class:`~refinewidgets.errors.DatasetSpecError` when a download holds none of
        the experiments it was fetched for.
        """
        moved = replace(self, catalog=catalog)
        left = []
        add: dict[str, None] = {}
        for exp in self.pending:
            if exp.key not in fetched:
                left.append(exp)
                continue
            found = [e for e in fetched[exp.key] if e in set(catalog.experiment_ids)]
            if exp.accession and exp.accession not in found:
                raise DatasetSpecError(
                    f"The download of {exp.accession} from {exp.service_name} does not hold "
                    f"{exp.accession} (it holds {', '.join(found) or 'no experiment'})."
                )
            wanted = [exp.accession] if exp.accession else found
            if not wanted:
                raise DatasetSpecError(
                    f"The download of {exp.label} from {exp.service_name} holds no experiment."
                )
            add.update(dict.fromkeys(wanted))
        return replace(moved, pending=tuple(left)).add(add)

    def with_options(self, **options: Any) -> Selection:
        """New option values, checked as :class:`Dataset` checks them.

        Changing the aggregation or the pseudobulk applies the quantile-normalization rule.
        """
        unknown = sorted(set(options) - set(Dataset.options()))
        if unknown:
            raise DatasetSpecError(
                f"Unknown option(s) {unknown}; options: {sorted(Dataset.options())}."
            )
        merged = {**self.option_values, **options}
        checked = Dataset({"_": ["_"]}, **merged)  # the spec's own checks and normal forms
        values = tuple((k, _frozen(k, getattr(checked, k))) for k in Dataset.options())
        force = bool({"aggregate_by", "pseudobulk"} & set(options))
        return replace(self, options=values)._settled(force=force)

    def _settled(self, *, force: bool) -> Selection:
        """Apply the rules: single-cell options only with single cells; the QN page rule."""
        values = dict(self.options)
        if not self.has_single_cell:
            defaults = Dataset.options()
            values.update({k: defaults[k] for k in SINGLE_CELL_OPTIONS})
        rule = quantile_rule(self.technologies(), values["aggregate_by"], values["pseudobulk"])
        if force and rule.required is not None:
            values["quantile_normalize"] = rule.required
        settled = tuple(values.items())
        return self if settled == self.options else replace(self, options=settled)

    @classmethod
    def from_dataset(cls, dataset: Dataset | Mapping[str, Any], catalog) -> Selection:
        """The selection of ``dataset``, checked against ``catalog`` (unknown or misplaced samples
        raise). Options are kept as given, even where refine.bio's page would not allow them,
        except those the build refuses for these samples (see :meth:`restore_options`).

        Examples
        --------
        >>> import refinewidgets as rw
        >>> cat = rw.open_catalog()
        >>> ds = rw.Dataset({"GSE71102": cat.experiment_samples("GSE71102")[:1], "SRP091833": ["ALL"]})
        >>> Selection.from_dataset(ds, cat).dataset == ds
        True
        """
        if isinstance(dataset, Mapping):
            dataset = Dataset.from_dict(dataset)
        dataset.resolve(catalog)  # the core's checks and messages
        items = tuple(
            (e, None if s == [ALL_SAMPLES] else tuple(s)) for e, s in dataset.data.items()
        )
        return cls(catalog, items).restore_options(dataset)

    def restore_options(self, dataset: Dataset | Mapping[str, Any]) -> Selection:
        """The options of ``dataset`` (or ``{option: value}``, checked as :class:`Dataset`
        checks them), kept as given where the build accepts them (refine.bio's page rule is not
        applied: a restored spec stays), adapted to the samples where it would refuse them
        (quantile normalization off for single cells without a pseudobulk)."""
        if isinstance(dataset, Mapping):
            dataset = Dataset({"_": ["_"]}, **{**Dataset.options(), **dataset})
        options = tuple((k, _frozen(k, getattr(dataset, k))) for k in Dataset.options())
        return replace(self, options=options)._buildable()

    def _buildable(self) -> Selection:
        """The options the build would refuse for these samples set to what it accepts (single
        cells without a pseudobulk are never quantile-normalized); the others kept as given."""
        values = dict(self.options)
        if self.quantile_rule().required is False and values["quantile_normalize"]:
            values["quantile_normalize"] = False
            return replace(self, options=tuple(values.items()))
        return self

    def restore_pending(self, experiments: Iterable[RemoteExperiment]) -> Selection:
        """Experiments to fetch, restored as given (from a link): the options stay. One already
        in the catalog (its download opened as a source) is taken whole as a local experiment;
        one already in the selection is kept once.

        Examples
        --------
        >>> import refinewidgets as rw
        >>> sel = Selection(rw.open_catalog()).restore_pending(
        ...     [RemoteExperiment("refinebio", "GSE1"), RemoteExperiment("refinebio", "SRP091833")]
        ... )
        >>> [p.key for p in sel.pending], sel.data
        (['GSE1'], {'SRP091833': ['ALL']})
        """
        local, pending = self._split_remote(experiments)
        items = dict(self.items)
        items.update({e: None for e in local if e not in items})
        pending = tuple(p for p in pending if p.key not in items)
        return replace(self, items=tuple(items.items()), pending=pending)._buildable()

    # -- reading ----------------------------------------------------------------------------
    @property
    def option_values(self) -> dict[str, Any]:
        """The options as :class:`Dataset` keywords."""
        out = dict(self.options)
        out["cell_filter"] = thaw_cell_filter(out["cell_filter"])
        for name in ("genes", "obs_columns"):
            if isinstance(out.get(name), tuple):
                out[name] = list(out[name])
        return out

    @property
    def dataset(self) -> Dataset | None:
        """The spec a build uses (None while nothing is selected)."""
        return Dataset(self.data, **self.option_values) if self.items else None

    def to_dataset(self) -> Dataset:
        """The spec a build uses; :class:`DatasetSpecError` when nothing is selected, or while
        experiments are still to be fetched (:attr:`pending`)."""
        if self.pending:
            names = ", ".join(f"{p.label} ({p.service_name})" for p in self.pending)
            raise DatasetSpecError(
                f"{names} must be fetched first: building in the app fetches them, or fetch "
                "them with rw.remote and open them with rw.open_catalog(...)."
            )
        if not self.items:
            raise DatasetSpecError(NOTHING_SELECTED)
        return self.dataset

    @property
    def planned_dataset(self) -> Dataset | None:
        """The spec of the local and the pending experiments (every sample of a pending one;
        a whole Bgee species is left out, its experiments being unknown until fetched)."""
        data = dict(self.data)
        data.update({p.accession: [ALL_SAMPLES] for p in self.pending if p.accession})
        return Dataset(data, **self.option_values) if data else None

    @property
    def experiments(self) -> list[str]:
        """The experiments, in the order they were added."""
        return [e for e, _ in self.items]

    @property
    def data(self) -> dict[str, list[str]]:
        """The ``data`` of the dataset spec: ``{experiment: [samples] or ["ALL"]}``."""
        return {e: [ALL_SAMPLES] if s is None else list(s) for e, s in self.items}

    def samples(self, experiment: str | None = None) -> list[str]:
        """The selected samples of ``experiment`` (of every experiment when None), expanded."""
        if experiment is None:
            return list(dict.fromkeys(s for e, _ in self.items for s in self.samples(e)))
        chosen = dict(self.items)[experiment]
        return list(self.catalog.experiment_samples(experiment)) if chosen is None else list(chosen)

    @property
    def n_samples(self) -> int:
        """The number of distinct selected samples."""
        return len(self.samples())

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, experiment: object) -> bool:
        return experiment in dict(self.items)

    def _sample_rows(self) -> pd.DataFrame:
        """One row per distinct selected sample: experiment, organism, technology."""
        pairs = [(s, e) for e, _ in self.items for s in self.samples(e)]
        frame = pd.DataFrame(pairs, columns=["sample", "experiment"]).drop_duplicates("sample")
        rows = self.catalog.samples.reindex(frame["sample"])
        organism = rows.get("refinebio_organism", pd.Series("", index=rows.index))
        frame["organism"] = organism.fillna("").astype(str).to_numpy()
        frame["technology"] = [self.catalog.technology(e) for e in frame["experiment"]]
        for column in CELL_FILTER_SOURCES.values():
            if column in rows:
                frame[column] = rows[column].fillna("").astype(str).to_numpy()
        return frame

    def table(self) -> pd.DataFrame:
        """One row per experiment: title, organisms, technology, selected and total samples."""
        exps = self.catalog.experiments
        rows = []
        for e, _ in self.items:
            rec = exps.loc[e] if e in exps.index else {}
            rows.append(
                {
                    "experiment": e,
                    "title": str(rec.get("title", "")),
                    "organisms": str(rec.get("organisms", "")),
                    "technology": self.catalog.technology(e),
                    "selected": len(self.samples(e)),
                    "total": len(self.catalog.experiment_samples(e)),
                }
            )
        return pd.DataFrame(
            rows, columns=["experiment", "title", "organisms", "technology", "selected", "total"]
        )

    def totals(self, by: str = "organism") -> pd.Series:
        """Distinct selected samples per ``"organism"`` or per ``"technology"``."""
        if by not in ("organism", "technology"):
            raise DatasetSpecError(f"totals(by=...) takes 'organism' or 'technology', got {by!r}.")
        if not self.items:
            return pd.Series(dtype=int, name="samples")
        counts = self._sample_rows()[by].value_counts()
        return counts.sort_index().rename("samples").rename_axis(by)

    def technologies(self) -> list[str]:
        """The technologies of the chosen experiments, the pending ones included, sorted."""
        local = {self.catalog.technology(e) for e, _ in self.items}
        return sorted(local | {p.technology for p in self.pending if p.technology})

    @property
    def has_single_cell(self) -> bool:
        """Whether a chosen experiment is single-cell (the single-cell options then apply)."""
        return SINGLE_CELL in self.technologies()

    def quantile_rule(self) -> QuantileRule:
        """refine.bio's page rule for this selection's technologies and options."""
        values = dict(self.options)
        return quantile_rule(self.technologies(), values["aggregate_by"], values["pseudobulk"])

    def cell_filter_choices(self) -> dict[str, list[str]]:
        """``{cell-filter column: sorted values}`` found among the selected single-cell libraries."""
        if not self.has_single_cell:
            return {}
        rows = self._sample_rows()
        rows = rows[rows["technology"] == SINGLE_CELL]
        out = {}
        for column, source in CELL_FILTER_SOURCES.items():
            if source in rows:
                values = {v.strip() for cell in rows[source] for v in cell.split(";")} - {""}
                if values:
                    out[column] = sorted(values)
        return out


class QuantileRule(NamedTuple):
    """Whether quantile normalization may be skipped, why not, and the value it must take."""

    allowed_to_skip: bool
    reason: str
    #: True or False when the rule fixes the value (the checkbox is then disabled), else None.
    required: bool | None = None


def quantile_rule(
    technologies: Iterable[str], aggregate_by: str, pseudobulk: str | None = None
) -> QuantileRule:
    """refine.bio's page rule: QN can be skipped only for RNA-seq aggregated by experiment.

    Single cells are never quantile-normalized (the build refuses it); pseudobulk libraries
    count as RNA-seq samples.

    Examples
    --------
    >>> quantile_rule(["RNA-SEQ"], "EXPERIMENT")
    QuantileRule(allowed_to_skip=True, reason='', required=None)
    >>> quantile_rule(["MICROARRAY", "RNA-SEQ"], "EXPERIMENT").required
    True
    """
    techs = {str(t).upper() for t in technologies}
    if not techs:
        return QuantileRule(
            False,
            "Add samples first: whether quantile normalization can be skipped "
            "depends on their technology.",
            True,
        )
    if SINGLE_CELL in techs and pseudobulk is None:
        return QuantileRule(
            True,
            "Off: the dataset has single cells, which are never quantile-normalized "
            "(choose a pseudobulk to normalize per-library sums).",
            False,
        )
    if SINGLE_CELL in techs:
        techs = (techs - {SINGLE_CELL}) | {"RNA-SEQ"}
    problems = []
    other = sorted(techs - {"RNA-SEQ"})
    if other:
        problems.append(f"the dataset has {' and '.join(t.lower() for t in other)} samples")
    if str(aggregate_by).upper() != "EXPERIMENT":
        problems.append(
            f"aggregating by {str(aggregate_by).lower()} puts several experiments on one scale"
        )
    if not problems:
        return QuantileRule(True, "", None)
    return QuantileRule(
        False,
        "Quantile normalization can be skipped only for RNA-seq samples aggregated by experiment "
        f"(refine.bio's rule): {'; '.join(problems)}.",
        True,
    )


def rebuild_code(
    dataset: Dataset,
    catalog_code: str = "rw.open_catalog()",
    pending: Sequence[RemoteExperiment] = (),
) -> str:
    """Python that rebuilds ``dataset`` without the widgets (fetching ``pending`` first, and
    opening the downloads beside the catalog).

    Examples
    --------
    >>> print(rebuild_code(Dataset({"GSE1": ["ALL"]})))
    import refinewidgets as rw
    <BLANKLINE>
    cat = rw.open_catalog()
    ds = rw.Dataset(
        data={"GSE1": ["ALL"]},
        aggregate_by='EXPERIMENT',
        scale_by='NONE',
        quantile_normalize=True,
    )
    res = rw.build(ds, cat)
    """
    if pending:
        catalog_code = f"rw.Catalog([*{catalog_code}.sources, *{fetch_code(pending)}.sources])"
    return f"import refinewidgets as rw\n\ncat = {catalog_code}\n{dataset.to_code()}\nres = rw.build(ds, cat)"
