"""The gene report of every group, the warning when a join keeps too little, and refine.bio's
top-level KS fields."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.core.merge import sanitize_gene_ids
from refinewidgets.core.sources import InMemorySource
from refinewidgets.testing.compendium import synthetic_compendium


@pytest.fixture
def two_platforms():
    """Four human microarray experiments on two platforms that share few gene ids."""
    comp = synthetic_compendium(
        n_experiments=4,
        samples_per_experiment=3,
        n_genes=400,
        technologies=("MICROARRAY",),
        gene_coverage=0.3,
        seed=11,
    )
    return comp, rw.Catalog([InMemorySource.from_compendium(comp)])


def _genes(comp, exp):
    return set(sanitize_gene_ids(comp.values[exp]).index)


def test_low_overlap_warns_with_numbers_and_platforms(two_platforms):
    comp, cat = two_platforms
    exps = list(comp.experiments)
    ds = rw.Dataset({e: ["ALL"] for e in exps}, aggregate_by="SPECIES", quantile_normalize=False)
    with pytest.warns(rw.LowGeneOverlapWarning) as caught:
        res = rw.build(ds, cat)
    message = str(caught[0].message)
    sets = [_genes(comp, e) for e in exps]
    kept = set.intersection(*sets)
    union = set.union(*sets)
    smallest = min(len(s) for s in sets)
    assert len(kept) < smallest / 2
    assert f"kept {len(kept):,} genes, less than half of the {smallest:,}" in message
    assert f"{len(union) - len(kept):,} genes were dropped" in message
    platforms = {
        comp.samples[comp.experiments[e]["sample_accession_codes"][0]]["refinebio_platform"]
        for e in exps
    }
    assert len(platforms) == 2
    for platform in platforms:
        assert platform in message
    # without either platform, the join would keep the other platform's shared genes
    by_platform = {}
    for e, genes in zip(exps, sets):
        p = comp.samples[comp.experiments[e]["sample_accession_codes"][0]]["refinebio_platform"]
        by_platform[p] = by_platform.get(p, genes) & genes
    for p in by_platform:
        others = set.intersection(*(g for q, g in by_platform.items() if q != p))
        assert f"without it the join would keep {len(others):,}" in message
    report = res["HOMO_SAPIENS"].uns["refinewidgets"]["gene_report"]
    assert report["kept"] == len(kept) and report["union"] == len(union)
    assert report["low_overlap"] is True and report["smallest_sample_genes"] == smallest
    assert res.summary().loc["HOMO_SAPIENS", "low_gene_overlap"]


def test_gene_report_per_sample_is_recorded_in_uns_zip_and_info(comp, cat, tmp_path, capsys):
    exps = [e for e, r in comp.experiments.items() if r["organisms"] == ["HOMO_SAPIENS"]]
    ds = rw.Dataset({e: ["ALL"] for e in exps}, aggregate_by="SPECIES", quantile_normalize=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rw.LowGeneOverlapWarning)
        res = rw.build(ds, cat)
    report = res["HOMO_SAPIENS"].uns["refinewidgets"]["gene_report"]
    for e in exps:
        n = len(_genes(comp, e))
        for s in comp.experiments[e]["sample_accession_codes"]:
            assert report["per_sample"][s] == n
    assert report["kept"] == res["HOMO_SAPIENS"].n_vars and report["low_overlap"] is False
    path = res.write_zip(tmp_path / "d.zip")
    meta = json.loads(zipfile.ZipFile(path).read("aggregated_metadata.json"))
    assert meta["refinewidgets"]["groups"]["HOMO_SAPIENS"]["gene_report"] == report
    back = rw.read_zip(path)
    assert back["HOMO_SAPIENS"].uns["refinewidgets"]["gene_report"]["kept"] == report["kept"]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"the inner join kept {report['kept']} of {report['union']} genes" in out


def test_top_level_ks_warning_is_set_when_any_group_fails(comp, cat):
    data = {e: ["ALL"] for e in comp.experiments}
    res = rw.build(rw.Dataset(data, aggregate_by="SPECIES"), cat)
    meta = res.aggregated_metadata
    groups = meta["refinewidgets"]["groups"]
    failing = [k for k in res if groups[k]["quantile_normalization"].get("ks_warning")]
    last = groups[list(res)[-1]]["quantile_normalization"]
    assert meta["ks_statistic"] == last["ks_statistic"] and meta["ks_pvalue"] == last["ks_pvalue"]
    if failing:
        assert meta["ks_warning"].startswith(f"{failing[-1]}: ")
    else:
        assert meta["ks_warning"] is None
    # a group whose samples are mostly ties fails for sure, and sets the top level
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 4))
    values[:150, 2:] = 0.0
    frame = pd.DataFrame(values, index=[f"G{i}" for i in range(200)], columns=list("ABCD"))
    experiment = {
        "accession_code": "E1",
        "sample_accession_codes": list("ABCD"),
        "technology": "MICROARRAY",
        "organisms": ["HOMO_SAPIENS"],
    }
    src = InMemorySource(
        {"E1": experiment},
        {s: {"refinebio_accession_code": s, "refinebio_organism": "HOMO_SAPIENS"} for s in "ABCD"},
        {"E1": frame},
    )
    res = rw.build(rw.Dataset({"E1": ["ALL"]}), rw.Catalog([src]))
    assert res.aggregated_metadata["ks_warning"].startswith("E1: Failed Kolmogorov-Smirnov")


def test_results_view_tells_a_real_ks_failure_from_the_strict_threshold(demo_cat):
    pytest.importorskip("ipywidgets")
    from refinewidgets.widgets.results import ResultsView

    exp = [e for e in demo_cat.experiment_ids if demo_cat.technology(e) == "MICROARRAY"][0]
    res = rw.build(rw.Dataset({exp: ["ALL"]}), demo_cat)
    qn = res[exp].uns["refinewidgets"]["quantile_normalization"]
    view = ResultsView(demo_cat)
    qn["ks_warning"], qn["ks_distributions_differ"] = "Failed Kolmogorov-Smirnov test ...", False
    view.result = res
    assert "rw-note" in view.summary.value and "Warning: Failed" not in view.summary.value
    qn["ks_distributions_differ"] = True
    view.result = None
    view.result = res
    assert "Warning: Failed Kolmogorov-Smirnov" in view.summary.value


def test_zero_gene_matrix_is_an_error():
    frame = pd.DataFrame({"A": [], "B": []}, dtype=float)
    src = InMemorySource(
        {
            "E1": {
                "accession_code": "E1",
                "sample_accession_codes": ["A", "B"],
                "technology": "MICROARRAY",
                "organisms": ["HOMO_SAPIENS"],
            }
        },
        {s: {"refinebio_accession_code": s} for s in "AB"},
        {"E1": frame},
    )
    with pytest.raises(rw.BuildError, match="Nothing to build"):
        rw.build(rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), rw.Catalog([src]))
