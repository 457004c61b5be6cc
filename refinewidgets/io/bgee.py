"""Read Bgee's single-cell H5AD files (one file per experiment and species).

Bgee's writers changed their obs column names between releases (see ``_SOURCE_COLUMNS`` and
:data:`WRITERS`); :class:`BgeeH5ad` maps them all onto one table with :data:`UNIFIED_COLUMNS`
and keeps the file's other obs columns under their own names. ``obs`` and ``var`` are read by
anndata (``read_elem``; anndata's own reader for files older than 0.7), so every encoding
anndata reads is read: categoricals as codes plus a ``categories`` attribute (0.7), compound
datasets (0.6), fixed-length string attributes (R and Julia writers). ``X`` is opened as
anndata's backed sparse dataset (its format and shape, legacy ``h5sparse_*`` attributes too);
:meth:`BgeeH5ad.read_counts` reads only the rows asked for, and checks ``indptr`` and the column
indices it reads, so a damaged file is an error, never wrong values or a crash. Its stored values
are read by :mod:`.csr_rows` (few planned reads straight into the result; plain file reads when
``X`` is stored uncompressed). Obs names and barcodes, a distinct string per cell, are read for
the selected cells only (:meth:`BgeeH5ad.cell_rows`) until the whole table is asked for.

Decisions on points the files leave open:

- Library column: ``libID`` > ``library_id`` > ``rnaSeqLibraryId`` > ``SampleId``. Bgee's first
  files carry both ``SampleId`` and ``libID``; obs names end with ``_<libID>``, so ``libID`` is
  the library a cell came from and ``SampleId`` is used only when nothing else exists.
- Layout of ``X``: CSR (what Bgee writes) is read selectively. A dense ``X`` is read by row
  blocks (also selective). A CSC ``X`` cannot be sliced by rows: it is streamed column block by
  column block, keeping only the selected rows (bounded memory, but a full scan of the file).
- Writer and release are told by the obs columns (:func:`_writer`); a file named
  ``*_full_length*`` (or whose ``uns['assay']`` says so) holds read counts of full-length
  protocols, the others droplet UMI counts.
- ``read_counts`` does not check the values; call :meth:`BgeeH5ad.check_counts` for that.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import warnings
from pathlib import Path
from typing import Any

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.cell_filter import QC_COLUMNS, match_cells, parse_cell_filter, split_qc
from ..core.spec import LIBRARY_SUMMARY, UNIFIED_CELL_COLUMNS
from ..errors import DatasetSpecError, NotCountsWarning, SourceFormatError
from .bgee_species import ORGANISM_BY_TAXON, organism_of_taxon
from .csr_rows import (
    DamagedIndicesError,
    FileArray,
    plan_reads,
    read_csr_rows,
    read_gap,
    read_window,
    without_chunk_cache,
)
from .h5_strings import is_string_array, read_strings, stripped

try:  # anndata >= 0.11
    from anndata.io import read_elem, sparse_dataset
except ImportError:  # pragma: no cover - anndata 0.10
    from anndata.experimental import read_elem, sparse_dataset

__all__ = ["ORGANISM_BY_TAXON", "UNIFIED_COLUMNS", "BgeeH5ad", "find_bgee_files"]

UNIFIED_COLUMNS = UNIFIED_CELL_COLUMNS
LIBRARY_COLUMNS = ("libID", "library_id", "rnaSeqLibraryId", "SampleId")
# unified column -> obs column names of Bgee's writers, in order of preference
_SOURCE_COLUMNS = {
    "barcode": ("barcodes", "barcode"),
    "library": LIBRARY_COLUMNS,
    "cell_type": ("cellTypeName", "cell_type"),
    "cell_type_id": ("cellTypeId", "cell_type_ontology_term_id"),
    "tissue": ("anatEntityName", "tissue"),
    "tissue_id": ("anatEntityId", "anatId", "tissue_ontology_term_id"),
    "stage": ("stageName", "development_stage"),
    "stage_id": ("stageId", "development_stage_ontology_term_id"),
    "sex": ("sex",),
    "strain": ("strain", "strain_or_genetic_background"),
    "experiment": ("experiment_id",),
    "taxon": ("speciesId",),
}
_SYMBOL_COLUMNS = ("feature_name", "gene_symbol", "gene_name")
#: Bgee's file names, newest first: ``<Genus_species>_<EXP>_droplet_based`` (15.2 and after),
#: ``<Genus_species>_SC_RNA-Seq_read_counts_CPM_<EXP>`` (15.1), ``<EXP>_sc_droplet_based``
#: (BgeeDB's saves, no species).
_FILE_NAMES = (
    re.compile(
        r"^(?P<species>[A-Z][a-z]+(?:_[a-z]+)+)_SC_RNA-Seq_read_counts_(?:CPM_)?(?P<exp>[A-Za-z0-9].*)$"
    ),
    re.compile(r"^(?P<exp>[A-Za-z0-9][^_]*(?:_[^_]+)*?)_sc_(?:droplet_based|full_length)$"),
    re.compile(
        r"^(?P<species>[A-Z][a-z]+(?:_[a-z]+)+)_(?P<exp>[A-Z0-9].*?)(?:_(?:droplet_based|full_length))?$"
    ),
)


def file_name_convention(stem: str) -> str:
    """Which naming a Bgee file follows: ``"Bgee 15.2+"``, ``"Bgee 15.1"``, ``"BgeeDB"``,
    or ``"other"``.

    >>> file_name_convention("ERP132576_sc_droplet_based")
    'BgeeDB'
    """
    for pattern, name in zip(_FILE_NAMES, ("Bgee 15.1", "BgeeDB", "Bgee 15.2+")):
        if pattern.match(stem):
            return name
    return "other"


def parse_file_name(stem: str) -> tuple[str | None, str]:
    """``(Genus_species or None, experiment)`` from the stem of a Bgee file name.

    Examples
    --------
    >>> parse_file_name("Homo_sapiens_ERP132576_droplet_based")
    ('Homo_sapiens', 'ERP132576')
    >>> parse_file_name("Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614")
    ('Mus_musculus', 'SRP200614')
    >>> parse_file_name("ERP132576_sc_droplet_based")
    (None, 'ERP132576')
    """
    for pattern in _FILE_NAMES:
        match = pattern.match(stem)
        if match:
            return match.groupdict().get("species"), match.group("exp")
    return None, stem


_BLOCK = 1 << 22  # stored values per read of a dense or CSC X (bounds the temporary buffers)


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


def _categorical(values, lower=False) -> pd.Categorical:
    """Values as a categorical of stripped strings; missing values become ``""``."""
    if isinstance(values, pd.Categorical):  # as stored by anndata: no per-cell work
        codes, uniques = values.codes, values.categories
    else:
        codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)))
    labels = np.array([_text(u) for u in uniques] + [""], dtype=object)
    if lower:
        labels = np.array([label.lower() for label in labels], dtype=object)
    categories, inverse = np.unique(labels, return_inverse=True)
    return pd.Categorical.from_codes(
        inverse[codes], categories=categories
    ).remove_unused_categories()


def _names_index(values) -> pd.Index:
    """Obs names as an Index of ``str``."""
    return pd.Index(np.asarray(values, dtype=object)).astype(str)


def _read_elem(elem) -> Any:
    """``read_elem``; string arrays read in blocks (see :mod:`.h5_strings`)."""
    return read_strings(elem) if is_string_array(elem) else read_elem(elem)


def _organism_name(text: str) -> str:
    """``'Homo sapiens'``, ``'Homo_sapiens'``, ``'NCBITaxon:9606'`` -> ``'HOMO_SAPIENS'``."""
    match = re.fullmatch(r"(?i)ncbitaxon:(\d+)", text.strip())
    if match:
        return organism_of_taxon(int(match.group(1)))
    return re.sub(r"[\s_]+", "_", text.strip()).upper()


def _unreadable(path, err) -> SourceFormatError:
    return SourceFormatError(
        f"{path} is not a readable H5AD file ({err}): it may be truncated "
        "or corrupt; download it again"
    )


#: Names the cell tables we make use: a file's own obs column with one of these names is kept
#: as ``obs_<name>``.
RESERVED_COLUMNS = (*UNIFIED_COLUMNS, "experiment", "organism", *QC_COLUMNS)
#: Bgee's writers (see shared/spec/bgee-h5ad.md), oldest first: the position is the rank the
#: duplicates rule uses (a newer writer wins).
WRITERS = {
    "unknown": "unknown release",
    "W1": "Bgee 15.1",
    "W2": "Bgee 15.2",
    "W3": "Bgee after 15.2",
    "W4": "Bgee newest (scFAIR)",
}


def _writer(columns: list[str]) -> tuple[str, str]:
    """``(writer, release)`` told by a file's obs columns."""
    cols = set(columns)
    if "bgeeSex" in cols or {"cell_type", "tissue", "development_stage"} & cols:
        writer = "W4"
    elif "rnaSeqLibraryId" in cols:
        writer = "W3"
    elif "library_id" in cols:
        writer = "W2"
    elif "libID" in cols:
        writer = "W1"
    else:
        writer = "unknown"
    return writer, WRITERS[writer]


