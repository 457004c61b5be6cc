"""A species compendium parsed once: the first read of a big matrix member streams every sample
into the parsed-source cache as gene blocks; any later selection gathers from them.

The compendium is refine.bio's create_compendia layout (``tests/data/refinebio/``, fixture 5:
the matrix ``HOMO_SAPIENS.tsv`` at the zip's root, an empty first header cell, float64 values
encoded ``s + g/1000``), widened to more genes so that it streams in many blocks. "Big" is
lowered to every size here (``WHOLE_MEMBER_BYTES = 0``) and the batches and blocks are made
small; the values are checked by accession against their encoding.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import refinewidgets as rw
from refinewidgets.io.containers import deflate
from refinewidgets.io.refinebio import matrix_tsv, parsed_cache
from refinewidgets.io.refinebio.sources import RefinebioSource

FIXTURE = Path(__file__).parent / "data" / "refinebio" / "compendium_HOMO_SAPIENS.zip"
MEMBER = "HOMO_SAPIENS.tsv"
SAMPLES = ["GSM7000234", "GSM7000567", "GSM7000901", "ERR4000123", "SRR8000456", "SRR8000789"]
N_GENES = 3000


def _trailing(text: str) -> int:
    return int(re.search(r"(\d+)$", text).group(1))


def encoded(sample: str, gene: str) -> float:
    """The fixture's value of ``sample`` x ``gene`` (its README): ``s + g/1000``."""
    return _trailing(sample) % 1000 + (_trailing(gene) % 1000) / 1000


def _genes(n: int) -> list[str]:
    return [f"ENSG{i:011d}" for i in range(3, 3 + 7 * n, 7)]


def widened(folder: Path, n_genes: int = N_GENES, bad: tuple[str, str] | None = None) -> Path:
    """The fixture compendium with ``n_genes`` genes, every other member byte for byte; ``bad``
    ``(sample, gene)`` writes a non-numeric cell there."""
    lines = ["\t" + "\t".join(SAMPLES)]  # create_compendia: an unnamed index, empty first cell
    for gene in _genes(n_genes):
        cells = [repr(encoded(s, gene)) for s in SAMPLES]
        if bad is not None and gene == bad[1]:
            cells[SAMPLES.index(bad[0])] = "n/a"
        lines.append(gene + "\t" + "\t".join(cells))
    path = folder / FIXTURE.name
    with zipfile.ZipFile(FIXTURE) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = ("\n".join(lines) + "\n").encode() if info.filename == MEMBER else None
            out.writestr(info, src.read(info) if data is None else data)
    return path


@pytest.fixture
def streamed(monkeypatch, tmp_path):
    """Every member counts as big; small batches (one to a few dozen genes) and blocks of
    about 100 genes; a cache of its own. Returns the calls of both parsers."""
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REFINEWIDGETS_PARSED_CACHE_MAX_BYTES", raising=False)
    monkeypatch.delenv("REFINEWIDGETS_PARSED_CACHE_FLOAT32", raising=False)
    monkeypatch.setattr(parsed_cache, "WHOLE_MEMBER_BYTES", 0)
    monkeypatch.setattr(deflate, "_OUT", 1024)  # text inflated in small chunks
    monkeypatch.setattr(matrix_tsv, "MIN_BATCH_ROWS", 1)
    monkeypatch.setattr(matrix_tsv, "_MIN_BATCH_BYTES", 2048)
    monkeypatch.setattr(matrix_tsv, "MAX_BATCH_BYTES", 4096)
    monkeypatch.setattr(matrix_tsv, "BLOCK_BYTES", 100 * 8 * len(SAMPLES))
    calls = {"columns": [], "stream": 0}
    from refinewidgets.io.refinebio import sources

    real_read, real_blocks = sources.read_matrix, sources.read_matrix_blocks

    def read(store, name, columns=None):
        calls["columns"].append(list(columns))
        return real_read(store, name, columns)

    def blocks(store, name):
        calls["stream"] += 1
        return real_blocks(store, name)

    monkeypatch.setattr(sources, "read_matrix", read)
    monkeypatch.setattr(sources, "read_matrix_blocks", blocks)
    return calls


def _entries(src: RefinebioSource) -> list[Path]:
    folder = src.parsed_cache.folder
    return sorted(p for p in folder.iterdir()) if folder.is_dir() else []


def _check(frame, samples):
    genes = _genes(N_GENES)
    assert list(frame.columns) == samples
    assert list(frame.index) == genes
    expected = np.array([[encoded(s, g) for s in samples] for g in genes])
    assert np.array_equal(frame.to_numpy(), expected)


