"""What the join on genes kept: per sample, how many genes it brought and how many stayed.

refine.bio's inner join keeps only the genes present in every sample of a group. When two
platforms share their gene ids only in part, the join quietly keeps a few hundred genes out of
twenty thousand. The build records a report for every group (``res[key].uns``, the zip's
``aggregated_metadata.json``) and warns with :class:`~refinewidgets.errors.LowGeneOverlapWarning`
when the join keeps less than half of the genes of the group's smallest sample, naming the
platforms (or experiments) whose gene ids the others lack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["gene_report", "low_overlap_message"]

#: The join is reported as low when it keeps less than this share of the smallest sample's genes.
LOW_OVERLAP = 0.5


def gene_report(
    genes_per_sample: Mapping[str, int], kept: int, union: int, join: str
) -> dict[str, Any]:
    """The report of one group (JSON- and H5AD-safe).

    Examples
    --------
    >>> r = gene_report({"S1": 100, "S2": 80}, kept=70, union=110, join="inner")
    >>> r["kept"], r["dropped"], r["smallest_sample"], r["low_overlap"]
    (70, 40, 'S2', False)
    """
    smallest = min(genes_per_sample, key=genes_per_sample.get) if genes_per_sample else ""
    fewest = int(genes_per_sample.get(smallest, 0))
    return {
        "join": join,
        "kept": int(kept),
        "union": int(union),
        "dropped": int(union - kept),
        "smallest_sample": smallest,
        "smallest_sample_genes": fewest,
        "low_overlap": bool(join == "inner" and fewest and kept < LOW_OVERLAP * fewest),
        "per_sample": {str(s): int(n) for s, n in genes_per_sample.items()},
    }


def low_overlap_message(
    key: str,
    report: Mapping[str, Any],
    blocks: Sequence[tuple[Sequence[str], pd.Index]],
    label_of: Callable[[str], str],
) -> str:
    """Say what the join lost and which platforms are responsible.

    ``blocks`` are the samples of each matrix read and its gene ids; ``label_of`` names a
    sample's platform (or experiment). For each platform, the message gives its samples, its
    genes, and how many genes the join would keep without it.
    """
    by_label: dict[str, tuple[list[str], pd.Index]] = {}
    for samples, genes in blocks:
        for label in dict.fromkeys(label_of(s) for s in samples):
            own = [s for s in samples if label_of(s) == label]
            if label in by_label:
                prev_samples, prev_genes = by_label[label]
                by_label[label] = (prev_samples + own, prev_genes.intersection(genes, sort=False))
            else:
                by_label[label] = (own, genes)
    parts = []
    for label, (samples, genes) in by_label.items():
        others = [g for other, (_, g) in by_label.items() if other != label]
        text = f"{label} ({len(samples)} sample(s), {len(genes):,} genes"
        if others:
            without = others[0]
            for g in others[1:]:
                without = without.intersection(g, sort=False)
            if len(without) > report["kept"]:
                text += f"; without it the join would keep {len(without):,}"
        parts.append(text + ")")
    return (
        f"Group {key}: the inner join on genes kept {report['kept']:,} genes, less than half of "
        f"the {report['smallest_sample_genes']:,} of its smallest sample "
        f"({report['smallest_sample']}); {report['dropped']:,} genes were dropped. By platform: "
        f"{'; '.join(parts)}. Their gene ids overlap only in part. Aggregate them separately "
        "(aggregate_by='EXPERIMENT'), leave out the platform that shares few genes, or keep "
        "every gene with join='outer'."
    )
