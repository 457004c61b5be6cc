"""Assemble one group's matrix: per-sample sanitising and the join on genes (format spec §5).

Before merging, gene ids are cleaned (whitespace, Affymetrix ``AFFX-`` controls, Brainarray
``_at`` suffixes, Ensembl version suffixes) and duplicate ids are averaged; RNA-seq values get
``log2(x + 1)`` when aggregating by SPECIES, and microarray samples with any value above 100
get ``log2(x)``. The samples of a group are then joined on gene id: ``inner`` keeps the genes
present in every sample (refine.bio's rule), ``outer`` keeps every gene with NaN where a sample
lacks it. The result is a samples x genes float64 array, the orientation of AnnData.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ..errors import GeneOverlapError, SourceFormatError
from .threads import ordered_map

__all__ = ["GroupMatrix", "merge_group", "sanitize_gene_ids"]

_VERSION = r"\.\d+$"
_BRAINARRAY = r"_at$"
#: A gene id ending in a version (``ENSG01.3``), as a line of the ids joined by line breaks.
_VERSIONED = re.compile(r"\.\d+$", re.MULTILINE)
#: Whitespace besides the line break joining the ids (``str.strip`` would remove it).
_SPACE = re.compile(r"[^\S\n]")
_ASCII_SPACES = " \t\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _needs_cleaning(ids: pd.Index) -> bool:
    """Whether a rule of :func:`sanitize_gene_ids` might change an id (True is always safe):
    a few substring tests over the ids joined by line breaks, a regular expression only when
    a dot or non-ASCII text is there (measured: 20 ms for 22,000 Ensembl ids, 53 ms with one
    regular expression of every rule)."""
    text = "\n".join(ids)
    if text.count("\n") != len(ids) - 1:
        return True  # an id holds a line break itself: let the rules decide
    if "AFFX-" in text or "_at\n" in text or text.endswith("_at"):
        return True
    if "." in text and _VERSIONED.search(text):
        return True
    if text.isascii():  # every other ASCII character str.strip() removes, one fast scan each
        return any(space in text for space in _ASCII_SPACES)
    return _SPACE.search(text) is not None


def sanitize_gene_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean a genes x samples frame's gene ids and average duplicate ids.

    Examples
    --------
    >>> f = pd.DataFrame({"S1": [1.0, 2.0, 4.0, 9.0]},
    ...                  index=[" ENSG01.3 ", "ENSG01", "ENSG02_at", "AFFX-BioB-5_at"])
    >>> sanitize_gene_ids(f)["S1"].to_dict()
    {'ENSG01': 1.5, 'ENSG02': 4.0}
    """
    ids = pd.Index(frame.index.astype(str))
    if not ids.has_duplicates and not _needs_cleaning(ids):
        if frame.index.inferred_type == "string" and frame.index.name is None:
            return frame  # clean already: the common case, no copy
        return frame.set_axis(ids.rename(None), axis=0)
    ids = ids.str.strip()
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

    def fill(self, blocks: list[_Block], threads: int = 1) -> GroupMatrix:
        """Gather each kept sample's values into ``X`` (samples x genes), NaN where its block
        lacks a gene, applying its log rule on the way; each block is freed once its rows are
        in. A block's samples are gathered on ``threads`` threads (numpy's gathers and logs run
        without the GIL); the result never depends on them."""
        X = np.empty((len(self.samples), len(self.genes)), dtype=np.float64)
        row = 0
        blocks.reverse()
        while blocks:
            block = blocks.pop()
            pos = block.genes.get_indexer(self.genes)
            present = pos >= 0
            everywhere = bool(present.all())
            if not everywhere:
                pos = pos[present]
            jobs = list(zip(range(row, row + len(block.columns)), block.columns, block.logs))
            parts = max(1, min(threads, len(jobs) // 8))  # a few samples per thread at least
            if parts == 1:
                _gather(X, block.values, pos, present, everywhere, jobs)
            else:
                step = -(-len(jobs) // parts)
                gather = partial(_gather, X, block.values, pos, present, everywhere)
                parts_of = [jobs[k : k + step] for k in range(0, len(jobs), step)]
                for _ in ordered_map(gather, parts_of, parts):
                    pass
            row += len(jobs)
            del block
        self.X = X
        return self


def _gather(X, values, pos, present, everywhere: bool, jobs) -> None:
    """Rows ``(row, column, log rule)`` of ``X`` from the columns of a block's ``values``."""
    for row, j, log in jobs:
        out = X[row]
        column = values[:, j]
        if everywhere:
            np.take(column, pos, out=out, mode="clip")  # valid positions; no buffer
        else:
            out[:] = np.nan
            out[present] = column[pos]
        if log == _LOG2_PLUS_1:
            np.add(out, 1.0, out=out)
        if log:
            np.log2(out, out=out)


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
    threads: int = 1,
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
    threads
        Threads gathering the samples into the matrix (see :meth:`GroupMatrix.fill`).
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
    ).fill(cleaned, threads)


#: How a sample's values are transformed while they are gathered (see ``_clean``).
_AS_IS, _LOG2, _LOG2_PLUS_1 = 0, 1, 2
_TRANSFORM_LABELS = {_LOG2: "log2(x)", _LOG2_PLUS_1: "log2(x + 1)"}


@dataclass
class _Block:
    """One frame's cleaned gene ids and values (genes x samples, the frame's own array, not a
    copy), the columns kept and how each is transformed when gathered."""

    genes: pd.Index
    values: np.ndarray
    samples: list[str]
    columns: list[int]
    logs: list[int]


def _unusable(
    col: np.ndarray, low: float, high: float, genes: pd.Index, tech: str, log: bool
) -> str | None:
    """Why a sample's values cannot be used (None when they can); ``low``/``high`` are its
    smallest and largest non-NaN values (NaN when it has none)."""
    if np.isnan(low):
        return "no usable values: every value is missing"
    if np.isinf(low) or np.isinf(high):
        infinite = np.isinf(col)
        gene = genes[int(np.flatnonzero(infinite)[0])]
        return (
            f"{int(infinite.sum())} infinite value(s) (e.g. gene {gene}): expression values "
            "must be finite numbers"
        )
    if tech == "RNA-SEQ" and log and low <= -1:
        return "RNA-seq values at or below -1 cannot be log2(x + 1)-transformed"
    if tech == "MICROARRAY" and high > 100 and low <= 0:
        return "unlogged microarray values include zero or negative values; log2 is undefined"
    return None


def _clean(frame, label, technology, log_rnaseq, filtered, transforms) -> _Block | None:
    """Sanitise one frame's ids, choose each sample's log rule, drop unusable samples.

    The values are not copied here: each kept sample is gathered (and log-transformed) straight
    into the group's matrix by :meth:`GroupMatrix.fill`.
    """
    frame = sanitize_gene_ids(_to_float(frame, label))
    values = frame.to_numpy(dtype=np.float64, copy=False)
    if values.size:
        low, high = np.fmin.reduce(values, axis=0), np.fmax.reduce(values, axis=0)  # NaN-blind
    else:
        low = high = np.full(values.shape[1], np.nan)
    columns: list[int] = []
    logs: list[int] = []
    for j, s in enumerate(map(str, frame.columns)):
        tech, log = technology.get(s, ""), log_rnaseq.get(s, False)
        reason = _unusable(values[:, j], low[j], high[j], frame.index, tech, log)
        if reason is not None:
            filtered.append((s, reason))
            continue
        rule = _AS_IS
        if tech == "RNA-SEQ" and log:
            rule = _LOG2_PLUS_1
        elif tech == "MICROARRAY" and high[j] > 100:
            rule = _LOG2
        if rule:
            transforms[s] = _TRANSFORM_LABELS[rule]
        columns.append(j)
        logs.append(rule)
    if not columns:
        return None
    return _Block(frame.index, values, [str(frame.columns[j]) for j in columns], columns, logs)


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