def test_first_read_stores_every_sample_and_other_samples_are_gathered(streamed, tmp_path):
    path = widened(tmp_path)
    src = RefinebioSource(path)
    first = src.read_matrix(MEMBER, ["SRR8000456", "GSM7000234"])
    _check(first, ["SRR8000456", "GSM7000234"])
    assert streamed == {"columns": [], "stream": 1}  # every sample, streamed once
    (entry,) = _entries(src)
    index = json.loads((entry / "index.json").read_text())
    assert index["samples"] == SAMPLES
    assert len(index["blocks"]) >= 20  # many blocks of about 100 genes
    assert index["blocks"][0][0] == 0 and index["blocks"][-1][1] == N_GENES
    assert all(a[1] == b[0] for a, b in zip(index["blocks"], index["blocks"][1:]))
    block = np.load(entry / "block00003.npy")
    start, stop = index["blocks"][3]
    assert block.shape == (len(SAMPLES), stop - start) and block.dtype == np.float64
    # other samples, in another order, from a fresh source (another build): nothing parsed
    other = RefinebioSource(path).read_matrix(MEMBER, ["SRR8000789", "ERR4000123", "GSM7000901"])
    _check(other, ["SRR8000789", "ERR4000123", "GSM7000901"])
    assert streamed == {"columns": [], "stream": 1}


def test_a_build_from_the_stored_compendium_equals_an_uncached_build(streamed, tmp_path):
    path = widened(tmp_path)
    exp = "SRP500003"
    data = {exp: ["SRR8000789", "SRR8000456"]}
    cached = rw.build(rw.Dataset(data, scale_by="STANDARD"), rw.open_catalog(path))
    again = rw.build(rw.Dataset(data, scale_by="STANDARD"), rw.open_catalog(path))
    plain = rw.open_catalog(path)
    for src in plain.sources:
        src.parsed_cache.max_bytes = 0
    uncached = rw.build(rw.Dataset(data, scale_by="STANDARD"), plain)
    assert streamed["stream"] == 1 and streamed["columns"] == [["SRR8000789", "SRR8000456"]]
    expected = uncached.expression(exp)
    assert cached.expression(exp).equals(expected)
    assert again.expression(exp).equals(expected)


def test_float32_storage_halves_the_blocks_and_every_read_agrees(streamed, tmp_path):
    path = widened(tmp_path)
    src = RefinebioSource(path)
    src.parsed_cache = parsed_cache.ParsedCache(float32=True)
    first = src.read_matrix(MEMBER, ["GSM7000567"])
    (entry,) = _entries(src)
    assert np.load(entry / "block00000.npy").dtype == np.float32
    again = RefinebioSource(path)
    again.parsed_cache = parsed_cache.ParsedCache(float32=True)
    second = again.read_matrix(MEMBER, ["GSM7000567", "ERR4000123"])
    assert streamed["stream"] == 1
    exact = np.array([encoded("GSM7000567", g) for g in _genes(N_GENES)])
    rounded = exact.astype(np.float32).astype(np.float64)
    assert np.array_equal(first["GSM7000567"].to_numpy(), rounded)
    assert np.array_equal(second["GSM7000567"].to_numpy(), rounded)
    assert not np.array_equal(rounded, exact)  # float32 did round: the test can tell
    # a float64 cache never answers with the float32 entry
    exact_read = RefinebioSource(path).read_matrix(MEMBER, ["GSM7000567"])
    assert np.array_equal(exact_read["GSM7000567"].to_numpy(), exact)
    assert streamed["stream"] == 2


def test_float32_keeps_a_block_beyond_its_range_as_float64(tmp_path):
    cache = parsed_cache.ParsedCache(tmp_path / "c", float32=True)
    (tmp_path / "m.tsv").write_text("x")
    key = cache.key(tmp_path / "m.tsv", "m.tsv", None)
    blocks = [(["G1", "G2"], np.array([[1.5, 2.0]])), (["G3"], np.array([[1e300]]))]
    assert cache.put_blocks(key, ["S1"], iter(blocks))
    genes, samples, values = cache.get(key)
    assert genes == ["G1", "G2", "G3"] and samples == ["S1"]
    assert values.take([0]).tolist() == [[1.5, 2.0, 1e300]]
    assert [b.dtype for _, _, b in values.blocks] == [np.float32, np.float64]


