"""core/browse.py: text search, facets with counts, sort and pages, against plain pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.core.browse import (
    BEST_MATCH,
    MATCHING,
    MISSING,
    MemberText,
    TableIndex,
    experiment_index,
    sample_index,
    shown_columns,
)
from refinewidgets.errors import DatasetSpecError
from refinewidgets.testing import synthetic_listing


@pytest.fixture(scope="module")
def listing():
    return synthetic_listing(2_000, 20_000, seed=3)


@pytest.fixture(scope="module")
def big_index(listing):
    exps, samples = listing
    return experiment_index(rw.Catalog.from_tables(exps, samples))


@pytest.fixture(scope="module")
def sample_text(listing):
    """Per experiment, its samples' searchable text, the plain pandas way."""
    _, samples = listing
    columns = ["refinebio_disease", "refinebio_specimen_part", "refinebio_platform"]
    columns = [c for c in columns + ["refinebio_organism"] if c in samples]
    words = samples.index.to_series() + " " + samples.get("refinebio_title", "")
    for c in columns:
        words = words + " " + samples[c].fillna("")
    return words.groupby(samples["experiment_accession"]).agg(" ".join)


def _pandas_text(exps: pd.DataFrame, text: str, sample_text=None) -> pd.Series:
    hay = exps.index.to_series() + " | " + exps["title"] + " | " + exps["description"]
    if sample_text is not None:
        hay = hay + " | " + sample_text.reindex(exps.index).fillna("")
    hay = hay.str.lower()
    mask = pd.Series(True, index=exps.index)
    for word in text.lower().split():
        mask &= hay.str.contains(word, regex=False)
    return mask


def _has(column: pd.Series, values) -> pd.Series:
    parts = column.str.split("; ")
    return parts.apply(lambda vs: any(v in values for v in vs))


@pytest.mark.parametrize("text", ["breast", "Lung Cancer", "syn00001", "of liver", "zzz", ""])
def test_text_search_matches_pandas_substring_search(listing, big_index, sample_text, text):
    exps, _ = listing
    expected = exps.index[_pandas_text(exps, text, sample_text)].tolist()
    assert big_index.keys(text) == expected
    page = big_index.query(text, page_size=5)
    assert page.total == len(expected)
    assert page.rows.index.tolist() == expected[:5]


def test_filters_or_within_a_facet_and_across_facets(listing, big_index, sample_text):
    exps, _ = listing
    filters = {"organism": ["HOMO_SAPIENS", "DANIO_RERIO"], "technology": ["RNA-SEQ"]}
    mask = (
        _pandas_text(exps, "tumours", sample_text)
        & _has(exps["organisms"], filters["organism"])
        & (exps["technology"] == "RNA-SEQ")
    )
    assert big_index.keys("tumours", filters) == exps.index[mask].tolist()
    assert (
        big_index.keys("", {"technology": []}) == exps.index.tolist()
    )  # an empty choice filters nothing


def test_facet_counts_are_value_counts_of_the_set_filtered_by_the_other_facets(listing, big_index):
    exps, _ = listing
    filters = {
        "organism": ["MUS_MUSCULUS"],
        "platform": ["Illumina HiSeq 2500", "Illumina NextSeq 500"],
    }
    page = big_index.query("brain", filters)
    text = _pandas_text(exps, "brain")
    org = _has(exps["organisms"], filters["organism"])
    plat = _has(exps["platforms"], filters["platform"])
    # organism counts: text and platform filters only
    expected = exps.loc[text & plat, "organisms"].str.split("; ").explode().value_counts()
    assert page.facets["organism"].to_dict() == expected.to_dict()
    expected = exps.loc[text & org, "platforms"].value_counts()
    assert page.facets["platform"].to_dict() == expected.to_dict()
    expected = exps.loc[text & org & plat, "technology"].value_counts()
    assert page.facets["technology"].to_dict() == expected.to_dict()
    counts = page.facets["organism"].to_numpy()
    assert (np.diff(counts) <= 0).all()  # most frequent first


