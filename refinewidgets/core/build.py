"""The build verb: a :class:`Dataset` and a :class:`Catalog` in, a :class:`Result` out.

Per group (``aggregate_by``): read only the needed columns of the needed matrices, sanitise and
join on genes (:mod:`.merge`), quantile-normalize against the group's organism target
(:mod:`.quantile`) and check the result, scale each gene (:mod:`.scale`). Every requested sample
ends as a matrix column with a metadata row, or in ``filtered_samples`` with a reason.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._version import FORMAT_VERSION, __version__
from ..errors import BuildError, DatasetSpecError, GeneOverlapError, LowGeneOverlapWarning
from .catalog import Catalog
from .gene_report import gene_report, low_overlap_message
from .merge import GroupMatrix, merge_group
from .metadata import ANNOTATIONS, EXPERIMENT_FIELDS, metadata_columns, metadata_frame
from .progress import as_progress
from .quantile import determine_target, ks_check, quantile_normalize_rows
from .result import Result, make_cell_group, make_group
from .scale import scale_rows
from .single_cell import (
    CellBlock,
    describe_values,
    merge_cells,
    normalize_counts,
    pseudo_records,
    pseudobulk,
    scale_cells,
)
from .spec import Dataset, ResolvedSample

__all__ = ["build"]


def _organism(catalog: Catalog, accession: str) -> str:
    return str(
        catalog.sample_record(accession).get("refinebio_organism") or "UNKNOWN_ORGANISM"
    ).upper()


def _groups(
    resolved: list[ResolvedSample], catalog: Catalog, aggregate_by: str
) -> dict[str, list[ResolvedSample]]:
    groups: dict[str, list[ResolvedSample]] = {}
    seen: dict[str, set[str]] = {}
    for item in resolved:
        if aggregate_by == "EXPERIMENT":
            key = item.experiment
        elif aggregate_by == "SPECIES":
            key = _organism(catalog, item.accession)
        else:
            key = "ALL"
        if item.accession in seen.setdefault(key, set()):
            continue  # listed under two experiments: once per group
        seen[key].add(item.accession)
        groups.setdefault(key, []).append(item)
    return groups


def _by_matrix(members: list[ResolvedSample], catalog: Catalog) -> dict[tuple[int, str], list[str]]:
    by_matrix: dict[tuple[int, str], list[str]] = {}
    for item in members:
        by_matrix.setdefault(catalog.location(item.accession), []).append(item.accession)
    return by_matrix


def _read_cells(
    members: list[ResolvedSample], catalog: Catalog, dataset: Dataset
) -> tuple[list[CellBlock], list[tuple[str, str]]]:
    """Read the selected cells of each file; libraries left without a cell are filtered."""
    blocks: list[CellBlock] = []
    filtered: list[tuple[str, str]] = []
    errors: list[DatasetSpecError] = []
    for (i, matrix_id), libraries in _by_matrix(members, catalog).items():
        try:
            block = catalog.sources[i].read_cells(matrix_id, libraries, dataset.cell_filter)
        except DatasetSpecError as exc:
            errors.append(exc)
            filtered += [(lib, f"no cell passes the cell filter: {exc}") for lib in libraries]
            continue
        present = set(block.cells["library"].astype(str))
        filtered += [
            (lib, "no cell of this library passes the cell filter")
            for lib in libraries
            if lib not in present
        ]
        blocks.append(block)
    if not blocks and errors:
        raise errors[0]
    return blocks, filtered


def _pseudobulk_frames(blocks: list[CellBlock], catalog: Catalog, dataset: Dataset):
    """Pseudo-samples of the cell blocks as bulk frames, with their records."""
    frames, records, library_of = [], {}, {}
    for block in blocks:
        sums, groups = pseudobulk(block.cells, block.counts, dataset.pseudobulk)
        sums = normalize_counts(sums, dataset.counts_normalization)
        frame = pd.DataFrame(
            np.asarray(sums).T, index=block.genes.index, columns=list(groups["accession"])
        )
        frames.append((frame, f"pseudobulk of {block.label}"))
        libs = {lib: catalog.sample_record(lib) for lib in groups["library"]}
        records.update(pseudo_records(groups, block.cells, libs, dataset.pseudobulk))
        library_of.update(dict(zip(groups["accession"], groups["library"])))
    return frames, records, library_of


def _read_group(
    members: list[ResolvedSample],
    catalog: Catalog,
    dataset: Dataset,
    pseudo_frames=(),
    pseudo_library=None,
) -> GroupMatrix:
    """Merge the bulk ``members`` (read from their sources) and pseudo-samples already summed.

    ``pseudo_library`` maps each pseudo-sample to its library.
    """
    by_matrix = _by_matrix(members, catalog)

    def frames():  # one matrix at a time: merge_group holds no more than it must
        for (i, matrix_id), accessions in by_matrix.items():
            src = catalog.sources[i]
            yield src.read_matrix(matrix_id, accessions), f"{src.name} ({matrix_id})"
        yield from pseudo_frames  # after the bulk samples, where the group's order puts them

    technology = {m.accession: catalog.technology(m.experiment) for m in members}
    log_rnaseq = {
        m.accession: dataset.aggregate_by == "SPECIES"
        and not catalog.locate(m.accession)[0].log_scale
        for m in members
    }
    for acc in pseudo_library or {}:
        technology[acc] = "RNA-SEQ"  # pseudo-samples behave as bulk RNA-seq
        log_rnaseq[acc] = (
            dataset.aggregate_by == "SPECIES" and dataset.counts_normalization != "LOG1P_CPM"
        )
    gm = merge_group(frames(), technology, log_rnaseq=log_rnaseq, join=dataset.join)
    # Keep the request order inside the group; pseudo-samples follow the bulk samples.
    order = {m.accession: i for i, m in enumerate(members)}
    for j, acc in enumerate(pseudo_library or {}):
        order[acc] = len(members) + j
    if gm.samples and [order[s] for s in gm.samples] != sorted(order[s] for s in gm.samples):
        perm = np.argsort([order[s] for s in gm.samples], kind="stable")
        gm.X = gm.X[perm]
        gm.samples = [gm.samples[i] for i in perm]
    return gm


def _quantile_normalize(gm: GroupMatrix, catalog: Catalog, organisms: list[str]) -> dict[str, Any]:
    shipped = catalog.qn_target(organisms[0]) if len(organisms) == 1 else None
    if shipped is not None:
        target, source_name = shipped
        how = f"{organisms[0]} target shipped by source {source_name} ({len(target)} values)"
        kind = "source"
    else:
        target = determine_target(gm.X.T)
        why = "no source ships a target for " + (
            organisms[0] if len(organisms) == 1 else "a mixed-species group"
        )
        how = f"computed from the group's {len(gm.samples)} samples (mean of their sorted values): {why}"
        kind = "computed"
    quantile_normalize_rows(gm.X, target, out=gm.X)
    ks = ks_check(gm.X, names=gm.samples)
    return {"target": kind, "target_description": how, **ks}


def _check_single_cell(
    groups: dict[str, list[ResolvedSample]], catalog: Catalog, dataset: Dataset
) -> None:
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


def _cell_group(blocks: list[CellBlock], dataset: Dataset):
    counts, cells, genes = merge_cells(blocks, join=dataset.join)
    if counts.shape[1] == 0:
        raise GeneOverlapError(
            "The single-cell files of this group share no gene, so the inner join keeps none: "
            + "; ".join(f"{b.label} ({b.genes.shape[0]:,} genes, {b.organism})" for b in blocks)
            + ". They probably hold different species; aggregate them separately "
            "(aggregate_by='EXPERIMENT' or 'SPECIES') or use join='outer'."
        )
    n_union = len(set().union(*(set(b.genes.index) for b in blocks)))
    X = normalize_counts(counts, dataset.counts_normalization, copy=False)  # counts is ours
    del counts
    if dataset.scale_by != "NONE":
        X = scale_cells(X, dataset.scale_by)
    organisms = sorted({b.organism for b in blocks})
    cells = cells.copy()
    cells["organism"] = pd.Categorical(
        [b.organism for b in blocks for _ in range(b.cells.shape[0])]
    )
    libraries = list(dict.fromkeys(cells["library"].astype(str)))
    info = {
        "kind": "cells",
        "values": describe_values(dataset.counts_normalization, dataset.scale_by),
        "num_cells": int(X.shape[0]),
        "num_libraries": len(libraries),
        "organisms": organisms,
        "genes_dropped_by_join": n_union - len(genes),
        "counts_normalization": dataset.counts_normalization,
        "cell_filter": {k: list(v) for k, v in (dataset.cell_filter or {}).items()},
    }
    return (X, cells, genes), libraries, info


def _report_genes(key: str, gm: GroupMatrix, join: str, label_of) -> dict[str, Any]:
    """The group's gene report; a LowGeneOverlapWarning when the join kept too little."""
    report = gene_report(
        {s: gm.genes_per_sample[s] for s in gm.samples},
        len(gm.genes),
        len(gm.genes) + gm.genes_dropped,
        join,
    )
    if report["low_overlap"]:
        warnings.warn(
            low_overlap_message(key, report, gm.block_genes, label_of),
            LowGeneOverlapWarning,
            stacklevel=4,
        )
    gm.block_genes = []
    return report


