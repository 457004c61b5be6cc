"""Single-cell groups: join cell blocks on genes, normalize counts, pseudobulk, scale.

A cell source (Bgee droplet files, see :mod:`refinewidgets.io.bgee.source`) hands the build
:class:`CellBlock` objects: the selected cells of one file, their counts (sparse, cells x genes)
and the file's genes. Cells stay sparse unless scaling is asked for, which needs a dense matrix
and is refused when that would not fit in memory.

Statistics, as scanpy documents its own:

- ``CPM``: each cell's counts divided by the cell's total over the group's genes, times 1e6;
  a cell with no count stays all zero.
- ``LOG1P_CPM``: ``log(1 + CPM)``, natural log (scanpy's ``log1p``).
- pseudobulk: the sum of the counts of the cells of each library (and cell type), before any
  normalization; the number of cells of each pseudo-sample is recorded.
"""

from __future__ import annotations

import difflib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DatasetSpecError, GeneOverlapError, GeneSelectionWarning, MemoryBudgetError
from .cell_query import parse_query
from .compute import available_memory, gather, submit  # the workers' warnings come back
from .pseudobulk import pseudo_records, pseudobulk

__all__ = [
    "CellBlock",
    "cell_group",
    "check_cells",
    "pseudobulk_frames",
    "read_cells",
    "describe_values",
    "merge_cells",
    "normalize_counts",
    "scale_cells",
]


@dataclass
class CellBlock:
    """The selected cells of one single-cell file.

    Attributes
    ----------
    cells
        One row per cell (index: cell ids) with the unified columns (``library``,
        ``cell_type``, ``tissue``...) and ``experiment``.
    counts
        CSR matrix, cells x genes, float32 UMI counts (may be fractional).
    genes
        Indexed by gene id, with a ``gene_symbol`` column (empty strings when unknown).
    organism
        refine.bio-style organism name, e.g. ``HOMO_SAPIENS``.
    label
        The file it came from, for messages.
    provenance
        What the source says of the file (release, writer, encoding, unit...), for ``uns``.
    """

    cells: pd.DataFrame
    counts: sp.csr_matrix
    genes: pd.DataFrame
    organism: str
    label: str
    provenance: dict[str, Any] = field(default_factory=dict)
    #: ``(sums, groups)`` of :func:`pseudobulk` when they were computed where the block was
    #: read (a Dask worker): ``counts`` is then empty.
    pseudo: tuple[np.ndarray, pd.DataFrame] | None = None


def _gene_index(blocks: Sequence[CellBlock], join: str) -> pd.Index:
    genes = pd.Index(blocks[0].genes.index)
    for b in blocks[1:]:
        genes = (
            genes.intersection(b.genes.index, sort=False)
            if join == "inner"
            else genes.union(b.genes.index, sort=False)
        )
    return genes.sort_values()


