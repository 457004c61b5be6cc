"""The build verb: a :class:`Dataset` and a :class:`Catalog` in, a :class:`Result` out.

A build is a short list of named steps:

1. :func:`_plan`: resolve the spec against the catalog, form the groups (``aggregate_by``) and
   refuse what cannot be done with cells, before anything is read;
2. per group, :func:`_build_group`: single cells follow the cell path of
   :mod:`.single_cell` (read the selected cells, join, normalize counts, or pseudobulk them);
   samples are read (only the needed columns of the needed matrices), sanitised and joined on
   genes (:mod:`.merge`) with a gene report (:mod:`.gene_report`), then :func:`_normalize`:
   quantile normalization against the group's organism target (:mod:`.quantile`), ComBat if
   asked (:mod:`.batch`) and per-gene scaling (:mod:`.scale`);
3. :func:`_assemble`: one AnnData per group with refine.bio's metadata (and Harmony's
   embedding if asked), and the provenance (:mod:`.provenance`).

Every requested sample ends as a matrix column with a metadata row, or as a
:class:`FilteredSample` with a reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BuildError, DatasetSpecError, LowGeneOverlapWarning
from .batch_steps import check_batch_correction, combat_group, harmony_cells, harmony_samples
from .catalog import Catalog
from .gene_report import gene_report, low_overlap_message
from .ks_check import ks_check, ks_pairs
from .merge import GroupMatrix, merge_group
from .metadata import metadata_columns, metadata_frame
from .progress import as_progress
from .provenance import aggregated_metadata, json_record, uns_safe
from .quantile import quantile_normalize_rows
from .result import Result, make_cell_group, make_group
from .scale import scale_rows
from .single_cell import (
    cell_group,
    check_cells,
    describe_values,
    pseudobulk_frames,
    read_cells,
    select_genes,
    warn_gene_selection,
)
from .spec import Dataset, ResolvedSample
from .threads import ordered_map, thread_count

__all__ = ["FilteredSample", "GroupBuild", "build"]


@dataclass(frozen=True)
class FilteredSample:
    """A requested sample that is in no matrix, and why."""

    accession: str
    experiment: str
    reason: str


@dataclass
class GroupBuild:
    """What one group became: its rows (samples, or libraries for cells) and how it was made.

    ``matrix`` holds a sample group's values, ``cells`` a cell group's ``(X, cells, genes)``.
    """

    key: str
    samples: list[str]
    info: dict[str, Any]
    matrix: GroupMatrix | None = None
    cells: tuple[Any, pd.DataFrame, pd.DataFrame] | None = None
    obsm: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Plan:
    """The resolved request and the build's bookkeeping."""

    dataset: Dataset
    catalog: Catalog
    groups: dict[str, list[ResolvedSample]]
    filtered: list[FilteredSample]
    experiment_of: dict[str, str]
    pseudo_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    pseudo_of: dict[str, list[str]] = field(default_factory=dict)
    cell_errors: list[Exception] = field(default_factory=list)
    threads: int = 1
    client: Any = None  # a dask.distributed client: bulk groups are built out of core
    workdir: Any = None

    def record(self, accession: str) -> Mapping[str, Any]:
        return self.pseudo_records.get(accession) or self.catalog.sample_record(accession)

    def organism(self, accession: str) -> str:
        return str(self.record(accession).get("refinebio_organism") or "UNKNOWN_ORGANISM").upper()

    def filter(self, pairs, experiment_of: Mapping[str, str]) -> None:
        self.filtered += [FilteredSample(a, experiment_of[a], r) for a, r in pairs]

    @property
    def steps_per_group(self) -> int:
        ds = self.dataset
        return (
            1
            + int(ds.quantile_normalize)
            + int(ds.scale_by != "NONE")
            + int(ds.batch_correction is not None)
        )


def _plan(dataset: Dataset, catalog: Catalog) -> _Plan:
    """Resolve the spec, form the groups, refuse what cannot be done with cells."""
    resolved, unusable = dataset.resolve(catalog)
    plan = _Plan(dataset, catalog, {}, [FilteredSample(*u) for u in unusable], {})
    for item in resolved:
        plan.experiment_of.setdefault(item.accession, item.experiment)
    for f in plan.filtered:
        plan.experiment_of.setdefault(f.accession, f.experiment)
    seen: dict[str, set[str]] = {}
    # Bgee writes one file per experiment and species: such an experiment's cells form one
    # group per species (``ERP1_HOMO_SAPIENS``), as genes of two species cannot share a matrix
    organisms: dict[str, set[str]] = {}
    for item in resolved:
        if catalog.is_single_cell(item.experiment):
            organisms.setdefault(item.experiment, set()).add(plan.organism(item.accession))
    for item in resolved:
        if dataset.aggregate_by == "EXPERIMENT":
            key = item.experiment
            if len(organisms.get(key, ())) > 1:
                key = f"{key}_{plan.organism(item.accession)}"
        elif dataset.aggregate_by == "SPECIES":
            key = plan.organism(item.accession)
        else:
            key = "ALL"
        if item.accession in seen.setdefault(key, set()):
            continue  # listed under two experiments: once per group
        seen[key].add(item.accession)
        plan.groups.setdefault(key, []).append(item)
    check_cells(plan.groups, catalog, dataset)
    check_batch_correction(dataset, plan.groups, catalog)
    return plan


