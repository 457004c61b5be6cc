#!/usr/bin/env python
"""Write small seeded Bgee single-cell H5AD fixtures under ``tests/data/bgee/``.

Every file is written with h5py directly, following anndata's published on-disk encoding
(https://anndata.readthedocs.io/en/latest/fileformat-prose.html) and, for the old encodings,
what anndata 0.6 and 0.7 wrote. The obs/var/uns contents follow what each of Bgee's H5AD
writers produces (see ``tests/data/bgee/README.md`` for what was read in Bgee's pipeline code
and what is assumed). Nothing here imports refinewidgets or uses anndata's writer.

Usage::

    python scripts/make_bgee_fixtures.py            # (re)write tests/data/bgee/
    python scripts/make_bgee_fixtures.py --out DIR  # write somewhere else

The same code writes the same bytes: fixed seeds, no HDF5 timestamps, fixed tar headers
(mtime, uid/gid, names) and gzip streams with mtime 0 and no file name.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bgee"
STR = h5py.string_dtype("utf-8")
TAR_MTIME = 1_700_000_000  # fixed member mtime (2023-11-14)

SPECIES = {
    # Bgee name: (taxon, refine.bio organism, gene id prefix)
    "Homo_sapiens": (9606, "HOMO_SAPIENS", "ENSG"),
    "Mus_musculus": (10090, "MUS_MUSCULUS", "ENSMUSG"),
    "Danio_rerio": (7955, "DANIO_RERIO", "ENSDARG"),
}
STAGES = {
    "Homo_sapiens": ("HsapDv:0000087", "human adult stage"),
    "Mus_musculus": ("MmusDv:0000110", "mature stage"),
    "Danio_rerio": ("ZFS:0000044", "adult (zebrafish)"),
}
STRAINS = {"Homo_sapiens": "NA", "Mus_musculus": "C57BL/6J", "Danio_rerio": "AB"}
BLOOD_TYPES = [
    ("B cell", "CL:0000236"),
    ("T cell", "CL:0000084"),
    ("monocyte", "CL:0000576"),
    ("natural killer cell", "CL:0000623"),
]
LIVER_TYPES = [
    ("hepatocyte", "CL:0000182"),
    ("endothelial cell", "CL:0000115"),
    ("macrophage", "CL:0000235"),
]
TISSUES = {
    "blood": ("UBERON:0000178", "blood"),
    "spleen": ("UBERON:0002106", "spleen"),
    "liver": ("UBERON:0002107", "liver"),
}
N_MARKERS = 4  # marker genes per cell type: genes [4k, 4k+4) of cell type k


# --------------------------------------------------------------------------------------
# In-memory model of one file
# --------------------------------------------------------------------------------------


@dataclass
class Column:
    """One obs/var column. kind: 'str' (categorical if it has repeats, like anndata's
    strings_to_categoricals), 'cat' (always categorical), 'int', 'bool', 'float'."""

    kind: str
    values: list


@dataclass
class Csr:
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]


@dataclass
class Fixture:
    obs_names: list[str]
    obs: dict[str, Column]
    var_names: list[str]
    var: dict[str, Column]
    X: Csr
    layers: dict[str, Csr] = field(default_factory=dict)
    uns: dict = field(default_factory=dict)
    compression: str | None = None
    # what tests and the reader's tests can expect (written to README/expected.json)
    expected: dict = field(default_factory=dict)


def _csr_from_dense(dense: np.ndarray) -> Csr:
    rows, cols = np.nonzero(dense)
    counts = np.bincount(rows, minlength=dense.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return Csr(dense[rows, cols].astype(np.float32), cols.astype(np.int32), indptr, dense.shape)


def _barcodes(rng, n: int, first: str) -> list[str]:
    """n distinct 16-mers; the first is shared by every library (barcodes are unique per
    library, not per experiment)."""
    out = [first]
    seen = {first}
    while len(out) < n:
        code = "".join(rng.choice(list("ACGT"), 16))
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


@dataclass
class Cells:
    barcodes: list[str]
    library: list[str]
    type_index: np.ndarray
    gene_ids: list[str]
    counts: np.ndarray  # dense cells x features, float32
    n_intergenic: int


def simulate(
    seed: int,
    species: str,
    libraries: list[tuple[str, int]],
    n_types: int,
    n_genes: int,
    *,
    n_intergenic: int = 0,
    fractional: bool = True,
    full_length: bool = False,
    gene_offset: int = 0,
) -> Cells:
    """Cells of ``libraries`` ((id, n_cells) pairs), every library holding every cell type;
    cell type k expresses marker genes [4k, 4k+4) at about 12 UMIs, everything else ~0.4."""
    rng = np.random.default_rng(seed)
    prefix = SPECIES[species][2]
    gene_ids = [f"{prefix}9{gene_offset + i + 1:010d}" for i in range(n_genes)]
    barcodes, library, types = [], [], []
    for lib, n in libraries:
        barcodes += _barcodes(rng, n, "AAACCTGAGAAACCAT")
        # cycle through the types across libraries too (one-cell libraries of full-length data)
        types.append(rng.permutation((len(library) + np.arange(n)) % n_types))
        library += [lib] * n
    type_index = np.concatenate(types)
    n_cells = len(barcodes)
    lam = np.full((n_cells, n_genes), 0.4)
    for k in range(n_types):
        lam[type_index == k, N_MARKERS * k : N_MARKERS * (k + 1)] = 12.0
    counts = rng.poisson(lam).astype(np.float32)
    if fractional:  # bustools --em splits multi-mapping UMIs
        nz = np.argwhere(counts > 0)
        pick = nz[rng.random(len(nz)) < 0.05]
        counts[pick[:, 0], pick[:, 1]] -= 0.5
    if full_length:  # read counts of whole transcripts: larger integers
        counts = np.round(counts * rng.uniform(40, 60, size=(n_cells, 1))).astype(np.float32)
    if n_intergenic:
        half = n_intergenic // 2
        ids = [f"upstream_{g}" for g in gene_ids[:half]]
        ids += [f"downstream_{g}" for g in gene_ids[: n_intergenic - half]]
        extra = (1 + rng.poisson(1.0, size=(n_cells, n_intergenic))).astype(np.float32)
        gene_ids = gene_ids + ids
        counts = np.concatenate([counts, extra], axis=1)
    return Cells(barcodes, library, type_index, gene_ids, counts, n_intergenic)


def cpm(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=1, keepdims=True)
    return (counts / np.where(total == 0, 1, total) * 1e6).astype(np.float32)


def _expected(exp, species, cells: Cells, type_names, *, writer, encoding, note=""):
    libs = list(dict.fromkeys(cells.library))
    per_lib = {lib: cells.library.count(lib) for lib in libs}
    names = [type_names[k] for k in cells.type_index]
    return {
        "experiment": exp,
        "species": species,
        "taxon": SPECIES[species][0],
        "organism": SPECIES[species][1],
        "writer": writer,
        "encoding": encoding,
        "n_obs": len(cells.barcodes),
        "n_vars": len(cells.gene_ids),
        "n_intergenic": cells.n_intergenic,
        "libraries": libs,
        "cells_per_library": per_lib,
        "cell_types": sorted(set(names)),
        "cells_per_cell_type": {t: names.count(t) for t in sorted(set(names))},
        "note": note,
    }


# --------------------------------------------------------------------------------------
# Bgee writers (obs/var/uns content)
# --------------------------------------------------------------------------------------


def _per_library(cells: Cells, values: dict[str, object]) -> list:
    return [values[lib] for lib in cells.library]


def w1_bgee15_1(exp, species, libraries, seed, types, tissue="spleen", sexes=None) -> Fixture:
    """Bgee 15.1: barcodes, SampleId (Bgee-internal integer), libID, unique_cell_ids."""
    cells = simulate(seed, species, libraries, len(types), 40)
    libs = [lib for lib, _ in libraries]
    sample_ids = {lib: str(104_511 + 7 * i) for i, lib in enumerate(libs)}  # internal ids
    sexes = sexes or {lib: s for lib, s in zip(libs, ["male", "not annotated", "NA"])}
    anat_id, anat_name = TISSUES[tissue]
    stage_id, stage_name = STAGES[species]
    names = [types[k][0] for k in cells.type_index]
    ids = [types[k][1] for k in cells.type_index]
    sample = _per_library(cells, sample_ids)
    n = len(cells.barcodes)
    obs = {
        "barcodes": Column("str", cells.barcodes),
        "SampleId": Column("str", sample),
        "anatEntityId": Column("str", [anat_id] * n),
        "stageId": Column("str", [stage_id] * n),
        "cellTypeId": Column("str", ids),
        "strain": Column("str", [STRAINS[species]] * n),
        "sex": Column("str", _per_library(cells, sexes)),
        "speciesId": Column("int", [SPECIES[species][0]] * n),
        "anatEntityName": Column("str", [anat_name] * n),
        "stageName": Column("str", [stage_name] * n),
        "cellTypeName": Column("str", names),
        "libID": Column("str", cells.library),
        "unique_cell_ids": Column("str", [f"{b}_{s}" for b, s in zip(cells.barcodes, sample)]),
    }
    return Fixture(
        obs_names=[f"{b}_{lib}" for b, lib in zip(cells.barcodes, cells.library)],
        obs=obs,
        var_names=cells.gene_ids,
        var={},
        X=_csr_from_dense(cells.counts),
        expected=_expected(
            exp, species, cells, [t[0] for t in types], writer="W1", encoding="anndata 0.8+"
        ),
    )


def _bgee_library_columns(cells: Cells, species, tissue):
    n = len(cells.barcodes)
    anat_id, anat_name = TISSUES[tissue]
    return n, anat_id, anat_name, STAGES[species]


def w2_bgee15_2(exp, species, libraries, seed, types, tissue="blood") -> Fixture:
    """Bgee 15.2: barcodes, experiment_id, library_id, ..., layers['abundance'] (CPM)."""
    cells = simulate(seed, species, libraries, len(types), 48)
    n, anat_id, anat_name, (stage_id, stage_name) = _bgee_library_columns(cells, species, tissue)
    libs = [lib for lib, _ in libraries]
    names = [types[k][0] for k in cells.type_index]
    sexes = {lib: s for lib, s in zip(libs, ["female", "male", "mixed"])}
    stage_author = {lib: (None if i == 0 else "adult") for i, lib in enumerate(libs)}
    obs = {
        "barcodes": Column("str", cells.barcodes),
        "experiment_id": Column("str", [exp] * n),
        "library_id": Column("str", cells.library),
        "anatEntityId": Column("str", [anat_id] * n),
        "anatEntityName": Column("str", [anat_name] * n),
        "anatEntityAuthorAnnotation": Column("str", [f"{anat_name} sample"] * n),
        "stageId": Column("str", [stage_id] * n),
        "stageName": Column("str", [stage_name] * n),
        "stageAuthorAnnotation": Column("str", _per_library(cells, stage_author)),
        "cellTypeId": Column("str", [types[k][1] for k in cells.type_index]),
        "cellTypeName": Column("str", names),
        "cellTypeAuthorAnnotation": Column("str", [f"{t.split()[0]}_cluster" for t in names]),
        "strain": Column("str", [STRAINS[species]] * n),
        "sex": Column("str", _per_library(cells, sexes)),
        "speciesId": Column("int", [SPECIES[species][0]] * n),
        "rnaSeqSequencerName": Column("str", ["Illumina NovaSeq 6000"] * n),
        "libraryType": Column("str", ["paired"] * n),
        "cellCompartment": Column("str", ["cell"] * n),
    }
    return Fixture(
        obs_names=[f"{b}_{lib}" for b, lib in zip(cells.barcodes, cells.library)],
        obs=obs,
        var_names=cells.gene_ids,
        var={"gene_id": Column("str", cells.gene_ids)},
        X=_csr_from_dense(cells.counts),
        layers={"abundance": _csr_from_dense(cpm(cells.counts))},
        uns={
            "matrix_descriptions": {
                "X": "raw UMIs count",
                "layers": {"abundance": "Counts Per Million"},
            }
        },
        expected=_expected(
            exp, species, cells, [t[0] for t in types], writer="W2", encoding="anndata 0.8+"
        ),
    )


def _w3_obs(cells: Cells, species, tissue, types, *, library_column=True):
    n, anat_id, anat_name, (stage_id, stage_name) = _bgee_library_columns(cells, species, tissue)
    names = [types[k][0] for k in cells.type_index]
    obs = {
        "barcode": Column("str", cells.barcodes),
        "anatId": Column("str", [anat_id] * n),
        "cellTypeId": Column("str", [types[k][1] for k in cells.type_index]),
        "stageId": Column("str", [stage_id] * n),
        "strain": Column("str", [STRAINS[species]] * n),
        "sex": Column("str", ["not annotated"] * n),
        "speciesId": Column("int", [SPECIES[species][0]] * n),
        "rnaSeqLibraryId": Column("str", cells.library),
        "anatEntityName": Column("str", [anat_name] * n),
        "anatEntityAuthorAnnotation": Column("str", [anat_name] * n),
        "stageName": Column("str", [stage_name] * n),
        "stageAuthorAnnotation": Column("str", ["adult"] * n),
        "cellTypeName": Column("str", names),
        "cellTypeAuthorAnnotation": Column("str", [f"{t} (author)" for t in names]),
        "rnaSeqSequencerName": Column("str", ["Illumina HiSeq 4000"] * n),
        "cellCompartment": Column("str", ["cell"] * n),
        "libraryType": Column("str", ["paired"] * n),
    }
    if not library_column:
        del obs["rnaSeqLibraryId"]
    return obs


def w3_after15_2(exp, species, libraries, seed, types, tissue="liver") -> Fixture:
    """After 15.2: barcode, anatId, rnaSeqLibraryId; intergenic features kept; gzip."""
    cells = simulate(seed, species, libraries, len(types), 36, n_intergenic=6)
    return Fixture(
        obs_names=[f"{b}_{lib}" for b, lib in zip(cells.barcodes, cells.library)],
        obs=_w3_obs(cells, species, tissue, types),
        var_names=cells.gene_ids,
        var={"gene_id": Column("str", cells.gene_ids)},
        X=_csr_from_dense(cells.counts),
        compression="gzip",
        expected=_expected(
            exp,
            species,
            cells,
            [t[0] for t in types],
            writer="W3",
            encoding="anndata 0.8+",
            note="6 intergenic features (3 upstream_, 3 downstream_) with nonzero counts",
        ),
    )


SEX_TO_PATO = {
    "female": ("PATO:0000383", "female"),
    "male": ("PATO:0000384", "male"),
    "hermaphrodite": ("PATO:0001340", "hermaphrodite"),
    "not annotated": ("unknown", "unknown"),
    "mixed": ("unknown", "unknown"),
    "NA": ("unknown", "unknown"),
}


def w4_scfair(
    exp, species, libraries, seed, types, tissue="blood", gene_offset=0, title=None
) -> Fixture:
    """Newest writer (scFAIR schema): CELLxGENE-style names, bgeeSex, feature_* var columns,
    dataset fields in uns, intergenic removed, gzip."""
    cells = simulate(seed, species, libraries, len(types), 44, gene_offset=gene_offset)
    n, anat_id, anat_name, (stage_id, stage_name) = _bgee_library_columns(cells, species, tissue)
    libs = [lib for lib, _ in libraries]
    bgee_sex = _per_library(cells, {lib: s for lib, s in zip(libs, ["not annotated", "male"])})
    names = [types[k][0] for k in cells.type_index]
    human = species == "Homo_sapiens"
    ethnicity = "unknown" if human else "na"
    obs = {
        "barcode": Column("str", cells.barcodes),
        "tissue_ontology_term_id": Column("cat", [anat_id] * n),
        "development_stage_ontology_term_id": Column("cat", [stage_id] * n),
        "strain_or_genetic_background": Column("cat", [STRAINS[species]] * n),
        "sex": Column("cat", [SEX_TO_PATO[s][1] for s in bgee_sex]),
        "speciesId": Column("int", [SPECIES[species][0]] * n),
        "rnaSeqLibraryId": Column("str", cells.library),
        "tissue": Column("cat", [anat_name] * n),
        "anatEntityAuthorAnnotation": Column("str", [anat_name] * n),
        "development_stage": Column("cat", [stage_name] * n),
        "stageAuthorAnnotation": Column("str", ["adult"] * n),
        "cellTypeAuthorAnnotation": Column("str", [f"{t.split()[0]}_c" for t in names]),
        "rnaSeqSequencerName": Column("str", ["Illumina NovaSeq 6000"] * n),
        "libraryType": Column("str", ["paired"] * n),
        "physiologicalStatus": Column("cat", ["NA"] * n),
        "rnaSeqTechnologyName": Column("cat", ["10X Genomics V3"] * n),
        "sequencedTranscriptPart": Column("cat", ["3prime"] * n),
        "cell_type_ontology_term_id": Column("cat", [types[k][1] for k in cells.type_index]),
        "cell_type": Column("cat", names),
        "assay_ontology_term_id": Column("cat", ["EFO:0009922"] * n),
        "assay": Column("cat", ["10x 3' v3"] * n),
        "bgeeSex": Column("cat", bgee_sex),
        "sex_ontology_term_id": Column("cat", [SEX_TO_PATO[s][0] for s in bgee_sex]),
        "suspension_type": Column("cat", ["cell"] * n),
        "donor_id": Column("str", cells.library),
        "experiment_id": Column("str", [exp] * n),
        "tissue_type": Column("cat", ["tissue"] * n),
        "disease_ontology_term_id": Column("cat", ["PATO:0000461"] * n),
        "disease": Column("cat", ["normal"] * n),
        "self_reported_ethnicity_ontology_term_id": Column("cat", [ethnicity] * n),
        "self_reported_ethnicity": Column("cat", [ethnicity] * n),
        "is_primary_data": Column("bool", [True] * n),
    }
    n_genes = len(cells.gene_ids)
    symbol = (lambda i: f"RWG{i + 1}") if human else (lambda i: f"Rwg{i + 1}")
    taxon = SPECIES[species][0]
    organism = species.replace("_", " ")
    var = {
        "feature_name": Column("str", [symbol(gene_offset + i) for i in range(n_genes)]),
        "feature_type": Column("cat", ["protein_coding"] * (n_genes - 2) + ["lncRNA"] * 2),
        "feature_chromosome": Column("cat", [str(1 + i % 3) for i in range(n_genes)]),
        "feature_length": Column("int", [900 + 37 * i for i in range(n_genes)]),
        "feature_biotype": Column("cat", ["gene"] * n_genes),
        "feature_reference": Column("cat", [f"NCBITaxon:{taxon}"] * n_genes),
        "feature_is_filtered": Column("bool", [False] * n_genes),
    }
    uns = {
        "schema_version": "7.1.0+scfair1.0",
        "schema_reference": "https://github.com/scFAIR/scFAIR/edit/main/schema/7.1.0/schema.md",
        "organism_ontology_term_id": f"NCBITaxon:{taxon}",
        "organism": organism,
        "ensembl_release": "112",
        "ensembl_database": "Ensembl",
        "ensembl_assembly": {"Homo_sapiens": "GRCh38", "Mus_musculus": "GRCm39"}.get(
            species, "GRCz11"
        ),
        "title": f"{title or exp} - {organism} (droplet-based, {exp})",
        "citation": "https://doi.org/10.0000/refinewidgets.fixture",
        "batch_condition": ["rnaSeqLibraryId"],
    }
    return Fixture(
        obs_names=[f"{b}_{lib}" for b, lib in zip(cells.barcodes, cells.library)],
        obs=obs,
        var_names=cells.gene_ids,
        var=var,
        X=_csr_from_dense(cells.counts),
        uns=uns,
        compression="gzip",
        expected=_expected(
            exp,
            species,
            cells,
            [t[0] for t in types],
            writer="W4",
            encoding="anndata 0.8+",
            note="sex 'unknown' where bgeeSex is 'not annotated'; gene symbols RWG<n>/Rwg<n>",
        ),
    )


def full_length_15_2(exp, species, n_cells, seed, types, tissue="spleen") -> Fixture:
    """Full-length writer of the 15.2 era: one row per library (= cell), read counts in X,
    TPM in layers['abundance'], obs index = Bgee annotated-sample id, uncompressed."""
    libraries = [(f"SRX{5_000_500 + i}", 1) for i in range(n_cells)]
    cells = simulate(seed, species, libraries, len(types), 30, fractional=False, full_length=True)
    n, anat_id, anat_name, (stage_id, stage_name) = _bgee_library_columns(cells, species, tissue)
    names = [types[k][0] for k in cells.type_index]
    sample_ids = [str(880_001 + i) for i in range(n)]
    obs = {
        "library_id": Column("str", cells.library),
        "experiment_id": Column("str", [exp] * n),
        "anatEntityId": Column("str", [anat_id] * n),
        "anatEntityName": Column("str", [anat_name] * n),
        "anatEntityAuthorAnnotation": Column("str", [anat_name] * n),
        "stageId": Column("str", [stage_id] * n),
        "stageName": Column("str", [stage_name] * n),
        "stageAuthorAnnotation": Column("str", ["8 weeks"] * n),
        "cellTypeId": Column("str", [types[k][1] for k in cells.type_index]),
        "cellTypeName": Column("str", names),
        "cellTypeAuthorAnnotation": Column("str", names),
        "strain": Column("str", [STRAINS[species]] * n),
        "sex": Column("str", ["female"] * n),
        "speciesId": Column("int", [SPECIES[species][0]] * n),
        "rnaSeqSequencerName": Column("str", ["Illumina HiSeq 2500"] * n),
        "libraryType": Column("str", ["paired"] * n),
        "cellCompartment": Column("str", ["cell"] * n),
    }
    return Fixture(
        obs_names=sample_ids,
        obs=obs,
        var_names=cells.gene_ids,
        var={"gene_id": Column("str", cells.gene_ids)},
        X=_csr_from_dense(cells.counts),
        layers={"abundance": _csr_from_dense(cpm(cells.counts))},
        uns={
            "matrix_descriptions": {
                "X": "Raw read counts",
                "layers": {"abundance": "Transcripts Per Million"},
            }
        },
        expected=_expected(
            exp,
            species,
            cells,
            [t[0] for t in types],
            writer="full-length (15.2 era)",
            encoding="anndata 0.8+",
            note="one row per library (Smart-seq2-like), integer read counts, obs index is "
            "Bgee's annotated-sample id, not <barcode>_<library>",
        ),
    )


# --------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------


def _categorical(values: list) -> tuple[list[str], np.ndarray]:
    """pandas-like: sorted categories, int8 codes (-1 for missing)."""
    cats = sorted({v for v in values if v is not None})
    lookup = {c: i for i, c in enumerate(cats)}
    dtype = np.int8 if len(cats) < 128 else np.int16
    codes = np.array([-1 if v is None else lookup[v] for v in values], dtype=dtype)
    return cats, codes


def _is_categorical(col: Column) -> bool:
    if col.kind == "cat":
        return True
    if col.kind == "str":
        return len({v for v in col.values}) < len(col.values)
    return False


def _numeric(col: Column) -> np.ndarray:
    dtype = {"int": np.int64, "bool": np.bool_, "float": np.float64}[col.kind]
    return np.asarray(col.values, dtype=dtype)


class ModernWriter:
    """anndata >= 0.8 encoding (encoding-type/encoding-version on every element).

    fixed_attrs=True stores every string attribute as a fixed-length byte string (as the
    R and Julia writers do) instead of a variable-length UTF-8 string."""

    def __init__(self, fixed_attrs: bool = False):
        self.fixed_attrs = fixed_attrs

    def attr(self, obj, name, value):
        if isinstance(value, str):
            if self.fixed_attrs:
                obj.attrs.create(name, np.bytes_(value.encode()))
            else:
                obj.attrs[name] = value
        elif isinstance(value, list):  # list of strings (column-order)
            if not value:
                obj.attrs[name] = np.array([], dtype=np.float64)
            elif self.fixed_attrs:
                width = max(len(v.encode()) for v in value)
                obj.attrs.create(name, np.array([v.encode() for v in value], dtype=f"S{width}"))
            else:
                obj.attrs.create(name, np.array(value, dtype=object), dtype=STR)
        else:
            obj.attrs[name] = value

    def enc(self, obj, kind, version):
        self.attr(obj, "encoding-type", kind)
        self.attr(obj, "encoding-version", version)

    def dataset(self, group, name, data, kind, compression):
        kwargs = {"compression": compression} if compression else {}
        if kind == "string-array":
            ds = group.create_dataset(name, data=np.array(data, dtype=object), dtype=STR, **kwargs)
        else:
            ds = group.create_dataset(name, data=data, **kwargs)
        self.enc(ds, kind, "0.2.0")
        return ds

    def csr(self, parent, name, m: Csr, compression):
        g = parent.create_group(name)
        self.enc(g, "csr_matrix", "0.1.0")
        g.attrs["shape"] = np.array(m.shape, dtype=np.int64)
        kwargs = {"compression": compression} if compression else {}
        g.create_dataset("data", data=m.data, **kwargs)
        g.create_dataset("indices", data=m.indices, **kwargs)
        g.create_dataset("indptr", data=m.indptr, **kwargs)

    def dataframe(self, parent, name, index, columns: dict[str, Column], compression):
        g = parent.create_group(name)
        self.attr(g, "_index", "_index")
        self.attr(g, "column-order", list(columns))
        self.enc(g, "dataframe", "0.2.0")
        self.dataset(g, "_index", index, "string-array", compression)
        for key, col in columns.items():
            if _is_categorical(col):
                cats, codes = _categorical(col.values)
                cg = g.create_group(key)
                self.enc(cg, "categorical", "0.2.0")
                cg.attrs["ordered"] = np.bool_(False)
                self.dataset(cg, "categories", cats, "string-array", compression)
                self.dataset(cg, "codes", codes, "array", compression)
            elif col.kind == "str":
                self.dataset(g, key, col.values, "string-array", compression)
            else:
                self.dataset(g, key, _numeric(col), "array", compression)

    def mapping(self, parent, name, value: dict, compression):
        g = parent.create_group(name)
        self.enc(g, "dict", "0.1.0")
        for key, item in value.items():
            if isinstance(item, dict):
                self.mapping(g, key, item, compression)
            elif isinstance(item, str):
                ds = g.create_dataset(key, data=item, dtype=STR)
                self.enc(ds, "string", "0.2.0")
            elif isinstance(item, list):
                self.dataset(g, key, item, "string-array", compression)
            else:
                raise TypeError(f"uns value {item!r}")

    def write(self, path: Path, fx: Fixture):
        c = fx.compression
        # A gzip-filtered dataset is chunked; with HDF5's default ("earliest") file format each
        # gets a 2-4 KB v1 B-tree, which makes a ~90-column scFAIR file 280 KB. HDF5 1.10's
        # format stores a one-chunk dataset without a B-tree: same groups, datasets, attributes
        # and filters (what anndata and the reader see), a quarter of the size.
        libver = ("v110", "v110") if c else None
        with h5py.File(path, "w", libver=libver) as f:
            self.enc(f, "anndata", "0.1.0")
            self.csr(f, "X", fx.X, c)
            layers = f.create_group("layers")
            self.enc(layers, "dict", "0.1.0")
            for key, m in fx.layers.items():
                self.csr(layers, key, m, c)
            self.dataframe(f, "obs", fx.obs_names, fx.obs, c)
            self.dataframe(f, "var", fx.var_names, fx.var, c)
            for key in ("obsm", "obsp", "varm", "varp"):
                self.enc(f.create_group(key), "dict", "0.1.0")
            self.mapping(f, "uns", fx.uns, c)


def write_v07(path: Path, fx: Fixture):
    """anndata 0.7: dataframe 0.1.0 groups; categoricals as integer codes whose attribute
    ``categories`` is an object reference to ``<df>/__categories/<col>``; uns and layers
    as plain groups without encoding attributes."""

    def dataframe(parent, name, index, columns):
        g = parent.create_group(name)
        g.attrs["_index"] = "_index"
        g.attrs.create("column-order", np.array(list(columns), dtype=object), dtype=STR)
        g.attrs["encoding-type"] = "dataframe"
        g.attrs["encoding-version"] = "0.1.0"
        g.create_dataset("_index", data=np.array(index, dtype=object), dtype=STR)
        cat_group = None
        for key, col in columns.items():
            if _is_categorical(col):
                cats, codes = _categorical(col.values)
                if cat_group is None:
                    cat_group = g.create_group("__categories")
                cds = cat_group.create_dataset(key, data=np.array(cats, dtype=object), dtype=STR)
                cds.attrs["ordered"] = np.bool_(False)
                ds = g.create_dataset(key, data=codes)
                ds.attrs.create("categories", cds.ref, dtype=h5py.ref_dtype)
            elif col.kind == "str":
                g.create_dataset(key, data=np.array(col.values, dtype=object), dtype=STR)
            else:
                g.create_dataset(key, data=_numeric(col))

    def csr(parent, name, m: Csr):
        g = parent.create_group(name)
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array(m.shape, dtype=np.int64)
        g.create_dataset("data", data=m.data)
        g.create_dataset("indices", data=m.indices)
        g.create_dataset("indptr", data=m.indptr)

    def mapping(parent, name, value):
        g = parent.create_group(name)
        for key, item in value.items():
            if isinstance(item, dict):
                mapping(g, key, item)
            else:
                g.create_dataset(key, data=item, dtype=STR)

    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        csr(f, "X", fx.X)
        layers = f.create_group("layers")
        for key, m in fx.layers.items():
            csr(layers, key, m)
        dataframe(f, "obs", fx.obs_names, fx.obs)
        dataframe(f, "var", fx.var_names, fx.var)
        for key in ("obsm", "varm"):
            f.create_group(key)
        mapping(f, "uns", fx.uns)


def write_v06(path: Path, fx: Fixture):
    """anndata 0.6: obs/var as compound datasets (first field ``index``), fixed-length byte
    strings, categoricals as integer codes with their categories in ``uns['<col>_categories']``,
    X as a group with ``h5sparse_format``/``h5sparse_shape`` attributes; no encoding attrs."""

    def compound(parent, name, index, columns, uns_out):
        fields = [("index", np.array([s.encode() for s in index]))]
        for key, col in columns.items():
            if _is_categorical(col):
                cats, codes = _categorical(col.values)
                fields.append((key, codes))
                uns_out[f"{key}_categories"] = np.array([c.encode() for c in cats])
            elif col.kind == "str":
                fields.append((key, np.array([s.encode() for s in col.values])))
            else:
                fields.append((key, _numeric(col)))
        dtype = np.dtype([(k, v.dtype) for k, v in fields])
        rec = np.empty(len(index), dtype=dtype)
        for k, v in fields:
            rec[k] = v
        parent.create_dataset(name, data=rec)

    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["h5sparse_format"] = "csr"
        g.attrs["h5sparse_shape"] = np.array(fx.X.shape, dtype=np.int64)
        g.create_dataset("data", data=fx.X.data)
        g.create_dataset("indices", data=fx.X.indices)
        g.create_dataset("indptr", data=fx.X.indptr)
        categories: dict[str, np.ndarray] = {}
        compound(f, "obs", fx.obs_names, fx.obs, categories)
        compound(f, "var", fx.var_names, fx.var, categories)
        uns = f.create_group("uns")
        for key, value in categories.items():
            uns.create_dataset(key, data=value)


# --------------------------------------------------------------------------------------
# Tarballs (deterministic)
# --------------------------------------------------------------------------------------


def _tarinfo(name, size=0, type_=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = type_
    info.linkname = linkname
    info.mtime = TAR_MTIME
    info.uid = info.gid = 1000
    info.uname = info.gname = "bgee"
    info.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
    return info


def write_tar_gz(path: Path, members: list[tuple[str, bytes | None, str]]):
    """members: (name, content, kind) with kind 'file', 'dir' or 'symlink' (content = target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, content, kind in members:
            if kind == "dir":
                tar.addfile(_tarinfo(name, type_=tarfile.DIRTYPE))
            elif kind == "symlink":
                tar.addfile(_tarinfo(name, type_=tarfile.SYMTYPE, linkname=content.decode()))
            else:
                tar.addfile(_tarinfo(name, len(content)), io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    path.write_bytes(out.getvalue())


def obs_tsv(fx: Fixture) -> bytes:
    """The ``.tsv`` companion Bgee writes beside each H5AD (adata.obs.to_csv, tab separated)."""
    lines = ["\t".join([""] + list(fx.obs))]
    for i, name in enumerate(fx.obs_names):
        row = [name]
        for col in fx.obs.values():
            v = col.values[i]
            row.append("" if v is None else str(v))
        lines.append("\t".join(row))
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------------------
# The fixture set
# --------------------------------------------------------------------------------------


def build(out: Path) -> dict[str, dict]:
    """Write every fixture under ``out``; return {relative path: expected reading}."""
    for sub in ("duplicates", "two_species", "full_length", "tarball", "bad"):
        if (out / sub).is_dir():  # only the folders this script writes
            shutil.rmtree(out / sub)
    for old in out.glob("*.h5ad") if out.is_dir() else []:
        old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    modern = ModernWriter()
    expected: dict[str, dict] = {}

    def put(rel: str, fx: Fixture, writer=modern.write, encoding=None):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path, fx)
        info = dict(fx.expected)
        if encoding:
            info["encoding"] = encoding
        info["bytes"] = path.stat().st_size
        expected[rel] = info
        return path

    # 1. W1, Bgee 15.1
    put(
        "Mus_musculus_SC_RNA-Seq_read_counts_CPM_SRP200614.h5ad",
        w1_bgee15_1(
            "SRP200614",
            "Mus_musculus",
            [("SRX6088001", 30), ("SRX6088002", 26), ("SRX6088003", 24)],
            101,
            BLOOD_TYPES[:3],
        ),
    )
    # 2. W2, Bgee 15.2
    w2 = w2_bgee15_2(
        "ERP132576", "Homo_sapiens", [("ERX9000101", 50), ("ERX9000102", 40)], 102, BLOOD_TYPES
    )
    put("Homo_sapiens_ERP132576_droplet_based.h5ad", w2)
    # 3. W3, after 15.2
    put(
        "Danio_rerio_SRP300001_droplet_based.h5ad",
        w3_after15_2(
            "SRP300001",
            "Danio_rerio",
            [("SRX10000011", 20), ("SRX10000012", 22), ("SRX10000013", 18)],
            103,
            LIVER_TYPES,
        ),
    )
    # 4. W4, newest (scFAIR)
    put(
        "Homo_sapiens_ERP400001_droplet_based.h5ad",
        w4_scfair(
            "ERP400001",
            "Homo_sapiens",
            [("ERX4000011", 36), ("ERX4000012", 30)],
            104,
            BLOOD_TYPES[:3],
        ),
    )
    # 5. old encodings of W2-like files
    put(
        "Homo_sapiens_ERP700007_droplet_based.h5ad",
        w2_bgee15_2(
            "ERP700007", "Homo_sapiens", [("ERX7000071", 34), ("ERX7000072", 30)], 107, BLOOD_TYPES
        ),
        write_v07,
        "anndata 0.7 (dataframe 0.1.0, categorical codes + categories reference)",
    )
    fx06 = w2_bgee15_2(
        "SRP600006", "Mus_musculus", [("SRX6000061", 28), ("SRX6000062", 24)], 106, BLOOD_TYPES[:3]
    )
    fx06.layers, fx06.uns = {}, {}
    put(
        "Mus_musculus_SRP600006_droplet_based.h5ad",
        fx06,
        write_v06,
        "anndata 0.6 (compound obs/var, uns <col>_categories, h5sparse X)",
    )
    put(
        "Mus_musculus_SRP800008_droplet_based.h5ad",
        w2_bgee15_2(
            "SRP800008",
            "Mus_musculus",
            [("SRX8000081", 26), ("SRX8000082", 22), ("SRX8000083", 20)],
            108,
            BLOOD_TYPES[:3],
        ),
        ModernWriter(fixed_attrs=True).write,
        "anndata 0.8+ layout, fixed-length byte-string attributes (R/Julia writers)",
    )
    # 6a. duplicates: the BgeeDB copy of file 2 (15.2) and the 15.1 file of the same experiment
    put("duplicates/ERP132576_sc_droplet_based.h5ad", w2)
    expected["duplicates/ERP132576_sc_droplet_based.h5ad"]["note"] = (
        "byte copy of Homo_sapiens_ERP132576_droplet_based.h5ad (Bgee 15.2) saved by BgeeDB"
    )
    w1_dup = w1_bgee15_1(
        "ERP132576",
        "Homo_sapiens",
        [("ERX9000101", 38), ("ERX9000102", 32)],
        105,
        BLOOD_TYPES,
        tissue="blood",
    )
    w1_dup.expected["note"] = "Bgee 15.1 release of ERP132576 (older; 70 cells, not 90)"
    put("duplicates/Homo_sapiens_SC_RNA-Seq_read_counts_CPM_ERP132576.h5ad", w1_dup)
    # 6b. one experiment, two species: two files, disjoint genes
    put(
        "two_species/Homo_sapiens_ERP900009_droplet_based.h5ad",
        w4_scfair(
            "ERP900009", "Homo_sapiens", [("ERX9000091", 24), ("ERX9000092", 22)], 109, BLOOD_TYPES
        ),
    )
    put(
        "two_species/Mus_musculus_ERP900009_droplet_based.h5ad",
        w4_scfair(
            "ERP900009",
            "Mus_musculus",
            [("ERX9000093", 30), ("ERX9000094", 20)],
            110,
            BLOOD_TYPES[:3],
            tissue="spleen",
        ),
    )
    # 6c. full-length
    put(
        "full_length/Mus_musculus_SRP500005_full_length.h5ad",
        full_length_15_2("SRP500005", "Mus_musculus", 24, 111, BLOOD_TYPES[:3]),
    )
    # 6d. species tarball: two 15.2 (W2) experiments plus their .tsv companions
    tar_members: list[tuple[str, bytes | None, str]] = [("Danio_rerio", None, "dir")]
    tar_expected = {}
    for exp, libs, seed in (
        ("SRP310001", [("SRX11000011", 26), ("SRX11000012", 22)], 112),
        ("SRP310002", [("SRX11000021", 30), ("SRX11000022", 18), ("SRX11000023", 16)], 113),
    ):
        fx = w2_bgee15_2(exp, "Danio_rerio", libs, seed, LIVER_TYPES, tissue="liver")
        name = f"Danio_rerio_{exp}_droplet_based"
        tmp = out / f".{name}.h5ad.tmp"
        modern.write(tmp, fx)
        tar_members.append((f"Danio_rerio/{name}.h5ad", tmp.read_bytes(), "file"))
        tar_members.append((f"Danio_rerio/{name}.tsv", obs_tsv(fx), "file"))
        tmp.unlink()
        tar_expected[f"Danio_rerio/{name}.h5ad"] = fx.expected
    tarball = out / "tarball" / "Danio_rerio_droplet_based_h5ad.tar.gz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    write_tar_gz(tarball, tar_members)
    for member, info in tar_expected.items():
        expected[f"tarball/Danio_rerio_droplet_based_h5ad.tar.gz!{member}"] = info

    # 7. bad input
    good_member = tar_members[1]
    bad_tars = {
        "truncated_tarball": None,
        "escape_tarball": [good_member, ("../escape.h5ad", good_member[1], "file")],
        "absolute_tarball": [good_member, ("/tmp/refinewidgets_absolute.h5ad", b"x", "file")],
        "symlink_tarball": [
            good_member,
            (
                "Danio_rerio/Danio_rerio_SRP310009_droplet_based.h5ad",
                b"../../../etc/passwd",
                "symlink",
            ),
        ],
    }
    for folder, members in bad_tars.items():
        path = out / "bad" / folder / "Danio_rerio_droplet_based_h5ad.tar.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        if members is None:
            data = tarball.read_bytes()
            path.write_bytes(data[: len(data) * 3 // 5])
        else:
            write_tar_gz(path, [("Danio_rerio", None, "dir")] + members)

    def bad_w2(exp, seed):
        return w2_bgee15_2(
            exp, "Homo_sapiens", [("ERX9900011", 24), ("ERX9900012", 20)], seed, BLOOD_TYPES[:3]
        )

    fx = bad_w2("ERP990001", 121)
    fx.X.indices = fx.X.indices.copy()
    fx.X.indices[[5, 17]] = [fx.X.shape[1] + 3, fx.X.shape[1] + 1000]  # past the last gene
    modern_path = out / "bad" / "out_of_range_indices" / "Homo_sapiens_ERP990001_droplet_based.h5ad"
    modern_path.parent.mkdir(parents=True, exist_ok=True)
    modern.write(modern_path, fx)

    fx = bad_w2("ERP990002", 122)
    fx.X.indptr = fx.X.indptr.copy()
    fx.X.indptr[10] = fx.X.indptr[9] - 4  # row 9 has negative length
    path = out / "bad" / "broken_indptr" / "Homo_sapiens_ERP990002_droplet_based.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    modern.write(path, fx)

    cells = simulate(123, "Homo_sapiens", [("ERX9900031", 22), ("ERX9900032", 20)], 3, 36)
    fx = Fixture(
        # plain barcodes (suffix -1/-2 per library, as Cell Ranger aggregation does), so no
        # library can be inferred from the obs names either
        obs_names=[
            f"{b}-{1 + (lib == 'ERX9900032')}" for b, lib in zip(cells.barcodes, cells.library)
        ],
        obs=_w3_obs(cells, "Homo_sapiens", "blood", BLOOD_TYPES[:3], library_column=False),
        var_names=cells.gene_ids,
        var={"gene_id": Column("str", cells.gene_ids)},
        X=_csr_from_dense(cells.counts),
        compression="gzip",
    )
    path = out / "bad" / "no_library_column" / "Homo_sapiens_ERP990003_droplet_based.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    modern.write(path, fx)

    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    expected = build(args.out)
    for rel, info in expected.items():
        size = info.get("bytes", "")
        print(f"{rel}: {info['n_obs']} x {info['n_vars']} {size}")


if __name__ == "__main__":
    main()
