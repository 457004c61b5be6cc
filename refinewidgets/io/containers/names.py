"""Safe member names: what an archive or a download may call its files.

Zip and tar member names that would escape a target folder (``..`` parts, absolute paths,
drive letters) are refused before anything is read; names from data (accessions) that would
name no single file are refused before anything is written.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ...errors import (
    SourceFormatError,
    UnsafeArchiveError,
)

__all__ = [
    "check_member_name",
    "check_name_part",
]


def check_member_name(name: str, archive: str) -> None:
    """Refuse a member name that is absolute or climbs out of the archive's root.

    Examples
    --------
    >>> check_member_name("GSE1/GSE1.tsv", "x.zip")
    >>> check_member_name("../evil.sh", "x.zip")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.UnsafeArchiveError: x.zip holds an unsafe member name '../evil.sh' ...
    """
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    if (
        normalized.startswith("/")
        or ".." in parts
        or (len(normalized) > 1 and normalized[1] == ":")
    ):
        raise UnsafeArchiveError(
            f"{archive} holds an unsafe member name {name!r} (absolute, or with '..'): it could "
            "write outside its folder, so the archive was refused. Nothing was extracted. "
            "Get the download again from a trusted source."
        )


_UNSAFE_PART = ("/", "\\", "\x00", ":")


def check_name_part(name: str, what: str) -> None:
    """Refuse a name from data (a group key, an accession) that cannot be one part of a path.

    Examples
    --------
    >>> check_name_part("GSE1", "group key")
    >>> check_name_part("../x", "group key")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.SourceFormatError: The group key '../x' cannot name a file ...
    """
    text = str(name)
    if (
        not text
        or text in (".", "..")
        or text.startswith(".")
        or any(c in text for c in _UNSAFE_PART)
        or any(ord(c) < 32 for c in text)
    ):
        raise SourceFormatError(
            f"The {what} {text!r} cannot name a file in a download: it is empty, starts with "
            "'.', or holds '/', '\\', ':' or a control character. Rename it (accessions are "
            "letters, digits, '_' and '-') before writing."
        )
