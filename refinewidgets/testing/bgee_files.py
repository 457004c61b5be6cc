"""Seeded synthetic Bgee droplet H5AD files, in each layout Bgee's writer has used.

The variants model the column sets listed in ``shared/spec/bgee-h5ad.md``. Which Bgee release
wrote which set is our reconstruction (the spec lists the sets, not their releases):

``bgee15_0``
    The columns Bgee documents for its first published files: ``barcodes, SampleId,
    anatEntityId, stageId, cellTypeId, strain, sex, speciesId, anatEntityName, stageName,
    cellTypeName, libID, unique_cell_ids`` plus a ``cellTypeAuthorAnnotation``. ``SampleId``
    holds the submitter's sample names (not the library: that is ``libID``); no experiment
    column; sex ``male``/``female``/``not annotated``/``NA``.
``bgee15_1``
    ``barcode, library_id, experiment_id, anatId, anatEntityName, stageId, stageName,
    cellTypeId, cellTypeName, strain, sex, speciesId`` and, by default, ``layers['abundance']``
    (CPM) described by ``uns['matrix_descriptions']``.
``bgee15_2``
    ``barcode, rnaSeqLibraryId, experiment_id, anatEntityId, anatEntityName, stageId,
    stageName, cellTypeId, cellTypeName, strain, sex, speciesId``.
``newest``
    CELLxGENE-like names: ``barcode, library_id, experiment_id, tissue_ontology_term_id,
    tissue, development_stage_ontology_term_id, development_stage, cell_type_ontology_term_id,
    cell_type, strain_or_genetic_background, sex`` (``unknown`` where not annotated), no
    ``speciesId`` but ``uns['organism']`` and scFAIR-like ``uns`` fields, ``var['feature_name']``.

Every variant: ``X`` float32 CSR UMI counts (about 5% fractional, like bustools ``--em``),
each cell type with a block of marker genes detected more often and with higher counts;
obs names ``<barcode>_<library>`` with barcodes unique per library only (some repeat across
libraries); Ensembl-style gene ids of the organism.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import OutputExistsError
from ..io.anndata_elems import write_elem
from ..io.bgee.h5ad import ORGANISM_BY_TAXON

__all__ = ["VARIANTS", "write_bgee_h5ad"]

VARIANTS = ("bgee15_0", "bgee15_1", "bgee15_2", "newest")
# unified concept -> obs column name, per variant (None: the variant has no such column)
_NAMES = {
    "bgee15_0": dict(
        barcode="barcodes",
        library="libID",
        sample="SampleId",
        experiment=None,
        tissue_id="anatEntityId",
        tissue="anatEntityName",
        stage_id="stageId",
        stage="stageName",
        cell_type_id="cellTypeId",
        cell_type="cellTypeName",
        strain="strain",
        taxon="speciesId",
        unique="unique_cell_ids",
        author="cellTypeAuthorAnnotation",
    ),
    "bgee15_1": dict(
        barcode="barcode",
        library="library_id",
        experiment="experiment_id",
        tissue_id="anatId",
        tissue="anatEntityName",
        stage_id="stageId",
        stage="stageName",
        cell_type_id="cellTypeId",
        cell_type="cellTypeName",
        strain="strain",
        taxon="speciesId",
        author="cellTypeAuthorAnnotation",
    ),
    "bgee15_2": dict(
        barcode="barcode",
        library="rnaSeqLibraryId",
        experiment="experiment_id",
        tissue_id="anatEntityId",
        tissue="anatEntityName",
        stage_id="stageId",
        stage="stageName",
        cell_type_id="cellTypeId",
        cell_type="cellTypeName",
        strain="strain",
        taxon="speciesId",
    ),
    "newest": dict(
        barcode="barcode",
        library="library_id",
        experiment="experiment_id",
        tissue_id="tissue_ontology_term_id",
        tissue="tissue",
        stage_id="development_stage_ontology_term_id",
        stage="development_stage",
        cell_type_id="cell_type_ontology_term_id",
        cell_type="cell_type",
        strain="strain_or_genetic_background",
    ),
}
_SEXES = {
    "newest": ("male", "female", "unknown"),
    "default": ("male", "female", "not annotated", "NA", "mixed"),
}
_CELL_TYPE_IDS = {
    "B cell": "CL:0000236",
    "T cell": "CL:0000084",
    "monocyte": "CL:0000576",
    "natural killer cell": "CL:0000623",
    "neuron": "CL:0000540",
    "hepatocyte": "CL:0000182",
    "epithelial cell": "CL:0000066",
    # descendants (Cell Ontology), for tests of ontology-aware filters
    "CD4-positive, alpha-beta T cell": "CL:0000624",
    "regulatory T cell": "CL:0000815",
    "naive B cell": "CL:0000788",
    # Bgee's older writers' placeholder for cells without a cell type: the root term of GO's
    # cellular component branch
    "cellular_component": "GO:0005575",
}
_TISSUES = [
    ("UBERON:0000178", "blood"),
    ("UBERON:0002106", "spleen"),
    ("UBERON:0002371", "bone marrow"),
    ("UBERON:0002107", "liver"),
]
_GENE_PREFIX = {
    "HOMO_SAPIENS": ("ENSG", 11),
    "MUS_MUSCULUS": ("ENSMUSG", 11),
    "DANIO_RERIO": ("ENSDARG", 11),
    "RATTUS_NORVEGICUS": ("ENSRNOG", 11),
    "DROSOPHILA_MELANOGASTER": ("FBgn", 7),
    "CAENORHABDITIS_ELEGANS": ("WBGene", 8),
}
_TAXON_BY_ORGANISM = {name: taxon for taxon, name in ORGANISM_BY_TAXON.items()}
_ROWS_PER_CHUNK = 1024


def _barcodes(rng, n_per_library) -> list[np.ndarray]:
    """16-mer barcodes unique within each library; about 5% reused from the previous one."""
    result, previous = [], np.empty(0, dtype=np.int64)
    for n in n_per_library:
        codes = np.unique(rng.integers(0, 4**16, size=n + 16, dtype=np.int64))
        while codes.size < n:  # duplicates are rare; top up
            codes = np.unique(np.concatenate([codes, rng.integers(0, 4**16, size=n)]))
        codes = rng.permutation(codes)[:n]
        shared = min(previous.size, n // 20)
        if shared:
            codes[:shared] = previous[:shared]
            codes = np.unique(codes)
            while codes.size < n:
                codes = np.unique(np.concatenate([codes, rng.integers(0, 4**16, size=1)]))
        previous = codes
        digits = (codes[:, None] >> (2 * np.arange(15, -1, -1))) & 3
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)[digits]
        result.append(letters.view("S16").ravel().astype(str))
    return result


def _obs(rng, variant, experiment, organism, n_cells, n_libraries, cell_types) -> pd.DataFrame:
    names = _NAMES[variant]
    sizes = rng.multinomial(n_cells - n_libraries, np.full(n_libraries, 1 / n_libraries)) + 1
    prefix = "ERX" if experiment.startswith("E") else "SRX"
    numbers = np.sort(rng.choice(np.arange(1_000_000, 9_000_000), n_libraries, replace=False))
    libs = [f"{prefix}{number}" for number in numbers]
    sexes = _SEXES["newest" if variant == "newest" else "default"]
    stage = {
        "HOMO_SAPIENS": ("HsapDv:0000087", "human adult stage"),
        "MUS_MUSCULUS": ("MmusDv:0000110", "mature stage"),
    }.get(organism, ("UBERON:0000113", "post-juvenile adult stage"))
    strain = {"MUS_MUSCULUS": "C57BL/6J"}.get(organism, "wild-type")
    columns = {key: [] for key in ("barcode", "library", "sample", "tissue_id", "tissue", "sex")}
    type_codes = []
    for i, (lib, barcodes) in enumerate(zip(libs, _barcodes(rng, sizes))):
        n = barcodes.size
        weights = rng.dirichlet(np.full(len(cell_types), 2.0))
        type_codes.append(rng.choice(len(cell_types), size=n, p=weights))
        columns["barcode"].append(barcodes)
        columns["library"].append(np.full(n, lib, dtype=object))
        columns["sample"].append(np.full(n, f"{experiment}_sample{i + 1}", dtype=object))
        columns["tissue_id"].append(np.full(n, _TISSUES[i % len(_TISSUES)][0], dtype=object))
        columns["tissue"].append(np.full(n, _TISSUES[i % len(_TISSUES)][1], dtype=object))
        columns["sex"].append(np.full(n, sexes[i % len(sexes)], dtype=object))
    values = {key: np.concatenate(parts) for key, parts in columns.items()}
    codes = np.concatenate(type_codes)
    type_names = np.asarray(cell_types, dtype=object)
    type_ids = np.asarray(
        [_CELL_TYPE_IDS.get(t, f"CL:{9000000 + k:07d}") for k, t in enumerate(cell_types)],
        dtype=object,
    )
    values.update(
        cell_type=type_names[codes],
        cell_type_id=type_ids[codes],
        stage_id=np.full(n_cells, stage[0], dtype=object),
        stage=np.full(n_cells, stage[1], dtype=object),
        strain=np.full(n_cells, strain, dtype=object),
        experiment=np.full(n_cells, experiment, dtype=object),
        taxon=np.full(n_cells, _TAXON_BY_ORGANISM.get(organism, 0), dtype=np.int64),
        author=np.asarray([f"{t} (author)" for t in cell_types], dtype=object)[codes],
    )
    values["unique"] = (
        np.char.add(values["barcode"].astype(str), "_").astype(object) + values["library"]
    )
    index = pd.Index(values["unique"].astype(str))
    obs = pd.DataFrame(index=index)
    order = [
        "barcode",
        "sample",
        "tissue_id",
        "stage_id",
        "cell_type_id",
        "strain",
        "sex",
        "taxon",
        "tissue",
        "stage",
        "cell_type",
        "library",
        "experiment",
        "unique",
        "author",
    ]
    for key in order:
        column = "sex" if key == "sex" else names.get(key)
        if column is None:
            continue
        value = values[key]
        obs[column] = value if key in ("barcode", "unique", "taxon") else pd.Categorical(value)
    obs.attrs["cell_type_codes"] = codes
    return obs


def _gene_ids(rng, organism, n_genes, intergenic) -> np.ndarray:
    prefix, width = _GENE_PREFIX.get(organism, ("GENE", 8))
    numbers = np.sort(rng.choice(10 ** min(width, 7), size=n_genes, replace=False))
    ids = np.asarray([f"{prefix}{number:0{width}d}" for number in numbers], dtype=object)
    if intergenic:
        n = max(1, n_genes // 10)
        ids[-n:] = [f"{side}_{gene}" for side, gene in zip(["upstream", "downstream"] * n, ids[:n])]
    return ids


def _sparse_rows(rng, type_codes, n_genes, density, markers, baseline):
    """One chunk of CSR rows: independent detection per gene (geometric gaps, vectorized)."""
    n_rows, n_types = type_codes.size, markers.shape[0]
    p_base = min(max(density, 1e-6), 1.0)
    p_marker = max(p_base, 0.8)
    # gene regions: [gap, marker block of type 0, gap, marker block of type 1, ..., tail]
    edges = np.unique(np.concatenate([[0, n_genes], markers.ravel(), markers.ravel() + 1]))
    cols_parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        owner = np.flatnonzero((markers[:, 0] <= lo) & (lo < markers[:, 1] + 1)) if n_types else []
        p = np.full(n_rows, p_base)
        if len(owner):
            p[type_codes == owner[0]] = p_marker
        width = hi - lo
        k = int(width * p.max() + 6 * np.sqrt(width * p.max()) + 8)
        k = min(k, width)
        gaps = rng.geometric(p[:, None], size=(n_rows, k))
        pos = np.cumsum(gaps, axis=1) - 1 + lo
        cols_parts.append(np.where(pos < hi, pos, -1))
    cols = np.concatenate(cols_parts, axis=1)
    keep = cols >= 0
    lengths = keep.sum(axis=1)
    row_of = np.repeat(np.arange(n_rows), lengths)
    indices = cols[keep].astype(np.int32)
    marker_hit = (
        ((markers[type_codes[row_of], 0] <= indices) & (indices <= markers[type_codes[row_of], 1]))
        if n_types
        else False
    )
    scale = rng.lognormal(0.0, 0.3, size=n_rows)[row_of]
    mean = baseline[indices] * scale + np.where(marker_hit, 6.0, 0.0)
    data = (1 + rng.poisson(mean)).astype(np.float32)
    fractional = rng.random(data.size) < 0.05
    data[fractional] -= rng.choice(np.float32([0.5, 0.25, 1 / 3, 2 / 3]), fractional.sum())
    return data, indices, lengths


def write_bgee_h5ad(
    path,
    *,
    variant="bgee15_0",
    experiment="ERP000001",
    organism="HOMO_SAPIENS",
    n_cells=500,
    n_genes=300,
    n_libraries=3,
    cell_types=("B cell", "T cell", "monocyte"),
    density=0.1,
    seed=0,
    intergenic=False,
    abundance_layer=None,
    overwrite=False,
    gene_ids=None,
) -> Path:
    """Write a synthetic Bgee droplet H5AD file; the same arguments give the same file.

    Parameters
    ----------
    path
        Where to write (``<Genus_species>_<EXP>_droplet_based.h5ad`` to mimic Bgee's names).
    variant
        One of :data:`VARIANTS` (see the module docstring).
    experiment, organism
        Experiment accession and ``GENUS_SPECIES`` (taxon and gene id prefix follow it).
    n_cells, n_genes, n_libraries, cell_types
        Size and content; cells are split among libraries, cell types mixed per library.
    density
        Detection probability of a non-marker gene (about ``density * n_genes`` stored values
        per cell).
    seed
        Seed of the random generator.
    intergenic
        Make the last tenth of the features ``upstream_<gene>`` / ``downstream_<gene>``.
    abundance_layer
        Add ``layers['abundance']`` (CPM) and ``uns['matrix_descriptions']``; None: only for
        ``bgee15_1``, like that writer.
    overwrite
        Replace an existing file (else :class:`~refinewidgets.errors.OutputExistsError`).
    gene_ids
        Use these ``n_genes`` ids instead of random ones (to share genes with a bulk compendium).

    Returns
    -------
    The path written (via a temporary file renamed at the end).

    Examples
    --------
    >>> import tempfile, pathlib, anndata
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_bgee_h5ad(folder / "Mus_musculus_SRP1_droplet_based.h5ad",
    ...                        variant="newest", organism="MUS_MUSCULUS", n_cells=50, n_genes=40)
    >>> adata = anndata.read_h5ad(path)
    >>> adata.shape, adata.var_names[0][:7], adata.uns["organism"]
    ((50, 40), 'ENSMUSG', 'Mus musculus')
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
    if n_libraries < 1 or n_cells < n_libraries or n_genes < 1 or not cell_types:
        raise ValueError(
            "need n_libraries >= 1, n_cells >= n_libraries, n_genes >= 1 and at least one cell type"
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    if abundance_layer is None:
        abundance_layer = variant == "bgee15_1"
    rng = np.random.default_rng(seed)
    obs = _obs(rng, variant, experiment, organism, n_cells, n_libraries, list(cell_types))
    type_codes = obs.attrs.pop("cell_type_codes")
    if gene_ids is not None:  # e.g. the genes of a bulk compendium, so pseudobulk can join it
        gene_ids = np.asarray(list(gene_ids), dtype=object)
        if len(gene_ids) != n_genes:
            raise ValueError(f"gene_ids has {len(gene_ids)} ids but n_genes is {n_genes}.")
        var_names = gene_ids
    else:
        var_names = _gene_ids(rng, organism, n_genes, intergenic)
    var = pd.DataFrame(index=pd.Index(var_names.astype(str)))
    if variant == "newest":
        style = str.upper if organism == "HOMO_SAPIENS" else str.capitalize
        var["feature_name"] = pd.Categorical([style(f"rwg{i + 1}") for i in range(n_genes)])
    size = min(max(1, n_genes // (4 * len(cell_types))), 50)
    starts = np.arange(len(cell_types)) * size
    markers = (
        np.stack([starts, starts + size - 1], axis=1)
        if starts[-1] + size <= n_genes
        else np.empty((0, 2), dtype=np.int64)
    )
    baseline = rng.lognormal(-1.0, 1.0, size=n_genes)
    genus_species = organism.capitalize().replace("_", " ")
    uns = {}
    if variant == "newest":
        uns = {
            "organism": genus_species,
            "schema_version": "scFAIR-like 1.0 (synthetic)",
            "title": f"Synthetic Bgee experiment {experiment}",
        }
    if abundance_layer:
        uns["matrix_descriptions"] = {
            "X": "UMI counts (bustools, --em: can be fractional)",
            "abundance": "CPM: UMI counts per million per cell",
        }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
            groups = ["X"] + (["layers/abundance"] if abundance_layer else [])
            for name in groups:
                group = f.create_group(name)
                group.attrs.update(
                    {
                        "encoding-type": "csr_matrix",
                        "encoding-version": "0.1.0",
                        "shape": np.array([n_cells, n_genes]),
                    }
                )
                for key, dtype in (("data", np.float32), ("indices", np.int32)):
                    group.create_dataset(
                        key, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1 << 16,)
                    )
            indptr, total = [np.zeros(1, dtype=np.int64)], 0
            for lo in range(0, n_cells, _ROWS_PER_CHUNK):
                codes = type_codes[lo : lo + _ROWS_PER_CHUNK]
                data, indices, lengths = _sparse_rows(
                    rng, codes, n_genes, density, markers, baseline
                )
                chunk = {"X": data}
                if abundance_layer:
                    row_of = np.repeat(np.arange(lengths.size), lengths)
                    sums = np.bincount(row_of, weights=data, minlength=lengths.size)
                    chunk["layers/abundance"] = (data / sums[row_of] * 1e6).astype(np.float32)
                for name, values in chunk.items():
                    for key, value in (("data", values), ("indices", indices)):
                        f[name][key].resize((total + value.size,))
                        f[name][key][total:] = value
                indptr.append(total + np.cumsum(lengths))
                total += data.size
            indptr = np.concatenate(indptr)
            for name in groups:
                f[name].create_dataset("indptr", data=indptr)
            if not abundance_layer:
                write_elem(f, "layers", {})
            else:
                f["layers"].attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
            write_elem(f, "obs", obs)
            write_elem(f, "var", var)
            write_elem(f, "uns", uns)
            for key in ("obsm", "varm", "obsp", "varp"):
                write_elem(f, key, {})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
