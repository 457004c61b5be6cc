"""The build verb: a :class:`Dataset` and a :class:`Catalog` in, a :class:`Result` out.

Per group (``aggregate_by``): read only the needed columns of the needed matrices, sanitise and
join on genes (:mod:`.merge`), quantile-normalize against the group's organism target
(:mod:`.quantile`) and check the result, scale each gene (:mod:`.scale`). Every requested sample
ends as a matrix column with a metadata row, or in ``filtered_samples`` with a reason.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._version import FORMAT_VERSION, __version__
from ..errors import BuildError
from .catalog import Catalog
from .merge import GroupMatrix, merge_group
from .metadata import ANNOTATIONS, metadata_columns, metadata_frame
from .progress import as_progress
from .quantile import determine_target, ks_check, quantile_normalize_rows
from .result import Result, make_group
from .scale import scale_rows
from .spec import Dataset, ResolvedSample

__all__ = ["build"]

EXPERIMENT_FIELDS = (
    "accession_code",
    "title",
    "description",
    "organisms",
    "sample_accession_codes",
    "technology",
    "submitter_institution",
    "has_publication",
    "publication_title",
    "publication_doi",
    "pubmed_id",
    "protocol_description",
    "source_first_published",
    "source_last_modified",
)


def _organism(catalog: Catalog, accession: str) -> str:
    return str(catalog.sample_record(accession).get("refinebio_organism") or "UNKNOWN_ORGANISM").upper()


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


def _read_group(members: list[ResolvedSample], catalog: Catalog, dataset: Dataset) -> GroupMatrix:
    by_matrix: dict[tuple[int, str], list[str]] = {}
    for item in members:
        src, matrix_id = catalog.locate(item.accession)
        by_matrix.setdefault((catalog.sources.index(src), matrix_id), []).append(item.accession)
    frames = []
    for (i, matrix_id), accessions in by_matrix.items():
        src = catalog.sources[i]
        frames.append((src.read_matrix(matrix_id, accessions), f"{src.name} ({matrix_id})"))
    technology = {m.accession: catalog.technology(m.experiment) for m in members}
    log_rnaseq = {
        m.accession: dataset.aggregate_by == "SPECIES" and not catalog.locate(m.accession)[0].log_scale
        for m in members
    }
    gm = merge_group(frames, technology, log_rnaseq=log_rnaseq, join=dataset.join)
    # Keep the request order inside the group.
    order = {m.accession: i for i, m in enumerate(members)}
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
        why = "no source ships a target for " + (organisms[0] if len(organisms) == 1 else "a mixed-species group")
        how = f"computed from the group's {len(gm.samples)} samples (mean of their sorted values): {why}"
        kind = "computed"
    quantile_normalize_rows(gm.X, target, out=gm.X)
    ks = ks_check(gm.X)
    return {"target": kind, "target_description": how, **ks}


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

    steps_per_group = 1 + int(dataset.quantile_normalize) + int(dataset.scale_by != "NONE")
    prog.start(len(groups) * steps_per_group + 1, "reading values")
    merged: dict[str, tuple[GroupMatrix, dict[str, Any]]] = {}
    try:
        for key, members in groups.items():
            gm = _read_group(members, catalog, dataset)
            exp_by_acc = {m.accession: m.experiment for m in members}
            filtered += [(acc, exp_by_acc[acc], reason) for acc, reason in gm.filtered]
            prog.advance(f"{key}: normalizing" if dataset.quantile_normalize else f"{key}: scaling")
            if not gm.samples:
                continue  # its samples are in `filtered`; never a silent empty group
            info: dict[str, Any] = {"genes_dropped_by_join": gm.genes_dropped}
            organisms = sorted({_organism(catalog, s) for s in gm.samples})
            info["organisms"] = organisms
            if dataset.quantile_normalize:
                info["quantile_normalization"] = _quantile_normalize(gm, catalog, organisms)
                prog.advance(f"{key}: scaling")
            if dataset.scale_by != "NONE":
                scale_rows(gm.X, dataset.scale_by)
                prog.advance()
            merged[key] = (gm, info)
        if not merged:
            reasons = "; ".join(f"{a} ({e}): {r}" for a, e, r in filtered[:10])
            raise BuildError(
                f"Nothing to build: all {len(filtered)} requested samples were filtered out: {reasons}"
                f"{' ...' if len(filtered) > 10 else ''}. Choose samples that have processed values."
            )
        included = list(dict.fromkeys(s for gm, _ in merged.values() for s in gm.samples))
        records = {s: catalog.sample_record(s) for s in included}
        columns = metadata_columns(records.values())
        spec = dataset.to_dict()
        result_groups = {}
        for key, (gm, info) in merged.items():
            obs = metadata_frame(gm.samples, experiment_of, records, columns)
            result_groups[key] = make_group(
                gm.X, obs, gm.genes,
                uns={"key": key, "dataset": spec, "join": dataset.join, **_uns_safe(info)},
            )
        requested: dict[str, list[str]] = {}
        for item in resolved:
            requested.setdefault(item.experiment, []).append(item.accession)
        aggregated = _aggregated_metadata(dataset, catalog, merged, included, requested, records)
        prog.advance("done")
    finally:
        prog.close()
    filtered_frame = pd.DataFrame(filtered, columns=["accession", "experiment", "reason"])
    filtered_frame = filtered_frame.drop_duplicates(subset=["accession", "reason"]).reset_index(drop=True)
    filtered_records = {a: dict(_json_record(catalog.sample_record(a))) for a in filtered_frame["accession"]}
    return Result(
        result_groups,
        aggregated,
        filtered_frame,
        metadata_columns=columns,
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


def _aggregated_metadata(dataset, catalog, merged, included, requested, records) -> dict[str, Any]:
    included_set = set(included)
    experiments: dict[str, Any] = {}
    for exp in dataset.data:
        members = [s for s in requested.get(exp, ()) if s in included_set]
        if not members:
            continue
        rec = catalog.experiment_record(exp)
        entry = {f: rec.get(f) for f in EXPERIMENT_FIELDS}
        entry["accession_code"] = exp
        entry["sample_accession_codes"] = members
        entry["organisms"] = list(rec.get("organisms") or ())
        experiments[exp] = _json_record(entry)
    ks: dict[str, Any] = {"ks_pvalue": None, "ks_statistic": None, "ks_warning": None}
    groups_info = {}
    for key, (gm, info) in merged.items():
        qn = info.get("quantile_normalization")
        if qn:
            ks = {k: qn.get(k) for k in ks}  # refine.bio records the last group's check
        groups_info[key] = {
            "num_samples": len(gm.samples),
            "num_genes": int(gm.X.shape[1]),
            **info,
        }
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
        "num_experiments": len(experiments),
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
