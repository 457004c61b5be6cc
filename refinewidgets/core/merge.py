"""Assemble one group's matrix: per-sample sanitising and the join on genes (format spec §5).

Before merging, gene ids are cleaned (whitespace, Affymetrix ``AFFX-`` controls, Brainarray
``_at`` suffixes, Ensembl version suffixes) and duplicate ids are averaged; RNA-seq values get
``log2(x + 1)`` when aggregating by SPECIES, and microarray samples with any value above 100
get ``log2(x)``. The samples of a group are then joined on gene id: ``inner`` keeps the genes
present in every sample (refine.bio's rule), ``outer`` keeps every gene with NaN where a sample
lacks it. The result is a samples x genes float64 array, the orientation of AnnData.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import GeneOverlapError, SourceFormatError

__all__ = ["GroupMatrix", "merge_group", "sanitize_gene_ids"]

_VERSION = r"\.\d+$"
_OWN_MAP_BYTES = 1 << 24  # blocks this large get their own memory map (see _releasable)
_BRAINARRAY = r"_at$"


def _releasable(values: np.ndarray) -> np.ndarray:
    """A float64 copy of ``values``; a large one lives in its own anonymous memory map.

    The allocator keeps freed blocks of a few tens of MB for reuse, so a merge that frees each
    sample block after copying it into the group matrix would not lower the peak. A block in its
    own map goes back to the operating system as soon as it is freed.
    """
    if values.nbytes < _OWN_MAP_BYTES:
        return np.array(values, dtype=np.float64, copy=True)
    out = np.frombuffer(mmap.mmap(-1, values.size * 8), dtype=np.float64).reshape(values.shape)
    out[...] = values
    return out


def sanitize_gene_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean a genes x samples frame's gene ids and average duplicate ids.

    Examples
    --------
    >>> f = pd.DataFrame({"S1": [1.0, 2.0, 4.0, 9.0]},
    ...                  index=[" ENSG01.3 ", "ENSG01", "ENSG02_at", "AFFX-BioB-5_at"])
    >>> sanitize_gene_ids(f)["S1"].to_dict()
    {'ENSG01': 1.5, 'ENSG02': 4.0}
    """
    ids = pd.Index(frame.index.astype(str)).str.strip()
    keep = ~ids.str.contains("AFFX-", regex=False)
    ids = ids.str.replace(_BRAINARRAY, "", regex=True).str.replace(_VERSION, "", regex=True)
    if not keep.all():
        frame = frame.loc[keep]
        ids = ids[keep]
    frame = frame.set_axis(ids, axis=0)
    if ids.has_duplicates:
        frame = frame.groupby(level=0, sort=False).mean()
    frame.index.name = None
    return frame


@dataclass
class GroupMatrix:
    """A merged group: values (samples x genes), their labels, and what was dropped."""

    X: np.ndarray | None
    samples: list[str]
    genes: pd.Index
    filtered: list[tuple[str, str]] = field(default_factory=list)  # (accession, reason)
    genes_per_sample: dict[str, int] = field(default_factory=dict)
    genes_dropped: int = 0
    transforms: dict[str, str] = field(default_factory=dict)  # accession -> transform applied
    block_genes: list[tuple[list[str], pd.Index]] = field(default_factory=list)
    """The samples of each frame read and the gene ids it brought (for the gene report)."""

    def fill(self, blocks: list[_Block]) -> GroupMatrix:
        """Copy each block's values into ``X`` (samples x genes), NaN where a block lacks a
        gene; each block is freed once its rows are in."""
        X = np.empty((len(self.samples), len(self.genes)), dtype=np.float64)
        row = 0
        blocks.reverse()
        while blocks:
            block = blocks.pop()
            pos = block.genes.get_indexer(self.genes)
            present = pos >= 0
            for j in range(len(block.samples)):
                if present.all():
                    X[row] = block.values[pos, j]
                else:
                    X[row] = np.nan
                    X[row, present] = block.values[pos[present], j]
                row += 1
            del block
        self.X = X
        return self