def _json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and np.isnan(v):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def build(dataset: Dataset | Mapping[str, Any], catalog: Catalog, progress: Any = None) -> Result:
    """Build ``dataset`` from the sources of ``catalog``.

    Parameters
    ----------
    dataset
        A :class:`Dataset`, or its dict form.
    catalog
        Where the samples and their values are.
    progress
        None, a callable ``f(done, total, message)``, or a tqdm-like object.

    Returns
    -------
    A :class:`Result`: one AnnData per group, the metadata and the filtered samples.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> exp = cat.experiments.index[0]
    >>> res = rw.build(rw.Dataset({exp: ["ALL"]}), cat)
    >>> list(res.keys()) == [exp]
    True
    """
    if isinstance(dataset, Mapping):
        dataset = Dataset.from_dict(dataset)
    prog = as_progress(progress)
    resolved, unusable = dataset.resolve(catalog)
    filtered: list[tuple[str, str, str]] = list(unusable)
    groups = _groups(resolved, catalog, dataset.aggregate_by)
    experiment_of: dict[str, str] = {}
    for item in resolved:
        experiment_of.setdefault(item.accession, item.experiment)
    for acc, exp, _ in unusable:
        experiment_of.setdefault(acc, exp)

    _check_single_cell(groups, catalog, dataset)
    steps_per_group = 1 + int(dataset.quantile_normalize) + int(dataset.scale_by != "NONE")
    prog.start(len(groups) * steps_per_group + 1, "reading values")
    group_samples: dict[str, list[str]] = {}
    group_info: dict[str, dict[str, Any]] = {}
    built: dict[str, Any] = {}  # key -> GroupMatrix (samples) or (X, cells, genes) (cells)
    pseudo_meta: dict[str, dict[str, Any]] = {}  # records of pseudo-samples (not in the catalog)

    def record(acc: str) -> Mapping[str, Any]:
        return pseudo_meta.get(acc) or catalog.sample_record(acc)

    pseudo_of: dict[str, list[str]] = {}
    try:
        for key, members in groups.items():
            exp_by_acc = {m.accession: m.experiment for m in members}
            cells = [m for m in members if catalog.is_single_cell(m.experiment)]
            bulk = [m for m in members if not catalog.is_single_cell(m.experiment)]
            pseudo, library_of = [], {}
            if cells:
                blocks, lib_filtered = _read_cells(cells, catalog, dataset)
                filtered += [(lib, exp_by_acc[lib], reason) for lib, reason in lib_filtered]
                if dataset.pseudobulk is None:
                    prog.advance(f"{key}: scaling")
                    if blocks:
                        built[key], group_samples[key], group_info[key] = _cell_group(
                            blocks, dataset
                        )
                    prog.advance(n=steps_per_group - 1)
                    continue
                pseudo, records, library_of = _pseudobulk_frames(blocks, catalog, dataset)
                pseudo_meta.update(records)
                for acc, lib in library_of.items():
                    exp_by_acc[acc] = exp_by_acc[lib]
                    experiment_of.setdefault(acc, exp_by_acc[lib])
                    pseudo_of.setdefault(lib, []).append(acc)
            gm = _read_group(bulk, catalog, dataset, pseudo, library_of)
            filtered += [(acc, exp_by_acc[acc], reason) for acc, reason in gm.filtered]
            prog.advance(f"{key}: normalizing" if dataset.quantile_normalize else f"{key}: scaling")
            if not gm.samples:
                prog.advance(n=steps_per_group - 1)
                continue  # its samples are in `filtered`; never a silent empty group
            info: dict[str, Any] = {"kind": "samples", "genes_dropped_by_join": gm.genes_dropped}
            info["gene_report"] = _report_genes(
                key,
                gm,
                dataset.join,
                lambda s, e=exp_by_acc: (
                    str(record(s).get("refinebio_platform") or "").strip()
                    or f"experiment {e.get(s, s)}"
                ),
            )
            organisms = sorted(
                {str(record(s).get("refinebio_organism") or "UNKNOWN_ORGANISM") for s in gm.samples}
            )
            info["organisms"] = organisms
            if library_of:
                info["pseudobulk"] = dataset.pseudobulk
                info["pseudobulk_values"] = describe_values(
                    dataset.counts_normalization, "NONE", pseudobulk=True
                )
            if dataset.quantile_normalize:
                info["quantile_normalization"] = _quantile_normalize(gm, catalog, organisms)
                prog.advance(f"{key}: scaling")
            if dataset.scale_by != "NONE":
                scale_rows(gm.X, dataset.scale_by)
                prog.advance()
            built[key], group_samples[key], group_info[key] = gm, gm.samples, info
        if not built:
            reasons = "; ".join(f"{a} ({e}): {r}" for a, e, r in filtered[:10])
            raise BuildError(
                f"Nothing to build: all {len(filtered)} requested samples were filtered out: {reasons}"
                f"{' ...' if len(filtered) > 10 else ''}. Choose samples that have processed values."
            )
        included = list(dict.fromkeys(s for samples in group_samples.values() for s in samples))
        records = {s: record(s) for s in included}
        bulk_samples = [
            s for k, g in built.items() if isinstance(g, GroupMatrix) for s in g.samples
        ]
        columns = metadata_columns(records[s] for s in bulk_samples)
        spec = dataset.to_dict()
        result_groups = {}
        for key, g in built.items():
            uns = {"key": key, "dataset": spec, "join": dataset.join, **_uns_safe(group_info[key])}
            if isinstance(g, GroupMatrix):
                obs = metadata_frame(g.samples, experiment_of, records, columns)
                result_groups[key] = make_group(g.X, obs, g.genes, uns=uns)
            else:
                result_groups[key] = make_cell_group(*g, uns=uns)
        aggregated = _aggregated_metadata(
            dataset, catalog, group_samples, group_info, included, pseudo_of, filtered, records
        )
        prog.advance("done")
    finally:
        prog.close()
    filtered_frame = pd.DataFrame(filtered, columns=["accession", "experiment", "reason"])
    filtered_frame = filtered_frame.drop_duplicates(subset=["accession", "reason"]).reset_index(
        drop=True
    )
    filtered_records = {
        a: dict(_json_record(catalog.sample_record(a))) for a in filtered_frame["accession"]
    }
    return Result(
        result_groups,
        aggregated,
        filtered_frame,
        metadata_columns=columns if bulk_samples else None,
        dataset=dataset,
        filtered_records=filtered_records,
    )


