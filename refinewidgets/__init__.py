"""refinewidgets: assemble refine.bio-style gene-expression datasets in Jupyter.

>>> import refinewidgets as rw
>>> cat = rw.open_catalog()               # the bundled demo
>>> ds = rw.Dataset({cat.experiments.index[0]: ["ALL"]}, aggregate_by="SPECIES")
>>> res = rw.build(ds, cat)
"""

from . import remote as remote  # rw.remote: refine.bio and Bgee clients (imported lazily)
from ._version import __version__
from .core.build import build
from .core.catalog import Catalog
from .core.quantile import quantile_normalize
from .core.result import Result
from .core.single_cell import organism_dataset
from .core.spec import Dataset
from .errors import (
    BuildCancelled,
    BuildError,
    DatasetSpecError,
    DuplicateSourceWarning,
    ExpressionValueError,
    GeneOverlapError,
    GeneSelectionWarning,
    LowGeneOverlapWarning,
    MemoryBudgetError,
    MetadataMismatchWarning,
    NotCountsWarning,
    OutOfCoreWarning,
    OutputError,
    OutputExistsError,
    PathNotFoundError,
    RefineWidgetsError,
    RefineWidgetsWarning,
    SaveNameError,
    ScaledSourceWarning,
    SourceFormatError,
    SourceFormatWarning,
    SourceOverlapWarning,
    UnknownAccessionError,
    UnsafeArchiveError,
)
from .io.catalog_open import open_catalog
from .io.gene_symbols import add_gene_symbols, symbols_for
from .io.refinebio_zip import read_zip

__all__ = [
    "BuildCancelled",
    "BuildError",
    "Catalog",
    "Dataset",
    "DatasetBuilder",
    "DatasetSpecError",
    "ExpressionValueError",
    "GeneOverlapError",
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
    "Result",
    "SaveNameError",
    "ScaledSourceWarning",
    "SourceFormatError",
    "SourceFormatWarning",
    "SourceOverlapWarning",
    "DuplicateSourceWarning",
    "GeneSelectionWarning",
    "UnknownAccessionError",
    "UnsafeArchiveError",
    "__version__",
    "add_gene_symbols",
    "build",
    "open_catalog",
    "organism_dataset",
    "quantile_normalize",
    "read_zip",
    "symbols_for",
]


def __getattr__(name: str):
    # The widget app is imported on first use, so the core works without ipywidgets.
    if name == "DatasetBuilder":
        from .widgets.builder import DatasetBuilder

        return DatasetBuilder
    raise AttributeError(f"module 'refinewidgets' has no attribute {name!r}")
