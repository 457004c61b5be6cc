"""The build: grouping, sanitising, the join, QN with the right target, scaling, accounting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.merge import sanitize_gene_ids
from refinewidgets.core.quantile import determine_target
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium

from .conftest import experiments_of


def _accounted(ds, res, cat):
    """Every requested sample is a matrix column (with its metadata row) or filtered."""
    requested = set()
    for exp, samples in ds.data.items():
        requested |= set(cat.experiment_samples(exp) if samples == ["ALL"] else samples)
    in_matrix = set()
    for key in res:
        cols = list(res.expression(key).columns)
        assert cols == res.metadata(key)["refinebio_accession_code"].tolist()
        in_matrix |= set(cols)
    assert requested == in_matrix | set(res.filtered_samples["accession"])


def test_groups_per_aggregation(comp, cat):
    data = {e: ["ALL"] for e in comp.experiments}
    by_exp = rw.build(rw.Dataset(data, quantile_normalize=False), cat)
    assert list(by_exp.keys()) == list(comp.experiments)
    by_species = rw.build(rw.Dataset(data, aggregate_by="SPECIES"), cat)
    assert list(by_species.keys()) == ["HOMO_SAPIENS", "MUS_MUSCULUS"]
    human = experiments_of(comp, "HOMO_SAPIENS")
    assert by_species["HOMO_SAPIENS"].n_obs == sum(len(comp.values[e].columns) for e in human)
    all_human = rw.build(rw.Dataset({e: ["ALL"] for e in human}, aggregate_by="ALL"), cat)
    assert list(all_human.keys()) == ["ALL"]
    for res, ds in ((by_exp, rw.Dataset(data)), (by_species, rw.Dataset(data))):
        _accounted(ds, res, cat)


def test_experiment_build_without_qn_keeps_source_values(comp, cat):
    exp = experiments_of(comp, "HOMO_SAPIENS", "MICROARRAY")[0]
    res = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)
    expected = comp.values[exp].sort_index()
    got = res.expression(exp)
    assert list(got.index) == list(expected.index)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert got.index.name == "Gene"


def test_inner_join_keeps_only_shared_genes_and_records_the_drop(comp, cat):
    human = experiments_of(comp, "HOMO_SAPIENS")
    res = rw.build(
        rw.Dataset({e: ["ALL"] for e in human}, aggregate_by="SPECIES", quantile_normalize=False),
        cat,
    )
    shared = set(comp.values[human[0]].index) & set(comp.values[human[1]].index)
    union = set(comp.values[human[0]].index) | set(comp.values[human[1]].index)
    assert set(res["HOMO_SAPIENS"].var_names) == shared
    info = res.aggregated_metadata["refinewidgets"]["groups"]["HOMO_SAPIENS"]
    assert info["genes_dropped_by_join"] == len(union) - len(shared)


def test_outer_join_keeps_every_gene_with_nan(comp, cat):
    human = experiments_of(comp, "HOMO_SAPIENS")
    res = rw.build(
        rw.Dataset(
            {e: ["ALL"] for e in human},
            aggregate_by="SPECIES",
            quantile_normalize=False,
            join="outer",
        ),
        cat,
    )
    union = set(comp.values[human[0]].index) | set(comp.values[human[1]].index)
    frame = res.expression("HOMO_SAPIENS")
    assert set(frame.index) == union
    only_second = sorted(set(comp.values[human[1]].index) - set(comp.values[human[0]].index))
    assert only_second, "the fixture must have genes in one experiment only"
    first_samples = list(comp.values[human[0]].columns)
    assert frame.loc[only_second, first_samples].isna().all().all()


def test_species_aggregation_logs_rnaseq_and_experiment_does_not(comp, cat):
    exp = experiments_of(comp, "HOMO_SAPIENS", "RNA-SEQ")[0]
    raw = comp.values[exp].sort_index()
    by_exp = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat).expression(exp)
    np.testing.assert_allclose(by_exp.to_numpy(), raw.to_numpy())
    by_species = rw.build(
        rw.Dataset({exp: ["ALL"]}, aggregate_by="SPECIES", quantile_normalize=False), cat
    ).expression("HOMO_SAPIENS")
    np.testing.assert_allclose(by_species.to_numpy(), np.log2(raw.to_numpy() + 1))


def _tiny_catalog(
    values: dict[str, pd.DataFrame], technology="MICROARRAY", organism="HOMO_SAPIENS", targets=None
):
    experiments, samples = {}, {}
    for exp, frame in values.items():
        experiments[exp] = {
            "accession_code": exp,
            "title": exp,
            "organisms": [organism],
            "technology": technology,
            "sample_accession_codes": list(frame.columns),
        }
        for s in frame.columns:
            samples[s] = {"refinebio_accession_code": s, "refinebio_organism": organism}
    return rw.Catalog([InMemorySource(experiments, samples, values, targets)])


def test_sanitising_ids_before_the_merge():
    frame = pd.DataFrame(
        {"S1": [1.0, 3.0, 5.0, 7.0, 100.0]},
        index=["ENSG1.2", " ENSG1", "ENSG2_at", "ENSG3", "AFFX-BioB-5_at"],
    )
    res = rw.build(
        rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), _tiny_catalog({"E1": frame})
    )
    got = res.expression("E1")["S1"]
    assert got.to_dict() == {"ENSG1": 2.0, "ENSG2": 5.0, "ENSG3": 7.0}
    assert list(sanitize_gene_ids(frame).index) == ["ENSG1", "ENSG2", "ENSG3"]


def test_unlogged_microarray_gets_log2():
    frame = pd.DataFrame(
        {"S1": [2.0, 8.0, 1024.0], "S2": [2.0, 8.0, 10.0]}, index=["G1", "G2", "G3"]
    )
    res = rw.build(
        rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), _tiny_catalog({"E1": frame})
    )
    out = res.expression("E1")
    assert out["S1"].tolist() == [1.0, 3.0, 10.0]
    assert out["S2"].tolist() == [2.0, 8.0, 10.0]


def test_all_nan_sample_is_filtered_with_a_reason():
    frame = pd.DataFrame({"S1": [1.0, 2.0], "S2": [np.nan, np.nan]}, index=["G1", "G2"])
    res = rw.build(rw.Dataset({"E1": ["ALL"]}), _tiny_catalog({"E1": frame}))
    assert list(res.expression("E1").columns) == ["S1"]
    row = res.filtered_samples.set_index("accession").loc["S2"]
    assert row["experiment"] == "E1"
    assert "every value is missing" in row["reason"]


def test_every_sample_filtered_is_a_clear_error():
    frame = pd.DataFrame({"S1": [np.nan, np.nan]}, index=["G1", "G2"])
    with pytest.raises(
        rw.BuildError,
        match=r"Nothing to build: all 1 requested samples were filtered out: S1 \(E1\)",
    ):
        rw.build(rw.Dataset({"E1": ["ALL"]}), _tiny_catalog({"E1": frame}))


def test_disjoint_gene_sets_raise_and_name_the_samples(comp, cat):
    data = {e: ["ALL"] for e in comp.experiments}
    with pytest.raises(rw.GeneOverlapError) as info:
        rw.build(rw.Dataset(data, aggregate_by="ALL"), cat)
    msg = str(info.value)
    assert "do not overlap" in msg
    mouse_sample = comp.values[experiments_of(comp, "MUS_MUSCULUS")[0]].columns[0]
    assert mouse_sample in msg


def test_qn_uses_the_shipped_target_when_lengths_match():
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(50)]
    frame = pd.DataFrame(rng.normal(8, 2, (50, 3)), index=genes, columns=["S1", "S2", "S3"])
    target = np.sort(rng.normal(5, 1, 50))
    cat = _tiny_catalog({"E1": frame}, targets={"HOMO_SAPIENS": target})
    res = rw.build(rw.Dataset({"E1": ["ALL"]}, aggregate_by="SPECIES"), cat)
    out = res.expression("HOMO_SAPIENS")
    for s in out.columns:
        np.testing.assert_allclose(np.sort(out[s].to_numpy()), target)
        # order within a sample is preserved
        assert (out[s].rank().to_numpy() == frame.loc[out.index, s].rank().to_numpy()).all()
    qn = res.aggregated_metadata["refinewidgets"]["groups"]["HOMO_SAPIENS"][
        "quantile_normalization"
    ]
    assert qn["target"] == "source"


def test_qn_computes_the_target_from_the_group_when_none_is_shipped(comp, cat):
    exp = experiments_of(comp, "MUS_MUSCULUS", "MICROARRAY")[0]
    res = rw.build(rw.Dataset({exp: ["ALL"]}), cat)
    raw = comp.values[exp].sort_index().to_numpy()
    target = determine_target(raw)
    for j in range(raw.shape[1]):
        np.testing.assert_allclose(np.sort(res.expression(exp).to_numpy()[:, j]), target)
    qn = res[exp].uns["refinewidgets"]["quantile_normalization"]
    assert qn["target"] == "computed" and "MUS_MUSCULUS" in qn["target_description"]
    assert res.aggregated_metadata["quantile_normalized"] is True
    assert {"ks_statistic", "ks_pvalue", "ks_warning"} <= set(res.aggregated_metadata)


@pytest.mark.parametrize("scale_by", ["MINMAX", "STANDARD", "ROBUST"])
def test_scaling_is_per_gene_across_samples(comp, cat, scale_by):
    exp = experiments_of(comp, "HOMO_SAPIENS", "MICROARRAY")[0]
    res = rw.build(rw.Dataset({exp: ["ALL"]}, scale_by=scale_by), cat)
    X = res[exp].X  # samples x genes
    if scale_by == "MINMAX":
        np.testing.assert_allclose(X.min(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(X.max(axis=0), 1, atol=1e-12)
    elif scale_by == "STANDARD":
        np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-9)  # population std
    else:
        np.testing.assert_allclose(np.median(X, axis=0), 0, atol=1e-9)
        q75, q25 = np.percentile(X, [75, 25], axis=0)
        np.testing.assert_allclose(q75 - q25, 1, atol=1e-9)
    assert res.aggregated_metadata["scale_by"] == scale_by


def test_shared_sample_lands_in_both_experiments_but_once_per_species():
    comp = synthetic_compendium(
        n_experiments=2,
        samples_per_experiment=4,
        n_genes=100,
        technologies=("MICROARRAY",),
        shared_samples=1,
        seed=3,
    )
    cat = rw.Catalog([InMemorySource.from_compendium(comp)])
    a, b = comp.experiments
    shared = sorted(set(comp.values[a].columns) & set(comp.values[b].columns))
    assert len(shared) == 1
    data = {a: ["ALL"], b: ["ALL"]}
    by_exp = rw.build(rw.Dataset(data, quantile_normalize=False), cat)
    assert shared[0] in by_exp.expression(a).columns and shared[0] in by_exp.expression(b).columns
    by_species = rw.build(rw.Dataset(data, aggregate_by="SPECIES"), cat)
    cols = list(by_species.expression("HOMO_SAPIENS").columns)
    assert cols.count(shared[0]) == 1
    meta = by_species.metadata("HOMO_SAPIENS").set_index("refinebio_accession_code")
    assert meta.loc[shared[0], "experiment_accession"] == a


def test_metadata_columns_follow_refinebio_order_and_match_across_groups(comp, cat):
    res = rw.build(rw.Dataset({e: ["ALL"] for e in comp.experiments}), cat)
    headers = {tuple(res.metadata(k).columns) for k in res}
    assert len(headers) == 1
    cols = list(headers.pop())
    assert cols[:2] == ["refinebio_accession_code", "experiment_accession"]
    harmonized = [c for c in cols[2:] if c.startswith("refinebio_")]
    submitter = cols[2 + len(harmonized) :]
    assert harmonized == sorted(harmonized) and submitter == sorted(submitter)
    assert not any(c.startswith("refinebio_") for c in submitter)
    assert any(c.startswith("characteristics_ch1_") for c in submitter)


def test_progress_reports_every_step(comp, cat):
    seen = []
    rw.build(
        rw.Dataset(
            {e: ["ALL"] for e in comp.experiments}, aggregate_by="SPECIES", scale_by="STANDARD"
        ),
        cat,
        progress=lambda done, total, msg: seen.append((done, total)),
    )
    assert seen[0][0] == 0
    assert seen[-1][0] == seen[-1][1] == 2 * 3 + 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_result_uns_and_summary(comp, cat):
    exp = next(iter(comp.experiments))
    res = rw.build(rw.Dataset({exp: ["ALL"]}, scale_by="MINMAX"), cat)
    uns = res[exp].uns["refinewidgets"]
    assert uns["dataset"] == rw.Dataset({exp: ["ALL"]}, scale_by="MINMAX").to_dict()
    assert uns["key"] == exp
    assert res.summary().loc[exp, "samples"] == len(comp.values[exp].columns)
    with pytest.raises(KeyError, match="No group 'NOPE' in this result"):
        res["NOPE"]


def test_build_accepts_a_spec_dict(comp, cat):
    exp = next(iter(comp.experiments))
    res = rw.build({"data": {exp: ["ALL"]}, "quantile_normalize": False}, cat)
    assert list(res) == [exp]