def merge_cells(
    blocks: Sequence[CellBlock], *, join: str = "inner"
) -> tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame]:
    """Stack cell blocks on a common gene index: ``(counts, cells, genes)``.

    ``join="inner"`` keeps the genes of every file; ``"outer"`` keeps all, with 0 counts where a
    file lacks a gene.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> g = lambda ids: pd.DataFrame({"gene_symbol": [""] * len(ids)}, index=ids)
    >>> a = CellBlock(pd.DataFrame(index=["c1"]), sp.csr_matrix([[1.0, 2.0]]), g(["G1", "G2"]), "HOMO_SAPIENS", "a")
    >>> b = CellBlock(pd.DataFrame(index=["c2"]), sp.csr_matrix([[3.0, 4.0]]), g(["G2", "G3"]), "HOMO_SAPIENS", "b")
    >>> X, cells, genes = merge_cells([a, b], join="outer")
    >>> X.toarray().tolist(), list(genes.index)
    ([[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]], ['G1', 'G2', 'G3'])
    """
    genes = _gene_index(blocks, join)
    parts = []
    for b in blocks:
        pos = pd.Index(b.genes.index).get_indexer(genes)  # file column of each output gene, or -1
        X = b.counts.tocsr()
        if join == "inner":
            # the common case (one file, or files with the same genes): no column reindexing
            identity = len(pos) == X.shape[1] and np.array_equal(pos, np.arange(X.shape[1]))
            parts.append(X if identity else X[:, pos])
        else:
            new_col = np.full(X.shape[1], -1, dtype=np.int64)
            new_col[pos[pos >= 0]] = np.nonzero(pos >= 0)[0]
            keep = new_col[X.indices] >= 0
            counts_per_row = (
                np.add.reduceat(keep.astype(np.int64), X.indptr[:-1])
                if X.nnz
                else np.zeros(X.shape[0], int)
            )
            if X.nnz:
                counts_per_row[np.diff(X.indptr) == 0] = 0
            indptr = np.concatenate([[0], np.cumsum(counts_per_row)])
            parts.append(
                sp.csr_matrix(
                    (X.data[keep], new_col[X.indices[keep]], indptr), shape=(X.shape[0], len(genes))
                )
            )
    if len(parts) == 1 and parts[0].dtype == np.float32:
        counts = parts[0]  # shares the block's arrays: no copy of the counts
    else:
        counts = sp.vstack(parts, format="csr", dtype=np.float32)
    counts.sort_indices()
    cells = pd.concat([b.cells for b in blocks]) if len(blocks) > 1 else blocks[0].cells
    if len(blocks) > 1:
        cells = _filled(cells)
    if not cells.index.is_unique:  # barcodes are unique per library; prefix the file if needed
        cells.index = pd.Index(
            [f"{b.label}:{c}" for b in blocks for c in b.cells.index], dtype=object
        )
    return counts, cells, _gene_table(blocks, pd.Index(genes, dtype=object))


def _gene_table(blocks: Sequence[CellBlock], genes: pd.Index) -> pd.DataFrame:
    """The genes' columns over the blocks: each gene's value from the first file that has one
    (``gene_symbol`` ``""`` where none has; other columns categorical text, or numbers, missing
    where no file of the group has them)."""
    table = pd.DataFrame(index=genes)
    columns = dict.fromkeys(["gene_symbol", *(c for b in blocks for c in b.genes.columns)])
    for column in columns:
        values = pd.Series(np.nan if column != "gene_symbol" else "", index=genes, dtype=object)
        numeric = True
        for b in reversed(blocks):
            if column not in b.genes:
                continue
            s = b.genes[column]
            numeric &= pd.api.types.is_numeric_dtype(s) and not isinstance(
                s.dtype, pd.CategoricalDtype
            )
            s = s.astype(object) if numeric else s.astype(str)
            s = s[s.notna() & (s.astype(str) != "")]
            common = s.index.intersection(genes)
            values.loc[common] = s.loc[common]
        if column == "gene_symbol":
            table[column] = values.astype(str)
        elif numeric:
            table[column] = pd.to_numeric(values)
        else:
            table[column] = pd.Categorical(values.where(values.notna(), "").astype(str))
    return table


def _filled(cells: pd.DataFrame) -> pd.DataFrame:
    """Cell tables of several files stacked: a column some files lack gets ``""`` (text) or
    NaN (numbers) there, and text columns are categorical again (so they write to H5AD)."""
    cells = cells.copy()
    for column in cells.columns:
        values = cells[column]
        if pd.api.types.is_numeric_dtype(values) and not isinstance(
            values.dtype, pd.CategoricalDtype
        ):
            continue
        text = values.astype(object).where(values.notna(), "").astype(str)
        cells[column] = pd.Categorical(text)
    return cells


