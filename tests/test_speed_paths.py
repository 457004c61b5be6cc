"""The fast paths of issue 13: exact values through ISA-L and polars, batches, merge and QN.

Timings are never asserted here (benchmarks/bench_read.py and bench_build.py print them); these
tests pin the values, the errors and the shapes of the fast paths against plain references.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import refinewidgets as rw
from refinewidgets.core.merge import merge_group
from refinewidgets.core.quantile import (
    _values_interpolated,
    _values_same_length,
    quantile_normalize_rows,
)
from refinewidgets.io.containers import stores
from refinewidgets.io.containers.deflate import fast_deflate
from refinewidgets.io.refinebio import matrix, matrix_tsv

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _hostile_floats(rng, shape) -> np.ndarray:
    """Random bit patterns (every exponent: subnormal, tiny, huge, negative) plus edge values."""
    X = rng.integers(0, 2**63, size=shape, dtype=np.int64).view(np.float64)
    X[~np.isfinite(X)] = np.nan
    X *= np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    edges = [5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.0]
    edges += [1e20, 1e-7, 0.1, 1 / 3, 123456789012345678.0, np.nan]
    X.flat[: len(edges)] = edges
    return X


def _write_zip(path, genes, samples, X, member="G/G.tsv", **kw):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w", force_zip64=True) as fh:
            assert fast_deflate(fh)
            matrix.write_matrix(fh, genes, samples, X, **kw)
    return path


def _read(path, member="G/G.tsv", columns=None):
    with stores.open_store(path) as store:
        return matrix.read_matrix(store, member, columns)


# -- values: written, read back, the same float64 -------------------------------------------
def test_float64_text_parses_back_to_the_same_values(tmp_path):
    rng = np.random.default_rng(7)
    X = _hostile_floats(rng, (5, 3000))
    X[2, 10] = np.inf
    X[3, 11] = -np.inf
    genes = [f"ENSG{i:011d}" for i in range(X.shape[1])]
    samples = [f"GSM{i}" for i in range(X.shape[0])]
    path = _write_zip(tmp_path / "m.zip", genes, samples, X)
    text = zipfile.ZipFile(path).read("G/G.tsv").decode()
    lines = text.splitlines()
    assert lines[0] == "Gene\t" + "\t".join(samples)
    # Python's float() of every cell: the text itself is exact, whatever reads it
    cells = [line.split("\t") for line in lines[1:]]
    assert [c[0] for c in cells] == genes
    parsed = np.array([[float(v) if v else np.nan for v in c[1:]] for c in cells]).T
    assert np.array_equal(parsed, X, equal_nan=True)
    assert np.signbit(parsed.flat[4]) and parsed.flat[4] == 0.0  # -0.0 stays negative
    assert "" in cells[0][1:] or any("" in c[1:] for c in cells)  # NaN is an empty cell
    got_genes, got_samples, Y = _read(path)
    assert got_genes == genes and got_samples == samples
    assert Y.dtype == np.float64 and Y.flags.c_contiguous
    assert np.array_equal(Y, X, equal_nan=True)
    assert np.isposinf(Y[2, 10]) and np.isneginf(Y[3, 11])


def test_float32_output_is_smaller_and_reads_back_the_float32_values(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(7.0, 2.0, size=(20, 500))
    X[0, :5] = np.nan
    genes = [f"G{i}" for i in range(500)]
    samples = [f"S{i}" for i in range(20)]
    full = _write_zip(tmp_path / "full.zip", genes, samples, X)
    small = _write_zip(tmp_path / "small.zip", genes, samples, X, float32=True)
    assert small.stat().st_size < 0.75 * full.stat().st_size
    _, _, Y = _read(small)
    # the text is float32's shortest: parsed as float32 it gives exactly the float32 values
    assert np.array_equal(Y.astype(np.float32), X.astype(np.float32), equal_nan=True)
    assert not np.array_equal(Y, X, equal_nan=True)  # rounded: the option does something


def test_float32_refuses_values_beyond_its_range_and_writes_nothing(species_result, tmp_path):
    key = next(iter(species_result))
    species_result[key].X[0, 0] = 1e300
    target = tmp_path / "f32.zip"
    from refinewidgets.io.refinebio.zip import write_zip

    with pytest.raises(rw.ExpressionValueError, match="beyond float32's range"):
        write_zip(species_result, target, float32=True)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def species_result(comp, cat):
    data = {e: ["ALL"] for e in comp.experiments}
    return rw.build(rw.Dataset(data, aggregate_by="SPECIES", quantile_normalize=False), cat)


def test_write_zip_float32_round_trip(species_result, tmp_path):
    from refinewidgets.io.refinebio.zip import write_zip

    path = write_zip(species_result, tmp_path / "d.zip", float32=True)
    back = rw.read_zip(path)
    for key, adata in species_result.items():
        expected = np.asarray(adata.X, dtype=np.float32)
        got = np.asarray(back[key].X).astype(np.float32)
        assert np.array_equal(got, expected, equal_nan=True)


# -- the zip: plain deflate, readable by any reader -------------------------------------------
def test_isal_members_read_with_zipfile_and_the_unzip_command(species_result, tmp_path):
    path = species_result.write_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        infos = [i for i in zf.infolist() if i.filename.endswith(".tsv")]
        assert infos and all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
        key = next(iter(species_result))
        frame = pd.read_csv(
            zf.open(f"{key}/{key}.tsv"), sep="\t", index_col=0, float_precision="round_trip"
        )
    adata = species_result[key]
    assert np.array_equal(frame.to_numpy().T, np.asarray(adata.X), equal_nan=True)
    unzip = shutil.which("unzip")
    if unzip is None:  # .ci/run installs it
        if os.environ.get("CI"):
            pytest.fail("the unzip command is not installed: apt-get install unzip")
        pytest.skip("the unzip command is not installed")
    done = subprocess.run([unzip, "-tq", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "No errors detected" in done.stdout


def test_r_reads_the_matrix(species_result, tmp_path):
    if shutil.which("Rscript") is None:  # .ci/run installs Debian's r-base-core
        message = "R (Rscript) is not installed: apt-get install r-base-core"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    path = species_result.write_zip(tmp_path / "d.zip")
    key = next(iter(species_result))
    script = (
        f"con <- unz('{path}', '{key}/{key}.tsv'); "
        "m <- read.delim(con, row.names = 1, check.names = FALSE); cat(dim(m))"
    )
    done = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    adata = species_result[key]
    assert done.stdout.split() == [str(adata.n_vars), str(adata.n_obs)]


def test_stored_and_bzip2_members_are_read(tmp_path):
    text = "Gene\tA\tB\nG1\t1.5\t\nG2\t-2e-300\t3\n"
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2):
        path = tmp_path / f"{compression}.zip"
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            zf.writestr("G/G.tsv", text)
        genes, samples, X = _read(path)
        assert genes == ["G1", "G2"] and samples == ["A", "B"]
        assert np.array_equal(X, [[1.5, -2e-300], [np.nan, 3.0]], equal_nan=True)


def _corrupt(path, tmp_path, offset_from_end=None, crc=False):
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("G/G.tsv")
    start = info.header_offset + 30 + len(info.filename.encode())
    if crc:
        # change the CRC in the central directory only: the data inflates, the check fails
        central = data.rfind(b"PK\x01\x02")
        data[central + 16 : central + 20] = (info.CRC ^ 0xFFFF).to_bytes(4, "little")
    else:
        data[start + 50 : start + 60] = b"\xff" * 10
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("crc", [False, True])
def test_damaged_member_is_our_error_naming_it(tmp_path, crc):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 400))
    path = _write_zip(tmp_path / "ok.zip", [f"G{i}" for i in range(400)], ["A", "B", "C"], X)
    bad = _corrupt(path, tmp_path, crc=crc)
    with pytest.raises(rw.SourceFormatError, match="G/G.tsv"):
        _read(bad)


# -- parsing: as strict as before, batches of rows --------------------------------------------
def _zip_text(tmp_path, text: bytes | str, name="t.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("G/G.tsv", text)
    return path


@pytest.mark.parametrize(
    "body",
    [
        "G1\t1\t2\nG2\t3\n",  # a short line: polars would fill it with a null
        "G1\t1\t2\nG2\t3\t4\t5\n",  # a long line
    ],
)
def test_lines_with_the_wrong_number_of_cells_are_refused(tmp_path, body):
    path = _zip_text(tmp_path, "Gene\tA\tB\n" + body)
    with pytest.raises(rw.SourceFormatError, match="cannot parse G/G.tsv"):
        _read(path)


def test_empty_lines_crlf_quotes_and_missing_markers(tmp_path):
    text = 'Gene\tA\tB\r\n"G1"\t1.5\tNA\r\n\r\nG2\tNaN\t\r\nG3\tnan\t-0.25\r\n'
    genes, _, X = _read(_zip_text(tmp_path, text))
    assert genes == ["G1", "G2", "G3"]
    assert np.array_equal(X, [[1.5, np.nan, np.nan], [np.nan, np.nan, -0.25]], equal_nan=True)


def test_columns_are_found_by_name_in_any_order(tmp_path):
    text = "Gene\tA\tB\tC\nG1\t1\t2\t3\nG2\t4\t5\t6\n"
    _, samples, X = _read(_zip_text(tmp_path, text), columns=["C", "A", "C"])
    assert samples == ["C", "A", "C"]
    assert np.array_equal(X, [[3, 6], [1, 4], [3, 6]])


def test_header_only_matrix_has_no_genes(tmp_path):
    genes, samples, X = _read(_zip_text(tmp_path, "Gene\tA\tB\n"))
    assert genes == [] and samples == ["A", "B"] and X.shape == (2, 0)


@pytest.mark.parametrize("size_factor", [0.05, 1.0, 20.0])
def test_tiny_batches_and_wrong_size_hints_give_the_same_array(tmp_path, monkeypatch, size_factor):
    """Batches of a few rows, a capacity grown many times or far too large: same values."""
    rng = np.random.default_rng(11)
    X = _hostile_floats(rng, (7, 3001))
    genes = [f"G{i}" for i in range(X.shape[1])]
    samples = [f"S{i}" for i in range(X.shape[0])]
    path = _write_zip(tmp_path / "m.zip", genes, samples, X)
    monkeypatch.setattr(matrix_tsv, "MIN_BATCH_ROWS", 1)
    monkeypatch.setattr(matrix_tsv, "_MIN_BATCH_BYTES", 4096)
    monkeypatch.setattr(matrix_tsv, "MAX_BATCH_BYTES", 8192)
    with stores.open_store(path) as store:
        real = store.size("G/G.tsv")
        monkeypatch.setattr(store, "size", lambda name: int(real * size_factor))
        got_genes, _, Y = matrix.read_matrix(store, "G/G.tsv")
    assert got_genes == genes
    assert Y.shape == X.shape and Y.flags.c_contiguous
    assert np.array_equal(Y, X, equal_nan=True)


def test_batches_are_whole_lines_sized_by_rows():
    row = b"G\t" + b"\t".join([b"1.2345678901234567"] * 200) + b"\n"
    text = b"Gene\t" + b"\t".join(b"S%d" % i for i in range(200)) + b"\n" + row * 3000
    chunks = [text[i : i + 65536] for i in range(0, len(text), 65536)]
    batches = list(matrix_tsv._text_batches(iter(chunks), len(text)))
    assert b"".join(batches) == row * 3000
    assert all(b.endswith(b"\n") for b in batches)
    rows = [b.count(b"\n") for b in batches]
    assert all(n >= matrix_tsv.MIN_BATCH_ROWS for n in rows[1:-1])


@pytest.mark.parametrize("length", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_counting_a_byte_equals_bytes_count(length):
    # tabs at both ends and across the 1 MiB steps the count takes
    rng = np.random.default_rng(length)
    text = bytes(rng.choice(np.frombuffer(b"\t\n7.E", dtype=np.uint8), size=length))
    for char in (b"\t", b"\n", b"x"):
        assert matrix_tsv._count(text, char) == text.count(char)


@pytest.mark.parametrize(
    "positions", [[1, 2, 3, 4], [3, 1], [2, 2, 4], [4], [], [1, 2, 3, 4, 1]], ids=str
)
def test_parsed_columns_are_the_asked_positions_in_order(positions, monkeypatch):
    # the values of a batch come out of polars in one call, then the asked rows: subsets,
    # other orders and repeats give pandas' columns (NaN for empty cells), over many batches
    monkeypatch.setattr(matrix_tsv, "_MIN_BATCH_BYTES", 256)
    monkeypatch.setattr(matrix_tsv, "MAX_BATCH_BYTES", 512)
    rng = np.random.default_rng(5)
    values = rng.normal(size=(300, 4))
    cells = [[repr(float(v)) for v in row] for row in values]
    cells[7][2] = ""  # a missing value
    values[7, 2] = np.nan
    header = ["Gene", "A", "B", "C", "D"]
    text = (
        "\t".join(header)
        + "\n"
        + "".join(f"G{i}\t" + "\t".join(row) + "\n" for i, row in enumerate(cells))
    )
    genes, Y = matrix_tsv.parse_matrix(
        lambda: iter([text.encode()]),
        header,
        positions,
        size=len(text),
        label="x",
        name="y",
        bad_value=lambda: "?",
    )
    expected = pd.read_csv(io.StringIO(text), sep="\t", index_col=0, float_precision="round_trip")
    assert genes == list(expected.index)
    assert Y.shape == (len(positions), 300) and Y.dtype == np.float64
    for row, pos in zip(Y, positions):
        np.testing.assert_array_equal(row, expected[header[pos]].to_numpy())
        np.testing.assert_array_equal(row, values[:, pos - 1])  # repr round-trips exactly


def test_a_failing_reader_thread_raises_in_the_caller_and_stops():
    def broken():
        yield b"Gene\tA\nG1\t1\n"
        raise rw.SourceFormatError("damaged on purpose")

    with pytest.raises(rw.SourceFormatError, match="damaged on purpose"):
        matrix_tsv.parse_matrix(
            broken, ["Gene", "A"], [1], size=None, label="x", name="y", bad_value=lambda: "?"
        )


# -- merge: one gather per sample, the same values as a plain pandas join ---------------------
def _reference_merge(frames, technology, log_rnaseq):
    kept = []
    for frame, _ in frames:
        frame = frame.copy()
        for s in frame.columns:
            col = frame[s]
            if col.isna().all() or np.isinf(col).any():
                frame = frame.drop(columns=s)
                continue
            if technology[s] == "RNA-SEQ" and log_rnaseq[s]:
                frame[s] = np.log2(col + 1.0)
            elif technology[s] == "MICROARRAY" and col.max() > 100:
                frame[s] = np.log2(col)
        if frame.shape[1]:  # a frame whose samples were all dropped brings no genes
            kept.append(frame)
    if not kept:
        return pd.DataFrame()
    return pd.concat(kept, axis=1, join="inner").sort_index()


@_SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n_frames=st.integers(1, 4),
    nan_share=st.sampled_from([0.0, 0.1]),
)
def test_merge_equals_a_plain_pandas_inner_join(seed, n_frames, nan_share):
    rng = np.random.default_rng(seed)
    universe = [f"ENSG{i:05d}" for i in range(60)]
    frames, technology, log_rnaseq = [], {}, {}
    for f in range(n_frames):
        genes = sorted(rng.choice(universe, size=50, replace=False))
        tech = rng.choice(["MICROARRAY", "RNA-SEQ"])
        samples = [f"S{f}_{j}" for j in range(rng.integers(1, 4))]
        values = rng.uniform(1.0, 300.0 if tech == "MICROARRAY" else 50.0, (50, len(samples)))
        values[rng.random(values.shape) < nan_share] = np.nan
        if rng.random() < 0.2:
            values[:, 0] = np.inf if rng.random() < 0.5 else np.nan
        frames.append((pd.DataFrame(values, index=genes, columns=samples), f"f{f}"))
        for s in samples:
            technology[s] = tech
            log_rnaseq[s] = bool(rng.random() < 0.7)
    ref = _reference_merge(frames, technology, log_rnaseq)
    originals = [frame.copy() for frame, _ in frames]
    if ref.shape[1] == 0:
        return
    gm = merge_group(iter(frames), technology, log_rnaseq=log_rnaseq)
    assert list(gm.genes) == list(ref.index)
    assert gm.samples == list(ref.columns)
    assert np.array_equal(gm.X, ref.to_numpy().T, equal_nan=True)
    for (frame, _), original in zip(frames, originals):  # the inputs are not modified
        pd.testing.assert_frame_equal(frame, original)


@pytest.mark.parametrize("threads", [2, 3])
def test_merge_on_threads_gives_the_same_matrix(threads):
    """Wide frames (their samples gathered on several threads) give the same bits as one
    thread and as the plain pandas join."""
    rng = np.random.default_rng(3)
    universe = [f"ENSG{i:05d}" for i in range(400)]
    frames, technology, log_rnaseq = [], {}, {}
    for f, width in enumerate([40, 9, 70]):
        genes = sorted(rng.choice(universe, size=360, replace=False))
        tech = ["MICROARRAY", "RNA-SEQ", "RNA-SEQ"][f]
        samples = [f"S{f}_{j}" for j in range(width)]
        values = rng.uniform(1.0, 300.0, (360, width))
        values[rng.random(values.shape) < 0.05] = np.nan
        frames.append((pd.DataFrame(values, index=genes, columns=samples), f"f{f}"))
        for s in samples:
            technology[s], log_rnaseq[s] = tech, True
    one = merge_group(iter(frames), technology, log_rnaseq=log_rnaseq)
    many = merge_group(iter(frames), technology, log_rnaseq=log_rnaseq, threads=threads)
    ref = _reference_merge(frames, technology, log_rnaseq)
    assert many.samples == one.samples == list(ref.columns)
    assert list(many.genes) == list(ref.index)
    assert np.array_equal(many.X, one.X, equal_nan=True)
    assert np.array_equal(many.X, ref.to_numpy().T, equal_nan=True)


# -- QN: rows without ties take a shared vector; the same values as the general rule ----------
def _reference_qn_row(row: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.full(row.shape, np.nan)
    valid = ~np.isnan(row)
    k = int(valid.sum())
    if k == 0:
        return out
    ranks = stats.rankdata(row[valid])[None, :]
    if k == row.size == t.size:
        out[valid] = _values_same_length(ranks, t)[0]
    else:
        out[valid] = _values_interpolated(ranks, np.array([k]), t)[0]
    return out


@_SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n_genes=st.integers(1, 40),
    target_len=st.sampled_from([None, 7, 40]),
    ties=st.booleans(),
    nan_share=st.sampled_from([0.0, 0.2]),
)
def test_qn_fast_path_equals_the_rule_row_by_row(seed, n_genes, target_len, ties, nan_share):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(9, n_genes))
    if ties:
        X[::2] = np.round(X[::2])
    X[rng.random(X.shape) < nan_share] = np.nan
    t = np.sort(rng.normal(size=target_len or n_genes))
    got = quantile_normalize_rows(X, t, chunk_size=4)
    expected = np.array([_reference_qn_row(r, t) for r in X])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(got), np.isnan(X))


def test_qn_in_place_equals_a_new_array():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(70, 300))
    X[3, :20] = np.nan
    X[4] = np.round(X[4])
    t = np.sort(rng.normal(size=300))
    expected = quantile_normalize_rows(X, t)
    quantile_normalize_rows(X, t, out=X)
    assert np.array_equal(X, expected, equal_nan=True)


def test_write_matrix_to_a_plain_buffer_without_samples():
    buf = io.BytesIO()
    matrix.write_matrix(buf, ["G1", "G2"], [], np.empty((0, 2)))
    assert buf.getvalue() == b"Gene\t\nG1\nG2\n"


_ID_PIECES = st.sampled_from(["ENSG1", "ENSG2", " ", "\t", "\n", "AFFX-", "_at", ".3", ".x", "a"])


@_SETTINGS
@given(ids=st.lists(st.lists(_ID_PIECES, min_size=1, max_size=4).map("".join), max_size=8))
def test_sanitize_fast_path_equals_the_rules(ids, monkeypatch):
    from refinewidgets.core import merge

    frame = pd.DataFrame({"S": np.arange(len(ids), dtype=float)}, index=ids)
    fast = merge.sanitize_gene_ids(frame)
    monkeypatch.setattr(merge, "_needs_cleaning", lambda ids: True)
    ruled = merge.sanitize_gene_ids(frame)
    pd.testing.assert_frame_equal(fast, ruled)


@pytest.mark.parametrize("out", [1, 1000, 1 << 21])
def test_inflate_gives_every_byte_whatever_its_output_limit(tmp_path, monkeypatch, out):
    """Output the inflater holds back at its per-call limit after the last input read is
    still given (a member compressing far beyond 8 to 1 ends that way)."""
    from refinewidgets.io.containers import deflate

    text = b"Gene\tA\tB\n" + b"".join(b"G%d\t0\t%d\n" % (i, i % 3) for i in range(20000))
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("E/E.tsv", text)
    monkeypatch.setattr(deflate, "_OUT", out)
    with stores.open_store(path) as store:
        assert b"".join(store.chunks("E/E.tsv")) == text
        genes, samples, X = matrix.read_matrix(store, "E/E.tsv", ["B"])
    assert len(genes) == 20000 and X[0, :4].tolist() == [0.0, 1.0, 2.0, 0.0]


@pytest.mark.parametrize("threads", [1, 3])
def test_deflate_on_threads_is_one_plain_deflate_stream(tmp_path, threads):
    pieces = [b"Gene\tA\n"] + [b"G%d\t%d.5\n" % (i, i) * 5000 for i in range(7)] + [b""]
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("G/G.tsv", "w") as fh:
            assert fast_deflate(fh, threads=threads)
            for k, piece in enumerate(pieces):  # bytes, bytearray and a buffer: as zipfile
                data = (piece, bytearray(piece), memoryview(np.frombuffer(piece, np.uint8)))[k % 3]
                assert fh.write(data) == len(piece)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("G/G.tsv") == b"".join(pieces)  # zipfile checks the CRC-32 too
        info = zf.getinfo("G/G.tsv")
        assert info.compress_size < len(b"".join(pieces)) / 5
        assert info.CRC == zlib.crc32(b"".join(pieces)) and info.file_size == len(b"".join(pieces))
    unzip = shutil.which("unzip")
    if unzip is not None:
        done = subprocess.run([unzip, "-p", str(path), "G/G.tsv"], capture_output=True)
        assert done.returncode == 0 and done.stdout == b"".join(pieces)


def test_fast_deflate_leaves_a_stored_member_alone(tmp_path):
    with zipfile.ZipFile(tmp_path / "s.zip", "w", compression=zipfile.ZIP_STORED) as zf:
        with zf.open("a", "w") as fh:
            assert not fast_deflate(fh)
            fh.write(b"abc")
    assert zipfile.ZipFile(tmp_path / "s.zip").read("a") == b"abc"


def test_float32_input_is_written_as_its_float64_value():
    buf = io.BytesIO()
    X = np.array([[0.1, 3.0]], dtype=np.float32)
    matrix.write_matrix(buf, ["G1", "G2"], ["S"], X)
    lines = buf.getvalue().decode().splitlines()
    assert [float(line.split("\t")[1]) for line in lines[1:]] == [float(np.float32(0.1)), 3.0]


def test_a_compressed_size_past_the_end_is_refused_before_allocating(tmp_path):
    import tracemalloc

    path = _zip_text(tmp_path, "Gene\tA\nG1\t1\n")
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 20 : central + 24] = (512 * 2**20).to_bytes(4, "little")  # compressed size
    bad = tmp_path / "lying.zip"
    bad.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(rw.SourceFormatError, match="G/G.tsv is damaged.*past the end"):
            _read(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_result_write_zip_takes_float32(species_result, tmp_path):
    """``res.write_zip(..., float32=True)``: the values read back are the float32 roundings."""
    small = species_result.write_zip(tmp_path / "small.zip", float32=True)
    full = species_result.write_zip(tmp_path / "full.zip")
    assert small.stat().st_size < full.stat().st_size
    back = rw.read_zip(small)
    key = next(iter(species_result))
    X = np.asarray(species_result[key].X)
    Y = np.asarray(back[key].X)
    assert np.array_equal(Y.astype(np.float32), X.astype(np.float32), equal_nan=True)
    assert not np.array_equal(Y, X, equal_nan=True)  # float64 text would give X exactly