def test_a_damaged_entry_is_removed_and_the_member_parsed_again(streamed, tmp_path):
    path = widened(tmp_path)
    RefinebioSource(path).read_matrix(MEMBER, ["GSM7000234"])
    src = RefinebioSource(path)
    (entry,) = _entries(src)
    (entry / "block00002.npy").unlink()
    _check(src.read_matrix(MEMBER, ["GSM7000901"]), ["GSM7000901"])
    assert streamed["stream"] == 2
    (entry,) = _entries(src)
    assert (entry / "block00002.npy").is_file()
    np.save(entry / "block00001.npy", np.zeros((2, 3)))  # another shape than its index says
    _check(RefinebioSource(path).read_matrix(MEMBER, ["SRR8000456"]), ["SRR8000456"])
    assert streamed["stream"] == 3


def test_a_bad_value_of_a_sample_not_asked_stores_nothing(streamed, tmp_path):
    gene = _genes(N_GENES)[2500]  # far into the stream: blocks were written before it
    path = widened(tmp_path, bad=("ERR4000123", gene))
    src = RefinebioSource(path)
    _check(src.read_matrix(MEMBER, ["GSM7000234"]), ["GSM7000234"])
    assert streamed == {"columns": [["GSM7000234"]], "stream": 1}
    assert list(src.parsed_cache.folder.iterdir()) == []  # no entry, no partial blocks left
    with pytest.raises(rw.SourceFormatError) as info:
        src.read_matrix(MEMBER, ["ERR4000123"])
    message = str(info.value)
    assert "non-numeric expression value in HOMO_SAPIENS.tsv" in message
    assert f"column 'ERR4000123' (gene '{gene}'): 'n/a'" in message
    assert list(src.parsed_cache.folder.iterdir()) == []


def test_a_member_beyond_the_bound_is_stored_for_the_samples_asked(streamed, tmp_path):
    path = widened(tmp_path)
    src = RefinebioSource(path)
    values_bytes = N_GENES * len(SAMPLES) * 8
    src.parsed_cache.max_bytes = values_bytes // 2  # the whole member would not fit
    _check(src.read_matrix(MEMBER, ["SRR8000456"]), ["SRR8000456"])
    assert streamed == {"columns": [["SRR8000456"]], "stream": 0}
    (entry,) = _entries(src)
    assert json.loads((entry / "index.json").read_text())["samples"] == ["SRR8000456"]


def test_the_cache_stays_bounded_least_recently_used_first(streamed, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    paths = [widened(first), widened(second, n_genes=N_GENES)]
    one_entry = N_GENES * len(SAMPLES) * 8
    for path in paths:
        src = RefinebioSource(path)
        src.parsed_cache.max_bytes = int(one_entry * 1.5)  # room for one entry only
        src.read_matrix(MEMBER, ["GSM7000234"])
    (kept,) = _entries(src)
    assert json.loads((kept / "index.json").read_text())["samples"] == SAMPLES
    assert src.parsed_cache.entries()[0][1] == one_entry + 128 * len(list(kept.glob("*.npy")))
    assert src.parsed_cache.key(paths[1], MEMBER, None) == kept.name  # the newer one


def test_a_changed_file_is_streamed_again(streamed, tmp_path):
    path = widened(tmp_path)
    RefinebioSource(path).read_matrix(MEMBER, ["GSM7000234"])
    path.unlink()
    widened(tmp_path, n_genes=N_GENES - 1)  # rewritten in place: another identity
    frame = RefinebioSource(path).read_matrix(MEMBER, ["GSM7000234"])
    assert streamed["stream"] == 2
    assert len(frame) == N_GENES - 1
    assert frame.loc[_genes(N_GENES)[10], "GSM7000234"] == encoded(
        "GSM7000234", _genes(N_GENES)[10]
    )


def test_blocks_stream_in_bounded_pieces(streamed, tmp_path):
    """The stream's blocks: consecutive genes, every sample, each about BLOCK_BYTES."""
    from refinewidgets.io.containers.stores import open_store
    from refinewidgets.io.refinebio.matrix import read_matrix_blocks

    with open_store(widened(tmp_path)) as store:
        blocks = list(read_matrix_blocks(store, MEMBER))
    limit = matrix_tsv.BLOCK_BYTES
    assert len(blocks) >= 20
    assert all(v.shape[0] == len(SAMPLES) for _, v in blocks)
    assert all(v.nbytes <= 2 * limit for _, v in blocks)
    genes = [g for ids, _ in blocks for g in ids]
    assert genes == _genes(N_GENES)
    values = np.concatenate([v for _, v in blocks], axis=1)
    assert values[SAMPLES.index("SRR8000789"), 17] == encoded("SRR8000789", genes[17])