def select_genes(
    genes: pd.DataFrame, wanted: Sequence[str]
) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Positions of the asked genes in ``genes`` (by id, else by symbol, exact then ignoring
    case), in the order asked; the names found nowhere; and ``{symbol: ids}`` of the symbols
    that name several ids (all of them are returned; :func:`warn_gene_selection` says so).

    Examples
    --------
    >>> g = pd.DataFrame({"gene_symbol": ["CD19", "MS4A1", "CD19"]}, index=["G1", "G2", "G3"])
    >>> pos, missing, shared = select_genes(g, ["ms4a1", "cd19", "NOPE"])
    >>> pos.tolist(), missing, shared
    ([1, 0, 2], ['NOPE'], {'cd19': ['G1', 'G3']})
    """
    ids = pd.Index(genes.index.astype(str))
    symbols = genes["gene_symbol"].astype(str) if "gene_symbol" in genes else pd.Series("", ids)
    by_symbol: dict[str, list[int]] = {}
    by_lower: dict[str, list[int]] = {}
    for i, sym in enumerate(symbols):
        if sym:
            by_symbol.setdefault(sym, []).append(i)
            by_lower.setdefault(sym.lower(), []).append(i)
    lookup = {name: i for i, name in enumerate(ids)}
    found: list[int] = []
    missing: list[str] = []
    shared: dict[str, list[str]] = {}
    for name in wanted:
        hits = (
            [lookup[name]]
            if name in lookup
            else by_symbol.get(name) or by_lower.get(name.lower()) or []
        )
        if not hits:
            missing.append(name)
        if len(hits) > 1:
            shared[name] = [str(ids[h]) for h in hits]
        found += [h for h in hits if h not in found]
    return np.asarray(found, dtype=np.int64), missing, shared


def warn_gene_selection(
    missing: Sequence[str],
    shared: Mapping[str, Sequence[str]],
    n_asked: int,
    n_kept: int,
    where: str,
    *,
    symbols: str = "",
    stacklevel: int = 5,
) -> None:
    """The one :class:`GeneSelectionWarning` of a ``genes=`` selection (bulk and cells): the
    names found nowhere, the symbols that name several ids (all returned), how many genes are
    returned, and where the symbols come from (``symbols``). Nothing when all is plain.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_gene_selection(["NOPE"], {"CD19": ["G1", "G3"]}, 3, 2, "group X")
    >>> print(w[0].message)  # doctest: +NORMALIZE_WHITESPACE
    1 of the 3 genes asked for are not in group X (neither as ids nor as symbols): NOPE. 1 gene
    symbol(s) name several gene ids, and every one of them is returned: CD19 -> G1, G3; ask by
    gene id to take one. 2 gene(s) are returned.
    """
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} of the {n_asked} genes asked for are not in {where} (neither as "
            f"ids nor as symbols): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    if shared:
        listed = [f"{name} -> {', '.join(ids)}" for name, ids in list(shared.items())[:10]]
        parts.append(
            f"{len(shared)} gene symbol(s) name several gene ids, and every one of them is "
            f"returned: {'; '.join(listed)}{' ...' if len(shared) > 10 else ''}; ask by gene "
            "id to take one"
        )
    if not parts:
        return
    warnings.warn(
        f"{'. '.join(parts)}. {n_kept} gene(s) are returned"
        + (f" (symbols: {symbols})." if symbols else "."),
        GeneSelectionWarning,
        stacklevel=stacklevel,
    )


def _gene_subset(genes: pd.DataFrame, dataset: Any, where: str) -> np.ndarray | None:
    """The positions ``dataset.genes`` and ``dataset.var_filter`` keep (None: all); a warning
    names genes found nowhere, an error when none is kept."""
    positions = None
    if getattr(dataset, "genes", None):
        positions, missing, shared = select_genes(genes, dataset.genes)
        if positions.size == 0:
            raise DatasetSpecError(
                f"None of the genes asked for ({', '.join(dataset.genes[:10])}) is in {where}; "
                f"give gene ids such as {', '.join(map(str, genes.index[:3]))} or their symbols."
            )
        warn_gene_selection(
            missing, shared, len(dataset.genes), positions.size, where, stacklevel=5
        )
    if getattr(dataset, "var_filter", None):
        query = parse_query(dataset.var_filter, what="var filter", unit="gene")
        table = genes.assign(gene_id=np.asarray(genes.index, dtype=object))
        table.index = pd.RangeIndex(len(table))
        kept = query.mask(table if positions is None else table.iloc[positions], where)
        positions = np.flatnonzero(kept) if positions is None else positions[kept]
    return positions


def normalize_counts(X: Any, how: str, *, copy: bool = True) -> Any:
    """``NONE``, ``CPM`` or ``LOG1P_CPM`` on a cells x genes matrix (sparse or dense); a new matrix.

    Examples
    --------
    >>> normalize_counts(np.array([[1.0, 3.0], [0.0, 0.0]]), "CPM").tolist()
    [[250000.0, 750000.0], [0.0, 0.0]]
    """
    if how == "NONE":
        return X
    totals = np.asarray(X.sum(axis=1)).ravel().astype(np.float64)
    factor = np.divide(1e6, totals, out=np.zeros_like(totals), where=totals > 0)
    if sp.issparse(X) and not copy and X.format == "csr" and np.issubdtype(X.dtype, np.floating):
        out, f = X, factor.astype(X.dtype)
        step = max(1, (1 << 20) // max(1, X.nnz // max(1, X.shape[0])))  # ~1M values per chunk
        for lo in range(0, X.shape[0], step):
            hi = min(lo + step, X.shape[0])
            a, b = X.indptr[lo], X.indptr[hi]
            out.data[a:b] *= np.repeat(f[lo:hi], np.diff(X.indptr[lo : hi + 1]))
        if how == "LOG1P_CPM":
            np.log1p(out.data, out=out.data)
        return out
    if sp.issparse(X):
        out = sp.csr_matrix(sp.diags(factor.astype(X.dtype)) @ X)
        if how == "LOG1P_CPM":
            np.log1p(out.data, out=out.data)
        return out
    out = np.asarray(X, dtype=np.float64) * factor[:, None]
    return np.log1p(out) if how == "LOG1P_CPM" else out


def describe_values(
    counts_normalization: str, scale_by: str, *, pseudobulk: bool = False, unit: str = "UMI counts"
) -> str:
    """A plain statement of what X holds, recorded in ``uns`` (e.g. ``"log1p CPM"``)."""
    base = {"NONE": unit, "CPM": "CPM (counts per million)", "LOG1P_CPM": "log1p CPM"}[
        counts_normalization
    ]
    if pseudobulk:
        base = (
            f"pseudobulk sums of {base}"
            if counts_normalization == "NONE"
            else f"{base} of pseudobulk sums"
        )
    if scale_by != "NONE":
        base = f"{base}, scaled per gene ({scale_by})"
    return base


def scale_cells(X: sp.csr_matrix, scale_by: str, *, memory_limit: int | None = None) -> np.ndarray:
    """Scale each gene across the cells; returns a dense float64 array.

    Scaling centers genes, so the result is dense. When the dense matrix would take more than
    ``memory_limit`` bytes (default: half the memory available now), raises MemoryBudgetError.
    """
    from .scale import scale_rows

    need = X.shape[0] * X.shape[1] * 8
    limit = memory_limit if memory_limit is not None else available_memory() // 2
    if need > limit:
        raise MemoryBudgetError(
            f"Scaling ({scale_by}) makes the matrix of {X.shape[0]:,} cells x {X.shape[1]:,} genes dense: "
            f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB budget (half the free memory). "
            "Select fewer cells with cell_filter, use pseudobulk='sample', or scale_by='NONE'."
        )
    dense = X.toarray().astype(np.float64, copy=False)
    return scale_rows(dense, scale_by)


# -- the cell path of a build --------------------------------------------------------------
def check_cells(groups: Mapping[str, Sequence[Any]], catalog: Any, dataset: Any) -> None:
    """Refuse, before reading anything, what cannot be done with cells."""
    if dataset.pseudobulk is not None:
        return
    for key, members in groups.items():
        cells = [m.accession for m in members if catalog.is_single_cell(m.experiment)]
        if not cells:
            continue
        bulk = [m.accession for m in members if not catalog.is_single_cell(m.experiment)]
        if bulk:
            raise DatasetSpecError(
                f"Group {key} mixes single-cell libraries ({', '.join(cells[:3])}{' ...' if len(cells) > 3 else ''}) "
                f"and bulk samples ({', '.join(bulk[:3])}{' ...' if len(bulk) > 3 else ''}): cells and bulk samples "
                "cannot share one matrix. Set pseudobulk='sample' (or 'sample_cell_type') to sum each library's "
                "counts into a bulk-like sample, or aggregate_by='EXPERIMENT' to keep them in separate groups."
            )
        if dataset.quantile_normalize:
            raise DatasetSpecError(
                f"Quantile normalization of single cells is refused (group {key}): cells differ in depth and are "
                "mostly zeros, so forcing one distribution on them distorts the data. Use pseudobulk='sample' to "
                "quantile-normalize per-library sums, or quantile_normalize=False to keep cells "
                "(counts_normalization='LOG1P_CPM' gives scanpy's usual normalization)."
            )


def _read_one(source, matrix_id, libraries, dataset, by=None):
    """One file's selected cells (summed into pseudo-samples when ``by``), or the
    :class:`DatasetSpecError` saying why none could be taken."""
    try:
        block = source.read_cells(
            matrix_id,
            libraries,
            dataset.cell_filter,
            keep_intergenic=dataset.keep_intergenic,
            exact=dataset.exact,
        )
    except DatasetSpecError as exc:
        return exc
    if by is not None:  # on a worker: only the sums travel back
        sums, groups = pseudobulk(block.cells, block.counts, by)
        empty = sp.csr_matrix((0, block.counts.shape[1]), dtype=np.float32)
        block = CellBlock(
            block.cells,
            empty,
            block.genes,
            block.organism,
            block.label,
            block.provenance,
            pseudo=(sums, groups),
        )
    return block


def read_cells(members: Sequence[Any], catalog: Any, dataset: Any, client: Any = None):
    """Read the selected cells of each file: ``(blocks, filtered libraries with their reason,
    the refusals of files where the cell filter matched nothing)``. A filter matching nothing in
    one file may match in another; the build raises only when it matches nothing anywhere.

    With a Dask ``client`` the files are read on its workers, side by side; with pseudobulk
    the workers also sum the cells, so only the pseudo-samples come back."""
    located = list(catalog.by_matrix(m.accession for m in members).items())
    if client is None:
        results = [_read_one(src, mid, libs, dataset) for (src, mid), libs in located]
    else:
        results = gather(
            client,
            [
                submit(client, _read_one, src, mid, libs, dataset, dataset.pseudobulk)
                for (src, mid), libs in located
            ],
        )
    blocks: list[CellBlock] = []
    filtered: list[tuple[str, str]] = []
    errors: list[DatasetSpecError] = []
    for ((_, _), libraries), block in zip(located, results):
        if isinstance(block, DatasetSpecError):
            errors.append(block)
            filtered += [(lib, f"no cell passes the cell filter: {block}") for lib in libraries]
            continue
        present = set(block.cells["library"].astype(str))
        filtered += [
            (lib, "no cell of this library passes the cell filter")
            for lib in libraries
            if lib not in present
        ]
        blocks.append(block)
    return blocks, filtered, errors


def _chosen_columns(cells: pd.DataFrame, columns: Sequence[str], blocks) -> pd.DataFrame:
    """The ``obs_columns`` of the cells, or an error naming those missing and what exists."""
    missing = [c for c in columns if c not in cells.columns]
    if missing:
        close = {c: difflib.get_close_matches(c, list(cells.columns), n=2) for c in missing}
        hints = ", ".join(
            f"{c!r}" + (f" (did you mean {', '.join(close[c])}?)" if close[c] else "")
            for c in missing
        )
        raise DatasetSpecError(
            f"obs_columns names {hints}, not a cell column of "
            f"{', '.join(b.label for b in blocks)}; its columns: {list(map(str, cells.columns))}"
        )
    return cells[list(columns)]


def pseudobulk_frames(blocks: Sequence[CellBlock], catalog: Any, dataset: Any):
    """Pseudo-samples of the cell blocks as bulk frames, with their records."""
    frames, records, library_of = [], {}, {}
    for block in blocks:
        sums, groups = block.pseudo or pseudobulk(block.cells, block.counts, dataset.pseudobulk)
        sums = normalize_counts(sums, dataset.counts_normalization)
        frame = pd.DataFrame(
            np.asarray(sums).T, index=block.genes.index, columns=list(groups["accession"])
        )
        keep = _gene_subset(block.genes, dataset, block.label)
        if keep is not None:
            frame = frame.iloc[keep]
        frames.append((frame, f"pseudobulk of {block.label}"))
        libs = {lib: catalog.sample_record(lib) for lib in groups["library"]}
        records.update(pseudo_records(groups, block.cells, libs, dataset.pseudobulk))
        library_of.update(dict(zip(groups["accession"], groups["library"])))
    return frames, records, library_of


def cell_group(blocks: Sequence[CellBlock], dataset: Any):
    """Join the cell blocks of a group, normalize and scale:
    ``((X, cells, genes, layers), libraries, info)``; ``layers["counts"]`` holds the raw counts
    (a copy of X when X is not normalized nor scaled: scanpy changes X in place)."""
    counts, cells, genes = merge_cells(blocks, join=dataset.join)
    if counts.shape[1] == 0:
        raise GeneOverlapError(
            "The single-cell files of this group share no gene, so the inner join keeps none: "
            + "; ".join(f"{b.label} ({b.genes.shape[0]:,} genes, {b.organism})" for b in blocks)
            + ". They probably hold different species; aggregate them separately "
            "(aggregate_by='EXPERIMENT' or 'SPECIES') or use join='outer'."
        )
    n_union = len(set().union(*(set(b.genes.index) for b in blocks)))
    merged_genes = genes
    transformed = dataset.counts_normalization != "NONE" or dataset.scale_by != "NONE"
    raw = counts
    if transformed:  # X gets its own values; the index arrays are shared with the counts
        counts = sp.csr_matrix(
            (counts.data.copy(), counts.indices, counts.indptr), shape=counts.shape
        )
    X = normalize_counts(counts, dataset.counts_normalization, copy=False)  # counts is ours
    del counts
    keep = _gene_subset(genes, dataset, "the files of this group")
    if keep is not None:
        X, raw, genes = X[:, keep], raw[:, keep], genes.iloc[keep]
    if dataset.scale_by != "NONE":
        X = scale_cells(X, dataset.scale_by)
    # scanpy's convention: the raw counts in layers["counts"] whenever the result holds them;
    # a copy when X is the counts too, since scanpy normalizes X in place
    layers = {"counts": raw if transformed else raw.copy()}
    organisms = sorted({b.organism for b in blocks})
    cells = cells.copy()
    cells["organism"] = pd.Categorical.from_codes(
        np.repeat(
            [organisms.index(b.organism) for b in blocks], [b.cells.shape[0] for b in blocks]
        ),
        categories=organisms,  # sorted, as pd.Categorical makes them
    )
    libraries = list(dict.fromkeys(cells["library"].astype(str)))
    if getattr(dataset, "obs_columns", None):
        cells = _chosen_columns(cells, dataset.obs_columns, blocks)
    dropped = n_union - len(merged_genes)
    info = _cell_info(blocks, dataset, int(X.shape[0]), libraries, organisms, dropped)
    if keep is not None:
        info["genes_selected"] = list(genes.index.astype(str))
    return (X, cells, genes, layers), libraries, info


def _cell_info(blocks, dataset, n_cells: int, libraries, organisms, genes_dropped: int):
    """What a cell group's ``uns["refinewidgets"]`` records: what X holds, the counts, the
    filter, the files' provenance (ontology releases, gene-symbol tables), the counts layer."""
    units = sorted({b.provenance.get("unit", "UMI counts") for b in blocks})
    info = {
        "kind": "cells",
        "values": describe_values(
            dataset.counts_normalization, dataset.scale_by, unit=" and ".join(units)
        ),
        "num_cells": n_cells,
        "num_libraries": len(libraries),
        "organisms": organisms,
        "genes_dropped_by_join": genes_dropped,
        "counts_normalization": dataset.counts_normalization,
        "cell_filter": json.loads(json.dumps(dataset.cell_filter or {})),
        "keep_intergenic": bool(dataset.keep_intergenic),
        "files": {b.label: b.provenance for b in blocks if b.provenance},
    }
    ontology = {k: v for b in blocks for k, v in (b.provenance or {}).get("ontology", {}).items()}
    if ontology:  # the releases cell types and tissues were matched in, with descendants
        info["ontology"] = ontology
    tables = sorted(
        {str(b.provenance["gene_symbols"]) for b in blocks if b.provenance.get("gene_symbols")}
    )
    if tables:  # files without symbols of their own got them from these tables
        info["gene_symbols"] = "; ".join(tables)
    info["layers"] = {"counts": f"raw {' and '.join(units)}, before any normalization"}
    return info
