"""Names that come from data: accessions, organisms, library ids.

They become group keys, zip member names, matrix headers and HTML, so a source's names are
checked when the catalog opens it. The safe set: a letter or digit, then letters, digits,
``.``, ``_`` and ``-``, at most 100 characters in all (every accession of GEO, ArrayExpress,
SRA, ENA and Bgee fits). Organisms are upper-case letters, digits and ``_`` (``HOMO_SAPIENS``).
"""

from __future__ import annotations

import re

from ..errors import SourceFormatError

__all__ = ["ACCESSION_PATTERN", "ORGANISM_PATTERN", "check_accession", "check_organism"]

ACCESSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ORGANISM_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9_]{0,99}")


def check_accession(value: object, what: str, where: str) -> str:
    """``value`` if it is a safe accession, else a SourceFormatError naming it and where it is.

    Examples
    --------
    >>> check_accession("E-MTAB-4001", "experiment", "x.zip")
    'E-MTAB-4001'
    >>> check_accession("../x", "experiment", "x.zip")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.SourceFormatError: x.zip: the experiment accession '../x' is not a valid accession ...
    """
    if isinstance(value, str) and ACCESSION_PATTERN.fullmatch(value):
        return value
    raise SourceFormatError(
        f"{where}: the {what} accession {value!r} is not a valid accession (letters, digits, "
        "'.', '_' and '-', starting with a letter or digit, at most 100 characters). Names from "
        "data become file names and table headers, so the source was refused; fix the name in "
        "the file."
    )


def check_organism(value: object, where: str) -> str:
    """``value`` if it is a safe organism name (``HOMO_SAPIENS``), else a SourceFormatError."""
    if isinstance(value, str) and ORGANISM_PATTERN.fullmatch(value):
        return value
    raise SourceFormatError(
        f"{where}: the organism {value!r} is not a valid organism name (upper-case letters, "
        "digits and '_', such as HOMO_SAPIENS). Names from data become file names, so the "
        "source was refused; fix the name in the file."
    )