def _to_float(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    try:
        return frame.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise SourceFormatError(f"Non-numeric expression values in {where}: {exc}") from None


def merge_group(
    frames: Iterable[tuple[pd.DataFrame, str]],
    technology: dict[str, str],
    *,
    log_rnaseq: dict[str, bool],
    join: str = "inner",
) -> GroupMatrix:
    """Merge raw genes x samples frames into one samples x genes array.

    Parameters
    ----------
    frames
        ``(frame, label)`` pairs, read one at a time (a generator keeps memory low): each
        frame's columns are samples of the group, in the group's order across frames; ``label``
        names its origin in error messages.
    technology
        ``sample -> "MICROARRAY" | "RNA-SEQ" | ...``.
    log_rnaseq
        ``sample -> True`` when its RNA-seq values must get ``log2(x + 1)``.
    join
        ``"inner"`` or ``"outer"``.
    """
    cleaned: list[_Block] = []
    filtered: list[tuple[str, str]] = []
    transforms: dict[str, str] = {}
    for frame, label in frames:
        block = _clean(frame, label, technology, log_rnaseq, filtered, transforms)
        if block is not None:
            cleaned.append(block)
    if not cleaned:
        return GroupMatrix(np.empty((0, 0)), [], pd.Index([]), filtered)
    genes, union = _join_genes(cleaned, join)
    return GroupMatrix(
        X=None,
        samples=[s for b in cleaned for s in b.samples],
        genes=pd.Index(genes, dtype=object),
        filtered=filtered,
        genes_per_sample={s: len(b.genes) for b in cleaned for s in b.samples},
        genes_dropped=int(len(union) - len(genes)),
        transforms=transforms,
        block_genes=[(list(b.samples), b.genes) for b in cleaned],
    ).fill(cleaned)


@dataclass
class _Block:
    """The cleaned values of one frame: its genes, genes x samples values, its samples."""

    genes: pd.Index
    values: np.ndarray
    samples: list[str]


def _unusable(col: np.ndarray, finite: np.ndarray, genes: pd.Index, tech: str, log: bool):
    """Why a sample's values cannot be used (None when they can)."""
    if finite.size == 0:
        return "no usable values: every value is missing"
    infinite = np.isinf(finite)
    if infinite.any():
        gene = genes[int(np.flatnonzero(np.isinf(col))[0])]
        return (
            f"{int(infinite.sum())} infinite value(s) (e.g. gene {gene}): expression values "
            "must be finite numbers"
        )
    if tech == "RNA-SEQ" and log and finite.min() <= -1:
        return "RNA-seq values at or below -1 cannot be log2(x + 1)-transformed"
    if tech == "MICROARRAY" and finite.max() > 100 and finite.min() <= 0:
        return "unlogged microarray values include zero or negative values; log2 is undefined"
    return None


def _clean(frame, label, technology, log_rnaseq, filtered, transforms) -> _Block | None:
    """Sanitise one frame's ids, apply each sample's log rule, drop unusable samples."""
    frame = sanitize_gene_ids(_to_float(frame, label))
    values = _releasable(frame.to_numpy(dtype=np.float64, copy=False))
    keep: list[int] = []
    for j, s in enumerate(map(str, frame.columns)):
        col = values[:, j]
        finite = col[~np.isnan(col)]
        tech, log = technology.get(s, ""), log_rnaseq.get(s, False)
        reason = _unusable(col, finite, frame.index, tech, log)
        if reason is not None:
            filtered.append((s, reason))
            continue
        if tech == "RNA-SEQ" and log:
            np.log2(col + 1.0, out=col)
            transforms[s] = "log2(x + 1)"
        elif tech == "MICROARRAY" and finite.max() > 100:
            np.log2(col, out=col)
            transforms[s] = "log2(x)"
        keep.append(j)
    if not keep:
        return None
    if len(keep) < values.shape[1]:
        values = values[:, keep]
    return _Block(frame.index, values, [str(frame.columns[j]) for j in keep])


def _join_genes(blocks: list[_Block], join: str) -> tuple[pd.Index, pd.Index]:
    """``(the group's genes, sorted; the union of every block's genes)``."""
    union = blocks[0].genes
    for b in blocks[1:]:
        union = union.union(b.genes, sort=False)
    if join == "inner":
        genes = blocks[0].genes
        for b in blocks[1:]:
            genes = genes.intersection(b.genes, sort=False)
        if len(genes) == 0:
            described = "; ".join(
                f"{', '.join(b.samples[:5])}{' ...' if len(b.samples) > 5 else ''} "
                f"({len(b.genes)} genes, e.g. {', '.join(map(str, b.genes[:2]))})"
                for b in blocks
            )
            raise GeneOverlapError(
                "The gene sets of these samples do not overlap, so the inner join keeps no gene: "
                f"{described}. They probably come from different species or gene-id systems; "
                'aggregate them separately (aggregate_by="EXPERIMENT" or "SPECIES") or use join="outer".'
            )
    else:
        genes = union
    if len(genes) == 0:
        raise GeneOverlapError(
            "The samples of this group bring no gene at all (every matrix read is empty): "
            f"{', '.join(s for b in blocks for s in b.samples[:5])}. Check the source files."
        )
    return genes.sort_values(), union
