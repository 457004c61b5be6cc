"""A Bgee droplet H5AD file as a catalog source: one experiment, one sample per library.

Opening reads the file's cell table and genes, never its matrix (see :mod:`.bgee`). Each
library becomes a refine.bio-shaped sample record with technology ``SINGLE-CELL`` and a summary
of its cells (number, cell types, tissues, stages, sexes); :meth:`BgeeSource.read_cells` reads
the counts of the selected cells only.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.single_cell import CellBlock
from ..core.spec import LIBRARY_FIELDS
from ..errors import DatasetSpecError, NotCountsWarning
from .bgee import BgeeH5ad

__all__ = ["BgeeSource"]

SINGLE_CELL = "SINGLE-CELL"


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

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._file = BgeeH5ad(self.path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NotCountsWarning)
            self._file.check_counts()
        self.count_warnings = [
            str(w.message) for w in caught if issubclass(w.category, NotCountsWarning)
        ]
        for message in self.count_warnings:
            warnings.warn(message, NotCountsWarning, stacklevel=3)
        f = self._file
        libs = f.libraries()
        self.experiment = f.experiment
        self.organism = f.organism
        self.samples: dict[str, dict[str, Any]] = {}
        for lib, row in libs.iterrows():
            self.samples[str(lib)] = {
                "refinebio_accession_code": str(lib),
                "refinebio_organism": f.organism,
                "refinebio_platform": "droplet-based scRNA-seq",
                "refinebio_processed": True,
                "refinebio_processor_name": "Bgee",
                "refinebio_source_database": "BGEE",
                "refinebio_title": f"library {lib} ({int(row['n_cells'])} cells)",
                "refinebio_specimen_part": row["tissues"],
                "refinebio_developmental_stage": row["stages"],
                "refinebio_sex": row["sexes"],
                "refinebio_annotations": [{"bgee_file": self.name}],
                **{f: int(row[f]) if f == "n_cells" else row[f] for f in LIBRARY_FIELDS},
            }
        genus_species = f.organism.capitalize().replace("_", " ")
        tissues = sorted({t for r in self.samples.values() for t in r["tissues"].split("; ") if t})
        self.experiments = {
            f.experiment: {
                "accession_code": f.experiment,
                "title": f"{genus_species} droplet-based scRNA-seq {f.experiment} ({', '.join(tissues[:4])})",
                "description": (
                    f"Bgee processed droplet-based single-cell RNA-seq: {f.n_cells} annotated cells in "
                    f"{len(self.samples)} libraries, {f.n_genes} genes. File {self.name}."
                ),
                "organisms": [f.organism],
                "sample_accession_codes": list(self.samples),
                "technology": SINGLE_CELL,
                "submitter_institution": "",
                "has_publication": False,
                "source_first_published": "",
            }
        }

    def matrices(self) -> dict[str, list[str]]:
        return {self.name: list(self.samples)}

    def read_matrix(
        self, matrix_id: str, samples: Sequence[str]
    ):  # pragma: no cover - not a bulk source
        raise TypeError(f"{self.name} holds single cells; use read_cells")

    def read_cells(
        self,
        matrix_id: str,
        libraries: Sequence[str],
        cell_filter: Mapping[str, Sequence[str]] | None,
    ) -> CellBlock:
        """The counts of the cells of ``libraries`` that pass ``cell_filter``.

        Intergenic features (``upstream_*``, ``downstream_*``, kept by one of Bgee's writers) are
        left out: they are not genes, and would count in CPM totals and pseudobulk sums.
        """
        rows = self._file.select(cell_filter=cell_filter, libraries=list(libraries))
        if len(rows) == 0:
            raise DatasetSpecError(
                f"{self.name}: no cell of libraries {list(libraries)} passes the cell filter {dict(cell_filter or {})}."
            )
        counts = self._file.read_counts(rows)
        cells = self._file.cells.iloc[rows].copy()
        for col in cells.columns:
            if hasattr(cells[col], "cat"):
                cells[col] = cells[col].cat.remove_unused_categories()
        genes = self._file.genes
        genic = ~genes["intergenic"].to_numpy(dtype=bool)
        if not genic.all():
            counts, genes = counts[:, genic], genes.loc[genic]
        return CellBlock(cells, counts, genes, self.organism, self.name)

    def cell_table(self) -> Any:
        """Every cell of the file with the unified columns (no counts)."""
        return self._file.cells

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"<BgeeSource {self.name!r}: {self.experiment}, {len(self.samples)} libraries>"
