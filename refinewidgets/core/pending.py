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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import DatasetSpecError
from .names import check_accession

__all__ = ["SERVICES", "SPECIES_PATTERN", "RemoteExperiment", "fetch_code"]

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
            object.__setattr__(self, "technology", "SINGLE-CELL")
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
