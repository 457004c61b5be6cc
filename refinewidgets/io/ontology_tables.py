"""The Cell Ontology and UBERON tables shipped with refinewidgets, read once per process.

See :mod:`refinewidgets.core.ontology` for what they are used for and
``scripts/make_ontology_tables.py`` for where they come from.

>>> load_ontology("CL").labels["CL:0000084"]
'T cell'
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources

from ..core.ontology import Ontology, TermMatcher

__all__ = ["ONTOLOGY_NAMES", "load_ontology", "term_matcher"]

ONTOLOGY_NAMES = ("CL", "UBERON")


@functools.cache
def load_ontology(name: str) -> Ontology:
    """The shipped table of ``name`` (``"CL"`` or ``"UBERON"``)."""
    if name not in ONTOLOGY_NAMES:
        raise ValueError(f"no ontology table {name!r}; there are {list(ONTOLOGY_NAMES)}")
    data = resources.files("refinewidgets") / "data" / "ontology" / f"{name}.tsv.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        return Ontology.from_lines(name, text)


def term_matcher() -> TermMatcher:
    """A :class:`TermMatcher` over every shipped ontology."""
    return TermMatcher({name: load_ontology(name) for name in ONTOLOGY_NAMES})
