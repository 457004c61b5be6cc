"""The selection being assembled ("My dataset") and the rules its options follow.

A :class:`Cart` maps each chosen experiment to its chosen samples (or to every sample, kept as
refine.bio's ``["ALL"]``). It knows its totals per species and technology, whether it holds
single-cell libraries, and turns into a :class:`~refinewidgets.core.spec.Dataset` with
:meth:`Cart.to_dataset`; :meth:`Cart.from_dataset` goes back. :func:`quantile_rule` is refine.bio's
web-page rule for skipping quantile normalization, extended to single cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd

from ..errors import DatasetSpecError, UnknownAccessionError
from .spec import ALL_SAMPLES, Dataset

__all__ = ["CELL_FILTER_SOURCES", "Cart", "QuantileRule", "quantile_rule", "rebuild_code"]

SINGLE_CELL = "SINGLE-CELL"
#: Cell-filter column -> the samples column listing a library's distinct values.
CELL_FILTER_SOURCES = {
    "cell_type": "cell_types",
    "tissue": "tissues",
    "stage": "stages",
    "sex": "sexes",
}
NOTHING_SELECTED = (
    'Nothing selected: choose experiments, tick samples and press "Add to dataset" '
    "(or add whole experiments) before building."
)


class Cart:
    """Experiments and their selected samples, in the order they were added.

    Parameters
    ----------
    catalog
        The :class:`~refinewidgets.core.catalog.Catalog` the accessions come from.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> cart = Cart(cat)
    >>> cart.add("GSE71102", cat.experiment_samples("GSE71102")[:2])
    >>> cart.add("SRP091833")
    >>> cart.data["SRP091833"], cart.n_samples
    (['ALL'], 22)
    >>> cart.totals("technology").to_dict()
    {'MICROARRAY': 2, 'RNA-SEQ': 20}
    """

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self._items: dict[str, list[str] | None] = {}  # None: every sample ("ALL")

    # -- editing ----------------------------------------------------------------------------
    def add(self, experiment: str, samples: Sequence[str] | None = None) -> None:
        """Add ``samples`` of ``experiment`` (None or ``["ALL"]``: every sample).

        Samples already chosen stay; when the union covers the whole experiment it becomes
        ``["ALL"]``.
        """
        members = self.catalog.experiment_samples(experiment)  # raises for an unknown experiment
        if samples is None or list(samples) == [ALL_SAMPLES]:
            self._items[experiment] = None
            return
        samples = list(samples)
        outside = [s for s in samples if s not in set(members)]
        if outside:
            raise DatasetSpecError(
                f"Sample(s) {outside[:5]} are not samples of {experiment}: choose among its "
                f"{len(members)} samples."
            )
        current = self._items.get(experiment, [])
        if current is None:
            return
        merged = list(dict.fromkeys([*current, *samples]))
        self._items[experiment] = None if set(merged) >= set(members) else merged

    def remove(self, experiment: str, samples: Iterable[str] | None = None) -> None:
        """Remove ``experiment`` (or only some of its samples; an emptied experiment goes)."""
        if experiment not in self._items:
            raise UnknownAccessionError(
                f"{experiment} is not in the dataset; it has {self.experiments}."
            )
        if samples is None:
            del self._items[experiment]
            return
        drop = set(samples)
        left = [s for s in self.samples(experiment) if s not in drop]
        if left:
            self._items[experiment] = left
        else:
            del self._items[experiment]

    def clear(self) -> None:
        """Remove everything."""
        self._items.clear()

    # -- reading ----------------------------------------------------------------------------
    @property
    def experiments(self) -> list[str]:
        """The experiments, in the order they were added."""
        return list(self._items)

    @property
    def data(self) -> dict[str, list[str]]:
        """The ``data`` of the dataset spec: ``{experiment: [samples] or ["ALL"]}``."""
        return {e: [ALL_SAMPLES] if s is None else list(s) for e, s in self._items.items()}

    def samples(self, experiment: str | None = None) -> list[str]:
        """The selected samples of ``experiment`` (of every experiment when None), expanded."""
        if experiment is None:
            return list(dict.fromkeys(s for e in self._items for s in self.samples(e)))
        chosen = self._items[experiment]
        return list(self.catalog.experiment_samples(experiment)) if chosen is None else list(chosen)

    @property
    def n_samples(self) -> int:
        """The number of distinct selected samples."""
        return len(self.samples())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, experiment: object) -> bool:
        return experiment in self._items

    def _sample_rows(self) -> pd.DataFrame:
        """One row per distinct selected sample: experiment, organism, technology."""
        pairs = [(s, e) for e in self._items for s in self.samples(e)]
        frame = pd.DataFrame(pairs, columns=["sample", "experiment"]).drop_duplicates("sample")
        table = self.catalog.samples
        rows = table.reindex(frame["sample"])
        organism = (
            rows["refinebio_organism"]
            if "refinebio_organism" in rows
            else pd.Series("", index=rows.index)
        )
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
        for e in self._items:
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
        if not self._items:
            return pd.Series(dtype=int, name="samples")
        counts = self._sample_rows()[by].value_counts()
        return counts.sort_index().rename("samples").rename_axis(by)

    def technologies(self) -> list[str]:
        """The technologies of the chosen experiments, sorted."""
        return sorted({self.catalog.technology(e) for e in self._items})

    @property
    def has_single_cell(self) -> bool:
        """Whether a chosen experiment is single-cell (the single-cell options then apply)."""
        return SINGLE_CELL in self.technologies()

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

    # -- the dataset spec ---------------------------------------------------------------------
    def to_dataset(self, **options: Any) -> Dataset:
        """The :class:`Dataset` of this selection with ``options`` (``aggregate_by``, ``scale_by``...).

        Raises :class:`~refinewidgets.errors.DatasetSpecError` when nothing is selected.
        """
        if not self._items:
            raise DatasetSpecError(NOTHING_SELECTED)
        return Dataset(self.data, **options)

    @classmethod
    def from_dataset(cls, dataset: Dataset | Mapping[str, Any], catalog) -> Cart:
        """The cart of ``dataset``, checked against ``catalog`` (unknown or misplaced samples raise).

        Examples
        --------
        >>> import refinewidgets as rw
        >>> cat = rw.open_catalog()
        >>> ds = rw.Dataset({"GSE71102": cat.experiment_samples("GSE71102")[:1], "SRP091833": ["ALL"]})
        >>> Cart.from_dataset(ds, cat).to_dataset() == ds
        True
        """
        if isinstance(dataset, Mapping):
            dataset = Dataset.from_dict(dataset)
        dataset.resolve(catalog)  # the core's checks and messages
        cart = cls(catalog)
        cart._items = {e: None if s == [ALL_SAMPLES] else list(s) for e, s in dataset.data.items()}
        return cart


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


def rebuild_code(dataset: Dataset, catalog_code: str = "rw.open_catalog()") -> str:
    """Python that rebuilds ``dataset`` without the widgets.

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
    return f"import refinewidgets as rw\n\ncat = {catalog_code}\n{dataset.to_code()}\nres = rw.build(ds, cat)"