def test_selected_facet_values_stay_listed_with_a_zero_count():
    t = pd.DataFrame(
        {"technology": ["RNA-SEQ", "MICROARRAY"], "title": ["a", "b"]}, index=["E1", "E2"]
    )
    idx = TableIndex(t, text_columns=["title"], facets={"technology": "technology"})
    counts = idx.facet_counts("a", {"technology": ["MICROARRAY"]})["technology"]
    assert counts.to_dict() == {"RNA-SEQ": 1, "MICROARRAY": 0}
    assert idx.keys("a", {"technology": ["MICROARRAY"]}) == []


def test_multi_valued_and_missing_values():
    t = pd.DataFrame({"organisms": ["A; B", "B", ""]}, index=["E1", "E2", "E3"])
    idx = TableIndex(t, facets={"organism": "organisms"})
    assert idx.facet_counts()["organism"].to_dict() == {"B": 2, "A": 1, MISSING: 1}
    assert idx.keys(filters={"organism": ["B"]}) == ["E1", "E2"]
    assert idx.keys(filters={"organism": [MISSING]}) == ["E3"]


def test_facet_limit_keeps_the_most_frequent_and_the_selected(big_index):
    counts = big_index.facet_counts(filters={"platform": ["10x Chromium v2"]}, limit=2)["platform"]
    full = big_index.facet_counts()["platform"]
    assert list(counts.index[:2]) == list(full.index[:2])
    assert "10x Chromium v2" in counts.index and len(counts) == 3


def test_sort_and_pages_cover_every_match_once(listing, big_index):
    exps, _ = listing
    expected = exps[_pandas_text(exps, "lung")].sort_values(
        "num_samples", ascending=False, kind="stable"
    )
    seen = []
    page = big_index.query("lung", sort="num_samples", ascending=False, page=0, page_size=7)
    for number in range(page.n_pages):
        page = big_index.query(
            "lung", sort="num_samples", ascending=False, page=number, page_size=7
        )
        assert page.page == number
        seen += page.rows.index.tolist()
    assert seen == expected.index.tolist()
    last = big_index.query("lung", page=10_000, page_size=7)
    assert last.page == last.n_pages - 1 and 1 <= len(last.rows) <= 7


def test_text_sort_is_case_insensitive_and_puts_empty_last():
    t = pd.DataFrame({"title": ["beta", "", "Alpha", "gamma"]}, index=["E1", "E2", "E3", "E4"])
    idx = TableIndex(t, text_columns=["title"])
    assert idx.keys(sort="title") == ["E3", "E1", "E4", "E2"]
    assert idx.keys(sort="title", ascending=False) == ["E4", "E1", "E3", "E2"]
    assert idx.query(sort="title", page_size=3).n_pages == 2


def test_bad_facet_and_sort_column_are_errors_naming_the_choices(big_index):
    with pytest.raises(DatasetSpecError, match="organism"):
        big_index.query(filters={"species": ["x"]})
    with pytest.raises(DatasetSpecError, match="nope"):
        big_index.query(sort="nope")


def test_empty_result_is_one_empty_page(big_index):
    page = big_index.query("no-such-word")
    assert page.total == 0 and page.n_pages == 1 and page.rows.empty
    assert all(len(c) == 0 for c in page.facets.values())


def test_experiment_index_of_the_demo(demo_cat):
    idx = experiment_index(demo_cat)
    exps = demo_cat.experiments
    assert idx.keys("breast") == exps.index[_pandas_text(exps, "breast")].tolist()
    assert set(idx.keys("breast")) >= {"GSE71102", "SRP091833"}
    counts = idx.facet_counts()["technology"]
    assert counts.to_dict() == exps["technology"].value_counts().to_dict()


