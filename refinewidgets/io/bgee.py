"""Read Bgee's droplet-based single-cell H5AD files (one file per experiment).

Bgee's writer changed its obs column names between versions (see ``_SOURCE_COLUMNS``);
:class:`BgeeH5ad` maps them all onto one table with :data:`UNIFIED_COLUMNS`. Only ``obs`` and
``var`` are read when a file is opened; :meth:`BgeeH5ad.read_counts` reads the rows it is asked
for from ``X`` and nothing else, so memory stays proportional to the selection.

Decisions on points the files leave open:

- Library column: ``libID`` > ``library_id`` > ``rnaSeqLibraryId`` > ``SampleId``. Bgee's first
  files carry both ``SampleId`` and ``libID``; obs names end with ``_<libID>``, so ``libID`` is
  the library a cell came from and ``SampleId`` is used only when nothing else exists.
- Layout of ``X``: CSR (what Bgee writes) is read selectively. A dense ``X`` is read by row
  blocks (also selective). A CSC ``X`` cannot be sliced by rows: it is streamed column block by
  column block, keeping only the selected rows (bounded memory, but a full scan of the file).
- ``read_counts`` does not check the values; call :meth:`BgeeH5ad.check_counts` for that.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.spec import LIBRARY_SUMMARY, UNIFIED_CELL_COLUMNS
from ..errors import DatasetSpecError, NotCountsWarning, SourceFormatError

try:  # anndata >= 0.11
    from anndata.io import read_elem
except ImportError:  # pragma: no cover - anndata 0.10
    from anndata.experimental import read_elem

__all__ = ["ORGANISM_BY_TAXON", "UNIFIED_COLUMNS", "BgeeH5ad", "find_bgee_files"]

ORGANISM_BY_TAXON = {
    9606: "HOMO_SAPIENS",
    10090: "MUS_MUSCULUS",
    7227: "DROSOPHILA_MELANOGASTER",
    7955: "DANIO_RERIO",
    6239: "CAENORHABDITIS_ELEGANS",
    10116: "RATTUS_NORVEGICUS",
    9544: "MACACA_MULATTA",
    9598: "PAN_TROGLODYTES",
    9913: "BOS_TAURUS",
    9823: "SUS_SCROFA",
    9031: "GALLUS_GALLUS",
    8364: "XENOPUS_TROPICALIS",
    9615: "CANIS_LUPUS_FAMILIARIS",
    9796: "EQUUS_CABALLUS",
    9986: "ORYCTOLAGUS_CUNICULUS",
    10141: "CAVIA_PORCELLUS",
    13616: "MONODELPHIS_DOMESTICA",
    9258: "ORNITHORHYNCHUS_ANATINUS",
    # the rest of Bgee's species (its droplet data include marmoset, gorilla, naked mole-rat)
    9483: "CALLITHRIX_JACCHUS",
    9595: "GORILLA_GORILLA",
    10181: "HETEROCEPHALUS_GLABER",
    9597: "PAN_PANISCUS",
    9541: "MACACA_FASCICULARIS",
    60711: "CHLOROCEBUS_SABAEUS",
    30608: "MICROCEBUS_MURINUS",
    10036: "MESOCRICETUS_AURATUS",
    9685: "FELIS_CATUS",
    9940: "OVIS_ARIES",
    9925: "CAPRA_HIRCUS",
    28377: "ANOLIS_CAROLINENSIS",
    8355: "XENOPUS_LAEVIS",
    8030: "SALMO_SALAR",
    7994: "ASTYANAX_MEXICANUS",
    7918: "LEPISOSTEUS_OCULATUS",
    7240: "DROSOPHILA_SIMULANS",
    7237: "DROSOPHILA_PSEUDOOBSCURA",
    7245: "DROSOPHILA_YAKUBA",
    7217: "DROSOPHILA_ANANASSAE",
}
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


_GAP = 8192  # stored values skipped rather than starting a new read
_BLOCK = 1 << 22  # stored values per read (bounds the temporary buffers)


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


def _organism_name(text: str) -> str:
    """``'Homo sapiens'``, ``'Homo_sapiens'``, ``'NCBITaxon:9606'`` -> ``'HOMO_SAPIENS'``."""
    match = re.fullmatch(r"(?i)ncbitaxon:(\d+)", text.strip())
    if match:
        taxon = int(match.group(1))
        return ORGANISM_BY_TAXON.get(taxon, f"NCBITAXON_{taxon}")
    return re.sub(r"[\s_]+", "_", text.strip()).upper()


def _unreadable(path, err) -> SourceFormatError:
    return SourceFormatError(
        f"{path} is not a readable H5AD file ({err}): it may be truncated "
        "or corrupt; download it again"
    )


def _ranges(starts, lengths) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start ``s`` and length ``n``."""
    total = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


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

    def __init__(self, path):
        self.path = Path(path)
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

    def _open(self) -> None:
        f = self._file
        missing = [key for key in ("X", "obs", "var") if key not in f]
        if missing:
            raise _unreadable(self.path, f"no {', '.join(missing)} element")
        obs, var = f["obs"], f["var"]
        obs_names = pd.Index(np.asarray(read_elem(obs[obs.attrs["_index"]]), dtype=object)).astype(
            str
        )
        self.obs_columns = [str(c) for c in obs.attrs.get("column-order", [])]
        self.column_map = {}
        columns = {}
        for concept, names in _SOURCE_COLUMNS.items():
            found = next((n for n in names if n in self.obs_columns), None) or next(
                (c for n in names for c in self.obs_columns if c.lower() == n.lower()), None
            )
            if found is not None:
                self.column_map[concept] = found
                values = read_elem(obs[found])
                if concept == "barcode" and not isinstance(values, pd.Categorical):
                    # one distinct value per cell: a categorical only costs time (undone below)
                    columns[concept] = (
                        pd.Series(np.asarray(values, dtype=object))
                        .fillna("")
                        .astype(str)
                        .str.strip()
                        .to_numpy(dtype=object)
                    )
                else:
                    columns[concept] = _categorical(values, lower=concept == "sex")
        if "library" not in columns:
            raise SourceFormatError(
                f"{self.path} has no library column: obs columns found: {self.obs_columns}; "
                f"accepted library columns: {list(LIBRARY_COLUMNS)}"
            )
        self.experiment = self._experiment(columns.get("experiment"))
        self.organism = self._organism(columns.pop("taxon", None))
        n = len(obs_names)
        cells = pd.DataFrame(index=obs_names)
        for concept in UNIFIED_COLUMNS:
            cells[concept] = columns.get(
                concept, pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""])
            )
        if "barcode" in columns:
            cells["barcode"] = np.asarray(cells["barcode"], dtype=object)
        else:  # obs names are <barcode>_<library>
            cells["barcode"] = [
                name[: -len(lib) - 1] if name.endswith("_" + lib) else name
                for name, lib in zip(obs_names, cells["library"].astype(str))
            ]
        experiment = columns.get("experiment")
        if experiment is None:
            experiment = pd.Categorical.from_codes(np.zeros(n, np.int8), [self.experiment])
        elif "" in set(experiment):  # cells without an experiment id belong to the file's
            experiment = pd.Categorical(
                np.where(np.asarray(experiment, dtype=object) == "", self.experiment, experiment)
            )
        cells["experiment"] = experiment
        self.cells = cells
        var_names = pd.Index(np.asarray(read_elem(var[var.attrs["_index"]]), dtype=object)).astype(
            str
        )
        var_columns = [str(c) for c in var.attrs.get("column-order", [])]
        symbol = next((c for c in _SYMBOL_COLUMNS if c in var_columns), None)
        symbols = (
            np.asarray(_categorical(read_elem(var[symbol])), dtype=object)
            if symbol
            else np.full(len(var_names), "", dtype=object)
        )
        intergenic = var_names.str.startswith(("upstream_", "downstream_"))
        self.genes = pd.DataFrame(
            {"gene_symbol": symbols, "intergenic": intergenic}, index=var_names.rename("gene_id")
        )
        self._x_layout()
        self._indptr = None

    def _x_layout(self) -> None:
        x = self._file["X"]
        if isinstance(x, h5py.Dataset):
            self._layout, shape = "dense", x.shape
        else:
            kind = x.attrs.get("encoding-type", x.attrs.get("h5sparse_format", ""))
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            self._layout = {
                "csr_matrix": "csr",
                "csr": "csr",
                "csc_matrix": "csc",
                "csc": "csc",
            }.get(kind)
            if self._layout is None:
                raise _unreadable(self.path, f"X has an unknown encoding {kind!r}")
            shape = tuple(x.attrs.get("shape", x.attrs.get("h5sparse_shape", ())))
            major = shape[0] if self._layout == "csr" else (shape[1] if shape else -1)
            if x["indptr"].shape[0] != major + 1 or x["data"].shape != x["indices"].shape:
                raise _unreadable(self.path, "X's sparse arrays do not fit its shape")
        if tuple(int(s) for s in shape) != (len(self.cells), len(self.genes)):
            raise _unreadable(
                self.path,
                f"X has shape {tuple(shape)} but obs x var is {(len(self.cells), len(self.genes))}",
            )

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

    n_cells = property(lambda self: len(self.cells), doc="Number of cells (rows of X).")
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
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._file = None

    def libraries(self) -> pd.DataFrame:
        """One row per library (the sample cells came from), indexed by library id.

        Columns ``n_cells``; ``cell_types``, ``tissues``, ``stages``, ``sexes`` (the distinct
        non-empty values of its cells, sorted and joined with ``"; "``); ``experiment``;
        ``organism``.
        """
        cells = self.cells
        table = cells.groupby("library", observed=True).size().rename("n_cells").to_frame()
        for column, name in [*LIBRARY_SUMMARY.items(), ("experiment", "experiment")]:
            pairs = cells[["library", column]].drop_duplicates().astype(str)
            pairs = pairs[pairs[column] != ""].sort_values(column)
            joined = pairs.groupby("library")[column].agg("; ".join)
            table[name] = joined.reindex(table.index.astype(str)).fillna("").to_numpy()
        table["organism"] = self.organism
        table.index = table.index.astype(str).rename("library")
        return table

    def select(self, cell_filter=None, libraries=None) -> np.ndarray:
        """Positions (sorted ``int64``) of the cells matching a filter.

        Parameters
        ----------
        cell_filter
            ``{unified column: [allowed values]}``: AND across columns, OR within a list.
            ``sex`` is compared case-insensitively. Values absent from the file are ignored
            as long as one value of the list exists.
        libraries
            Library ids to keep (all when None).

        Raises
        ------
        DatasetSpecError
            A column outside :data:`UNIFIED_COLUMNS`, a list matching no cell (the message lists
            the values that exist), or columns that each match but never together.
        """
        criteria = list((cell_filter or {}).items())
        if libraries is not None:
            criteria.insert(0, ("library", libraries))
        mask = np.ones(self.n_cells, dtype=bool)
        for column, values in criteria:
            if column not in UNIFIED_COLUMNS:
                raise DatasetSpecError(
                    f"unknown cell filter column {column!r}; use one of {list(UNIFIED_COLUMNS)}"
                )
            values = [str(v).lower() if column == "sex" else str(v) for v in _listed(values)]
            series = self.cells[column]
            hit = series.isin(values).to_numpy()
            if not hit.any():
                present = sorted(set(series.astype(str)))
                shown = present[:30] + (
                    [f"... ({len(present)} in all)"] if len(present) > 30 else []
                )
                raise DatasetSpecError(
                    f"cell filter {column!r}: no cell of {self.path.name} has {values}; values "
                    f"present: {shown}"
                )
            mask &= hit
        rows = np.flatnonzero(mask).astype(np.int64)
        if rows.size == 0:
            raise DatasetSpecError(
                f"no cell of {self.path.name} matches all of "
                f"{dict(criteria)} together (each column alone matches "
                "some cells): loosen one of them"
            )
        return rows

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
        return self._file

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
            x = self._file["X"]
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
        x = self._file["X"]
        stored_data, stored_indices = x["data"], x["indices"]
        self._checked_indptr()
        starts, stops = self._indptr[rows], self._indptr[rows + 1]
        lengths = stops - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        index_type = np.int32 if self.n_genes < 2**31 else np.int64
        data = np.empty(indptr[-1], dtype=np.float32)
        indices = np.empty(indptr[-1], dtype=index_type)
        # a new read starts after a big gap or when a row starts in another _BLOCK-sized window
        new = np.ones(rows.size, dtype=bool)
        new[1:] = (starts[1:] - stops[:-1] > _GAP) | (starts[1:] // _BLOCK != starts[:-1] // _BLOCK)
        bounds = np.append(np.flatnonzero(new), rows.size)
        for first, last in zip(bounds[:-1], bounds[1:]):
            begin, end = starts[first], stops[last - 1]
            if begin == end:
                continue
            span_data, span_indices = stored_data[begin:end], stored_indices[begin:end]
            self._check_indices(span_indices, self.n_genes, "genes")
            take = _ranges(starts[first:last] - begin, lengths[first:last])
            out = slice(indptr[first], indptr[last])
            data[out], indices[out] = span_data[take], span_indices[take]
        return sp.csr_matrix((data, indices, indptr), shape=(rows.size, self.n_genes))

    def _read_dense(self, rows) -> sp.csr_matrix:
        x, parts = self._file["X"], []
        step = max(1, _BLOCK // max(1, self.n_genes))
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(rows, breaks):
            for i in range(0, run.size, step):
                chunk = run[i : i + step]
                parts.append(sp.csr_matrix(x[chunk[0] : chunk[-1] + 1].astype(np.float32)))
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.n_genes))

    def _read_csc(self, rows) -> sp.csr_matrix:
        x = self._file["X"]
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
