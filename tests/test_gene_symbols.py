"""Gene symbols (issue 25): the shipped human table against its annotation release (R's
org.Hs.eg.db), other organisms fetched once from a local Ensembl-like server, then offline."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import refinewidgets as rw
from refinewidgets.errors import DatasetSpecError, GeneSelectionWarning, SourceFormatError
from refinewidgets.io.gene_symbols import BATCH, _shipped, add_gene_symbols, symbols_for
from refinewidgets.io.remote.errors import ServiceUnavailableError
from refinewidgets.testing.fake_ensembl import FakeEnsembl

DATA = Path(__file__).parent / "data"

WELL_KNOWN = {  # Ensembl gene id -> HGNC symbol
    "ENSG00000141510": "TP53",
    "ENSG00000012048": "BRCA1",
    "ENSG00000139618": "BRCA2",
    "ENSG00000146648": "EGFR",
    "ENSG00000111640": "GAPDH",
    "ENSG00000075624": "ACTB",
    "ENSG00000136997": "MYC",
    "ENSG00000171862": "PTEN",
}


def _org_hs_or_skip() -> None:
    message = "R's org.Hs.eg.db is not installed: apt-get install r-bioc-org.hs.eg.db"
    if shutil.which("Rscript") is not None:
        done = subprocess.run(
            ["Rscript", "-e", "suppressMessages(library(org.Hs.eg.db))"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_human_symbols_are_offline_and_name_their_release():
    found = symbols_for("HOMO_SAPIENS", [*WELL_KNOWN, "ENSG00000141510.17", "ENSG99999999999"])
    assert found.symbols.iloc[: len(WELL_KNOWN)].to_dict() == WELL_KNOWN
    assert found.symbols["ENSG00000141510.17"] == "TP53"  # a versioned id, without its version
    assert found.symbols["ENSG99999999999"] == ""
    assert found.release.startswith("org.Hs.eg.db 3.16.0 (Bioconductor; Entrez Gene ")
    assert "shipped" in found.source


def test_the_shipped_table_equals_org_hs_eg_db(tmp_path):
    """An oracle: R's own mapping (mapIds, every symbol of each id) on a seeded sample of ids."""
    _org_hs_or_skip()
    table, _ = _shipped("HOMO_SAPIENS")
    ids = sorted(np.random.default_rng(5).choice(sorted(table), size=400, replace=False))
    ids += ["ENSG00000230417"]  # one of the ids with several Entrez genes, if the release has it
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    script = f"""
suppressMessages(library(org.Hs.eg.db))
ids <- readLines('{tmp_path}/ids.txt')
m <- suppressMessages(mapIds(org.Hs.eg.db, ids, 'SYMBOL', 'ENSEMBL', multiVals='list'))
out <- vapply(m, function(s) paste(sort(unique(s[!is.na(s)])), collapse=';'), '')
writeLines(paste(names(out), out, sep='\\t'), '{tmp_path}/r.tsv')
"""
    done = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    theirs = pd.read_csv(
        tmp_path / "r.tsv", sep="\t", header=None, index_col=0, dtype=str, keep_default_na=False
    )[1]
    ours = symbols_for("HOMO_SAPIENS", ids).symbols
    # R sorts in its locale; compare the sets of symbols of each id
    for gene_id in ids:
        assert set(ours[gene_id].split(";")) == set(theirs[gene_id].split(";")), gene_id


def test_share_of_refinebio_ids_with_a_symbol():
    """The refine.bio compendium fixture (refine.bio's layout, read back from its zip): its
    organism comes from the samples' metadata; the share is counted (for the note)."""
    res = rw.read_zip(DATA / "refinebio" / "compendium_HOMO_SAPIENS.zip")
    adata = add_gene_symbols(res)["HOMO_SAPIENS"]
    info = adata.uns["refinewidgets"]["gene_symbols"]
    assert info["organism"] == "HOMO_SAPIENS" and info["genes"] == adata.n_vars == 8
    assert info["with_symbol"] == 7
    assert adata.var.loc["ENSG00000000003", "gene_symbol"] == "TSPAN6"


MOUSE = {
    "ENSMUSG00000059552": ("Trp53", "mus_musculus"),
    "ENSMUSG00000017146": ("Brca1", "mus_musculus"),
    "ENSMUSG00000057666": ("Gapdh", "mus_musculus"),
    "ENSMUSG00000099999": (None, "mus_musculus"),  # a gene without a display name
}


