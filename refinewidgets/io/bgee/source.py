"""A Bgee droplet H5AD file as a catalog source: one experiment, one sample per library.

Opening reads the file's cell table and genes, never its matrix (see :mod:`.bgee`). Each
library becomes a refine.bio-shaped sample record with technology ``SINGLE-CELL`` and a summary
of its cells (number, cell types, tissues, stages, sexes); :meth:`BgeeSource.read_cells` reads
the counts of the selected cells only.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...core.cell_filter import filter_columns, qc_values
from ...core.single_cell import CellBlock
from ...core.spec import LIBRARY_FIELDS, SINGLE_CELL
from ...errors import NotCountsWarning, SourceFormatError, SourceFormatWarning
from .conventions import WRITERS, file_name_convention
from .h5ad import BgeeH5ad

__all__ = ["BgeeSource"]


class BgeeSource:
    """One Bgee droplet-based H5AD file.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> sc = cat.samples[cat.samples["technology"] == "SINGLE-CELL"]
    >>> int(sc["n_cells"].sum()) > 1000
    True
    """

    log_scale = False
    qn_targets: dict = {}

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        counts_file: Callable[[], Path] | None = None,
        label: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = label or self.path.name
        self._counts_file = counts_file
        self._file = BgeeH5ad(self.path, counts_file=counts_file)
        self.count_warnings: list[str] | None = None
        if counts_file is None:  # a tarball member's counts are checked when first read
            self._check_counts(stacklevel=4)
        f = self._file
        if f.n_cells == 0 or f.n_genes == 0:
            self._file.close()
            raise SourceFormatError(
                f"{self.path} holds {f.n_cells} cells and {f.n_genes} genes: there is nothing to "
                "build from it. The download may be incomplete: download it again, or remove it "
                "from the sources."
            )
        libs = f.libraries()
        self.experiment = f.experiment
        if f.experiment == self.path.stem and file_name_convention(self.path.stem) == "other":
            warnings.warn(
                f"{self.path.name}: its cells name no single experiment (an obs column such as "
                "experiment_id) and its file name follows no Bgee convention "
                "(<Genus_species>_<EXPERIMENT>_droplet_based.h5ad), so the file name "
                f"{self.experiment!r} is used as its experiment id. Rename the file as Bgee "
                "names it, or give its cells an experiment_id column.",
                SourceFormatWarning,
                stacklevel=4,
            )
        self.organism = f.organism
        self.samples: dict[str, dict[str, Any]] = {
            str(lib): self._library_record(str(lib), row) for lib, row in libs.iterrows()
        }
        self.experiments = {f.experiment: self._experiment_record()}

    def _library_record(self, lib: str, row: pd.Series) -> dict[str, Any]:
        """A library as a sample, in refine.bio's metadata fields and the library summary."""
        f = self._file
        return {
            "refinebio_accession_code": lib,
            "refinebio_organism": f.organism,
            "refinebio_platform": f.assay,
            "refinebio_processed": True,
            "refinebio_processor_name": "Bgee",
            "refinebio_source_database": "BGEE",
            "refinebio_title": f"library {lib} ({int(row['n_cells'])} cells)",
            "refinebio_specimen_part": row["tissues"],
            "refinebio_developmental_stage": row["stages"],
            "refinebio_sex": row["sexes"],
            "refinebio_annotations": [{"bgee_file": self.name}],
            **{c: int(row[c]) if c == "n_cells" else row[c] for c in LIBRARY_FIELDS},
        }

    def _experiment_record(self) -> dict[str, Any]:
        """The file's experiment, in the fields of refine.bio's experiment records."""
        f = self._file
        genus_species = f.organism.capitalize().replace("_", " ")
        tissues = sorted({t for r in self.samples.values() for t in r["tissues"].split("; ") if t})
        return {
            "accession_code": f.experiment,
            "title": f"{genus_species} {f.assay} {f.experiment} ({', '.join(tissues[:4])})",
            "description": (
                f"Bgee processed {f.assay} ({f.unit}): {f.n_cells} annotated cells in "
                f"{len(self.samples)} libraries, {f.n_genes} genes. File {self.name} "
                f"({f.release}, {f.encoding})."
            ),
            "organisms": [f.organism],
            "sample_accession_codes": list(self.samples),
            "technology": SINGLE_CELL,
            "submitter_institution": "",
            "has_publication": False,
            "source_first_published": "",
        }

    def matrices(self) -> dict[str, list[str]]:
        return {self.name: list(self.samples)}

    def read_matrix(
        self, matrix_id: str, samples: Sequence[str]
    ):  # pragma: no cover - not a bulk source
        raise TypeError(f"{self.name} holds single cells; use read_cells")

    def __reduce__(self):
        """Pickled as where it is: a Dask worker opens the file (or tarball member) itself."""
        return (_reopen, (str(self.path), self._counts_file, self.name))

    def _check_counts(self, stacklevel: int) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NotCountsWarning)
            self._file.check_counts()
        self.count_warnings = [
            str(w.message) for w in caught if issubclass(w.category, NotCountsWarning)
        ]
        for message in self.count_warnings:
            warnings.warn(message, NotCountsWarning, stacklevel=stacklevel)

    def read_cells(
        self,
        matrix_id: str,
        libraries: Sequence[str],
        cell_filter: Mapping[str, Any] | str | None,
        *,
        keep_intergenic: bool = False,
        exact: bool = False,
    ) -> CellBlock:
        """The counts of the cells of ``libraries`` that pass ``cell_filter``.

        Intergenic features (``upstream_*``, ``downstream_*``, kept by one of Bgee's writers) are
        left out unless ``keep_intergenic``: they are not genes, and would count in CPM totals,
        QC values and pseudobulk sums. Each cell gets its QC values (``total_counts``,
        ``n_genes_by_counts``) over the features kept; QC conditions of the filter apply to them.
        The file's other obs columns (author annotations...) come along under their own names,
        and its other var columns (``feature_biotype``...) with the genes. Cell types and
        tissues match their ontology descendants unless ``exact``; the block's provenance then
        records the ontology releases used.
        """
        rows = self._file.select(cell_filter=cell_filter, libraries=list(libraries), exact=exact)
        if self.count_warnings is None:
            self._check_counts(stacklevel=5)
        counts = self._file.read_counts(rows)
        genes = self._file.genes
        genic = ~genes["intergenic"].to_numpy(dtype=bool)
        if not keep_intergenic and not genic.all():
            counts, genes = counts[:, genic], genes.loc[genic]
        qc = qc_values(counts)
        cells = self._file.cell_rows(rows)  # only these cells' names and barcodes are read
        keep = self._file.qc_keep(cell_filter, rows, qc, self.name, exact=exact)
        if keep is not None:
            rows, counts, qc = rows[keep], counts[keep], qc.loc[keep]
            cells = cells.iloc[keep].copy()
        for col in cells.columns:
            if isinstance(cells[col].dtype, pd.CategoricalDtype):
                cells[col] = cells[col].cat.remove_unused_categories()
        for col in self._file.kept_extras:
            values = self._file.extra(col)
            if isinstance(values, pd.Categorical):
                cells[col] = values.take(rows).remove_unused_categories()
            else:
                cells[col] = np.asarray(values)[rows]
        cells["total_counts"] = qc["total_counts"].to_numpy()
        cells["n_genes_by_counts"] = qc["n_genes_by_counts"].to_numpy()
        if not cells.index.is_unique:
            cells.index = self._unique_cell_names(cells.index)
        genes = genes[["gene_symbol"]].join(self._file.gene_columns)
        provenance = self.provenance
        genes, release = self._symbols_from_table(genes)
        if release:
            provenance["gene_symbols"] = release
        terms = None if exact else self._file.term_matcher(filter_columns(cell_filter))
        if terms is not None:
            provenance["ontology"] = terms.versions
        return CellBlock(cells, counts, genes, self.organism, self.name, provenance)

    def _symbols_from_table(self, genes: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        """Bgee's older writers store no gene symbols: the bulk path's tables fill them (human
        from the table the package ships; another organism when its symbols are already in the
        download cache), never the network. ``(genes, release used or "")``."""
        if (genes["gene_symbol"].astype(str) != "").any():
            return genes, ""
        from ...errors import DatasetSpecError
        from ..gene_symbols import symbols_for

        try:
            found = symbols_for(self.organism, list(genes.index), offline=True)
        except (DatasetSpecError, SourceFormatError):  # not cached, or no organism name
            return genes, ""
        if not (found.symbols != "").any():
            return genes, ""
        genes = genes.copy()
        genes["gene_symbol"] = found.symbols.to_numpy(dtype=object)
        return genes, found.release

    def _unique_cell_names(self, names: pd.Index) -> pd.Index:
        """Cell names made unique as anndata's ``obs_names_make_unique`` does (``-1``, ``-2``
        appended to the repeats), with a warning: a name given to two cells would make the
        cells of a result, and of the zip it is saved to, ambiguous."""
        from anndata.utils import make_index_unique

        repeated = names[names.duplicated()].unique()
        warnings.warn(
            f"{self.path.name}: {len(repeated)} cell name(s) are given to more than one cell "
            f"(the first: {repeated[0]!r}); all cells are kept, the repeats renamed as anndata's "
            f"obs_names_make_unique does ({repeated[0]!r} -> {repeated[0] + '-1'!r}). Their "
            "barcode and library columns are unchanged.",
            SourceFormatWarning,
            stacklevel=4,
        )
        return make_index_unique(pd.Index(names.astype(str)), join="-")

    @property
    def release_rank(self) -> tuple[int, int]:
        """Orders copies of one experiment and species: the newer Bgee writer, then Bgee's
        own file name over a BgeeDB save (see :func:`~refinewidgets.io.catalog_open.drop_duplicate_files`)."""
        convention = file_name_convention(self.path.stem)
        return (
            list(WRITERS).index(self._file.writer),
            {"Bgee 15.2+": 2, "Bgee 15.1": 2, "BgeeDB": 1}.get(convention, 0),
        )

    @property
    def origin(self) -> str:
        """Where the file is, for messages: its path, or ``tarball:member``."""
        return str(self.path) if self.name == self.path.name else self.name

    def describe_origin(self) -> str:
        """E.g. ``"Bgee 15.2, file named as Bgee 15.2+"``."""
        return f"{self._file.release}, file named as {file_name_convention(self.path.stem)}"

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the file comes from: its name, Bgee release and writer, anndata encoding,
        assay and unit of its values (recorded in each group's ``uns``)."""
        f = self._file
        return {
            "file": self.name,
            "experiment": f.experiment,
            "organism": f.organism,
            "bgee_release": f.release,
            "bgee_writer": f.writer,
            "file_name_convention": file_name_convention(self.path.stem),
            "encoding": f.encoding,
            "assay": f.assay,
            "unit": f.unit,
        }

    def cell_table(self) -> Any:
        """Every cell of the file with the unified columns (no counts)."""
        return self._file.cells

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"<BgeeSource {self.name!r}: {self.experiment}, {len(self.samples)} libraries>"


def _reopen(path: str, counts_file, label: str) -> BgeeSource:
    """A source opened again in another process (its warnings were given when first opened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BgeeSource(path, counts_file=counts_file, label=label)
