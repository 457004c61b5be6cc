"""The dataset spec: refine.bio's validation rules, our membership rule, JSON round trip."""

from __future__ import annotations

import json

import pytest

import refinewidgets as rw
from refinewidgets.core.sources import InMemorySource


def test_defaults_and_normalised_options():
    ds = rw.Dataset({"GSE1": ["GSM1"]}, aggregate_by="species", scale_by="minmax")
    assert ds.aggregate_by == "SPECIES"
    assert ds.scale_by == "MINMAX"
    assert ds.quantile_normalize is True
    assert ds.join == "inner"
    assert rw.Dataset({"GSE1": ["ALL"]}).aggregate_by == "EXPERIMENT"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": ["GSE1"]}, "`data` must be a dict of lists"),
        ({"data": {}}, "`data` must contain at least one experiment"),
        ({"data": {"GSE1": []}}, "Problem with `GSE1`"),
        ({"data": {"GSE1": "GSM1"}}, "Problem with `GSE1`"),
        ({"data": {"GSE1": ["GSM1", "GSM1"]}}, "Duplicate values detected in ['GSE1: GSM1']"),
        ({"data": {"GSE1": ["ALL", "GSM1"]}}, 'lists "ALL" together with samples'),
        ({"data": {"GSE1": ["GSM1"]}, "aggregate_by": "TISSUE"}, "`aggregate_by` must be one of"),
        ({"data": {"GSE1": ["GSM1"]}, "scale_by": "LOG"}, "`scale_by` must be one of"),
        (
            {"data": {"GSE1": ["GSM1"]}, "quantile_normalize": "yes"},
            "`quantile_normalize` must be True or False",
        ),
        ({"data": {"GSE1": ["GSM1"]}, "join": "left"}, "`join` must be one of ['inner', 'outer']"),
    ],
)
def test_bad_specs_raise_named_errors(kwargs, message):
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.Dataset(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_round_trip_through_json():
    ds = rw.Dataset(
        {"GSE1": ["GSM1", "GSM2"], "E-MTAB-1": ["ALL"]},
        aggregate_by="ALL",
        scale_by="ROBUST",
        quantile_normalize=False,
        join="outer",
    )
    again = rw.Dataset.from_dict(json.loads(ds.to_json()))
    assert again == ds
    assert again.to_dict() == ds.to_dict()


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(rw.DatasetSpecError, match=r"Unknown key\(s\) \['colour'\]"):
        rw.Dataset.from_dict({"data": {"GSE1": ["ALL"]}, "colour": "red"})


def test_to_code_rebuilds_the_same_dataset():
    ds = rw.Dataset({"GSE1": ["GSM1"]}, aggregate_by="SPECIES", scale_by="STANDARD", join="outer")
    namespace = {"rw": rw}
    exec(ds.to_code(), namespace)
    assert namespace["ds"] == ds


def test_unknown_experiment_suggests_close_match(cat):
    exp = cat.experiment_ids[0]
    typo = exp[:-1] + ("9" if exp[-1] != "9" else "8")
    with pytest.raises(rw.UnknownAccessionError) as info:
        rw.Dataset({typo: ["ALL"]}).resolve(cat)
    msg = str(info.value)
    assert msg.startswith(f"Experiment(s) not in the catalog: {typo} (did you mean ")
    assert exp in msg.split("did you mean", 1)[1]
    assert isinstance(info.value, KeyError)


def test_unknown_sample_is_named(cat):
    exp = cat.experiment_ids[0]
    sample = cat.experiment_samples(exp)[0]
    with pytest.raises(rw.UnknownAccessionError, match="GSM_NOPE"):
        rw.Dataset({exp: [sample, "GSM_NOPE"]}).resolve(cat)


def test_sample_under_wrong_experiment_names_its_experiment(cat):
    a, b = cat.experiment_ids[:2]
    stray = cat.experiment_samples(b)[0]
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.Dataset({a: [stray]}).resolve(cat)
    assert f"{stray} is listed under {a} but belongs to {b}" in str(info.value)


def test_all_expands_to_processed_samples_and_filters_the_rest(comp):
    exp = next(iter(comp.experiments))
    unprocessed = "GSM_UNPROCESSED"
    comp.experiments[exp]["sample_accession_codes"].append(unprocessed)
    comp.samples[unprocessed] = {
        "refinebio_accession_code": unprocessed,
        "refinebio_organism": "HOMO_SAPIENS",
    }
    cat = rw.Catalog([InMemorySource.from_compendium(comp)])
    resolved, filtered = rw.Dataset({exp: ["ALL"]}).resolve(cat)
    assert [r.accession for r in resolved] == list(comp.values[exp].columns)
    assert filtered == [(unprocessed, exp, "no processed expression values in the source")]


def test_single_cell_options_validate_and_round_trip():
    ds = rw.Dataset(
        {"ERP1": ["ALL"]},
        cell_filter={"cell_type": "B cell", "sex": ["female"]},
        counts_normalization="log1p_cpm",
        pseudobulk="sample_cell_type",
    )
    assert ds.cell_filter == {"cell_type": ["B cell"], "sex": ["female"]}
    assert ds.counts_normalization == "LOG1P_CPM"
    assert rw.Dataset.from_dict(json.loads(ds.to_json())) == ds
    namespace = {"rw": rw}
    exec(ds.to_code(), namespace)
    assert namespace["ds"] == ds
    assert "cell_filter" not in rw.Dataset({"E": ["ALL"]}).to_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell_filter": {"cell_type": []}}, "must be a non-empty list"),
        ({"cell_filter": ["B cell"]}, "`cell_filter` must be a dict such as"),
        (
            {"cell_filter": {"total_counts": {"min": "500"}}},
            "`cell_filter['total_counts']['min']` must be a number, got '500'",
        ),
        (
            {"cell_filter": {"total_counts": {"min": 900, "max": 100}}},
            "has min 900 above max 100",
        ),
        (
            {"cell_filter": {"sex": {"exclude": ["unknown"]}}},
            "unknown key(s) ['exclude']: use 'in' / 'not_in'",
        ),
        (
            {"cell_filter": {"sex": {"not_in": ["x"], "min": 1}}},
            "mixes a value list and a numeric range",
        ),
        ({"keep_intergenic": "yes"}, "`keep_intergenic` must be True or False"),
        ({"genes": []}, "`genes` must be a non-empty list of gene ids or symbols"),
        (
            {"counts_normalization": "TPM"},
            "`counts_normalization` must be one of ['NONE', 'CPM', 'LOG1P_CPM']",
        ),
        ({"pseudobulk": "cell"}, "`pseudobulk` must be one of ['sample', 'sample_cell_type']"),
    ],
)
def test_bad_single_cell_options(kwargs, message):
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.Dataset({"ERP1": ["ALL"]}, **kwargs)
    assert message in str(info.value)


def test_cell_filter_syntax_round_trips():
    cf = {
        "cell_type": "B cell",
        "sex": {"not_in": ["unknown", "NA"]},
        "cellTypeAuthorAnnotation": ["B", "B-naive"],
        "total_counts": {"min": 500, "max": None},
    }
    ds = rw.Dataset({"ERP1": ["ALL"]}, quantile_normalize=False, cell_filter=cf, genes=["CD19"])
    assert ds.cell_filter == {
        "cell_type": ["B cell"],
        "sex": {"not_in": ["unknown", "NA"]},
        "cellTypeAuthorAnnotation": ["B", "B-naive"],
        "total_counts": {"min": 500.0},
    }
    assert rw.Dataset.from_dict(json.loads(ds.to_json())) == ds
    assert ds.to_dict()["genes"] == ["CD19"]
    assert "genes=['CD19']" in ds.to_code()
