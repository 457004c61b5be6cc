"""Exceptions and warnings of refinewidgets.

Every exception derives from :class:`RefineWidgetsError`; specific classes also derive from
the matching builtin, so ``except ValueError`` keeps working for callers that do not know us.
Messages name the offending value and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "DatasetSpecError",
    "DuplicateSourceWarning",
    "ExpressionValueError",
    "GeneOverlapError",
    "GeneSelectionWarning",
    "LowGeneOverlapWarning",
    "MemoryBudgetError",
    "MetadataMismatchWarning",
    "NotCountsWarning",
    "OutOfCoreWarning",
    "OutputError",
    "OutputExistsError",
    "PathNotFoundError",
    "RefineWidgetsError",
    "RefineWidgetsWarning",
    "SaveNameError",
    "ScaledSourceWarning",
    "SourceFormatError",
    "SourceFormatWarning",
    "SourceOverlapWarning",
    "UnknownAccessionError",
    "UnsafeArchiveError",
    "BuildCancelled",
    "BuildError",
]


class RefineWidgetsError(Exception):
    """Base class of every error raised by refinewidgets."""


class DatasetSpecError(RefineWidgetsError, ValueError):
    """A dataset specification (``rw.Dataset``) is malformed or does not fit the catalog."""


class UnknownAccessionError(RefineWidgetsError, KeyError):
    """An experiment or sample accession is not in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class SourceFormatError(RefineWidgetsError, ValueError):
    """A source file (zip, TSV, JSON, H5AD) is corrupt or not in the expected format."""


class PathNotFoundError(RefineWidgetsError, FileNotFoundError):
    """An input path, or the folder of an output path, does not exist."""


class UnsafeArchiveError(SourceFormatError):
    """A zip archive holds a member whose name would escape the target folder."""


class ExpressionValueError(RefineWidgetsError, ValueError):
    """Expression values that cannot be processed (for example, infinite values)."""


class GeneOverlapError(RefineWidgetsError, ValueError):
    """The samples of one group share no gene, so the inner join would be empty."""


class OutputError(RefineWidgetsError, OSError):
    """An output file could not be written (a read-only folder, a full disk)."""


class OutputExistsError(OutputError, FileExistsError):
    """An output path exists and ``overwrite=True`` was not given."""


class BuildError(RefineWidgetsError, RuntimeError):
    """A build cannot produce a group (for example, every sample of it was filtered)."""


class SaveNameError(RefineWidgetsError, ValueError):
    """A file name the Save panel refuses when it saves inside an output folder."""


class BuildCancelled(RefineWidgetsError, RuntimeError):
    """A build was cancelled (by its progress object); nothing was kept."""


class MemoryBudgetError(RefineWidgetsError, MemoryError):
    """A requested result would not fit in the memory budget."""


class RefineWidgetsWarning(UserWarning):
    """Base class of every warning emitted by refinewidgets."""


class ScaledSourceWarning(RefineWidgetsWarning):
    """A source's values were already scaled; they do not suit re-normalization."""


class NotCountsWarning(RefineWidgetsWarning):
    """Single-cell values do not look like counts (negative or already log-transformed)."""


class MetadataMismatchWarning(RefineWidgetsWarning):
    """A matrix and its metadata file list different samples; they were aligned by accession."""


class LowGeneOverlapWarning(RefineWidgetsWarning):
    """The inner join of a group kept less than half of the genes of its smallest sample."""


class SourceFormatWarning(RefineWidgetsWarning):
    """A source was read with something left out or guessed (a file that is not a regular
    file, an unusual name, a part the format does not have); the message says what and why."""


class SourceOverlapWarning(RefineWidgetsWarning):
    """Two sources of one catalog hold the same experiment; the first one opened is used."""


class DuplicateSourceWarning(RefineWidgetsWarning):
    """Two files hold the same data (an experiment and species); one was chosen, the other left out."""


class GeneSelectionWarning(RefineWidgetsWarning):
    """Some of the genes asked for with ``genes=`` are in none of the files."""


class OutOfCoreWarning(RefineWidgetsWarning):
    """A group is too big for memory: the build runs out of core on a local Dask cluster."""