def _uns_safe(info: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values: H5AD cannot store them."""
    out = {}
    for k, v in info.items():
        if isinstance(v, Mapping):
            out[k] = _uns_safe(v)
        elif v is not None:
            out[k] = v
    return out


def _aggregated_metadata(
    dataset, catalog, group_samples, group_info, included, pseudo_of, filtered, records
) -> dict[str, Any]:
    """``aggregated_metadata.json``, with refine.bio's meaning of each field.

    ``experiments`` has every experiment of the dataset; its ``sample_accession_codes`` are all
    the experiment's samples (not only the requested ones) minus the filtered ones, a library
    replaced by its pseudo-samples. ``num_experiments`` counts the dataset's experiments. The
    KS fields hold the last tested pair of the last normalized group, and ``ks_warning`` is set
    when any group failed (the last failure's message).
    """
    filtered_set = {acc for acc, _, _ in filtered}
    experiments: dict[str, Any] = {}
    for exp in dataset.data:
        members: list[str] = []
        for s in catalog.experiment_samples(exp):
            if s in pseudo_of:
                members.extend(pseudo_of[s])
            elif s not in filtered_set:
                members.append(s)
        rec = catalog.experiment_record(exp)
        entry = {f: rec.get(f) for f in EXPERIMENT_FIELDS}
        entry["accession_code"] = exp
        entry["sample_accession_codes"] = list(dict.fromkeys(members))
        entry["organisms"] = list(rec.get("organisms") or ())
        experiments[exp] = _json_record(entry)
    ks: dict[str, Any] = {"ks_pvalue": None, "ks_statistic": None, "ks_warning": None}
    groups_info = {}
    for key, info in group_info.items():
        qn = info.get("quantile_normalization")
        if qn:
            ks["ks_pvalue"], ks["ks_statistic"] = qn.get("ks_pvalue"), qn.get("ks_statistic")
            if qn.get("ks_warning"):
                ks["ks_warning"] = f"{key}: {qn['ks_warning']}"
        groups_info[key] = {"num_samples": len(group_samples[key]), **info}
    samples = {}
    for s in included:
        rec = _json_record(records[s])
        rec.setdefault(ANNOTATIONS, [])
        samples[s] = rec
    return {
        "aggregate_by": dataset.aggregate_by,
        "created_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "experiments": experiments,
        **ks,
        "num_experiments": len(dataset.data),
        "num_samples": len(included),
        "quant_sf_only": False,
        "quantile_normalized": bool(dataset.quantile_normalize),
        "samples": samples,
        "scale_by": dataset.scale_by,
        "refinewidgets": {
            "format_version": FORMAT_VERSION,
            "version": __version__,
            "dataset": dataset.to_dict(),
            "join": dataset.join,
            "groups": groups_info,
        },
    }
