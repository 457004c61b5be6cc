"""Experiments chosen from a remote service (refine.bio, Bgee) and not downloaded yet.

A :class:`RemoteExperiment` is a plain, immutable value: the service, the accession (and, for
Bgee, the species folder), plus what the app shows about it (title, organism, technology,
samples). :class:`~refinewidgets.core.selection.Selection` holds them in ``pending`` beside its
local experiments, so that the cart, undo and "Clear all" treat both alike; a build first
fetches them (the widgets call :mod:`refinewidgets.remote`), opens the downloads as sources and
turns each pending experiment into a local one (:meth:`Selection.with_fetched
<refinewidgets.core.selection.Selection.with_fetched>`). The core never downloads anything.

Examples
--------
>>> exp = RemoteExperiment("refinebio", "GSE1", technology="microarray", samples=4)
>>> exp.key, exp.service_name, exp.technology
('GSE1', 'refine.bio', 'MICROARRAY')
>>> whole = RemoteExperiment("bgee", "", species="Danio_rerio")
>>> whole.key, whole.technology
('Danio_rerio', 'SINGLE-CELL')
>>> print(fetch_code([exp, whole]))
rw.open_catalog(*rw.remote.refinebio.fetch(['GSE1']), *rw.remote.bgee.fetch('Danio_rerio'))

What refine.bio will really include: asked for every sample of an experiment (``["ALL"]``), it
sends the processed samples of organisms that have a quantile-normalization target, whatever
the dataset's options (refine.bio's ``api/data_refinery_api/views/dataset.py``,
``convert_ALL_to_accessions``, and ``common/data_refinery_common/models/experiment.py``,
``update_num_samples``: ``num_downloadable_samples`` counts the same samples; commit
288d43cad259daecc95d6a3d43f74fd92ccbf57d of AlexsLemonade/refinebio).
:func:`left_out_by_refinebio` names the others with the reason, before a fetch;
:class:`LeftOutSamples` lists them after it, as samples without values, so that a build
accounts for them in ``filtered_samples``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetSpecError
from .metadata import ACCESSION, organism_label
from .names import check_accession, check_organism
from .spec import SINGLE_CELL

__all__ = [
    "NOT_IN_DOWNLOAD",
    "NOT_PROCESSED",
    "SERVICES",
    "SPECIES_PATTERN",
    "LeftOutSamples",
    "RemoteExperiment",
    "fetch_code",
    "left_out_by_refinebio",
    "no_qn_target",
    "not_fetched",
]

#: The services an experiment can be fetched from: ``{id: name shown}``.
SERVICES = {"refinebio": "refine.bio", "bgee": "Bgee"}
#: Bgee's species folders: ``Homo_sapiens``, ``Canis_lupus_familiaris``.
SPECIES_PATTERN = re.compile(r"[A-Z][a-z]+(?:_[a-z]+){1,2}")
#: refine.bio's technology names, as the catalog spells them.
_TECHNOLOGIES = {"microarray": "MICROARRAY", "rna-seq": "RNA-SEQ"}


@dataclass(frozen=True)
class RemoteExperiment:
    """One experiment to fetch from a service (or, for Bgee, a whole species' tarball).

    Parameters
    ----------
    service
        ``"refinebio"`` or ``"bgee"``.
    accession
        The experiment's accession; for Bgee, ``""`` means every experiment of ``species``
        (Bgee's species tarball).
    species
        Bgee's species folder (``Homo_sapiens``); required for Bgee.
    title, organism, technology, samples
        What the service said about it, shown in the cart (not part of the value: two
        entries for the same accession are equal).
    """

    service: str
    accession: str
    species: str = ""
    title: str = field(default="", compare=False)
    organism: str = field(default="", compare=False)
    technology: str = field(default="", compare=False)
    samples: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise DatasetSpecError(
                f"Unknown service {self.service!r}: experiments are fetched from "
                f"{', '.join(SERVICES)}."
            )
        if self.accession:
            check_accession(self.accession, "experiment", SERVICES[self.service])
        if self.service == "bgee":
            if not SPECIES_PATTERN.fullmatch(self.species or ""):
                raise DatasetSpecError(
                    f"A Bgee experiment needs its species folder (such as Homo_sapiens), got "
                    f"{self.species!r}."
                )
            object.__setattr__(self, "technology", SINGLE_CELL)
        elif not self.accession:
            raise DatasetSpecError("A refine.bio experiment needs its accession.")
        else:
            tech = str(self.technology or "")
            object.__setattr__(self, "technology", _TECHNOLOGIES.get(tech.lower(), tech.upper()))

    @property
    def key(self) -> str:
        """What names it in the cart: the accession, or the species for a whole Bgee species."""
        return self.accession or self.species

    @property
    def service_name(self) -> str:
        """The service's name as people write it (``refine.bio``, ``Bgee``)."""
        return SERVICES[self.service]

    @property
    def label(self) -> str:
        """A short description: ``GSE1`` or ``every experiment of Danio rerio``."""
        if self.accession:
            return self.accession
        return f"every experiment of {self.species.replace('_', ' ')}"


def fetch_code(pending: Iterable[RemoteExperiment]) -> str:
    """An expression opening what ``pending`` names, fetched with :mod:`refinewidgets.remote`
    (downloads already in the cache are not fetched again)."""
    pending = list(pending)
    parts = []
    refinebio = [p.accession for p in pending if p.service == "refinebio"]
    if refinebio:
        parts.append(f"*rw.remote.refinebio.fetch({refinebio!r})")
    species: dict[str, list[str]] = {}
    for p in pending:
        if p.service == "bgee":
            species.setdefault(p.species, [])
            if p.accession:
                species[p.species].append(p.accession)
    for sp, accessions in species.items():
        whole = any(p.service == "bgee" and p.species == sp and not p.accession for p in pending)
        args = f"{sp!r}" if whole or not accessions else f"{sp!r}, {accessions!r}"
        parts.append(f"*rw.remote.bgee.fetch({args})")
    return f"rw.open_catalog({', '.join(parts)})"


#: Why refine.bio leaves an unprocessed sample out of a download.
NOT_PROCESSED = (
    "not processed by refine.bio: its downloads hold processed samples only (left out by "
    "refine.bio)"
)


#: Why a sample refine.bio lists for an experiment is missing from its download, when neither
#: of refine.bio's rules explains it (the sample changed on refine.bio after the download).
NOT_IN_DOWNLOAD = (
    "listed by refine.bio for the experiment but not in its download (left out by refine.bio)"
)


def no_qn_target(organism: str) -> str:
    """Why refine.bio leaves out a processed sample of ``organism`` (it has no QN target).

    Examples
    --------
    >>> no_qn_target("SUS_SCROFA")
    'refine.bio has no quantile-normalization target for Sus scrofa: a download of the whole experiment leaves its samples out (left out by refine.bio)'
    """
    return (
        f"refine.bio has no quantile-normalization target for {organism_label(organism)}: a "
        "download of the whole experiment leaves its samples out (left out by refine.bio)"
    )


def not_fetched(service_name: str) -> str:
    """The reason given for an experiment that could not be fetched (its service unreachable).

    Examples
    --------
    >>> not_fetched("refine.bio")
    'not fetched: refine.bio cannot be reached from this computer; build again once it can'
    """
    return (
        f"not fetched: {service_name} cannot be reached from this computer; build again once it can"
    )


def _organism(record: Mapping[str, Any], where: str) -> str:
    organism = record.get("organism")
    name = organism.get("name") if isinstance(organism, Mapping) else organism
    return check_organism(str(name or "").upper().replace(" ", "_"), where)


def left_out_by_refinebio(
    samples: Iterable[Mapping[str, Any]], qn_organisms: Iterable[str]
) -> dict[str, str]:
    """``{sample: reason}`` of the samples refine.bio leaves out of a download of the whole
    experiment: the unprocessed ones and those of organisms without a QN target.

    ``samples`` are refine.bio's sample records (``/v1/samples/``: ``accession_code``,
    ``is_processed``, ``organism`` as ``{"name": ...}``); ``qn_organisms`` the organisms
    ``/v1/qn_targets/`` lists. Names are checked as every name from data is.

    Examples
    --------
    >>> records = [
    ...     {"accession_code": "GSM1", "is_processed": True, "organism": {"name": "HOMO_SAPIENS"}},
    ...     {"accession_code": "GSM2", "is_processed": False, "organism": {"name": "HOMO_SAPIENS"}},
    ...     {"accession_code": "GSM3", "is_processed": True, "organism": {"name": "SUS_SCROFA"}},
    ... ]
    >>> sorted(left_out_by_refinebio(records, ["HOMO_SAPIENS"]))
    ['GSM2', 'GSM3']
    """
    targets = {str(o).upper() for o in qn_organisms}
    out: dict[str, str] = {}
    for record in samples:
        acc = check_accession(record.get("accession_code"), "sample", "refine.bio's samples")
        organism = _organism(record, "refine.bio's samples")
        if record.get("is_processed") is not True:
            out[acc] = NOT_PROCESSED
        elif organism not in targets:
            out[acc] = no_qn_target(organism)
    return out


class LeftOutSamples:
    """A catalog source listing samples an experiment has on refine.bio but its download lacks:
    no values, each with its reason (``missing_values``), so that a build of the experiment
    lists them in ``filtered_samples``.

    Parameters
    ----------
    reasons
        ``{experiment: {sample: reason}}``.
    records
        ``{sample: refine.bio's sample record}`` (``/v1/samples/``), for their metadata.

    Examples
    --------
    >>> src = LeftOutSamples({"GSE1": {"GSM2": NOT_PROCESSED}})
    >>> src.experiments["GSE1"]["sample_accession_codes"], dict(src.matrices())
    (['GSM2'], {})
    >>> src.missing_values["GSM2"] == NOT_PROCESSED
    True
    """

    log_scale = False
    #: It holds no values, only the reasons samples lack them: listing samples another source
    #: lists too is its purpose, not an overlap to warn of (a reason that source gives wins).
    accounts_only = True

    def __init__(
        self,
        reasons: Mapping[str, Mapping[str, str]],
        records: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        name: str = "left out by refine.bio",
    ) -> None:
        records = records or {}
        self.name = name
        self.experiments: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, dict[str, Any]] = {}
        self.missing_values: dict[str, str] = {}
        self.qn_targets: dict[str, np.ndarray] = {}
        for exp, samples in reasons.items():
            check_accession(exp, "experiment", name)
            self.experiments[exp] = {"accession_code": exp, "sample_accession_codes": list(samples)}
            for acc, reason in samples.items():
                self.samples[acc] = _sample_record(acc, records.get(acc) or {})
                self.missing_values[acc] = str(reason)

    def matrices(self) -> dict[str, list[str]]:
        return {}

    def read_matrix(self, matrix_id: str, samples) -> pd.DataFrame:
        raise KeyError(f"{self.name} holds no values (matrix {matrix_id!r} asked).")

    def __repr__(self) -> str:
        return f"<LeftOutSamples: {len(self.samples)} sample(s) of {len(self.experiments)} experiment(s)>"


def _sample_record(acc: str, api: Mapping[str, Any]) -> dict[str, Any]:
    """refine.bio's API record of a sample in the shape of its downloads' metadata."""
    record: dict[str, Any] = {ACCESSION: acc}
    if api.get("organism"):
        record["refinebio_organism"] = _organism(api, "refine.bio's samples")
    for field_ in ("title", "source_database", "sex", "specimen_part", "disease", "cell_line"):
        value = api.get(field_)
        if isinstance(value, (str, int, float)) and value == value and value != "":  # not NaN
            record[f"refinebio_{field_}"] = value
    if isinstance(api.get("platform_name"), str):
        record["refinebio_platform"] = api["platform_name"]
    if "is_processed" in api:
        record["refinebio_processed"] = api.get("is_processed") is True
    return record
