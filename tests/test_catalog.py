"""Opening sources: the demo, zips, unzipped folders, folders of them; search; lazy reading."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

import refinewidgets as rw
from refinewidgets.io.catalog_open import demo_path
from refinewidgets.io.refinebio import matrix

from .conftest import bulk_ids


def test_demo_opens_offline_with_both_species_and_technologies(demo_cat):
    samples = demo_cat.samples
    assert set(samples["refinebio_organism"]) == {"HOMO_SAPIENS", "MUS_MUSCULUS"}
    assert {"MICROARRAY", "RNA-SEQ"} <= set(samples["technology"])
    assert samples.index.is_unique
    for col in ("experiment_accession", "technology", "processed", "source", "refinebio_platform"):
        assert col in samples.columns
    assert samples["processed"].all()
    exps = demo_cat.experiments
    assert (
        exps["num_samples"] == samples.groupby("experiment_accession").size().reindex(exps.index)
    ).all()
    assert demo_cat.qn_target("HOMO_SAPIENS") is not None
    assert demo_cat.qn_target("MUS_MUSCULUS") is None


def test_search_text_and_filters(demo_cat):
    hits = demo_cat.search("breast cancer", refinebio_organism="HOMO_SAPIENS")
    assert len(hits) > 0
    assert (hits["refinebio_organism"] == "HOMO_SAPIENS").all()
    text = (
        hits.index
        + " "
        + hits["experiment_accession"].map(demo_cat.experiments["title"])
        + " "
        + hits["experiment_accession"].map(demo_cat.experiments["description"])
        + " "
        + hits["refinebio_title"]
        + " "
        + hits["refinebio_disease"]
        + " "
        + hits["refinebio_specimen_part"]
    ).str.lower()
    assert text.str.contains("breast").all() and text.str.contains("cancer").all()
    mouse = demo_cat.search(refinebio_organism=["mus_musculus"], technology="RNA-SEQ")
    assert len(mouse) > 0 and set(mouse["refinebio_organism"]) == {"MUS_MUSCULUS"}
    assert demo_cat.search("no-such-word-anywhere").empty
    with pytest.raises(rw.DatasetSpecError, match="Cannot filter on 'colour': no such column"):
        demo_cat.search(colour="red")


def test_folder_of_zips_unzipped_folders_and_nesting(tmp_path):
    zips = sorted(demo_path().glob("*.zip"))
    nested = tmp_path / "downloads" / "2026"
    nested.mkdir(parents=True)
    shutil.copy(zips[0], nested / zips[0].name)
    unzipped = tmp_path / "downloads" / "unzipped"
    with zipfile.ZipFile(zips[1]) as zf:
        zf.extractall(unzipped)
    cat = rw.open_catalog(tmp_path / "downloads")
    expected = rw.open_catalog(zips[0], zips[1])
    assert sorted(cat.experiment_ids) == sorted(expected.experiment_ids)
    assert {s.name for s in cat.sources} == {zips[0].name, "unzipped"}
    # the unzipped folder builds the same values as its zip
    exp = rw.open_catalog(zips[1]).experiment_ids[0]
    a = rw.build(rw.Dataset({exp: ["ALL"]}), rw.open_catalog(unzipped)).expression(exp)
    b = rw.build(rw.Dataset({exp: ["ALL"]}), rw.open_catalog(zips[1])).expression(exp)
    assert a.equals(b)


def test_bad_paths(tmp_path):
    with pytest.raises(rw.RefineWidgetsError, match="does not exist"):
        rw.open_catalog(tmp_path / "missing.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(rw.SourceFormatError, match="holds no refine.bio download"):
        rw.open_catalog(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(rw.SourceFormatError, match="expected a refine.bio download"):
        rw.open_catalog(tmp_path / "notes.txt")


@pytest.fixture
def parses(monkeypatch):
    """Every parse of a matrix member: ``(member, columns)``."""
    calls = []
    real = matrix.read_matrix

    def spy(store, name, columns=None):
        calls.append((name, None if columns is None else list(columns)))
        return real(store, name, columns)

    monkeypatch.setattr("refinewidgets.io.refinebio.sources.read_matrix", spy)
    return calls


def test_opening_reads_no_values_and_build_reads_only_needed_columns(monkeypatch, parses):
    calls = parses
    monkeypatch.setenv("REFINEWIDGETS_PARSED_CACHE_MAX_BYTES", "0")  # no parsed-source cache
    cat = rw.open_catalog()
    assert calls == []
    exp = bulk_ids(cat)[0]
    wanted = cat.experiment_samples(exp)[:3]
    res = rw.build(rw.Dataset({exp: wanted}), cat)
    assert calls == [(f"{exp}/{exp}.tsv", wanted)]
    assert list(res.expression(exp).columns) == wanted


def test_a_rebuild_with_other_options_parses_nothing(monkeypatch, tmp_path, parses):
    """The parsed-source cache: the first build parses each member once (whole, as it is
    small), a rebuild with other options or other samples of it parses nothing, with the
    same values; a changed file is parsed again."""
    calls = parses
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    exp = bulk_ids(rw.open_catalog())[0]
    source = tmp_path / "unzipped"  # an unzipped download: its matrix can be edited below
    with zipfile.ZipFile(demo_path() / rw.open_catalog().experiment_record(exp)["source"]) as z:
        z.extractall(source)
    cat = rw.open_catalog(source)
    members = cat.experiment_samples(exp)
    first = rw.build(rw.Dataset({exp: members[:3]}, scale_by="NONE"), cat)
    assert calls == [(f"{exp}/{exp}.tsv", members)]  # the whole member, once
    again = rw.build(rw.Dataset({exp: members[:3]}, scale_by="STANDARD"), rw.open_catalog(source))
    other = rw.build(rw.Dataset({exp: members[1:4]}), rw.open_catalog(source))
    assert len(calls) == 1
    uncached = rw.build(rw.Dataset({exp: members[:3]}, scale_by="STANDARD"), _no_cache(source))
    assert again.expression(exp).equals(uncached.expression(exp))
    assert first.expression(exp).equals(_no_cache_build(source, exp, members[:3]))
    assert list(other.expression(exp).columns) == members[1:4]
    assert len(calls) == 3  # the two reads without the cache parse, of course
    # a changed file: parsed again, and its new values are used
    matrix = source / exp / f"{exp}.tsv"
    text = matrix.read_text().splitlines()
    cells = text[1].split("\t")
    cells[1] = "123.5"
    text[1] = "\t".join(cells)
    matrix.write_text("\n".join(text) + "\n")
    changed = rw.build(
        rw.Dataset({exp: members[:1]}, quantile_normalize=False), rw.open_catalog(source)
    )
    assert len(calls) == 4
    fresh = rw.build(rw.Dataset({exp: members[:1]}, quantile_normalize=False), _no_cache(source))
    assert changed.expression(exp).equals(fresh.expression(exp))
    assert changed.expression(exp).loc[cells[0], members[0]] == pytest.approx(np.log2(123.5))


def _no_cache(source):
    cat = rw.open_catalog(source)
    for src in cat.sources:
        src.parsed_cache.max_bytes = 0
    return cat


def _no_cache_build(source, exp, samples):
    return rw.build(rw.Dataset({exp: samples}, scale_by="NONE"), _no_cache(source)).expression(exp)


def test_species_compendium_with_matrix_at_root(tmp_path):
    res = rw.build(
        rw.Dataset(
            {
                e: ["ALL"]
                for e in rw.open_catalog(sorted(demo_path().glob("*mouse*"))[0]).experiment_ids
            },
            aggregate_by="SPECIES",
            quantile_normalize=False,
        ),
        rw.open_catalog(),
    )
    path = res.write_zip(tmp_path / "species.zip")
    moved = tmp_path / "compendium.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(moved, "w") as dst:
        for name in src.namelist():
            dst.writestr(
                "MUS_MUSCULUS.tsv" if name == "MUS_MUSCULUS/MUS_MUSCULUS.tsv" else name,
                src.read(name),
            )
    cat = rw.open_catalog(moved)
    exp = bulk_ids(cat)[0]
    again = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)
    original = res.expression("MUS_MUSCULUS")[again.expression(exp).columns]
    np.testing.assert_array_equal(
        again.expression(exp).to_numpy(), original.loc[again.expression(exp).index].to_numpy()
    )