def _build_group(plan: _Plan, key: str, members: list[ResolvedSample], prog) -> GroupBuild | None:
    """One group: its cells, or its samples merged and normalized; None if all were filtered."""
    exp_by_acc = {m.accession: m.experiment for m in members}
    cells = [m for m in members if plan.catalog.is_single_cell(m.experiment)]
    bulk = [m for m in members if not plan.catalog.is_single_cell(m.experiment)]
    pseudo, library_of = [], {}
    if cells:
        blocks, lib_filtered, errors = read_cells(cells, plan.catalog, plan.dataset, plan.client)
        plan.filter(lib_filtered, exp_by_acc)
        plan.cell_errors += errors  # a filter matching nothing here may match elsewhere
        if plan.dataset.pseudobulk is None:
            return _cell_group(plan, key, blocks, prog)
        pseudo, library_of = _pseudo_samples(plan, blocks, exp_by_acc)
    return _sample_group(plan, key, bulk, (pseudo, library_of), exp_by_acc, prog, bool(cells))


def _cell_group(plan: _Plan, key: str, blocks, prog) -> GroupBuild | None:
    """A group of single cells kept as cells: joined, normalized, Harmony's embedding if asked."""
    prog.advance(f"{key}: scaling")
    prog.advance(n=plan.steps_per_group - 1)
    if not blocks:
        return None
    matrix, libraries, info = cell_group(blocks, plan.dataset)
    obsm = {}
    if plan.dataset.batch_correction == "harmony":
        obsm, info["batch_correction"] = harmony_cells(matrix, plan.dataset, key)
    return GroupBuild(key, libraries, info, cells=matrix, obsm=obsm)


def _pseudo_samples(plan: _Plan, blocks, exp_by_acc: dict[str, str]):
    """The pseudo-samples of the cell blocks (frames, and each one's library), recorded in the
    plan with their metadata and experiment."""
    pseudo, records, library_of = pseudobulk_frames(blocks, plan.catalog, plan.dataset)
    plan.pseudo_records.update(records)
    for acc, lib in library_of.items():
        exp_by_acc[acc] = exp_by_acc[lib]
        plan.experiment_of.setdefault(acc, exp_by_acc[lib])
        plan.pseudo_of.setdefault(lib, []).append(acc)
    return pseudo, library_of


def _refuse_out_of_core(key: str, option: str, instead: str) -> None:
    """Refuse an option an out-of-core group does not offer yet, saying what to do instead."""
    raise DatasetSpecError(
        f"Group {key} is built out of core (on a Dask cluster), where {option} is not "
        f"available yet: {instead}"
    )


def _sample_group(plan, key, bulk, pseudo, exp_by_acc, prog, from_cells) -> GroupBuild | None:
    """A group of samples (bulk, and pseudo-samples ``(frames, library_of)``): read and joined
    in memory or on the cluster, described, normalized, Harmony's embedding and the chosen
    genes if asked. ``from_cells``: the group held cells (their genes were chosen on reading)."""
    dataset = plan.dataset
    frames, library_of = pseudo
    out_of_core = plan.client is not None and not frames and bulk
    if out_of_core and dataset.batch_correction is not None:
        _refuse_out_of_core(
            key,
            "batch correction",
            "build it in memory (fewer samples, or no client) or set batch_correction=None.",
        )
    if out_of_core:
        dg = _dask_group(plan, key, bulk, prog)
        gm = dg.gm
    else:
        gm = _read_group(bulk, plan.catalog, dataset, frames, library_of, plan.threads)
    plan.filter(gm.filtered, exp_by_acc)
    prog.advance(f"{key}: normalizing" if dataset.quantile_normalize else f"{key}: scaling")
    if not gm.samples:
        prog.advance(n=plan.steps_per_group - 1)
        return None  # its samples are filtered with their reasons; never a silent empty group
    info = _sample_info(plan, key, gm, exp_by_acc, bool(library_of))
    if out_of_core:  # normalized and scaled on the cluster
        info.update(dg.info)
        prog.advance(n=plan.steps_per_group - 1)
    else:
        _normalize(gm, info, plan, key, prog)
    obsm = {}
    if dataset.batch_correction == "harmony":
        obs = _group_obs(plan, gm.samples)
        obsm, info["batch_correction"] = harmony_samples(gm, obs, dataset, key)
        prog.advance()
    if dataset.genes and not from_cells:  # cells' genes are chosen when they are read
        if out_of_core:
            _refuse_out_of_core(
                key,
                "genes=",
                "build it in memory (fewer samples, or no client), or select the genes from "
                "the result (res[key][:, genes]).",
            )
        info["genes_selected"] = _select_bulk_genes(gm, dataset.genes, info["organisms"], key)
    return GroupBuild(key, gm.samples, info, matrix=gm, obsm=obsm)