def test_experiment_columns_are_derived_from_samples_when_missing():
    exps = pd.DataFrame(
        {"title": ["t1", "t2"], "technology": ["RNA-SEQ", "MICROARRAY"]}, index=["E1", "E2"]
    )
    samples = pd.DataFrame(
        {
            "experiment_accession": ["E1", "E1", "E2"],
            "refinebio_organism": ["MUS_MUSCULUS", "HOMO_SAPIENS", ""],
            "refinebio_platform": ["P1", "P1", "P2"],
        },
        index=["S1", "S2", "S3"],
    )
    idx = experiment_index(rw.Catalog.from_tables(exps, samples))
    assert idx.table["organisms"].tolist() == ["HOMO_SAPIENS; MUS_MUSCULUS", ""]
    assert idx.table["num_samples"].tolist() == [2, 1]
    assert idx.facet_counts()["organism"].to_dict() == {
        "HOMO_SAPIENS": 1,
        "MUS_MUSCULUS": 1,
        MISSING: 1,
    }


def test_sample_index_lists_the_chosen_experiments_samples_with_single_cell_facets(sc_catalog):
    idx = sample_index(sc_catalog, ["SC1", "B1"])
    assert idx.table.index.tolist() == ["L1", "L2", "S1", "S2"]
    assert idx.table["experiment_accession"].tolist() == ["SC1", "SC1", "B1", "B1"]
    assert {"sex", "specimen part", "cell type", "tissue"} <= set(idx.facets)
    assert idx.facet_counts()["cell type"].to_dict() == {"B cell": 2, MISSING: 2, "T cell": 1}
    assert idx.keys(filters={"cell type": ["T cell"]}) == ["L2"]
    bulk = sample_index(sc_catalog, ["B1"])
    assert "cell type" not in bulk.facets


def test_synthetic_listing_is_seeded_and_consistent():
    exps, samples = synthetic_listing(300, 3_000, seed=1)
    again, _ = synthetic_listing(300, 3_000, seed=1)
    pd.testing.assert_frame_equal(exps, again)
    assert samples.index.is_unique and exps.index.is_unique
    sizes = samples["experiment_accession"].value_counts().reindex(exps.index)
    assert (sizes.to_numpy() == exps["num_samples"].to_numpy()).all()
    assert (
        samples.groupby("experiment_accession")["refinebio_organism"].first().reindex(exps.index)
        == exps["organisms"]
    ).all()


def test_a_sample_listed_by_two_chosen_experiments_appears_once_under_the_first():
    from refinewidgets.core.sources import InMemorySource
    from refinewidgets.testing.compendium import synthetic_compendium

    comp = synthetic_compendium(
        n_experiments=2,
        samples_per_experiment=4,
        n_genes=50,
        shared_samples=1,
        technologies=("MICROARRAY",),
        seed=1,
    )
    cat = rw.Catalog([InMemorySource.from_compendium(comp)])
    e1, e2 = cat.experiment_ids
    shared = sorted(set(cat.experiment_samples(e1)) & set(cat.experiment_samples(e2)))
    assert len(shared) == 1
    idx = sample_index(cat, [e2, e1])
    assert idx.n == 7 and idx.table.index.is_unique
    assert idx.table.loc[shared[0], "experiment_accession"] == e2


def test_experiments_are_found_by_their_samples_metadata_and_faceted_before_ticking(demo_cat):
    idx = experiment_index(demo_cat)
    page = idx.query("breast cancer")
    expected = sorted(demo_cat.search("breast cancer")["experiment_accession"].unique())
    assert sorted(page.rows.index) == expected == ["GSE71102", "SRP091833"]
    assert page.facets["disease"].to_dict() == {"breast cancer": 2, "normal": 2}
    sample = demo_cat.experiment_samples("GSE90428")[3]
    assert idx.keys(sample) == ["GSE90428"]  # a sample accession finds its experiment
    cells = idx.query("", {"cell type": ["B cell"]})
    assert set(cells.rows.index) <= set(demo_cat.experiment_ids) and cells.total >= 1
    assert all(demo_cat.is_single_cell(e) for e in cells.rows.index)


