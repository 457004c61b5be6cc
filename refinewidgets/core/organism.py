"""A whole species as a dataset: every single-cell library of one organism in a catalog."""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import DatasetSpecError

__all__ = ["organism_dataset"]


def organism_dataset(catalog: Any, organism: str, **options: Any):
    """A :class:`~refinewidgets.core.spec.Dataset` of every single-cell library of one species
    in ``catalog``: a query over a whole organism, as Census' ``get_anndata(census, organism,
    obs_value_filter=...)`` makes one.

    Parameters
    ----------
    catalog
        The catalog to take the experiments from (every single-cell experiment holding
        libraries of ``organism``; of an experiment with several species, only its libraries of
        this one).
    organism
        ``HOMO_SAPIENS``, ``Homo sapiens`` or ``Homo_sapiens``.
    **options
        Options of the Dataset (``cell_filter``, ``var_filter``, ``obs_columns``,
        ``counts_normalization``...). By default the experiments form one group
        (``aggregate_by="SPECIES"``) and ``quantile_normalize=False`` (cells are not
        quantile-normalized).

    Returns
    -------
    The Dataset, listing the experiments and libraries it found (so it can be saved, read back
    and built again with the same members); build it with :func:`refinewidgets.build`.

    Raises
    ------
    DatasetSpecError
        No single-cell library of that organism: the message lists the organisms there are.

    Examples
    --------
    >>> from refinewidgets.core.catalog import Catalog
    >>> organism_dataset(Catalog([]), "Homo sapiens")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.DatasetSpecError: No single-cell library of HOMO_SAPIENS in the catalog; its single-cell organisms: none...
    """
    from .spec import Dataset

    if not isinstance(organism, str) or not organism.strip():
        raise DatasetSpecError(
            f"`organism` must be a species name such as 'Homo sapiens', got {organism!r}."
        )
    wanted = "_".join(organism.replace("_", " ").split()).upper()
    data: dict[str, list[str]] = {}
    present: set[str] = set()
    for experiment in catalog.experiment_ids:
        if not catalog.is_single_cell(experiment):
            continue
        members = catalog.experiment_samples(experiment)
        organisms = [
            str(catalog.sample_record(s).get("refinebio_organism") or "").upper() for s in members
        ]
        present.update(o for o in organisms if o)
        chosen = [s for s, o in zip(members, organisms) if o == wanted]
        if chosen:
            data[experiment] = ["ALL"] if len(chosen) == len(members) else chosen
    if not data:
        close = difflib.get_close_matches(wanted, sorted(present), n=2)
        raise DatasetSpecError(
            f"No single-cell library of {wanted} in the catalog"
            f"{' (did you mean ' + ', '.join(close) + '?)' if close else ''}; its single-cell "
            f"organisms: {', '.join(sorted(present)) or 'none'}. Open the files of that species "
            "with rw.open_catalog(...)."
        )
    options = {"aggregate_by": "SPECIES", "quantile_normalize": False, **options}
    return Dataset(data, **options)