def _sample_info(plan: _Plan, key: str, gm: GroupMatrix, exp_by_acc, pseudobulk: bool):
    """What a sample group's join gave: its gene report, log rules, organisms, pseudobulk."""
    dataset = plan.dataset
    info: dict[str, Any] = {"kind": "samples", "genes_dropped_by_join": gm.genes_dropped}
    info["gene_report"] = _report_genes(
        key,
        gm,
        dataset.join,
        lambda s: (
            str(plan.record(s).get("refinebio_platform") or "").strip()
            or f"experiment {exp_by_acc.get(s, s)}"
        ),
    )
    info["transforms"] = _transforms(gm)
    info["organisms"] = sorted(
        {str(plan.record(s).get("refinebio_organism") or "UNKNOWN_ORGANISM") for s in gm.samples}
    )
    if pseudobulk:
        info["pseudobulk"] = dataset.pseudobulk
        info["pseudobulk_values"] = describe_values(
            dataset.counts_normalization, "NONE", pseudobulk=True
        )
    return info


def _symbols_offline(organism: str, ids: list[str]) -> tuple[pd.Series, str]:
    """The symbols of ``ids`` without the network: human from the table the package ships,
    other organisms from the download cache (empty, with the reason, when not fetched yet).

    Like :meth:`Result.write_zip`, this imports its reader (io) only when called.
    """
    from ..io.gene_symbols import symbols_for

    try:
        found = symbols_for(organism, ids, offline=True)
    except DatasetSpecError:
        return pd.Series("", index=pd.Index(ids, dtype=object)), (
            f"the {organism} symbols are not in the cache yet: fetch them once with "
            "refinewidgets.io.gene_symbols.symbols_for"
        )
    return found.symbols, found.release


def _select_bulk_genes(gm: GroupMatrix, names: list[str], organisms: list[str], key: str):
    """Keep the genes ``names`` stands for (ids, else symbols), after normalization and batch
    correction (both use every gene); a warning names the names found nowhere and the symbols
    shared by several ids. Returns what was done, for the provenance."""
    ids = pd.Index(np.asarray(gm.genes, dtype=object).astype(str), dtype=object)
    genes = pd.DataFrame(index=ids)
    release = ""
    if any(n not in ids for n in names) and len(organisms) == 1:
        genes["gene_symbol"], release = _symbols_offline(organisms[0], list(ids))
    positions, missing, shared = select_genes(genes, names)
    if positions.size == 0:
        raise DatasetSpecError(
            f"None of the genes asked for ({', '.join(names[:10])}) is in group {key}; give "
            f"gene ids such as {', '.join(ids[:3])} or their symbols"
            + (f" ({release})." if release else ".")
        )
    warn_gene_selection(
        missing, shared, len(names), positions.size, f"group {key}", symbols=release, stacklevel=7
    )
    gm.X = gm.X[:, positions]
    gm.genes = ids[positions]
    return {"asked": list(names), "kept": int(positions.size), "symbols": release}


def _transforms(gm: GroupMatrix) -> dict[str, int]:
    """How many samples got each per-sample log rule (``log2(x + 1)``, ``log2(x)``)."""
    counts: dict[str, int] = {}
    for how in gm.transforms.values():
        counts[how] = counts.get(how, 0) + 1
    return counts


