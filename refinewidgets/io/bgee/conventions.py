"""Bgee's conventions: its file names, its writers (told by their obs column names), the obs
columns each writer uses for a unified concept, and what ``X`` holds (the assay).

See ``shared/spec/bgee-h5ad.md`` for the writers; :class:`~.h5ad.BgeeH5ad` applies these.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from ..anndata_elems import read_elem

__all__ = [
    "LIBRARY_COLUMNS",
    "SOURCE_COLUMNS",
    "WRITERS",
    "assay_of",
    "file_name_convention",
    "parse_file_name",
    "writer_of",
]

LIBRARY_COLUMNS = ("libID", "library_id", "rnaSeqLibraryId", "SampleId")
# unified column -> obs column names of Bgee's writers, in order of preference
SOURCE_COLUMNS = {
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


#: Bgee's writers (see shared/spec/bgee-h5ad.md), oldest first: the position is the rank the
#: duplicates rule uses (a newer writer wins).
WRITERS = {
    "unknown": "unknown release",
    "W1": "Bgee 15.1",
    "W2": "Bgee 15.2",
    "W3": "Bgee after 15.2",
    "W4": "Bgee newest (scFAIR)",
}


def writer_of(columns: list[str]) -> tuple[str, str]:
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


def assay_of(stem: str, file: h5py.File) -> tuple[str, str]:
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