def test_mouse_is_fetched_once_then_offline(tmp_path):
    ids = [*MOUSE, "ENSMUSG00000000000"]  # the last one Ensembl does not know
    with FakeEnsembl(MOUSE, release=113) as fake:
        found = symbols_for("MUS_MUSCULUS", ids, cache_dir=tmp_path, server=fake.url)
        assert found.symbols.tolist() == ["Trp53", "Brca1", "Gapdh", "", ""]
        assert found.release == "Ensembl 113" and "cache" in found.source
        assert [r for r in fake.requests if r[0] == "POST"] == [("POST", "/lookup/id", 5)]
        again = symbols_for("MUS_MUSCULUS", ids[:2], cache_dir=tmp_path, server=fake.url)
        assert again.symbols.tolist() == ["Trp53", "Brca1"]
        assert len([r for r in fake.requests if r[0] == "POST"]) == 1  # from the cache
    # the server is gone: the cache answers, unknown ids included (not asked again)
    offline = symbols_for("MUS_MUSCULUS", ids, cache_dir=tmp_path, offline=True)
    assert offline.symbols.tolist() == ["Trp53", "Brca1", "Gapdh", "", ""]
    assert offline.release == "Ensembl 113"
    cached = (tmp_path / "gene-symbols" / "MUS_MUSCULUS.tsv").read_text()
    assert "# release: Ensembl 113" in cached and "ENSMUSG00000059552\tTrp53" in cached
    with pytest.raises(DatasetSpecError, match="1 MUS_MUSCULUS gene id.*ENSMUSG00000011111.*"):
        symbols_for("MUS_MUSCULUS", ["ENSMUSG00000011111"], cache_dir=tmp_path, offline=True)


def test_many_ids_go_in_batches_of_ensembls_limit(tmp_path):
    ids = [f"ENSMUSG{i:011d}" for i in range(2 * BATCH + 500)]
    genes = {g: (f"Gm{i}", "mus_musculus") for i, g in enumerate(ids)}
    with FakeEnsembl(genes) as fake:
        found = symbols_for("MUS_MUSCULUS", ids, cache_dir=tmp_path, server=fake.url)
    posts = [n for method, _, n in fake.requests if method == "POST"]
    assert posts == [BATCH, BATCH, 500]
    assert found.symbols[ids[1234]] == "Gm1234" and found.share == 1.0


def test_a_failing_service_is_a_clear_error_and_caches_nothing(tmp_path):
    with FakeEnsembl(MOUSE) as fake:
        fake.fail_next = 10
        with pytest.raises(ServiceUnavailableError, match="Ensembl answered HTTP 503"):
            symbols_for("MUS_MUSCULUS", list(MOUSE), cache_dir=tmp_path, server=fake.url)
    assert not (tmp_path / "gene-symbols" / "MUS_MUSCULUS.tsv").exists()
    with pytest.raises(SourceFormatError, match="not a valid organism name"):
        symbols_for("../mus", list(MOUSE), cache_dir=tmp_path)


def test_a_built_result_gets_symbols_per_group_by_organism(demo_cat, tmp_path):
    res = rw.build(rw.Dataset({"SRP091833": ["ALL"], "SRP132945": ["ALL"]}), demo_cat)
    mouse = [k for k, a in res.items() if a.uns["refinewidgets"]["organisms"] == ["MUS_MUSCULUS"]]
    assert mouse, "the demo has a mouse experiment"
    mouse_ids = list(res[mouse[0]].var_names)
    genes = {g: (f"Sym{i}", "mus_musculus") for i, g in enumerate(mouse_ids[:50])}
    with FakeEnsembl(genes, release=112) as fake:
        add_gene_symbols(res, cache_dir=tmp_path, server=fake.url)
    human = res["SRP091833"]
    shipped = symbols_for("HOMO_SAPIENS", list(human.var_names)).symbols
    assert (human.var["gene_symbol"] == shipped).all()  # aligned by gene id
    info = human.uns["refinewidgets"]["gene_symbols"]
    assert info["release"].startswith("org.Hs.eg.db 3.16.0")
    assert info["with_symbol"] == int((shipped != "").sum())
    m = res[mouse[0]]
    assert m.var.loc[mouse_ids[7], "gene_symbol"] == "Sym7"
    assert m.var.loc[mouse_ids[60], "gene_symbol"] == ""
    assert m.uns["refinewidgets"]["gene_symbols"]["release"] == "Ensembl 112"
    assert m.uns["refinewidgets"]["gene_symbols"]["with_symbol"] == 50
    # the preview (the app's) shows the symbols beside the ids
    from refinewidgets.core.explore import preview

    frame = preview(human)
    assert frame.columns[0] == "Symbol"
    assert frame["Symbol"].tolist() == shipped.iloc[: len(frame)].tolist()