# -- ranking by matching samples -------------------------------------------------------------
def _ranking_catalog():
    exps = pd.DataFrame(
        {
            "title": ["Liver study", "Kidney panel", "Fibrosis in lung", "Heart"],
            "description": ["", "", "", "fibrous tissue"],
            "technology": ["RNA-SEQ"] * 4,
        },
        index=["E1", "E2", "E3", "E4"],
    )
    samples = pd.DataFrame(
        {
            "experiment_accession": ["E1", "E1", "E1", "E2", "E2", "E2", "E3", "E4"],
            "refinebio_disease": [
                "liver fibrosis",
                "normal",
                "normal",
                "fibrosis",
                "Fibrosis",
                "normal",
                "normal",
                "normal",
            ],
            "refinebio_title": ["a", "b", "c", "d", "e", "f", "g", "h"],
        },
        index=[f"S{i}" for i in range(8)],
    )
    return rw.Catalog.from_tables(exps, samples)


def test_best_match_puts_most_matching_samples_first_then_title_matches():
    cat = _ranking_catalog()
    idx = experiment_index(cat)
    page = idx.query("fibrosis", sort=BEST_MATCH)
    # E2: two samples; E3: one sample, through its title (which also ranks it before E1); E1:
    # one sample; E4 ("fibrous") does not match
    assert page.rows.index.tolist() == ["E2", "E3", "E1"]
    assert page.rows[MATCHING].tolist() == [2, 1, 1]
    assert idx.keys("fibrosis", sort=BEST_MATCH) == ["E2", "E3", "E1"]
    assert idx.keys("fibrosis") == ["E1", "E2", "E3"]  # no sort: table order
    assert idx.keys("fibrosis", sort=MATCHING) == ["E1", "E3", "E2"]  # ties in table order
    assert idx.keys("fibrosis", sort=MATCHING, ascending=False) == ["E2", "E1", "E3"]
    # every word must be in the sample or its experiment: "liver" is in E1's title, "fibrosis"
    # in S0 only
    page = idx.query("liver fibrosis", sort=BEST_MATCH)
    assert page.rows[MATCHING].to_dict() == {"E1": 1}
    assert idx.query("kidney fibrosis", sort=BEST_MATCH).rows[MATCHING].to_dict() == {"E2": 2}
    assert idx.query("study", sort=BEST_MATCH).rows[MATCHING].to_dict() == {"E1": 3}
    # without words: table order and no count column
    page = idx.query("", sort=BEST_MATCH)
    assert page.rows.index.tolist() == ["E1", "E2", "E3", "E4"] and MATCHING not in page.rows


def test_matching_samples_are_the_samples_catalog_search_finds(demo_cat):
    idx = experiment_index(demo_cat)
    for text in ["lung adenocarcinoma", "breast cancer", "liver", "normal", "Alzheimer"]:
        page = idx.query(text, sort=BEST_MATCH)
        found = demo_cat.search(text)["experiment_accession"].value_counts()
        assert page.rows[MATCHING].to_dict() == found.to_dict(), text
        assert (np.diff(page.rows[MATCHING].to_numpy()) <= 0).all(), text
    page = idx.query("lung adenocarcinoma", sort=BEST_MATCH)
    assert page.rows[MATCHING].to_dict() == {"GSE75037": 24, "E-MTAB-5231": 18, "GSE90428": 16}