def _assay(stem: str, file: h5py.File) -> tuple[str, str]:
    """``(assay, unit of X)``: droplet files hold UMI counts, full-length files read counts."""
    text = stem.lower()
    uns = file.get("uns")
    if isinstance(uns, h5py.Group) and "assay" in uns:
        try:
            text += " " + str(np.ravel(np.asarray(read_elem(uns["assay"]), dtype=object))[0])
        except (KeyError, ValueError, TypeError, IndexError, OSError):
            pass
    if "full_length" in text or "full-length" in text or "smart-seq" in text.lower():
        return "full-length scRNA-seq", "read counts"
    return "droplet-based scRNA-seq", "UMI counts"


def _attr(attrs, key: str) -> str | None:
    """An HDF5 attribute as text (variable- or fixed-length strings alike)."""
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(values) -> Any:
    """An obs column as we keep it: categoricals of stripped text, numbers as they are."""
    if isinstance(values, pd.Categorical) or not np.issubdtype(np.asarray(values).dtype, np.number):
        return _categorical(values)
    return np.asarray(values)


class BgeeH5ad:
    """One Bgee droplet H5AD file opened for reading without loading ``X``.

    Parameters
    ----------
    path
        The ``.h5ad`` file, e.g. ``Homo_sapiens_ERP132576_droplet_based.h5ad``.

    Attributes
    ----------
    experiment
        From obs ``experiment_id`` when it holds one value, else from the file name, else the
        file's stem.
    organism
        ``GENUS_SPECIES`` from obs ``speciesId`` (when it holds one taxon), else ``uns['organism']``, else the file name;
        ``NCBITAXON_<id>`` for a taxon we do not name, ``UNKNOWN`` when nothing tells.
    cells
        One row per cell indexed by obs names: :data:`UNIFIED_COLUMNS` plus ``experiment``, all
        strings (categorical except ``barcode``); ``""`` where the file lacks a concept; ``sex``
        lower-cased. ``column_map`` says which obs column fed each unified column.
    genes
        Indexed by gene id (``var_names``): ``gene_symbol`` (``""`` when the file has none) and
        ``intergenic`` (ids starting ``upstream_``/``downstream_``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from refinewidgets.testing.bgee_files import write_bgee_h5ad
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_bgee_h5ad(folder / "Homo_sapiens_ERP1_droplet_based.h5ad", n_cells=60)
    >>> with BgeeH5ad(path) as bgee:
    ...     rows = bgee.select({"cell_type": ["B cell"]})
    ...     counts = bgee.read_counts(rows)
    >>> bgee.experiment, bgee.organism, counts.shape[0] == len(rows)
    ('ERP1', 'HOMO_SAPIENS', True)
    """

    def __init__(self, path, *, counts_file=None):
        self.path = Path(path)
        self._counts_file = counts_file
        self._x_file = None
        self._x = None
        self._indptr = None
        self._stored = None  # X's data and indices as read (FileArray or h5py.Dataset)
        #: The :class:`~refinewidgets.io.csr_rows.ReadPlan` of the last read of a CSR ``X``
        #: (how many reads, how many stored values they covered), for tests and benchmarks.
        self.last_read = None
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist or is not a file")
        try:
            self._file = h5py.File(self.path, "r")
        except (OSError, RuntimeError) as err:
            raise _unreadable(self.path, err) from None
        try:
            self._open()
        except SourceFormatError:
            self.close()
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
            self.close()
            raise _unreadable(self.path, err) from None

    @property
    def stub(self) -> bool:
        """Whether this file holds only ``obs``/``var`` (an index entry of a species tarball);
        ``X`` then comes from ``counts_file()``, the extracted member, on first read."""
        return self._counts_file is not None

    def _frames(self) -> tuple[pd.DataFrame | None, pd.DataFrame]:
        """``(obs, var)`` as anndata reads them; obs is None when its columns can be read one
        by one (anndata 0.8 or later: only the columns used are read)."""
        f = self._file
        if isinstance(f["obs"], h5py.Group) and isinstance(f["var"], h5py.Group):
            obs_attrs = f["obs"].attrs
            legacy_categories = any(
                isinstance(item, h5py.Dataset) and "categories" in item.attrs
                for item in f["obs"].values()
            )
            self.encoding = (
                "anndata 0.7 (categories as attributes)"
                if legacy_categories
                else "anndata 0.8 or later"
            )
            if isinstance(obs_attrs.get("encoding-type", obs_attrs.get("_index")), bytes):
                self.encoding += ", fixed-length string attributes (an R or Julia writer)"
            by_column = not legacy_categories and _attr(obs_attrs, "encoding-version") == "0.2.0"
            return (None if by_column else read_elem(f["obs"])), read_elem(f["var"])
        # anndata before 0.7: obs and var are compound datasets, categories live in uns;
        # anndata's own reader (backed, so X stays on disk) undoes both
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adata = anndata.read_h5ad(self.path, backed="r")
        try:
            obs, var = adata.obs.copy(), adata.var.copy()
        finally:
            adata.file.close()
        self.encoding = "anndata 0.6 (compound obs and var)"
        return obs, var

    def _obs_column(self, name: str) -> Any:
        """One obs column, as anndata reads it."""
        if self._obs is not None:
            return self._obs[name].array
        if name not in self._obs_read:
            if self._file is None:
                raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
            self._obs_read[name] = _read_elem(self._file["obs"][name])
        return self._obs_read[name]

    def _kept_extra(self, column: str) -> bool:
        """Whether an extra obs column comes along with the cells: categoricals and numbers do
        (annotations, QC values), free text with a value per cell (unique cell ids) does not."""
        if self._obs is not None:
            values = self._obs[column]
            return isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(
                values
            )
        elem = self._file["obs"][column]
        kind = _attr(elem.attrs, "encoding-type") or ""
        return kind != "string-array"

    def _open(self) -> None:
        f = self._file
        needed = ("obs", "var") if self.stub else ("X", "obs", "var")
        missing = [key for key in needed if key not in f]
        if missing:
            raise _unreadable(self.path, f"no {', '.join(missing)} element")
        obs, var = self._frames()
        self._obs, self._obs_read = obs, {}
        # obs names and barcodes (a distinct string per cell) are read when asked for: a build
        # needs those of the cells it selects only (see ``cell_rows``); ``cells`` reads them all
        self._full = None
        self._names: pd.Index | str  # the names, or the path of their string array
        if obs is None:
            group = f["obs"]
            index_elem = group[_attr(group.attrs, "_index")]
            if is_string_array(index_elem):
                self._names, n = index_elem.name, index_elem.shape[0]
            else:
                self._names = _names_index(_read_elem(index_elem))
                n = len(self._names)
            self.obs_columns = [_text(c) for c in np.ravel(group.attrs.get("column-order", []))]
        else:
            self._names = _names_index(obs.index)
            n = len(self._names)
            self.obs_columns = [str(c) for c in obs.columns]
            obs.columns = self.obs_columns
        self.column_map = {}
        columns = {}
        #: Where barcodes come from: their values, the path of their string array, or None
        #: (from the obs names, ``<barcode>_<library>``).
        self._barcodes: np.ndarray | str | None = None
        for concept, names in _SOURCE_COLUMNS.items():
            found = next((n for n in names if n in self.obs_columns), None) or next(
                (c for n in names for c in self.obs_columns if c.lower() == n.lower()), None
            )
            if found is None:
                continue
            self.column_map[concept] = found
            if concept == "barcode" and obs is None and is_string_array(f["obs"][found]):
                self._barcodes = f["obs"][found].name
                continue
            values = self._obs_column(found)
            if concept == "barcode" and not isinstance(values, pd.Categorical):
                self._barcodes = stripped(values)
            elif concept == "barcode":
                self._barcodes = np.asarray(_categorical(values), dtype=object)
            else:
                columns[concept] = _categorical(values, lower=concept == "sex")
        if "library" not in columns:
            raise SourceFormatError(
                f"{self.path} has no library column: obs columns found: {self.obs_columns}; "
                f"accepted library columns: {list(LIBRARY_COLUMNS)}"
            )
        self.writer, self.release = _writer(self.obs_columns)
        self.experiment = self._experiment(columns.get("experiment"))
        self.organism = self._organism(columns.pop("taxon", None))
        cells = pd.DataFrame(index=pd.RangeIndex(n))
        for concept in UNIFIED_COLUMNS:
            if concept != "barcode":
                cells[concept] = columns.get(
                    concept, pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""])
                )
        self._obs_read.clear()  # the unified columns live in ``cells`` now
        experiment = columns.get("experiment")
        if experiment is None:
            experiment = pd.Categorical.from_codes(np.zeros(n, np.int8), [self.experiment])
        elif "" in set(experiment):  # cells without an experiment id belong to the file's
            experiment = pd.Categorical(
                np.where(np.asarray(experiment, dtype=object) == "", self.experiment, experiment)
            )
        cells["experiment"] = experiment
        #: The cell table without obs names (a RangeIndex) and barcodes: see ``cells``.
        self._table = cells
        # the file's other obs columns, under their own names (author annotations, QC values)
        used = set(self.column_map.values())
        #: The file's other obs columns: our name (``obs_<name>`` where ours would clash) ->
        #: the file's name; read when a filter or a build uses them.
        self.extra_columns = {
            (column if column not in RESERVED_COLUMNS else f"obs_{column}"): column
            for column in self.obs_columns
            if column not in used
        }
        var_names = pd.Index(np.asarray(var.index, dtype=object)).astype(str)
        var_columns = [str(c) for c in var.columns]
        var.columns = var_columns
        symbol = next((c for c in _SYMBOL_COLUMNS if c in var_columns), None)
        symbols = (
            np.asarray(_categorical(var[symbol].array), dtype=object)
            if symbol
            else np.full(len(var_names), "", dtype=object)
        )
        intergenic = var_names.str.startswith(("upstream_", "downstream_"))
        self.genes = pd.DataFrame(
            {"gene_symbol": symbols, "intergenic": intergenic}, index=var_names.rename("gene_id")
        )
        self.assay, self.unit = _assay(self.path.stem, self._file)
        if not self.stub:
            self._open_x(self._file)

    def _open_x(self, file: h5py.File) -> None:
        """Open ``X`` through anndata's backed access and check it fits obs x var."""
        x = file["X"]
        if isinstance(x, h5py.Dataset):
            self._layout, shape, self._x = "dense", x.shape, x
        else:
            try:
                self._x = sparse_dataset(x, should_cache_indptr=False)
            except TypeError:  # pragma: no cover - anndata without the keyword
                self._x = sparse_dataset(x)
            except (ValueError, KeyError, OSError) as err:
                raise _unreadable(self.path, f"X has an unknown encoding ({err})") from None
            self._layout, shape = self._x.format, self._x.shape
            major = shape[0] if self._layout == "csr" else shape[1]
            if x["indptr"].shape[0] != major + 1 or x["data"].shape != x["indices"].shape:
                raise _unreadable(self.path, "X's sparse arrays do not fit its shape")
        if tuple(int(v) for v in shape) != (self.n_cells, len(self.genes)):
            raise _unreadable(
                self.path,
                f"X has shape {tuple(shape)} but obs x var is {(self.n_cells, len(self.genes))}",
            )
        self._x_group = x
        self._stored = None

    def _ensure_x(self) -> None:
        if self._x is not None:
            return
        path = Path(self._counts_file())  # a tarball member, extracted on first use
        try:
            self._x_file = h5py.File(path, "r")
        except (OSError, RuntimeError) as err:
            raise _unreadable(path, err) from None
        if "X" not in self._x_file:
            raise _unreadable(path, "no X element")
        self._open_x(self._x_file)

    def _experiment(self, column) -> str:
        if column is not None:
            values = set(column.unique()) - {""}
            if len(values) == 1:
                return values.pop()
        return parse_file_name(self.path.stem)[1]

    def _organism(self, taxa) -> str:
        taxon = None
        if taxa is not None:
            values = sorted(set(taxa.unique()) - {""})
            if len(values) == 1 and values[0].isdigit():
                taxon = int(values[0])
                if taxon in ORGANISM_BY_TAXON:
                    return ORGANISM_BY_TAXON[taxon]
        uns = self._file.get("uns")
        for key in ("organism", "organism_ontology_term_id"):
            if isinstance(uns, h5py.Group) and key in uns:
                value = np.ravel(np.asarray(read_elem(uns[key]), dtype=object))
                if value.size == 1 and _text(value[0]):
                    return _organism_name(_text(value[0]))
        species = parse_file_name(self.path.stem)[0]
        if species:
            return _organism_name(species)
        return f"NCBITAXON_{taxon}" if taxon is not None else "UNKNOWN"

    n_cells = property(lambda self: len(self._table), doc="Number of cells (rows of X).")

    @property
    def cells(self) -> pd.DataFrame:
        """Every cell: :data:`UNIFIED_COLUMNS` and ``experiment``, indexed by obs names (see the
        class docstring). Its names and barcodes are read on first use (kept after)."""
        if self._full is None:
            self._full = self.cell_rows(None)
        return self._full

    def cell_rows(self, rows) -> pd.DataFrame:
        """The rows of :attr:`cells` at positions ``rows`` (all when None), a new table; only
        these cells' obs names and barcodes are read (when :attr:`cells` was not)."""
        if self._full is not None:
            return self._full.copy() if rows is None else self._full.iloc[rows].copy()
        table = self._table.copy() if rows is None else self._table.iloc[rows].copy()
        names = self._obs_names(rows)
        if isinstance(self._barcodes, str):
            barcodes = stripped(read_strings(self._string_array(self._barcodes), rows))
        elif self._barcodes is not None:
            barcodes = self._barcodes if rows is None else self._barcodes[rows]
        else:  # obs names are <barcode>_<library>
            barcodes = [
                name[: -len(lib) - 1] if name.endswith("_" + lib) else name
                for name, lib in zip(names, table["library"].astype(str))
            ]
        table.insert(UNIFIED_COLUMNS.index("barcode"), "barcode", barcodes)
        table.index = names
        return table

    def _obs_names(self, rows) -> pd.Index:
        if not isinstance(self._names, str):
            return self._names if rows is None else self._names[rows]
        return _names_index(read_strings(self._string_array(self._names), rows))

    def _string_array(self, path: str) -> h5py.Dataset:
        if self._file is None:
            raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
        return self._file[path]

    n_genes = property(lambda self: len(self.genes), doc="Number of genes (columns of X).")

    def __repr__(self) -> str:
        return (
            f"BgeeH5ad({str(self.path)!r}: {self.experiment}, {self.organism}, "
            f"{self.n_cells} cells x {self.n_genes} genes)"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; ``cells``, ``genes`` and ``libraries()`` stay usable."""
        if getattr(self, "_file", None) is not None and getattr(self, "_table", None) is not None:
            # names and barcodes are read before the file goes (a damaged file: they are not)
            with contextlib.suppress(OSError, KeyError, ValueError, RuntimeError, TypeError):
                self.cells  # noqa: B018
        for name in ("_file", "_x_file"):
            handle = getattr(self, name, None)
            if handle is not None:
                handle.close()
            setattr(self, name, None)
        self._x = None
        self._stored = None

    def libraries(self) -> pd.DataFrame:
        """One row per library (the sample cells came from), indexed by library id.

        Columns ``n_cells``; ``cell_types``, ``tissues``, ``stages``, ``sexes`` (the distinct
        non-empty values of its cells, sorted and joined with ``"; "``); ``experiment``;
        ``organism``.
        """
        cells = self._table  # no obs names nor barcodes needed
        library = cells["library"].array  # categoricals without missing values (_categorical)
        counts = np.bincount(library.codes, minlength=len(library.categories))
        present = np.flatnonzero(counts)
        table = pd.DataFrame(
            {"n_cells": counts[present].astype(np.int64)},
            index=pd.Index(library.categories[present].astype(str), name="library"),
        )
        for column, name in [*LIBRARY_SUMMARY.items(), ("experiment", "experiment")]:
            values = cells[column].array
            labels = np.asarray(values.categories.astype(str), dtype=object)
            # the distinct (library, value) pairs, from the codes: no string per cell
            pairs = np.unique(library.codes.astype(np.int64) * len(labels) + values.codes)
            found: dict[int, list[str]] = {}
            for lib, text in zip(*(pairs // len(labels), labels[pairs % len(labels)])):
                if text != "":
                    found.setdefault(int(lib), []).append(text)
            table[name] = ["; ".join(sorted(found.get(k, []))) for k in present.tolist()]
        table["organism"] = self.organism
        return table

    @property
    def filter_columns(self) -> list[str]:
        """The columns a cell filter may use on this file: the unified ones, then the file's
        other obs columns (QC values, computed from the counts, come on top)."""
        return [c for c in UNIFIED_COLUMNS if c != "barcode"] + list(self.extra_columns)

    def extra(self, name: str) -> Any:
        """The values of one of :attr:`extra_columns` for every cell (read once, then kept)."""
        return _plain(self._obs_column(self.extra_columns[name]))

    @property
    def kept_extras(self) -> list[str]:
        """The extra columns a build hands on with the cells (not per-cell free text)."""
        return [name for name, column in self.extra_columns.items() if self._kept_extra(column)]

    def select(self, cell_filter=None, libraries=None) -> np.ndarray:
        """Positions (sorted ``int64``) of the cells matching a filter.

        Parameters
        ----------
        cell_filter
            A cell filter (see :mod:`refinewidgets.core.cell_filter`) on the unified columns
            or the file's own obs columns; QC conditions (``total_counts``...) are ignored
            here: they need the counts (see :meth:`BgeeSource.read_cells`).
        libraries
            Library ids to keep (all when None).

        Raises
        ------
        DatasetSpecError
            A column this file lacks (the message lists its columns), a list matching no cell
            (the message lists the values that exist), or conditions that each match but
            never together.
        """
        conditions, _ = split_qc(parse_cell_filter(cell_filter))
        own_names = {name: concept for concept, name in self.column_map.items()}
        conditions = {own_names.get(c, c): v for c, v in conditions.items()}
        if libraries is not None:
            conditions = {"library": [str(v) for v in _listed(libraries)], **conditions}
        known = ["library", *self.filter_columns]
        unknown = [c for c in conditions if c not in known]
        known += [n for n in own_names if n not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=3, cutoff=0.6)
            raise DatasetSpecError(
                f"cell filter column {unknown[0]!r}"
                f"{' (did you mean ' + ', '.join(close) + '?)' if close else ''} is not in "
                f"{self.path.name}; its columns: {known} (and the QC values {list(QC_COLUMNS)})"
            )
        table = pd.DataFrame(  # no obs names: matching needs none (nor hashes them)
            {
                c: self._table[c].array if c in self._table.columns else self.extra(c)
                for c in conditions
            },
            index=pd.RangeIndex(self.n_cells),
        )
        return np.flatnonzero(match_cells(table, conditions, self.path.name)).astype(np.int64)

    def _require_open(self) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
        self._ensure_x()

    def read_counts(self, rows) -> sp.csr_matrix:
        """Counts of the given cells: ``float32`` CSR, one row per entry of ``rows``.

        Only the stored values of the selected rows are read from a CSR ``X`` (after its
        ``indptr``), in contiguous runs of at most a few million values: memory grows with the
        selection, not the file. ``rows`` are positions (e.g. from :meth:`select`) or a
        boolean mask; unsorted or repeated positions are served in the order given. A dense
        ``X`` is read by row blocks; a CSC ``X`` is streamed whole, keeping only these rows.
        """
        self._require_open()
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape == (self.n_cells,):
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError("rows must be a 1-d array of integer positions")
        rows = rows.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_cells):
            raise IndexError(
                f"row positions must be in [0, {self.n_cells}); got {rows.min()}..{rows.max()}"
            )
        unique, inverse = np.unique(rows, return_inverse=True)
        reader = {"csr": self._read_csr, "csc": self._read_csc, "dense": self._read_dense}
        try:
            matrix = reader[self._layout](unique)
        except SourceFormatError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            raise _unreadable(self.path, err) from None  # h5py reports damage in many ways
        if unique.size != rows.size or not np.array_equal(unique, rows):
            matrix = matrix[inverse]
        return sp.csr_matrix(matrix, dtype=np.float32)

    def _checked_indptr(self) -> np.ndarray:
        """X's ``indptr``, checked before any use: from 0, never decreasing, ending at nnz."""
        if self._indptr is None:
            x = self._x_group
            indptr = x["indptr"][:].astype(np.int64)
            nnz = x["data"].shape[0]
            if (
                indptr.size == 0
                or indptr[0] != 0
                or indptr[-1] != nnz
                or np.any(np.diff(indptr) < 0)
            ):
                raise _unreadable(
                    self.path,
                    f"X's indptr is broken (it must start at 0, never decrease and end at the "
                    f"{nnz:,} stored values; it starts at {indptr[:1].tolist()} and ends at "
                    f"{indptr[-1:].tolist()})",
                )
            self._indptr = indptr
        return self._indptr

    def _check_indices(self, indices: np.ndarray, bound: int, what: str) -> None:
        if indices.size and (indices.min() < 0 or indices.max() >= bound):
            raise _unreadable(
                self.path,
                f"X's indices hold {int(indices.min())}..{int(indices.max())}, outside the "
                f"{bound:,} {what}",
            )

    def _read_csr(self, rows) -> sp.csr_matrix:
        """The asked rows' stored values, read in few contiguous reads of X's ``data`` and
        ``indices`` straight into the result (see :mod:`.csr_rows`).

        Reading spans directly, rather than through ``CSRDataset.__getitem__``, is measured: that
        call costs about 27 ms of package-metadata lookups each time here, and a scattered
        selection needs thousands of them (``benchmarks/bench_single_cell.py``)."""
        if self._stored is None:  # plain bytes in the file are read without HDF5
            x = self._x_group
            self._stored = tuple(
                FileArray.of(x[name]) or without_chunk_cache(x[name])
                for name in ("data", "indices")
            )
        indptr = self._checked_indptr()
        plan = plan_reads(
            indptr, rows, gap=read_gap(*self._stored), window=read_window(*self._stored)
        )
        self.last_read = plan
        with contextlib.ExitStack() as files:
            stored_data, stored_indices = (
                files.enter_context(s.open()) if isinstance(s, FileArray) else s
                for s in self._stored
            )
            try:
                return read_csr_rows(
                    stored_data,
                    stored_indices,
                    indptr,
                    rows,
                    self.n_genes,
                    columns="genes",
                    plan=plan,
                )
            except DamagedIndicesError as err:
                raise _unreadable(self.path, err) from None

    def _read_dense(self, rows) -> sp.csr_matrix:
        x, parts = self._x, []
        step = max(1, _BLOCK // max(1, self.n_genes))
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(rows, breaks):
            for i in range(0, run.size, step):
                chunk = run[i : i + step]
                parts.append(sp.csr_matrix(x[chunk[0] : chunk[-1] + 1].astype(np.float32)))
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.n_genes))

    def _read_csc(self, rows) -> sp.csr_matrix:
        """Column blocks of the sparse dataset, keeping only these rows (a full scan of the
        file: a CSC matrix cannot be sliced by rows)."""
        x = self._x_group
        indptr = self._checked_indptr()
        position = np.full(self.n_cells, -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        kept_rows, kept_cols, kept_data = [], [], []
        column = 0
        while column < self.n_genes:  # stream column blocks of about _BLOCK stored values
            end = max(column + 1, int(np.searchsorted(indptr, indptr[column] + _BLOCK)) - 1)
            end = min(end, self.n_genes)
            begin, stop = indptr[column], indptr[end]
            stored = x["indices"][begin:stop]
            self._check_indices(stored, self.n_cells, "cells")
            where = position[stored]
            keep = where >= 0
            kept_rows.append(where[keep])
            kept_data.append(x["data"][begin:stop][keep].astype(np.float32))
            cols = np.repeat(np.arange(column, end), np.diff(indptr[column : end + 1]))
            kept_cols.append(cols[keep])
            column = end
        coo = sp.coo_matrix(
            (
                np.concatenate(kept_data or [[]]),
                (np.concatenate(kept_rows or [[]]), np.concatenate(kept_cols or [[]])),
            ),
            shape=(rows.size, self.n_genes),
        )
        return coo.tocsr()

    def check_counts(self, sample_rows=10000) -> None:
        """Warn :class:`~refinewidgets.errors.NotCountsWarning` if ``X`` does not hold counts.

        Reads at most ``sample_rows`` cells (20 evenly spread blocks) and looks at their stored
        values. Warns on negative or non-finite values, and on log-transformed values: all below
        30 (the log of any realistic count) with either most values non-integer, or the values
        being exactly ``log2/ln/log10`` of integers + 1 while some are non-integer. Fractional
        values alone are normal: bustools ``--em`` splits ambiguous UMIs among genes, but most
        values stay integers.
        """
        self._require_open()
        n = self.n_cells
        if self._layout == "csr":  # about 1M stored values are plenty, whatever the density
            self._checked_indptr()
            per_row = max(1.0, self._indptr[-1] / max(n, 1))
            sample_rows = int(min(sample_rows, max(200, 1_000_000 // per_row)))
        if n <= sample_rows:
            rows = np.arange(n)
        else:
            size = max(1, sample_rows // 20)
            starts = np.linspace(0, n - size, 20).astype(np.int64)
            rows = np.unique((starts[:, None] + np.arange(size)).ravel())
        values = self.read_counts(rows).data.astype(np.float64)
        found = None
        where = f"{values.size} stored values of {rows.size} sampled cells"
        if not np.isfinite(values).all():
            found = f"has NaN or infinite values (among {where})"
        elif values.size and values.min() < 0:
            found = (
                f"has negative values (minimum {values.min():.4g}, {int((values < 0).sum())} "
                f"of {where})"
            )
        elif values.size >= 50 and values.max() < 30:
            non_integer = np.abs(values - np.round(values)) > 1e-4
            share = non_integer.mean()
            if share > 0.5:
                found = (
                    f"looks log-transformed: {share:.0%} of {where} are non-integers and the "
                    f"largest is {values.max():.4g}"
                )
            elif share > 0.02:
                for base, name in [(2.0, "log2"), (np.e, "ln"), (10.0, "log10")]:
                    back = np.power(base, values) - 1
                    if (np.abs(back - np.round(back)) <= 1e-3 * np.maximum(1, back)).mean() > 0.99:
                        found = (
                            f"looks log-transformed: {where} are exactly {name}(integer + 1)"
                            f" with {share:.0%} non-integers; largest {values.max():.4g}"
                        )
                        break
        if found:
            warnings.warn(
                f"{self.path} {found}; Bgee droplet files hold UMI counts (possibly fractional "
                "from bustools --em), so this file was transformed after Bgee wrote it: use the "
                "file as downloaded from Bgee",
                NotCountsWarning,
                stacklevel=2,
            )


def _listed(values) -> list:
    if isinstance(values, (str, bytes, int, np.integer)) or not np.iterable(values):
        return [values]
    return list(values)


def find_bgee_files(path) -> list[Path]:
    """The ``.h5ad`` files at ``path``: the file itself, or a folder searched recursively.

    Hidden files and folders (names starting with ``.``, e.g. ``.ipynb_checkpoints``) are
    skipped. No folder name is assumed: Bgee's FTP layout has changed over time.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "Mus_musculus").mkdir()
    >>> (folder / "Mus_musculus" / "Mus_musculus_SRP1_droplet_based.h5ad").touch()
    >>> [p.name for p in find_bgee_files(folder)]
    ['Mus_musculus_SRP1_droplet_based.h5ad']
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".h5ad":
            raise SourceFormatError(
                f"{path} is not an .h5ad file; give a Bgee .h5ad file or a folder holding some"
            )
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    found = [
        p
        for p in path.rglob("*")
        if p.suffix.lower() == ".h5ad"
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    return sorted(found)
