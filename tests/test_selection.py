"""core/selection.py: the app's one state, changed only by pure functions; its totals, the spec
round trip and the rules that tie options to samples."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.selection import Selection, quantile_rule, rebuild_code
from refinewidgets.errors import DatasetSpecError, UnknownAccessionError


def test_changes_return_new_values_and_leave_the_old_one(demo_cat):
    empty = Selection(demo_cat)
    one = empty.add({"SRP091833": None})
    assert empty.items == () and one.data == {"SRP091833": ["ALL"]}
    assert one.add({"SRP091833": None}) == one  # equal values: one state
    assert one == Selection(demo_cat).add({"SRP091833": None})
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.items = ()


def test_add_merges_samples_and_becomes_all_when_complete(demo_cat):
    members = demo_cat.experiment_samples("GSE71102")
    sel = Selection(demo_cat).add({"GSE71102": members[:3]})
    sel = sel.add({"GSE71102": [members[5], members[1]]})
    assert sel.data == {"GSE71102": [*members[:3], members[5]]}
    sel = sel.add({"GSE71102": members[3:]})
    assert sel.data == {"GSE71102": ["ALL"]}
    assert sel.add({"GSE71102": members[:1]}).data == {"GSE71102": ["ALL"]}
    assert sel.samples("GSE71102") == members


def test_add_rejects_unknown_experiments_and_foreign_samples(demo_cat):
    sel = Selection(demo_cat)
    with pytest.raises(UnknownAccessionError, match="GSE0"):
        sel.add({"GSE0": None})
    foreign = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(DatasetSpecError, match=foreign):
        sel.add({"GSE71102": [foreign]})


def test_remove_experiment_or_samples(demo_cat):
    sel = Selection(demo_cat).add({"SRP091833": None})
    sel = sel.add({"GSE71102": demo_cat.experiment_samples("GSE71102")[:2]})
    first = demo_cat.experiment_samples("SRP091833")[0]
    sel = sel.remove("SRP091833", [first])
    assert sel.data["SRP091833"] == demo_cat.experiment_samples("SRP091833")[1:]
    sel = sel.remove("GSE71102", demo_cat.experiment_samples("GSE71102")[:2])
    assert sel.experiments == ["SRP091833"]
    sel = sel.remove("SRP091833")
    assert len(sel) == 0 and sel.n_samples == 0
    with pytest.raises(UnknownAccessionError, match="not in the dataset"):
        sel.remove("SRP091833")


def test_totals_per_species_and_technology_match_pandas(demo_cat):
    mouse = demo_cat.experiment_samples("GSE90428")[:5]
    sel = Selection(demo_cat).add({"SRP091833": None, "GSE71102": None, "GSE90428": mouse})
    chosen = demo_cat.samples.loc[
        demo_cat.experiment_samples("SRP091833") + demo_cat.experiment_samples("GSE71102") + mouse
    ]
    assert sel.n_samples == len(chosen)
    assert sel.totals("organism").to_dict() == chosen["refinebio_organism"].value_counts().to_dict()
    assert sel.totals("technology").to_dict() == chosen["technology"].value_counts().to_dict()
    table = sel.table()
    assert table["experiment"].tolist() == ["SRP091833", "GSE71102", "GSE90428"]
    assert table["selected"].tolist() == [20, 24, 5]
    assert table["total"].tolist() == [20, 24, 16]
    with pytest.raises(DatasetSpecError, match="organism"):
        sel.totals("platform")
    assert sel.clear().totals("organism").empty


def test_dataset_is_the_spec_and_back(demo_cat):
    sel = Selection(demo_cat)
    assert sel.dataset is None
    with pytest.raises(DatasetSpecError, match="Nothing selected"):
        sel.to_dataset()
    sel = sel.add({"SRP091833": None, "GSE75037": demo_cat.experiment_samples("GSE75037")[::3]})
    sel = sel.with_options(aggregate_by="SPECIES", scale_by="ROBUST")
    ds = sel.dataset
    assert ds.data == {
        "SRP091833": ["ALL"],
        "GSE75037": demo_cat.experiment_samples("GSE75037")[::3],
    }
    assert (ds.aggregate_by, ds.scale_by, ds.quantile_normalize) == ("SPECIES", "ROBUST", True)
    assert Selection.from_dataset(ds, demo_cat) == sel
    assert Selection.from_dataset(ds.to_dict(), demo_cat).dataset == ds


def test_options_are_checked_as_the_spec_checks_them(demo_cat):
    sel = Selection(demo_cat)
    with pytest.raises(DatasetSpecError, match="`scale_by` must be one of"):
        sel.with_options(scale_by="LOUD")
    with pytest.raises(DatasetSpecError, match=r"Unknown option\(s\) \['bogus'\]"):
        sel.with_options(bogus=1)
    assert sel.with_options(aggregate_by="species").option_values["aggregate_by"] == "SPECIES"


def test_rules_quantile_normalization_and_single_cell_options(demo_cat):
    rna = Selection(demo_cat).add({"SRP091833": None})
    skipped = rna.with_options(quantile_normalize=False)
    assert skipped.dataset.quantile_normalize is False  # RNA-seq by experiment: may skip
    species = skipped.with_options(aggregate_by="SPECIES")
    assert species.dataset.quantile_normalize is True  # refine.bio's page rule
    with_array = skipped.add({"GSE71102": None})
    assert with_array.dataset.quantile_normalize is True
    cells = Selection(demo_cat).add({"ERP900101": None})
    assert cells.dataset.quantile_normalize is False  # cells are never quantile-normalized
    cells = cells.with_options(counts_normalization="CPM", pseudobulk="sample")
    assert cells.dataset.pseudobulk == "sample"
    bulk_only = cells.add({"SRP091833": None}).remove("ERP900101")
    assert (bulk_only.dataset.counts_normalization, bulk_only.dataset.pseudobulk) == ("NONE", None)


def test_a_restored_spec_keeps_an_api_only_choice(demo_cat):
    api = rw.Dataset({"GSE75037": ["ALL"]}, quantile_normalize=False)  # microarray, no QN
    sel = Selection.from_dataset(api, demo_cat)
    assert sel.dataset == api and sel.quantile_rule().required is True
    assert sel.with_options(scale_by="MINMAX").dataset.quantile_normalize is False
    assert sel.with_options(aggregate_by="ALL").dataset.quantile_normalize is True


def test_from_dataset_keeps_an_explicit_full_list_explicit(demo_cat):
    members = demo_cat.experiment_samples("SRP105872")
    ds = rw.Dataset({"SRP105872": list(reversed(members))})
    assert Selection.from_dataset(ds, demo_cat).dataset == ds


def test_from_dataset_uses_the_cores_checks(demo_cat):
    with pytest.raises(UnknownAccessionError, match="GSM0"):
        Selection.from_dataset(rw.Dataset({"GSE71102": ["GSM0"]}), demo_cat)
    foreign = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(DatasetSpecError, match="belongs to SRP091833"):
        Selection.from_dataset(rw.Dataset({"GSE71102": [foreign]}), demo_cat)


@pytest.mark.parametrize(
    ("techs", "aggregate", "pseudobulk", "skip", "required", "words"),
    [
        (["RNA-SEQ"], "EXPERIMENT", None, True, None, ""),
        (["RNA-SEQ"], "SPECIES", None, False, True, "aggregating by species"),
        (["MICROARRAY"], "EXPERIMENT", None, False, True, "microarray samples"),
        (
            ["MICROARRAY", "RNA-SEQ"],
            "ALL",
            None,
            False,
            True,
            "microarray samples; aggregating by all",
        ),
        ([], "EXPERIMENT", None, False, True, "Add samples first"),
        (["SINGLE-CELL"], "EXPERIMENT", None, True, False, "single cells"),
        (["SINGLE-CELL", "MICROARRAY"], "SPECIES", None, True, False, "never quantile-normalized"),
        (["SINGLE-CELL"], "EXPERIMENT", "sample", True, None, ""),
        (
            ["SINGLE-CELL", "RNA-SEQ"],
            "SPECIES",
            "sample_cell_type",
            False,
            True,
            "aggregating by species",
        ),
    ],
)
def test_quantile_rule(techs, aggregate, pseudobulk, skip, required, words):
    rule = quantile_rule(techs, aggregate, pseudobulk)
    assert rule.allowed_to_skip is skip
    assert rule.required is required
    assert words in rule.reason


def test_single_cell_choices_come_from_the_selected_libraries(sc_catalog):
    sel = Selection(sc_catalog).add({"B1": None})
    assert not sel.has_single_cell and sel.cell_filter_choices() == {}
    sel = sel.add({"SC1": ["L2"]})
    assert sel.has_single_cell
    assert sel.cell_filter_choices() == {
        "cell_type": ["B cell", "T cell"],
        "tissue": ["spleen"],
        "stage": ["adult"],
        "sex": ["male"],
    }
    sel = sel.add({"SC1": ["L1"]})
    assert sel.cell_filter_choices()["tissue"] == ["blood", "spleen"]
    assert sel.technologies() == ["RNA-SEQ", "SINGLE-CELL"]


def test_rebuild_code_execs_to_an_equal_dataset(demo_cat):
    ds = rw.Dataset(
        {"GSE71102": demo_cat.experiment_samples("GSE71102")[:2], "SRP091833": ["ALL"]},
        aggregate_by="ALL",
        scale_by="MINMAX",
        join="outer",
        quantile_normalize=False,
    )
    code = rebuild_code(ds).replace("res = rw.build(ds, cat)", "")
    ns: dict = {}
    exec(code, ns)
    assert ns["ds"] == ds
    assert isinstance(ns["cat"], rw.Catalog)
    assert "rw.open_catalog('x')" in rebuild_code(ds, "rw.open_catalog('x')")


def test_table_of_a_browse_only_catalog(sc_catalog):
    table = Selection(sc_catalog).add({"SC1": None}).table()
    assert table.loc[0, "title"] == "Blood atlas" and table.loc[0, "technology"] == "SINGLE-CELL"
    assert isinstance(table, pd.DataFrame)


def test_restored_options_adapt_only_where_the_build_would_refuse_them(demo_cat):
    # refine.bio's page would not skip QN for microarrays, the API does: kept as given
    micro = rw.Dataset({"GSE71102": ["ALL"]}, quantile_normalize=False)
    assert Selection.from_dataset(micro, demo_cat).dataset == micro
    # single cells are never quantile-normalized (the build refuses it): adapted
    cells = rw.Dataset({"ERP900101": ["ALL"]}, quantile_normalize=True)
    assert Selection.from_dataset(cells, demo_cat).dataset.quantile_normalize is False
    # with a pseudobulk, per-library sums may be quantile-normalized: kept
    bulk = rw.Dataset({"ERP900101": ["ALL"]}, quantile_normalize=True, pseudobulk="sample")
    assert Selection.from_dataset(bulk, demo_cat).dataset == bulk


def test_adding_whole_experiments_never_undoes_a_sample_pick(demo_cat):
    some = demo_cat.experiment_samples("GSE71102")[:16]
    sel = Selection(demo_cat).add({"GSE71102": some}).add_whole(["GSE71102", "SRP091833"])
    assert sel.data == {"GSE71102": list(some), "SRP091833": ["ALL"]}
    assert sel.trimmed() == {"GSE71102": (16, 24)}
    assert sel.add({"GSE71102": None}).trimmed() == {}
