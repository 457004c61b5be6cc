"""Provenance: ``aggregated_metadata.json``, written by a build and read back by io.

One module shapes it (:func:`aggregated_metadata`) and reads it back
(:func:`recorded_group_info`, :func:`dataset_of`), so the two never disagree. Top-level keys
keep refine.bio's meaning; ours live under the ``refinewidgets`` key (format version, the
dataset spec, and per group what was built: its kind, organisms, gene report, quantile
normalization and KS check).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .._version import FORMAT_VERSION, __version__
from ..errors import DatasetSpecError
from .metadata import ANNOTATIONS, EXPERIMENT_FIELDS
from .spec import Dataset

__all__ = ["aggregated_metadata", "dataset_of", "json_record", "recorded_group_info", "uns_safe"]

UNS_KEY = "refinewidgets"


def json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with NaN as None and numpy scalars as Python numbers (JSON-safe)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and np.isnan(v):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def uns_safe(value: Any) -> Any:
    """``value`` without None entries, at any depth: H5AD cannot store None."""
    if isinstance(value, Mapping):
        return {str(k): uns_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [uns_safe(v) for v in value if v is not None]
    return value


def aggregated_metadata(
    dataset: Dataset,
    catalog,
    groups: Mapping[str, tuple[list[str], Mapping[str, Any]]],
    records: Mapping[str, Mapping[str, Any]],
    pseudo_of: Mapping[str, list[str]],
    filtered: Iterable[str],
) -> dict[str, Any]:
    """``aggregated_metadata.json``, with refine.bio's meaning of each field.

    ``groups`` maps each key to ``(samples, info)``; ``records`` holds the record of every
    included sample, in order. ``experiments`` has every experiment of the dataset; its
    ``sample_accession_codes`` are all the experiment's samples (not only the requested ones)
    minus the ``filtered`` ones, a library replaced by its pseudo-samples (``pseudo_of``).
    ``num_experiments`` counts the dataset's experiments. The KS fields hold the last tested
    pair of the last normalized group, and ``ks_warning`` is set when any group failed (the
    last failure's message, prefixed by its group).
    """
    filtered_set = set(filtered)
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
        experiments[exp] = json_record(entry)
    ks: dict[str, Any] = {"ks_pvalue": None, "ks_statistic": None, "ks_warning": None}
    groups_info = {}
    for key, (samples, info) in groups.items():
        qn = info.get("quantile_normalization")
        if qn:
            ks["ks_pvalue"], ks["ks_statistic"] = qn.get("ks_pvalue"), qn.get("ks_statistic")
            if qn.get("ks_warning"):
                ks["ks_warning"] = f"{key}: {qn['ks_warning']}"
        groups_info[key] = {"num_samples": len(samples), **info}
    samples_json = {}
    for s, record in records.items():
        rec = json_record(record)
        rec.setdefault(ANNOTATIONS, [])
        samples_json[s] = rec
    return {
        "aggregate_by": dataset.aggregate_by,
        "created_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "experiments": experiments,
        **ks,
        "num_experiments": len(dataset.data),
        "num_samples": len(records),
        "quant_sf_only": False,
        "quantile_normalized": bool(dataset.quantile_normalize),
        "samples": samples_json,
        "scale_by": dataset.scale_by,
        UNS_KEY: {
            "format_version": FORMAT_VERSION,
            "version": __version__,
            "dataset": dataset.to_dict(),
            "join": dataset.join,
            "groups": groups_info,
        },
    }


def recorded_group_info(meta: Mapping[str, Any], key: str) -> dict[str, Any]:
    """What a build recorded about group ``key`` (H5AD-safe), or ``{}`` (refine.bio's files)."""
    ours = meta.get(UNS_KEY)
    groups = ours.get("groups") if isinstance(ours, Mapping) else None
    info = groups.get(key) if isinstance(groups, Mapping) else None
    return uns_safe(info) if isinstance(info, Mapping) else {}


def dataset_of(meta: Mapping[str, Any], present: set[str]) -> Dataset | None:
    """The spec of a download: ours records it; refine.bio's is rebuilt from what it holds.

    refine.bio lists every sample of an experiment, so a rebuilt spec keeps the samples
    ``present`` in the download. None when no valid spec can be made.
    """
    ours = meta.get(UNS_KEY)
    try:
        if isinstance(ours, Mapping) and isinstance(ours.get("dataset"), Mapping):
            return Dataset.from_dict(ours["dataset"])
        experiments = meta.get("experiments")
        data = {}
        for acc, exp in experiments.items() if isinstance(experiments, Mapping) else ():
            codes = exp.get("sample_accession_codes") if isinstance(exp, Mapping) else None
            chosen = [str(s) for s in codes or () if str(s) in present]
            if chosen:
                data[str(acc)] = list(dict.fromkeys(chosen))
        return Dataset(
            data,
            aggregate_by=meta.get("aggregate_by", "EXPERIMENT") or "EXPERIMENT",
            scale_by=meta.get("scale_by", "NONE") or "NONE",
            quantile_normalize=bool(meta.get("quantile_normalized", False)),
        )
    except (DatasetSpecError, TypeError, AttributeError):
        return None
