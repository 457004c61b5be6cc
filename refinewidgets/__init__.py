"""refinewidgets: assemble refine.bio-style gene-expression datasets in Jupyter.

>>> import refinewidgets as rw
>>> cat = rw.open_catalog()               # the bundled demo
>>> ds = rw.Dataset({cat.experiments.index[0]: ["ALL"]}, aggregate_by="SPECIES")
>>> res = rw.build(ds, cat)
"""

from . import remote as remote  # rw.remote: refine.bio and Bgee clients (imported lazily)
from ._version import __version__
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

#: What ``rw.<name>`` imports on first use, and from where. Importing ``refinewidgets`` loads
#: only the errors (no pandas, numpy or anndata), so ``refinewidgets search`` says what it is
#: doing at once; ``from refinewidgets import build`` works the same way.
_LAZY = {
    "build": ".core.build",
    "Catalog": ".core.catalog",
    "quantile_normalize": ".core.quantile",
    "Result": ".core.result",
    "organism_dataset": ".core.organism",
    "Dataset": ".core.spec",
    "open_catalog": ".io.catalog_open",
    "add_gene_symbols": ".io.gene_symbols",
    "symbols_for": ".io.gene_symbols",
    "read_zip": ".io.refinebio.zip",
    # the widget app: the core works without ipywidgets
    "DatasetBuilder": ".widgets.builder",
}

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'refinewidgets' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