def test_names_become_ids_and_a_shared_symbol_warns_naming_its_ids():
    found = symbols_for("HOMO_SAPIENS", ["ENSG00000141510", "ENSG00000012048", "ENSG00000230417"])
    assert found.ids_for(["tp53", "ENSG00000012048"]) == ["ENSG00000141510", "ENSG00000012048"]
    with pytest.raises(DatasetSpecError, match="neither an id nor a symbol.*NOTAGENE"):
        found.ids_for(["TP53", "NOTAGENE"])
    shared = symbols_for("MUS_MUSCULUS", [], offline=True)  # an empty lookup needs no cache
    assert shared.symbols.empty
    two = type(found)(
        "HOMO_SAPIENS",
        pd.Series({"ENSG00000001": "DUP1", "ENSG00000002": "DUP1", "ENSG00000003": "X"}),
        "r",
        "s",
    )
    with pytest.warns(GeneSelectionWarning, match="DUP1: ENSG00000001, ENSG00000002"):
        assert two.ids_for(["DUP1"]) == ["ENSG00000001", "ENSG00000002"]


def test_the_app_shows_symbols_offline_and_cached_ones_after_a_fetch(
    demo_cat, tmp_path, monkeypatch
):
    pytest.importorskip("ipywidgets")
    from refinewidgets.widgets import DatasetBuilder

    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path))
    builder = DatasetBuilder(demo_cat)
    builder.restore(rw.Dataset({"SRP091833": ["ALL"], "SRP132945": ["ALL"]}))
    builder.build()
    human = builder.result["SRP091833"]
    expected = symbols_for("HOMO_SAPIENS", list(human.var_names))
    assert (human.var["gene_symbol"] == expected.symbols).all()
    summary = builder.results.summary.value
    assert f"gene symbols: {expected.record()['with_symbol']:,} of 2,850 ids" in summary
    assert "Symbol" in builder.results.preview.value
    mouse = builder.result["SRP132945"]
    assert "gene_symbol" not in mouse.var  # never fetched: the app does not go online for them
    builder.results.group = "SRP132945"
    assert "not fetched yet" in builder.results.summary.value
    ids = list(mouse.var_names)
    with FakeEnsembl({g: (f"Sym{i}", "mus_musculus") for i, g in enumerate(ids)}) as fake:
        add_gene_symbols(builder.result, server=fake.url)  # once, from code
    builder.build()  # the next build finds them in the cache, offline
    assert builder.result["SRP132945"].var["gene_symbol"].tolist()[:2] == ["Sym0", "Sym1"]


# -- genes= by symbol for bulk --------------------------------------------------------------
def test_bulk_genes_by_symbol_id_or_any_case_after_normalization(demo_cat):
    full = rw.build(rw.Dataset({"SRP091833": ["ALL"]}, scale_by="STANDARD"), demo_cat)["SRP091833"]
    symbols = symbols_for("HOMO_SAPIENS", list(full.var_names)).symbols
    named = symbols[symbols != ""]
    asked = [named.iloc[0], named.index[1], named.iloc[2].lower(), "NOTAGENE"]
    with pytest.warns(GeneSelectionWarning, match="1 of the 4 genes.*NOTAGENE.*org.Hs.eg.db"):
        res = rw.build(
            rw.Dataset({"SRP091833": ["ALL"]}, scale_by="STANDARD", genes=asked), demo_cat
        )
    part = res["SRP091833"]
    assert list(part.var_names) == list(named.index[:3])
    # normalized and scaled over every gene, then selected: the full build's columns, by id
    assert np.array_equal(part.X, full[:, list(named.index[:3])].X)
    assert part.uns["refinewidgets"]["genes_selected"]["kept"] == 3
    with pytest.raises(DatasetSpecError, match="None of the genes asked for .*NOTAGENE"):
        rw.build(rw.Dataset({"SRP091833": ["ALL"]}, genes=["NOTAGENE"]), demo_cat)


def test_bulk_symbols_of_other_organisms_come_from_the_cache_and_shared_ones_warn(
    demo_cat, tmp_path, monkeypatch
):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path))
    ids = list(rw.build(rw.Dataset({"SRP132945": ["ALL"]}), demo_cat)["SRP132945"].var_names)
    # not fetched yet: the build never goes online, and says how to fetch them
    with pytest.raises(DatasetSpecError, match="MUS_MUSCULUS symbols are not in the cache"):
        rw.build(rw.Dataset({"SRP132945": ["ALL"]}, genes=["Dup"]), demo_cat)
    genes = {g: (f"Sym{i}", "mus_musculus") for i, g in enumerate(ids)}
    genes[ids[3]] = genes[ids[8]] = ("Dup", "mus_musculus")  # one symbol, two ids
    with FakeEnsembl(genes) as fake:
        symbols_for("MUS_MUSCULUS", ids, server=fake.url)  # fetched once
    with pytest.warns(GeneSelectionWarning, match=f"Dup -> {ids[3]}, {ids[8]}"):
        res = rw.build(rw.Dataset({"SRP132945": ["ALL"]}, genes=["Dup", "sym5"]), demo_cat)
    assert list(res["SRP132945"].var_names) == [ids[3], ids[8], ids[5]]