def _normalize(gm: GroupMatrix, info: dict[str, Any], plan: _Plan, key: str, prog) -> None:
    """Quantile-normalize against the organism's target and scale each gene, as asked."""
    if plan.dataset.quantile_normalize:
        info["quantile_normalization"] = _quantile_normalize(
            gm, plan.catalog, info["organisms"], plan.threads
        )
        prog.advance(f"{key}: scaling")
    if plan.dataset.batch_correction == "combat":
        info["batch_correction"] = combat_group(gm, _group_obs(plan, gm.samples), plan.dataset, key)
        prog.advance()
    if plan.dataset.scale_by != "NONE":
        scale_rows(gm.X, plan.dataset.scale_by, threads=plan.threads)
        prog.advance()


def _assemble(plan: _Plan, builds: list[GroupBuild]) -> Result:
    """One AnnData per group with refine.bio's metadata, the provenance, the filtered samples."""
    dataset, catalog = plan.dataset, plan.catalog
    if not builds and plan.cell_errors:
        raise plan.cell_errors[0]  # the cell filter matches nothing anywhere: say what exists
    if not builds:
        reasons = "; ".join(
            f"{f.accession} ({f.experiment}): {f.reason}" for f in plan.filtered[:10]
        )
        raise BuildError(
            f"Nothing to build: all {len(plan.filtered)} requested samples were filtered out: "
            f"{reasons}{' ...' if len(plan.filtered) > 10 else ''}. Choose samples that have "
            "processed values."
        )
    included = list(dict.fromkeys(s for g in builds for s in g.samples))
    records = {s: plan.record(s) for s in included}
    bulk_samples = [s for g in builds if g.matrix is not None for s in g.samples]
    columns = metadata_columns(records[s] for s in bulk_samples)
    spec = dataset.to_dict()
    groups = {}
    for g in builds:
        uns = {"key": g.key, "dataset": spec, "join": dataset.join, **uns_safe(g.info)}
        if g.matrix is not None:
            obs = metadata_frame(g.samples, plan.experiment_of, records, columns)
            groups[g.key] = make_group(g.matrix.X, obs, g.matrix.genes, uns=uns)
        else:
            groups[g.key] = make_cell_group(*g.cells, uns=uns)
        for name, value in g.obsm.items():
            groups[g.key].obsm[name] = value
    filtered = pd.DataFrame(
        [(f.accession, f.experiment, f.reason) for f in plan.filtered],
        columns=["accession", "experiment", "reason"],
    )
    filtered = filtered.drop_duplicates(subset=["accession", "reason"]).reset_index(drop=True)
    provenance = aggregated_metadata(
        dataset,
        catalog,
        {g.key: (g.samples, g.info) for g in builds},
        records,
        plan.pseudo_of,
        filtered["accession"],
    )
    return Result(
        groups,
        provenance,
        filtered_samples=filtered,
        metadata_columns=columns if bulk_samples else None,
        dataset=dataset,
        filtered_records={a: json_record(catalog.sample_record(a)) for a in filtered["accession"]},
    )


