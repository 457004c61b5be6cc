"""core/cart.py: the selection, its totals, the spec round trip and the quantile rule."""

from __future__ import annotations

import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.cart import Cart, quantile_rule, rebuild_code
from refinewidgets.errors import DatasetSpecError, UnknownAccessionError

from .test_browse import single_cell_tables


@pytest.fixture
def sc_catalog():
    return rw.Catalog.from_tables(*single_cell_tables())


def test_add_merges_samples_and_becomes_all_when_complete(demo_cat):
    members = demo_cat.experiment_samples("GSE71102")
    cart = Cart(demo_cat)
    cart.add("GSE71102", members[:3])
    cart.add("GSE71102", [members[5], members[1]])
    assert cart.data == {"GSE71102": [*members[:3], members[5]]}
    cart.add("GSE71102", members[3:])
    assert cart.data == {"GSE71102": ["ALL"]}
    cart.add("GSE71102", members[:1])  # already all of them
    assert cart.data == {"GSE71102": ["ALL"]}
    assert cart.samples("GSE71102") == members


def test_add_rejects_unknown_experiments_and_foreign_samples(demo_cat):
    cart = Cart(demo_cat)
    with pytest.raises(UnknownAccessionError, match="GSE0"):
        cart.add("GSE0")
    foreign = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(DatasetSpecError, match=foreign):
        cart.add("GSE71102", [foreign])
    assert len(cart) == 0


def test_remove_experiment_or_samples(demo_cat):
    cart = Cart(demo_cat)
    cart.add("SRP091833")
    cart.add("GSE71102", demo_cat.experiment_samples("GSE71102")[:2])
    first = demo_cat.experiment_samples("SRP091833")[0]
    cart.remove("SRP091833", [first])
    assert cart.data["SRP091833"] == demo_cat.experiment_samples("SRP091833")[1:]
    cart.remove("GSE71102", demo_cat.experiment_samples("GSE71102")[:2])
    assert cart.experiments == ["SRP091833"]
    cart.remove("SRP091833")
    assert len(cart) == 0 and cart.n_samples == 0
    with pytest.raises(UnknownAccessionError, match="not in the dataset"):
        cart.remove("SRP091833")


def test_totals_per_species_and_technology_match_pandas(demo_cat):
    cart = Cart(demo_cat)
    mouse = demo_cat.experiment_samples("GSE90428")[:5]
    for exp in ("SRP091833", "GSE71102"):
        cart.add(exp)
    cart.add("GSE90428", mouse)
    chosen = demo_cat.samples.loc[
        demo_cat.experiment_samples("SRP091833") + demo_cat.experiment_samples("GSE71102") + mouse
    ]
    assert cart.n_samples == len(chosen)
    assert (
        cart.totals("organism").to_dict() == chosen["refinebio_organism"].value_counts().to_dict()
    )
    assert cart.totals("technology").to_dict() == chosen["technology"].value_counts().to_dict()
    table = cart.table()
    assert table["experiment"].tolist() == ["SRP091833", "GSE71102", "GSE90428"]
    assert table["selected"].tolist() == [20, 24, 5]
    assert table["total"].tolist() == [20, 24, 16]
    with pytest.raises(DatasetSpecError, match="organism"):
        cart.totals("platform")
    cart.clear()
    assert cart.totals("organism").empty


def test_to_dataset_and_back(demo_cat):
    cart = Cart(demo_cat)
    with pytest.raises(DatasetSpecError, match="Nothing selected"):
        cart.to_dataset()
    cart.add("SRP091833")
    cart.add("GSE75037", demo_cat.experiment_samples("GSE75037")[::3])
    ds = cart.to_dataset(aggregate_by="SPECIES", scale_by="ROBUST")
    assert ds.data == {
        "SRP091833": ["ALL"],
        "GSE75037": demo_cat.experiment_samples("GSE75037")[::3],
    }
    assert (ds.aggregate_by, ds.scale_by) == ("SPECIES", "ROBUST")
    back = Cart.from_dataset(ds, demo_cat)
    assert back.to_dataset(aggregate_by="SPECIES", scale_by="ROBUST") == ds
    assert Cart.from_dataset(ds.to_dict(), demo_cat).data == ds.data


def test_from_dataset_keeps_an_explicit_full_list_explicit(demo_cat):
    members = demo_cat.experiment_samples("SRP105872")
    ds = rw.Dataset({"SRP105872": list(reversed(members))})
    assert Cart.from_dataset(ds, demo_cat).to_dataset() == ds


def test_from_dataset_uses_the_cores_checks(demo_cat):
    with pytest.raises(UnknownAccessionError, match="GSM0"):
        Cart.from_dataset(rw.Dataset({"GSE71102": ["GSM0"]}), demo_cat)
    foreign = demo_cat.experiment_samples("SRP091833")[0]
    with pytest.raises(DatasetSpecError, match="belongs to SRP091833"):
        Cart.from_dataset(rw.Dataset({"GSE71102": [foreign]}), demo_cat)


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
    allowed, reason = rule[:2]
    assert (allowed, reason) == (skip, rule.reason)


def test_single_cell_choices_come_from_the_cart_libraries(sc_catalog):
    cart = Cart(sc_catalog)
    cart.add("B1")
    assert not cart.has_single_cell and cart.cell_filter_choices() == {}
    cart.add("SC1", ["L2"])
    assert cart.has_single_cell
    assert cart.cell_filter_choices() == {
        "cell_type": ["B cell", "T cell"],
        "tissue": ["spleen"],
        "stage": ["adult"],
        "sex": ["male"],
    }
    cart.add("SC1", ["L1"])
    assert cart.cell_filter_choices()["tissue"] == ["blood", "spleen"]
    assert cart.technologies() == ["RNA-SEQ", "SINGLE-CELL"]


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


def test_cart_table_of_a_browse_only_catalog(sc_catalog):
    cart = Cart(sc_catalog)
    cart.add("SC1")
    table = cart.table()
    assert table.loc[0, "title"] == "Blood atlas" and table.loc[0, "technology"] == "SINGLE-CELL"
    assert isinstance(table, pd.DataFrame)