def test_ranking_on_a_large_listing_matches_pandas(listing, big_index):
    exps, samples = listing
    filters = {"organism": ["HOMO_SAPIENS"], "technology": ["RNA-SEQ", "MICROARRAY"]}
    text = "lung tumour"
    owner = samples["experiment_accession"]
    hay = samples.index.to_series() + " | " + owner
    for c in ["refinebio_title", "refinebio_organism", "refinebio_platform"]:
        hay = hay + " | " + samples[c].fillna("")
    for c in ["refinebio_disease", "refinebio_specimen_part"]:
        hay = hay + " | " + samples[c].fillna("")
    hay = hay + " | " + owner.map(exps["title"]) + " | " + owner.map(exps["description"])
    hay = hay.str.lower()
    hit = pd.Series(True, index=samples.index)
    for word in text.split():
        hit &= hay.str.contains(word, regex=False)
    counts = owner[hit].value_counts()
    keys = big_index.keys(text, filters)
    titled = exps["title"].str.lower()
    titled = titled.str.contains("lung") & titled.str.contains("tumour")
    position = {e: i for i, e in enumerate(exps.index)}
    expected = sorted(keys, key=lambda e: (-counts.get(e, 0), not titled[e], position[e]))
    assert big_index.keys(text, filters, sort=BEST_MATCH) == expected
    page = big_index.query(text, filters, sort=BEST_MATCH, page=1, page_size=10)
    assert page.rows.index.tolist() == expected[10:20]
    assert page.rows[MATCHING].tolist() == [counts.get(e, 0) for e in expected[10:20]]


def test_member_text_counts_members_holding_every_word():
    text = MemberText(
        np.array([0, 0, 1, -1]),
        [pd.Series(["breast cancer", "breast", None, "breast cancer"])],
        [pd.Series(["", "cancer atlas"])],
    )
    assert text.counts("breast cancer", 2).tolist() == [1, 0]
    assert text.counts("cancer", 2).tolist() == [1, 1]  # row 1's own text holds it
    assert text.counts("cancer", 2, np.array([False, True])).tolist() == [0, 1]
    assert text.counts("nothing", 2).tolist() == [0, 0]


# -- facets: order and search ------------------------------------------------------------------
def test_facet_values_are_sorted_by_count_then_name_with_missing_last():
    t = pd.DataFrame(
        {"organisms": ["beta", "Alpha", "", "gamma", "delta", "delta"]},
        index=[f"E{i}" for i in range(6)],
    )
    counts = TableIndex(t, facets={"organism": "organisms"}).facet_counts()["organism"]
    assert counts.index.tolist() == ["delta", "Alpha", "beta", "gamma", MISSING]
    assert counts.tolist() == [2, 1, 1, 1, 1]


def test_facet_text_narrows_a_facets_values_and_keeps_the_chosen(big_index):
    full = big_index.facet_counts()["platform"]
    found = big_index.facet_counts(facet_text={"platform": "illumina seq"})["platform"]
    expected = [v for v in full.index if "illumina" in v.lower() and "seq" in v.lower()]
    assert found.index.tolist() == expected and len(expected) >= 2
    assert found.to_dict() == full[expected].to_dict()  # counts unchanged by the search
    chosen = big_index.facet_counts(
        filters={"platform": ["10x Chromium v2"]}, facet_text={"platform": "illumina"}
    )["platform"]
    assert "10x Chromium v2" in chosen.index
    organisms = big_index.facet_counts(facet_text={"organism": "homo sap"})["organism"]
    assert organisms.index.tolist() == ["HOMO_SAPIENS"]  # codes match with spaces too
    # the limit applies after the search: a rare value can still be found
    rare = full.index[-1]
    limited = big_index.facet_counts(limit=1, facet_text={"platform": rare})["platform"]
    assert limited.index.tolist() == [rare]


def test_facet_counts_before_anything_is_ticked_cover_the_whole_catalog(demo_cat):
    counts = experiment_index(demo_cat).facet_counts()
    by_disease = demo_cat.samples.groupby("refinebio_disease")["experiment_accession"].nunique()
    for disease, n in by_disease.items():
        if disease:
            assert counts["disease"][disease] == n, disease
    assert counts["disease"].sum() >= len(demo_cat.experiments)


def test_shown_columns_are_those_holding_a_value(demo_cat):
    idx = sample_index(demo_cat, ["GSE71102"])
    shown = shown_columns(idx.table)
    table = idx.table
    for c in table.columns:
        filled = table[c].notna() & (table[c].astype(str).str.strip() != "")
        assert (c in shown) == bool(filled.any()), c
    assert "refinebio_disease" in shown and "refinebio_race" not in shown
