"""Read Bgee's single-cell H5AD files (one file per experiment and species).

Bgee's writers changed their obs column names between releases (see ``SOURCE_COLUMNS`` and
:data:`WRITERS`); :class:`BgeeH5ad` maps them all onto one table with :data:`UNIFIED_COLUMNS`
and keeps the file's other obs columns under their own names. ``obs`` and ``var`` are read by
anndata, in every encoding it reads (:mod:`.obs`); ``X``, the counts, is read by rows and
checked by :class:`~refinewidgets.io.bgee.counts.BgeeCounts`. Obs names and barcodes, a
distinct string per cell, are read for the selected cells only (:meth:`BgeeH5ad.cell_rows`)
until the whole table is asked for.

Decisions on points the files leave open:

- Library column: ``libID`` > ``library_id`` > ``rnaSeqLibraryId`` > ``SampleId``. Bgee's first
  files carry both ``SampleId`` and ``libID``; obs names end with ``_<libID>``, so ``libID`` is
  the library a cell came from and ``SampleId`` is used only when nothing else exists.
- Layout of ``X``: CSR (what Bgee writes) and dense ``X`` are read selectively; a CSC ``X`` is
  streamed whole (see :mod:`.counts`).
- Writer and release are told by the obs columns (:func:`~.conventions.writer_of`); a file named
  ``*_full_length*`` (or whose ``uns['assay']`` says so) holds read counts of full-length
  protocols, the others droplet UMI counts.
- ``read_counts`` does not check the values; call :meth:`BgeeH5ad.check_counts` for that.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ...core.cell_filter import (
    QC_COLUMNS,
    match_cells,
    parse_cell_filter,
    qc_keep,
    qc_table_columns,
    split_qc,
)
from ...core.cell_query import parse_query
from ...core.cell_vocabulary import UNIFIED_TERM_COLUMNS, UNKNOWN, unify_not_known
from ...core.ontology import TERM_COLUMNS
from ...core.spec import LIBRARY_SUMMARY, UNIFIED_CELL_COLUMNS
from ...errors import DatasetSpecError, SourceFormatError
from ..anndata_elems import read_elem
from ..ontology_tables import term_matcher
from .conventions import (
    LIBRARY_COLUMNS,
    SOURCE_COLUMNS,
    assay_of,
    parse_file_name,
    writer_of,
)
from .counts import BgeeCounts, unreadable
from .h5_strings import is_string_array, read_strings, stripped
from .obs import (
    as_categorical,
    as_kept,
    as_names,
    as_text,
    attr_text,
    read_column,
    read_frames,
)
from .species import ORGANISM_BY_TAXON, organism_of_taxon

__all__ = ["ORGANISM_BY_TAXON", "UNIFIED_COLUMNS", "BgeeH5ad"]

UNIFIED_COLUMNS = UNIFIED_CELL_COLUMNS
_SYMBOL_COLUMNS = ("feature_name", "gene_symbol", "gene_name")
#: Our names in a gene table; a file's var column of the same name is kept as ``var_<name>``.
_GENE_RESERVED = ("gene_id", "gene_symbol", "intergenic")


def _organism_name(text: str) -> str:
    """``'Homo sapiens'``, ``'Homo_sapiens'``, ``'NCBITaxon:9606'`` -> ``'HOMO_SAPIENS'``."""
    match = re.fullmatch(r"(?i)ncbitaxon:(\d+)", text.strip())
    if match:
        return organism_of_taxon(int(match.group(1)))
    return re.sub(r"[\s_]+", "_", text.strip()).upper()


#: Names the cell tables we make use: a file's own obs column with one of these names is kept
#: as ``obs_<name>``.
RESERVED_COLUMNS = (*UNIFIED_COLUMNS, "experiment", "organism", *QC_COLUMNS)


class BgeeH5ad(BgeeCounts):
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
        strings (categorical except ``barcode``); ``sex`` lower-cased; every writer's "not known"
        (and a concept the file lacks) is ``unknown`` (:mod:`~refinewidgets.core.cell_vocabulary`),
        the file's own values staying in its own column (:attr:`placeholder_columns`). ``column_map`` says which obs column fed each unified column.
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
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist or is not a file")
        try:
            self._file = h5py.File(self.path, "r")
        except (OSError, RuntimeError) as err:
            raise unreadable(self.path, err) from None
        try:
            self._open()
        except SourceFormatError:
            self.close()
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
            self.close()
            raise unreadable(self.path, err) from None

    @property
    def stub(self) -> bool:
        """Whether this file holds only ``obs``/``var`` (an index entry of a species tarball);
        ``X`` then comes from ``counts_file()``, the extracted member, on first read."""
        return self._counts_file is not None

    def _obs_column(self, name: str) -> Any:
        """One obs column, as anndata reads it."""
        if self._obs is not None:
            return self._obs[name].array
        if name not in self._obs_read:
            if self._file is None:
                raise ValueError(f"{self.path} is closed; open it again with BgeeH5ad(path)")
            self._obs_read[name] = read_column(self._file["obs"][name])
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
        kind = attr_text(elem.attrs, "encoding-type") or ""
        return kind != "string-array"

    def _open(self) -> None:
        """Read what every use needs: obs and var, the unified cell table, the genes."""
        f = self._file
        needed = ("obs", "var") if self.stub else ("X", "obs", "var")
        missing = [key for key in needed if key not in f]
        if missing:
            raise unreadable(self.path, f"no {', '.join(missing)} element")
        obs, var, self.encoding = read_frames(f, self.path)
        self._obs, self._obs_read = obs, {}
        # obs names and barcodes (a distinct string per cell) are read when asked for: a build
        # needs those of the cells it selects only (see ``cell_rows``); ``cells`` reads them all
        self._full = None
        n = self._read_names(f, obs)
        columns = self._unified_columns(f, obs)
        if "library" not in columns:
            raise SourceFormatError(
                f"{self.path} has no library column: obs columns found: {self.obs_columns}; "
                f"accepted library columns: {list(LIBRARY_COLUMNS)}"
            )
        self.writer, self.release = writer_of(self.obs_columns)
        self.experiment = self._experiment(columns.get("experiment"))
        self.organism = self._organism(columns.pop("taxon", None))
        #: The cell table without obs names (a RangeIndex) and barcodes: see ``cells``.
        self._table = self._cell_table(columns, n)
        # the file's other obs columns, under their own names (author annotations, QC values)
        used = set(self.column_map.values()) - set(self.placeholder_columns)
        #: The file's other obs columns: our name (``obs_<name>`` where ours would clash) ->
        #: the file's name; read when a filter or a build uses them.
        self.extra_columns = {
            (column if column not in RESERVED_COLUMNS else f"obs_{column}"): column
            for column in self.obs_columns
            if column not in used
        }
        self._read_genes(var)
        self.assay, self.unit = assay_of(self.path.stem, self._file)
        if not self.stub:
            self._open_x(self._file)

    def _read_names(self, f: h5py.File, obs: pd.DataFrame | None) -> int:
        """Set ``obs_columns`` and where the obs names are (their values, or the path of their
        string array when obs was not read whole); the number of cells."""
        self._names: pd.Index | str  # the names, or the path of their string array
        if obs is not None:
            self._names = as_names(obs.index)
            self.obs_columns = [str(c) for c in obs.columns]
            obs.columns = self.obs_columns
            return len(self._names)
        group = f["obs"]
        index_elem = group[attr_text(group.attrs, "_index")]
        self.obs_columns = [as_text(c) for c in np.ravel(group.attrs.get("column-order", []))]
        if is_string_array(index_elem):
            self._names = index_elem.name
            return index_elem.shape[0]
        self._names = as_names(read_column(index_elem))
        return len(self._names)

    def _unified_columns(self, f: h5py.File, obs: pd.DataFrame | None) -> dict:
        """The file's columns found for each unified concept (``column_map``), as categoricals
        with "not known" unified; barcodes set aside (``_barcodes``)."""
        self.column_map = {}
        #: The file's columns whose "not known" values were unified to ``unknown``
        #: (:mod:`~refinewidgets.core.cell_vocabulary`); kept as extra columns.
        self.placeholder_columns: list[str] = []
        columns = {}
        #: Where barcodes come from: their values, the path of their string array, or None
        #: (from the obs names, ``<barcode>_<library>``).
        self._barcodes: np.ndarray | str | None = None
        for concept, names in SOURCE_COLUMNS.items():
            found = next((n for n in names if n in self.obs_columns), None) or next(
                (c for n in names for c in self.obs_columns if c.lower() == n.lower()), None
            )
            if found is None:
                continue
            self.column_map[concept] = found
            if concept == "barcode":
                self._barcodes = self._barcode_values(f, obs, found)
                continue
            columns[concept] = as_categorical(self._obs_column(found), lower=concept == "sex")
            if concept in UNIFIED_TERM_COLUMNS:
                columns[concept], changed = unify_not_known(columns[concept])
                if changed:  # the file's own words stay in the file's own column
                    self.placeholder_columns.append(found)
        return columns

    def _barcode_values(self, f: h5py.File, obs: pd.DataFrame | None, found: str):
        """The barcodes of the column ``found``: the path of their string array (read when
        asked for) or their values."""
        if obs is None and is_string_array(f["obs"][found]):
            return f["obs"][found].name
        values = self._obs_column(found)
        if not isinstance(values, pd.Categorical):
            return stripped(values)
        return np.asarray(as_categorical(values), dtype=object)

    def _cell_table(self, columns: dict, n: int) -> pd.DataFrame:
        """The unified cell table of ``n`` cells (a concept the file lacks: ``unknown`` or
        empty) and the experiment of each cell (the file's when a cell has none)."""
        cells = pd.DataFrame(index=pd.RangeIndex(n))
        for concept in UNIFIED_COLUMNS:
            if concept != "barcode":
                absent = UNKNOWN if concept in UNIFIED_TERM_COLUMNS else ""
                cells[concept] = columns.get(
                    concept,
                    pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[absent]),
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
        return cells

    def _read_genes(self, var: pd.DataFrame) -> None:
        """``genes`` (symbol, intergenic) and ``gene_columns`` (the file's other var columns)."""
        var_names = pd.Index(np.asarray(var.index, dtype=object)).astype(str)
        var_columns = [str(c) for c in var.columns]
        var.columns = var_columns
        symbol = next((c for c in _SYMBOL_COLUMNS if c in var_columns), None)
        symbols = (
            np.asarray(as_categorical(var[symbol].array), dtype=object)
            if symbol
            else np.full(len(var_names), "", dtype=object)
        )
        intergenic = var_names.str.startswith(("upstream_", "downstream_"))
        self.genes = pd.DataFrame(
            {"gene_symbol": symbols, "intergenic": intergenic}, index=var_names.rename("gene_id")
        )
        #: The file's other var columns under their own names (``obs``-style ``var_<name>``
        #: where ours would clash), e.g. the newest writer's ``feature_biotype``: a var filter
        #: may use them, and a build hands them on with the genes.
        self.gene_columns = pd.DataFrame(
            {
                (c if c not in _GENE_RESERVED else f"var_{c}"): as_kept(var[c].array)
                for c in var_columns
                if c != symbol
                and not (c == "gene_id" and np.array_equal(var[c].astype(str), var_names))
            },
            index=self.genes.index,
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
                if value.size == 1 and as_text(value[0]):
                    return _organism_name(as_text(value[0]))
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
        return as_names(read_strings(self._string_array(self._names), rows))

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
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._file = None
        self._close_x()

    def libraries(self) -> pd.DataFrame:
        """One row per library (the sample cells came from), indexed by library id.

        Columns ``n_cells``; ``cell_types``, ``tissues``, ``stages``, ``sexes`` (the distinct
        non-empty values of its cells, sorted and joined with ``"; "``); ``experiment``;
        ``organism``.
        """
        cells = self._table  # no obs names nor barcodes needed
        library = cells["library"].array  # categoricals without missing values (as_categorical)
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
        return as_kept(self._obs_column(self.extra_columns[name]))

    @property
    def kept_extras(self) -> list[str]:
        """The extra columns a build hands on with the cells (not per-cell free text)."""
        return [name for name, column in self.extra_columns.items() if self._kept_extra(column)]

    def select(self, cell_filter=None, libraries=None, *, exact: bool = False) -> np.ndarray:
        """Positions (sorted ``int64``) of the cells matching a filter.

        Parameters
        ----------
        cell_filter
            A cell filter (see :mod:`refinewidgets.core.cell_filter`) on the unified columns
            or the file's own obs columns; QC conditions (``total_counts``...) are ignored
            here: they need the counts (see :meth:`BgeeSource.read_cells`).
        libraries
            Library ids to keep (all when None).
        exact
            Match cell types and tissues by label only; by default a term matches its
            descendants too (Cell Ontology, UBERON: see :mod:`refinewidgets.core.ontology`).

        Raises
        ------
        DatasetSpecError
            A column this file lacks (the message lists its columns), a list matching no cell
            (the message lists the values that exist), or conditions that each match but
            never together.
        """
        cell_filter = parse_cell_filter(cell_filter)
        own_names = self._own_names
        query = (
            parse_query(cell_filter).renamed(own_names) if isinstance(cell_filter, str) else None
        )
        if query is None:
            conditions, _ = split_qc(cell_filter)
            conditions = {own_names.get(c, c): v for c, v in conditions.items()}
            used = list(conditions)
        else:
            conditions = {}
            used = [c for c in query.columns if c not in QC_COLUMNS]
        if libraries is not None:
            conditions = {"library": [str(v) for v in _listed(libraries)], **conditions}
            used = ["library", *used]
        self._check_filter_columns(used, own_names)
        terms = None if exact else self.term_matcher(used)
        table = self.filter_table(used + (terms.id_columns(used) if terms else []))
        where = self.path.name
        mask = match_cells(table, conditions, where, terms=terms)
        if query is not None:
            mask &= query.possible(table, where, unknown=QC_COLUMNS, terms=terms)
            if not mask.any():
                kept = table.loc[match_cells(table, conditions, where, terms=terms)]
                raise DatasetSpecError(query.no_match_message(kept, where, terms=terms))
        return np.flatnonzero(mask).astype(np.int64)

    @staticmethod
    def term_matcher(columns) -> Any:
        """The ontology matcher when ``columns`` hold a cell type or tissue (else None): the
        shipped tables are read only then."""
        if not any(c in TERM_COLUMNS for c in columns):
            return None
        return term_matcher()

    @property
    def _own_names(self) -> dict[str, str]:
        """The file's own column names a filter may use for a unified column (a column with
        placeholders unified keeps its own values under its own name)."""
        # a column read for another purpose (speciesId gives the organism) is not in the table:
        # it is filtered under the file's own name
        tabled = set(self._table.columns)
        return {
            name: concept
            for concept, name in self.column_map.items()
            if name not in self.placeholder_columns and concept in tabled
        }

    def qc_keep(
        self, cell_filter, rows: np.ndarray, qc: pd.DataFrame, where: str, *, exact: bool = False
    ):
        """Which of the cells at ``rows`` (chosen by :meth:`select`) meet the filter once their
        QC values ``qc`` are known: a boolean mask, or None when the filter uses no QC value
        (see :func:`~refinewidgets.core.cell_filter.qc_keep`, which decides)."""
        used = qc_table_columns(cell_filter, self._own_names)
        terms = None if exact or not used else self.term_matcher(used)
        table = None
        if used:
            table = self.filter_table(used + (terms.id_columns(used) if terms else []), rows)
        return qc_keep(cell_filter, qc, where, table=table, renamed=self._own_names, terms=terms)

    def _check_filter_columns(self, used: list[str], own_names: dict[str, str]) -> None:
        tabled = set(self._table.columns)
        untabled = [name for c, name in self.column_map.items() if c not in tabled]
        known = list(dict.fromkeys(["library", *self.filter_columns, *untabled]))
        unknown = [c for c in used if c not in known]
        known += [n for n in own_names if n not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=3, cutoff=0.6)
            raise DatasetSpecError(
                f"cell filter column {unknown[0]!r}"
                f"{' (did you mean ' + ', '.join(close) + '?)' if close else ''} is not in "
                f"{self.path.name}; its columns: {known} (and the QC values {list(QC_COLUMNS)})"
            )

    def filter_table(self, columns: Sequence[str], rows: np.ndarray | None = None) -> pd.DataFrame:
        """The values of ``columns`` (unified or the file's own) for every cell, or for the
        cells at ``rows``; no obs names (matching needs none, nor hashes them)."""
        table = pd.DataFrame(
            {
                c: self._table[c].array
                if c in self._table.columns
                else self.extra(c)
                if c in self.extra_columns
                else as_kept(self._obs_column(c))
                for c in dict.fromkeys(columns)
            },
            index=pd.RangeIndex(self.n_cells),
        )
        return table if rows is None else table.iloc[rows].reset_index(drop=True)


def _listed(values) -> list:
    if isinstance(values, (str, bytes, int, np.integer)) or not np.iterable(values):
        return [values]
    return list(values)