def build(
    dataset: Dataset | Mapping[str, Any],
    catalog: Catalog,
    *,
    progress: Any = None,
    threads: int | None = None,
    client: Any = None,
    workdir: Any = None,
) -> Result:
    """Build ``dataset`` from the sources of ``catalog``.

    Parameters
    ----------
    dataset
        A :class:`Dataset`, or its dict form.
    catalog
        Where the samples and their values are.
    progress
        None, a callable ``f(done, total, message)``, or a tqdm-like object.
    threads
        Threads reading matrices side by side (default ``$REFINEWIDGETS_THREADS``, else the
        number of CPUs; 1 reads one matrix at a time).
    client
        A ``dask.distributed.Client``: bulk groups are then built out of core on its workers
        (:mod:`.out_of_core`), their ``X`` a Dask array over a zarr array in ``workdir``.
        Without one, a local cluster sized to the machine is started when a group would not
        fit in memory (:func:`.out_of_core.needs_out_of_core`; an ``OutOfCoreWarning`` says so).
    workdir
        Where out-of-core groups keep their arrays (default ``<cache>/out-of-core``); every
        worker must reach it.

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
    plan = _plan(dataset, catalog)
    plan.threads = thread_count(threads)
    plan.client, plan.workdir = client, workdir
    own_cluster = None
    if client is None:
        from .out_of_core import local_client, needs_out_of_core

        too_big = needs_out_of_core(plan.groups, catalog)
        if too_big is not None:
            own_cluster = plan.client = local_client(too_big)
    prog.start(len(plan.groups) * plan.steps_per_group + 1, "reading values")
    try:
        builds = [
            g
            for key, members in plan.groups.items()
            if (g := _build_group(plan, key, members, prog)) is not None
        ]
        result = _assemble(plan, builds)
        prog.advance("done")
    finally:
        prog.close()
        if own_cluster is not None:
            cluster = own_cluster.cluster
            own_cluster.close()
            cluster.close()
    return result


# -- steps of the sample path --------------------------------------------------------------
def _sample_rules(members, catalog, dataset, pseudo_library=None):
    """``(technology, log_rnaseq)`` of each sample: what ``merge_group`` needs to clean it."""
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
    return technology, log_rnaseq


def _dask_group(plan: _Plan, key: str, members: list[ResolvedSample], prog):
    """A bulk group read, joined, normalized and scaled on the Dask cluster (see
    :mod:`.out_of_core`)."""
    from .out_of_core import dask_group, default_workdir

    catalog, dataset = plan.catalog, plan.dataset
    technology, log_rnaseq = _sample_rules(members, catalog, dataset)
    organisms = sorted({plan.organism(m.accession) for m in members})
    shipped = (
        catalog.qn_target(organisms[0])
        if dataset.quantile_normalize and len(organisms) == 1
        else None
    )
    return dask_group(
        plan.client,
        key,
        catalog.by_matrix(m.accession for m in members),
        technology,
        log_rnaseq,
        join=dataset.join,
        order={m.accession: i for i, m in enumerate(members)},
        quantile_normalize=dataset.quantile_normalize,
        shipped_target=shipped,
        scale_by=dataset.scale_by,
        workdir=plan.workdir or default_workdir(),
        step=lambda message: prog.advance(message, n=0),  # says what runs; checks Cancel
    )


def _read_group(
    members: list[ResolvedSample],
    catalog: Catalog,
    dataset: Dataset,
    pseudo_frames=(),
    pseudo_library=None,
    threads: int = 1,
) -> GroupMatrix:
    """Merge the bulk ``members`` (read from their sources) and pseudo-samples already summed.

    ``pseudo_library`` maps each pseudo-sample to its library.
    """
    by_matrix = catalog.by_matrix(m.accession for m in members)

    def read(item):
        (src, matrix_id), accessions = item
        return src.read_matrix(matrix_id, accessions), f"{src.name} ({matrix_id})"

    def frames():  # a few matrices at a time, read on threads: merge_group holds no more
        yield from ordered_map(read, by_matrix.items(), threads)
        yield from pseudo_frames  # after the bulk samples, where the group's order puts them

    technology, log_rnaseq = _sample_rules(members, catalog, dataset, pseudo_library)
    gm = merge_group(
        frames(), technology, log_rnaseq=log_rnaseq, join=dataset.join, threads=threads
    )
    # Keep the request order inside the group; pseudo-samples follow the bulk samples.
    order = {m.accession: i for i, m in enumerate(members)}
    for j, acc in enumerate(pseudo_library or {}):
        order[acc] = len(members) + j
    if gm.samples and [order[s] for s in gm.samples] != sorted(order[s] for s in gm.samples):
        perm = np.argsort([order[s] for s in gm.samples], kind="stable")
        gm.X = gm.X[perm]
        gm.samples = [gm.samples[i] for i in perm]
    return gm


def _quantile_normalize(
    gm: GroupMatrix, catalog: Catalog, organisms: list[str], threads: int = 1
) -> dict[str, Any]:
    shipped = catalog.qn_target(organisms[0]) if len(organisms) == 1 else None
    target = None  # computed from the group's rows, sorted once for target and normalization
    if shipped is not None:
        target, source_name = shipped
        how = f"{organisms[0]} target shipped by source {source_name} ({len(target)} values)"
        kind = "source"
    else:
        why = "no source ships a target for " + (
            organisms[0] if len(organisms) == 1 else "a mixed-species group"
        )
        how = f"computed from the group's {len(gm.samples)} samples (mean of their sorted values): {why}"
        kind = "computed"
    pairs = ks_pairs(len(gm.samples), 100, 0)  # refine.bio's; QN keeps these rows sorted
    tested = {i: None for pair in pairs for i in pair}
    quantile_normalize_rows(gm.X, target, out=gm.X, threads=threads, sorted_rows=tested)
    ks = ks_check(gm.X, names=gm.samples, pairs=pairs, sorted_rows=tested)
    return {"target": kind, "target_description": how, **ks}


def _group_obs(plan: _Plan, samples: list[str]) -> pd.DataFrame:
    """The refine.bio metadata of a group's samples, indexed by accession (as ``obs`` will be)."""
    records = {s: plan.record(s) for s in samples}
    obs = metadata_frame(samples, plan.experiment_of, records, metadata_columns(records.values()))
    obs.index = pd.Index(samples, dtype=object)
    return obs


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
            stacklevel=6,
        )
    gm.block_genes = []
    return report
