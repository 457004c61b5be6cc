"""Hostile input: crafted names, zip bombs, damaged files, races. Every case is refused with one
of our error classes and a message that names what is wrong; nothing is written where it
should not be; no partial file is left behind. Then Hypothesis mutates valid zips, TSVs, JSON
and H5AD files and checks that the readers raise nothing but our errors, within a bound."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refinewidgets as rw
from refinewidgets.core.result import Result
from refinewidgets.core.sources import InMemorySource
from refinewidgets.io.containers import atomic, limits, stores
from refinewidgets.io.containers.atomic import atomic_output, clean_stale_partials
from refinewidgets.testing.bgee_files import write_bgee_h5ad

DATA = Path(__file__).parent / "data" / "refinebio"


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def _source(experiment="E1", samples=("S1", "S2"), organism="HOMO_SAPIENS"):
    frame = pd.DataFrame(
        np.arange(3.0 * len(samples)).reshape(3, len(samples)) + 1,
        index=["G1", "G2", "G3"],
        columns=list(samples),
    )
    return InMemorySource(
        {
            experiment: {
                "accession_code": experiment,
                "sample_accession_codes": list(samples),
                "technology": "MICROARRAY",
                "organisms": [organism],
            }
        },
        {s: {"refinebio_accession_code": s, "refinebio_organism": organism} for s in samples},
        {experiment: frame},
    )


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


_META = json.dumps({"aggregate_by": "EXPERIMENT", "experiments": {}, "samples": {}})
_ROWS = "refinebio_accession_code\texperiment_accession\nGSM1\tE1\nGSM2\tE1\n"


def _download(path, matrix="Gene\tGSM1\tGSM2\nG1\t1.5\t2.5\nG2\t3.5\t4.5\n", meta=_META, **more):
    return _zip(
        path,
        {
            "aggregated_metadata.json": meta,
            "E1/E1.tsv": matrix,
            "E1/metadata_E1.tsv": _ROWS,
            **more,
        },
    )


# -- names from data -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "experiment,organism,samples,named",
    [
        ("../../x", "HOMO_SAPIENS", ("S1",), "'../../x'"),
        ("/tmp/abs", "HOMO_SAPIENS", ("S1",), "'/tmp/abs'"),
        (" GSE1", "HOMO_SAPIENS", ("S1",), "' GSE1'"),  # differs from GSE1 only by a space
        ("E1", "../HOMO", ("S1",), "'../HOMO'"),
        ("E1", "HOMO_SAPIENS", ("S\t1",), "'S\\t1'"),
        ("E1", "HOMO_SAPIENS", ("<img src=x>",), "'<img src=x>'"),
    ],
)
def test_unsafe_names_are_refused_when_the_catalog_opens(experiment, organism, samples, named):
    with pytest.raises(rw.SourceFormatError, match="is not a valid") as info:
        rw.Catalog([_source(experiment, samples, organism)])
    assert named in str(info.value) and "memory" in str(info.value)


def test_crafted_h5ad_experiment_id_is_refused(tmp_path):
    path = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    with h5py.File(path, "r+") as f:
        col = f["obs"]["experiment_id"]
        target = col["categories"] if isinstance(col, h5py.Group) else col
        target[...] = np.array([b"../../evil"] * target.shape[0], dtype=object)
    with pytest.raises(rw.SourceFormatError, match="'../../evil' is not a valid accession"):
        rw.open_catalog(path)


def test_hostile_group_keys_write_nothing_anywhere(tmp_path):
    res = rw.build(rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), rw.Catalog([_source()]))
    target = tmp_path / "out"
    target.mkdir()
    before = _tree(tmp_path)
    for key in ["../../evil", "/tmp/evil", "a/b", "..", ".hidden", "C:evil", "x\\y"]:
        group = next(iter(res.values()))
        hostile = Result({key: group}, res.aggregated_metadata, dataset=res.dataset)
        with pytest.raises(rw.SourceFormatError, match="cannot name a file"):
            hostile.write_zip(target / "d.zip")
    assert _tree(tmp_path) == before  # nothing written, no temporary file left
    assert not Path("/tmp/evil").exists() and not (tmp_path.parent / "evil").exists()


def test_library_id_equal_to_a_bulk_sample_is_named(tmp_path):
    path = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    cells = rw.open_catalog(path)
    experiment = cells.experiment_ids[0]
    library = cells.experiment_samples(experiment)[0]
    bulk = _source("GSE9", (library, "S2"))
    with pytest.raises(
        rw.SourceFormatError, match=f"{library} is a single-cell library of {experiment}"
    ):
        rw.Catalog([bulk, *rw.open_catalog(path).sources])


# -- bounded reading -----------------------------------------------------------------------
def test_zip_bomb_is_refused_before_reading(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("aggregated_metadata.json", _META)
        with zf.open("E1/E1.tsv", "w") as fh:
            fh.write(b"Gene\tGSM1\n")
            block = b"0" * (1 << 20)
            for _ in range(64):
                fh.write(block)
    with _measured() as cost, pytest.raises(rw.UnsafeArchiveError) as info:
        rw.read_zip(bomb)
    elapsed, peak = cost["seconds"], cost["peak"]
    message = str(info.value)
    assert "E1/E1.tsv would expand" in message and "cap of 200x" in message
    assert "REFINEWIDGETS_MAX_RATIO" in message
    assert elapsed < 10 and peak < 20 * 2**20  # refused from the sizes alone, nothing inflated
    with pytest.raises(rw.UnsafeArchiveError):
        rw.open_catalog(bomb)


def test_read_caps_can_be_raised_and_the_total_is_capped(tmp_path, monkeypatch):
    path = _download(tmp_path / "d.zip")
    monkeypatch.setattr(limits.READ_LIMITS, "max_bytes", 50)
    with pytest.raises(rw.UnsafeArchiveError, match="above the cap of 50: nothing was read"):
        rw.read_zip(path)
    monkeypatch.setattr(limits.READ_LIMITS, "max_bytes", 0)  # 0 turns the cap off
    assert rw.read_zip(path)["E1"].X.shape == (2, 2)


def test_environment_overrides_the_caps(monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_MAX_RATIO", "0")
    monkeypatch.setenv("REFINEWIDGETS_MAX_BYTES", "123")
    caps = limits.ReadLimits.from_environment()
    assert (caps.max_ratio, caps.max_bytes) == (0.0, 123)
    monkeypatch.setenv("REFINEWIDGETS_MAX_BYTES", "lots")
    with pytest.raises(
        rw.SourceFormatError, match="REFINEWIDGETS_MAX_BYTES='lots' is not a number"
    ):
        limits.ReadLimits.from_environment()


def _corrupt_member(src: Path, dst: Path, member: str) -> None:
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    dst.write_bytes(bytes(data))


def test_damaged_zip_member_is_our_error(tmp_path):
    matrix = "Gene\tGSM1\tGSM2\n" + "".join(f"G{i}\t{i}.5\t{i}.25\n" for i in range(2000))
    good = _download(tmp_path / "good.zip", matrix=matrix)
    bad = tmp_path / "bad.zip"
    _corrupt_member(good, bad, "E1/E1.tsv")
    with pytest.raises(rw.SourceFormatError, match="E1/E1.tsv"):
        rw.read_zip(bad)


def test_h5ad_with_out_of_range_indices_is_refused(tmp_path):
    def broken(name, change):
        path = write_bgee_h5ad(tmp_path / name, variant="bgee15_2", n_cells=60, n_genes=40)
        with h5py.File(path, "r+") as f:
            change(f["X"])
        return path

    def big_index(x):
        x["indices"][0] = 10**6

    def negative_index(x):
        x["indices"][1] = -5

    def bad_indptr(x):
        x["indptr"][3] = x["indptr"][-1] + 100

    for name, change, message in [
        ("Homo_sapiens_ERP1_droplet_based.h5ad", big_index, "outside the 40 genes"),
        ("Homo_sapiens_ERP2_droplet_based.h5ad", negative_index, "outside the 40 genes"),
        ("Homo_sapiens_ERP3_droplet_based.h5ad", bad_indptr, "indptr is broken"),
    ]:
        path = broken(name, change)
        with pytest.raises(rw.SourceFormatError, match=message):
            cat = rw.open_catalog(path)
            exp = cat.experiment_ids[0]
            rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)


# -- race-free, tidy writes ----------------------------------------------------------------
def test_two_writers_racing_for_one_name_one_wins(tmp_path):
    target = tmp_path / "d.txt"
    barrier = threading.Barrier(2)
    outcomes = {}

    def write(label):
        try:
            with atomic_output(target) as tmp:
                tmp.write_text(label)
                barrier.wait(timeout=10)  # both are past the early check: the claim decides
            outcomes[label] = "written"
        except rw.OutputExistsError as exc:
            outcomes[label] = str(exc)

    threads = [threading.Thread(target=write, args=(x,)) for x in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = [k for k, v in outcomes.items() if v == "written"]
    assert len(written) == 1
    loser = ({"A", "B"} - set(written)).pop()
    assert "exists; choose another name" in outcomes[loser]
    assert target.read_text() == written[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.txt"]  # no temporary file left


def test_stale_temporary_files_of_killed_writers_are_cleaned(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".d.zip.{int(dead.stdout)}.k3j_x9.partial"
    stale.write_text("half a zip")
    ours = tmp_path / f".other.zip.{os.getpid()}.abc123.partial"  # a live writer's: kept
    ours.write_text("being written")
    with atomic_output(tmp_path / "d.txt") as tmp:
        tmp.write_text("x")
    assert not stale.exists() and ours.exists()
    assert clean_stale_partials(tmp_path) == []


def test_interrupted_write_leaves_nothing_even_on_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "d.txt") as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    # root writes into read-only folders, so the refusal the OS would give is played here
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(rw.OutputError, match=r"Cannot write in .* \(Permission denied\)"):
        with atomic_output(tmp_path / "d.txt") as tmp:
            tmp.write_text("x")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with pytest.raises(rw.OutputError, match="No space left on device.*nothing was written"):
        with atomic_output(tmp_path / "d.txt") as tmp:
            monkeypatch.setattr(os, "chmod", full)
            tmp.write_text("x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# -- raw exceptions that became messages ---------------------------------------------------
@pytest.mark.parametrize(
    "meta,match",
    [
        ("[" * 200_000, "is not valid JSON"),
        (b"\xff\xfe{}", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, not list"),
    ],
)
def test_bad_aggregated_metadata(tmp_path, meta, match):
    with pytest.raises(rw.SourceFormatError, match=match):
        rw.read_zip(_download(tmp_path / "d.zip", meta=meta))


@pytest.mark.parametrize(
    "meta",
    [
        json.dumps({"experiments": "x", "samples": {}}),
        json.dumps({"experiments": {}, "samples": ["GSM1"]}),
        json.dumps({"experiments": {"E1": {"sample_accession_codes": 5}}, "samples": {}}),
    ],
)
def test_wrong_json_types_are_read_or_refused_clearly(tmp_path, meta):
    path = _download(tmp_path / "d.zip", meta=meta)
    try:
        res = rw.read_zip(path)
        assert res.expression("E1").loc["G1", "GSM2"] == 2.5
    except rw.SourceFormatError as exc:
        assert "aggregated_metadata.json" in str(exc)
    with pytest.raises(rw.SourceFormatError, match="aggregated_metadata.json"):
        rw.open_catalog(path)


@pytest.mark.parametrize("filtered", ['"oops"', '["GSM9"]', '{"GSM9": 3}'])
def test_wrong_filtered_samples_json(tmp_path, filtered):
    path = _download(tmp_path / "d.zip", **{"filtered_samples_metadata.json": filtered})
    with pytest.raises(rw.SourceFormatError, match="filtered_samples_metadata.json must hold"):
        rw.read_zip(path)


@pytest.mark.parametrize(
    "header",
    ["\ufeffGene\tGSM2\tGSM1\n", 'Gene\t"GSM2"\t"GSM1"\n', '"Gene"\t GSM2 \tGSM1\r\n'],
)
def test_bom_quotes_and_spaces_in_a_matrix_header(tmp_path, header):
    res = rw.read_zip(_download(tmp_path / "d.zip", matrix=header + "G1\t2.5\t1.5\n"))
    assert res.expression("E1").loc["G1"].to_dict() == {"GSM2": 2.5, "GSM1": 1.5}
    assert list(res.metadata("E1")["refinebio_accession_code"]) == ["GSM2", "GSM1"]


def test_non_utf8_header_is_named(tmp_path):
    path = _download(tmp_path / "d.zip", matrix=b"Gene\tGSM1\xff\tGSM2\nG1\t1\t2\n")
    with pytest.raises(rw.SourceFormatError, match="the header of E1/E1.tsv is not UTF-8"):
        rw.read_zip(path)


def test_tab_inside_a_gene_id_is_refused_on_writing(tmp_path):
    src = _source()
    src._values["E1"].index = ["G1", "G\t2", "G3"]
    res = rw.build(rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), rw.Catalog([src]))
    with pytest.raises(rw.SourceFormatError, match=r"gene id 'G\\t2' holds a tab"):
        res.write_zip(tmp_path / "d.zip")
    assert list(tmp_path.iterdir()) == []


def test_infinite_values_filter_the_sample_with_a_reason():
    src = _source(samples=("S1", "S2", "S3"))
    src._values["E1"] = pd.DataFrame(
        {"S1": [1.0, 2.0, 3.0], "S2": [1.0, np.inf, 2.0], "S3": [2.0, 1.0, 3.0]},
        index=["G1", "G2", "G3"],
    )
    res = rw.build(rw.Dataset({"E1": ["ALL"]}), rw.Catalog([src]))
    assert list(res["E1"].obs_names) == ["S1", "S3"]
    (reason,) = res.filtered_samples["reason"]
    assert reason.startswith("1 infinite value(s) (e.g. gene G2)")


def test_constant_qn_target_is_refused(tmp_path):
    target = tmp_path / "qn_target_HOMO_SAPIENS.tsv"
    target.write_text("5.0\n")
    with pytest.raises(rw.SourceFormatError, match="all equal to 5: quantile normalization"):
        rw.open_catalog(target)


def test_a_built_zip_saved_among_downloads_never_shadows_them(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    original = folder / "b_original.zip"
    original.write_bytes((DATA / "all.zip").read_bytes())
    cat = rw.open_catalog(original)
    res = rw.build(rw.Dataset({"GSE300001": ["ALL"]}, scale_by="MINMAX"), cat)
    with pytest.warns(rw.ScaledSourceWarning):
        res.write_zip(folder / "a_built.zip")  # sorts first by name
        with pytest.warns(rw.SourceOverlapWarning, match="are also in b_original.zip"):
            both = rw.open_catalog(folder)
    expected = rw.read_zip(original).expression("ALL")
    got = rw.build(rw.Dataset({"GSE300001": ["ALL"]}, quantile_normalize=False), both)
    sample = both.experiment_samples("GSE300001")[0]
    assert got.expression("GSE300001")[sample].to_dict() == pytest.approx(
        np.log2(expected[sample]).to_dict()
    )


def test_symlink_out_of_an_unzipped_download_is_not_read_and_says_why(tmp_path):
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "aggregated_metadata.json").write_text(_META)
    (folder / "E1").mkdir()
    secret = tmp_path / "secret.tsv"
    secret.write_text("Gene\tGSM1\nG1\t1\n")
    (folder / "E1" / "E1.tsv").symlink_to(secret)
    (folder / "E1" / "metadata_E1.tsv").write_text(_ROWS)
    for read in (rw.read_zip, rw.open_catalog):
        with pytest.raises(rw.UnsafeArchiveError) as info:
            read(folder)
        message = str(info.value)
        assert message.startswith("dl: E1/E1.tsv is a symbolic link to a file outside")
        assert "copy the file into the folder in place of the link" in message


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _in_time(call, seconds=20):
    """``call()``'s outcome (value or exception); a call still blocked after ``seconds`` fails
    the test instead of hanging it."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked reading a named pipe"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_named_pipe_among_downloads_is_skipped_with_a_warning(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "a.zip").write_bytes((DATA / "all.zip").read_bytes())
    _fifo(folder / "stuck.zip")
    with pytest.warns(rw.SourceFormatWarning, match=r"stuck.zip is not a regular file .* skipped"):
        cat = _in_time(lambda: rw.open_catalog(folder))
    assert cat.experiment_ids == rw.open_catalog(folder / "a.zip").experiment_ids


def test_a_named_pipe_given_by_name_is_refused_unopened(tmp_path):
    stuck = _fifo(tmp_path / "stuck.zip")
    for read in (rw.read_zip, rw.open_catalog):
        with pytest.raises(rw.SourceFormatError, match=r"stuck.zip is not a regular file"):
            _in_time(lambda read=read: read(stuck))


def test_a_named_pipe_inside_an_unzipped_download_is_named(tmp_path):
    folder = tmp_path / "dl"
    (folder / "E1").mkdir(parents=True)
    (folder / "aggregated_metadata.json").write_text(_META)
    (folder / "E1" / "metadata_E1.tsv").write_text(_ROWS)
    _fifo(folder / "E1" / "E1.tsv")
    with pytest.raises(rw.UnsafeArchiveError, match=r"dl: E1/E1.tsv is not a regular file"):
        _in_time(lambda: rw.read_zip(folder))


def test_a_nul_in_a_member_name_refuses_the_zip(tmp_path):
    good = _download(tmp_path / "good.zip").read_bytes()
    assert good.count(b"E1/E1.tsv") == 2  # the local header and the central directory
    bad = tmp_path / "bad.zip"
    bad.write_bytes(good.replace(b"E1/E1.tsv", b"E1/E1\x00tsv"))
    for read in (rw.read_zip, rw.open_catalog):
        with pytest.raises(rw.UnsafeArchiveError) as info:
            read(bad)
        assert "bad.zip holds a member name with a NUL character ('E1/E1\\x00tsv')" in str(
            info.value
        )


def test_two_members_of_one_name_refuse_the_archive(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        path = _download(tmp_path / "d.zip")
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("aggregated_metadata.json", json.dumps({"experiments": {}}))
    tar = _tar(
        tmp_path / "d.tar",
        {"aggregated_metadata.json": _META.encode(), "E1/E1.tsv": b"Gene\tGSM1\n"},
        "w",
    )
    with tarfile.open(tar, "a") as tf:
        info = tarfile.TarInfo("E1/E1.tsv")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"x\ty"))
    for archive_path, name in ((path, "aggregated_metadata.json"), (tar, "E1/E1.tsv")):
        with pytest.raises(rw.UnsafeArchiveError, match=f"holds two members named '{name}'"):
            rw.read_zip(archive_path)


def test_an_empty_gene_id_is_refused_with_its_line(tmp_path):
    path = _download(tmp_path / "d.zip", matrix="Gene\tGSM1\tGSM2\nG1\t1\t2\n \t3\t4\n")
    message = "d.zip: E1/E1.tsv has 1 row(s) without a gene id (the first on line 3)"
    with pytest.raises(rw.SourceFormatError, match=re.escape(message)):
        rw.read_zip(path)
    cat = rw.open_catalog(path)
    with pytest.raises(rw.SourceFormatError, match=re.escape(message)):
        rw.build(rw.Dataset({"E1": ["ALL"]}, quantile_normalize=False), cat)


def test_a_qn_target_of_two_columns_is_refused(tmp_path):
    target = tmp_path / "qn_target_HOMO_SAPIENS.tsv"
    target.write_text("".join(f"{i}\t{i * 2}.5\n" for i in range(50)))
    with pytest.raises(rw.SourceFormatError, match="the QN target has 2 tab-separated columns"):
        rw.open_catalog(target)


def test_sigterm_during_write_zip_leaves_no_partial_file(tmp_path):
    script = (
        "import sys, time\n"
        "import refinewidgets as rw\n"
        "def slow(done, total, message):\n"
        "    if done == 1:\n"
        "        print('one group written', flush=True)\n"
        "        time.sleep(120)\n"
        "import numpy as np, pandas as pd\n"
        "from refinewidgets.core.sources import InMemorySource\n"
        "values = pd.DataFrame(np.arange(150.0).reshape(50, 3), columns=['S1', 'S2', 'S3'],\n"
        "                      index=[f'G{i}' for i in range(50)])\n"
        "exps = {e: {'accession_code': e, 'sample_accession_codes': ['S1', 'S2', 'S3'],\n"
        "            'technology': 'MICROARRAY', 'organisms': ['HOMO_SAPIENS']} for e in 'AB'}\n"
        "cat = rw.Catalog([InMemorySource(exps, {}, {'A': values, 'B': values})])\n"
        "ds = rw.Dataset({'A': ['ALL'], 'B': ['ALL']}, quantile_normalize=False)\n"
        "rw.build(ds, cat).write_zip(sys.argv[1], progress=slow)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "d.zip")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "one group written\n"
        (partial,) = tmp_path.iterdir()  # mid-write: the temporary file, no zip yet
        assert partial.name.startswith(".d.zip.") and partial.name.endswith(".partial")
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == -signal.SIGTERM  # ended by the signal, as it would have
    finally:
        child.kill()
        child.stdout.close()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_handler_of_the_program_is_kept(tmp_path):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with atomic_output(tmp_path / "d.txt") as tmp:
            tmp.write_text("x")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert tmp.exists()  # the program's handler ran, not ours
        assert seen == [signal.SIGTERM] and (tmp_path / "d.txt").read_text() == "x"
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.getsignal(signal.SIGTERM) is previous


_BLANK = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003", max_size=3)


@settings(max_examples=50, deadline=None)
@given(before=_BLANK, after=_BLANK, first=_BLANK, last=_BLANK)
def test_two_experiment_keys_equal_once_stripped_are_refused(before, after, first, last):
    one, other = f"{first}GSE1{last}", f"{before}GSE1{after}"
    if one == other:
        return  # one key: a dict cannot hold it twice
    data = {one: ["GSM1", "GSM2"], other: ["GSM1836403"]}
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.Dataset(data)
    assert str(info.value) == (
        f"`data` lists the experiment 'GSE1' twice ({one!r} and {other!r}): list all of its "
        "samples under one key."
    )
    with pytest.raises(rw.DatasetSpecError, match="lists the experiment 'GSE1' twice"):
        rw.Dataset.from_dict({"data": data})


# -- regressions -------------------------------------------------------------------------------
def test_cells_of_one_name_are_kept_renamed_and_the_zip_reads_back(tmp_path):
    import anndata

    path = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    adata = anndata.read_h5ad(path)
    names = adata.obs_names.to_numpy().copy()
    names[[1, 7]] = names[0]  # three cells of one name, as a writer may leave them
    adata.obs_names = names
    path.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata: "not unique"
        adata.write_h5ad(path)
    cat = rw.open_catalog(path)
    dataset = rw.Dataset({"ERP000001": ["ALL"]}, quantile_normalize=False)
    with pytest.warns(rw.SourceFormatWarning) as seen:
        res = rw.build(dataset, cat)
    (message,) = [str(w.message) for w in seen if isinstance(w.message, rw.SourceFormatWarning)]
    first = names[0]
    assert message.startswith(
        f"Homo_sapiens_ERP1_droplet_based.h5ad: 1 cell name(s) are given to more than one cell "
        f"(the first: {first!r}); all cells are kept"
    )
    group = res["ERP000001"]
    assert group.n_obs == 60 and group.obs_names.is_unique
    renamed = [n.split(":", 1)[-1] for n in group.obs_names if first in n]
    assert sorted(renamed) == sorted([first, f"{first}-1", f"{first}-2"])
    # their barcodes are their own, as written
    barcodes = group.obs.loc[[n for n in group.obs_names if first in n], "barcode"]
    assert sorted(barcodes) == sorted(adata.obs["barcode"].iloc[[0, 1, 7]].astype(str))
    res.write_zip(tmp_path / "out.zip")
    back = rw.read_zip(tmp_path / "out.zip")  # our own zip reads back, every cell in it
    assert list(back["ERP000001"].obs_names) == list(group.obs_names)
    np.testing.assert_allclose(back["ERP000001"].X.toarray(), group.X.toarray())


def _h5py_only(path: Path, source: Path, experiment: str) -> Path:
    """``source``'s cells written with h5py alone: plain datasets, no anndata attribute."""
    import anndata

    src = anndata.read_h5ad(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=np.asarray(src.X.toarray(), dtype=np.float32))
        obs = f.create_group("obs")
        obs.create_dataset("_index", data=np.asarray(src.obs_names).astype("S"))
        for col in src.obs.columns:
            obs.create_dataset(col, data=np.asarray(src.obs[col].astype(str)).astype("S"))
        obs["experiment_id"][...] = np.array([experiment.encode()] * src.n_obs)
        f.create_group("var").create_dataset("_index", data=np.asarray(src.var_names).astype("S"))
    return path


def test_an_h5ad_written_with_h5py_alone_reads_as_it_did(tmp_path):
    source = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    plain = _h5py_only(tmp_path / "plain" / "Homo_sapiens_ERP9_droplet_based.h5ad", source, "ERP9")
    dataset = {"quantile_normalize": False}
    cat = rw.open_catalog(plain)
    assert cat.experiment_ids == ["ERP9"]
    got = rw.build(rw.Dataset({"ERP9": ["ALL"]}, **dataset), cat)["ERP9"]
    want = rw.build(rw.Dataset({"ERP000001": ["ALL"]}, **dataset), rw.open_catalog(source))
    want = want["ERP000001"]
    assert sorted(got.obs_names) == sorted(want.obs_names)  # the _index dataset names cells
    got = got[want.obs_names, want.var_names]  # aligned by name, never by position
    np.testing.assert_array_equal(got.X.toarray(), want.X.toarray())
    for column in ("library", "cell_type", "tissue", "barcode"):
        assert got.obs[column].astype(str).tolist() == want.obs[column].astype(str).tolist()


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_counts_written_as_text_are_refused(tmp_path, layout):
    source = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    path = _h5py_only(tmp_path / "plain" / "Homo_sapiens_ERP9_droplet_based.h5ad", source, "ERP9")
    with h5py.File(path, "r+") as f:
        dense = f["X"][()]
        del f["X"]
        if layout == "dense":
            f.create_dataset("X", data=np.char.mod("%g", dense).astype("S"))
        else:
            import scipy.sparse as sp

            csr = sp.csr_matrix(dense)
            group = f.create_group("X")
            group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
            group.attrs["shape"] = dense.shape
            group.create_dataset("data", data=np.char.mod("%g", csr.data).astype("S"))
            group.create_dataset("indices", data=csr.indices)
            group.create_dataset("indptr", data=csr.indptr)
    with pytest.raises(rw.SourceFormatError) as info:
        rw.open_catalog(path)
    assert str(info.value).startswith(f"{path}: X holds |S")
    assert "values (text), not numbers" in str(info.value)


def test_an_h5py_table_with_columns_of_unequal_length_is_named(tmp_path):
    source = write_bgee_h5ad(
        tmp_path / "Homo_sapiens_ERP1_droplet_based.h5ad", variant="bgee15_2", n_cells=60
    )
    plain = _h5py_only(tmp_path / "plain" / "Homo_sapiens_ERP9_droplet_based.h5ad", source, "ERP9")
    with h5py.File(plain, "r+") as f:
        del f["obs"]["sex"]
        f["obs"].create_dataset("sex", data=np.array([b"female"] * 59))
    with pytest.raises(rw.SourceFormatError) as info:
        rw.open_catalog(plain)
    assert str(info.value).startswith(f"{plain}: the columns of /obs differ in length (")
    assert "sex: 59" in str(info.value) and "_index: 60" in str(info.value)


# -- single cells: crashes become messages ----------------------------------------------------
@pytest.fixture(scope="module")
def cell_file(tmp_path_factory):
    return write_bgee_h5ad(
        tmp_path_factory.mktemp("cells") / "Homo_sapiens_ERP1_droplet_based.h5ad",
        variant="bgee15_2",
        n_cells=60,
        n_genes=40,
    )


def test_an_h5ad_of_zero_cells_is_refused_when_opened(tmp_path, cell_file):
    import anndata

    src = anndata.read_h5ad(cell_file)
    path = tmp_path / "Homo_sapiens_ERP0_droplet_based.h5ad"
    src[:0].copy().write_h5ad(path)
    with pytest.raises(rw.SourceFormatError) as info:
        rw.open_catalog(path)
    assert str(info.value) == (
        f"{path} holds 0 cells and 40 genes: there is nothing to build from it. The download "
        "may be incomplete: download it again, or remove it from the sources."
    )


def test_a_catalog_without_samples_still_has_its_sample_table():
    empty = InMemorySource(
        {"E1": {"accession_code": "E1", "sample_accession_codes": [], "technology": "MICROARRAY"}},
        {},
        {},
    )
    samples = rw.Catalog([empty]).samples
    assert samples.empty and {"processed", "technology", "source"} <= set(samples.columns)


@pytest.mark.parametrize("asked", ["unknown experiment", "erp000001 ", None, ["ERP000001"]])
def test_an_experiment_not_in_the_catalog_is_named(cell_file, asked):
    cat = rw.open_catalog(cell_file)
    for call in (cat.cells, cat.experiment_record, cat.technology, cat.experiment_samples):
        with pytest.raises(rw.UnknownAccessionError) as info:
            call(asked)
        message = str(info.value)
        assert message.startswith(f"Experiment {asked!r} is not in the catalog (")
        assert message.endswith("Use one of cat.experiment_ids, or open the file that holds it.")
        if asked == "erp000001 ":
            assert "(did you mean 'ERP000001'?)" in message
        else:
            assert "(it has 1: ERP000001)" in message


def test_a_filter_on_the_files_species_column_filters(cell_file):
    cat = rw.open_catalog(cell_file)
    n_cells = int(cat.samples["n_cells"].sum())

    def build(cell_filter):
        dataset = rw.Dataset(
            {"ERP000001": ["ALL"]}, quantile_normalize=False, cell_filter=cell_filter
        )
        return rw.build(dataset, cat)["ERP000001"]

    for kept in ({"speciesId": "9606"}, {"speciesId": [9606]}):
        assert build(kept).n_obs == n_cells
    with pytest.raises(rw.DatasetSpecError) as info:
        build({"speciesId": "10090"})
    assert str(info.value) == (
        "cell filter 'speciesId': no cell of Homo_sapiens_ERP1_droplet_based.h5ad has "
        "['10090']; values present: ['9606']"
    )
    with pytest.raises(rw.DatasetSpecError) as info:
        build({"taxon": "9606"})  # our word for it is no column: the file's name is listed
    assert "cell filter column 'taxon' is not in" in str(info.value)
    assert "'speciesId'" in str(info.value) and "'taxon'" not in str(info.value).split(";")[1]


def test_an_experiment_id_taken_from_an_unconventional_file_name_is_said(tmp_path, cell_file):
    import anndata

    adata = anndata.read_h5ad(cell_file)
    del adata.obs["experiment_id"]
    path = tmp_path / "my_download.h5ad"
    adata.write_h5ad(path)
    with pytest.warns(rw.SourceFormatWarning) as seen:
        cat = rw.open_catalog(path)
    assert cat.experiment_ids == ["my_download"]
    (message,) = [str(w.message) for w in seen if isinstance(w.message, rw.SourceFormatWarning)]
    assert message.startswith("my_download.h5ad: its cells name no single experiment")
    assert "so the file name 'my_download' is used as its experiment id" in message
    # a Bgee name, or an experiment in the cells, says it: no warning
    named = tmp_path / "Homo_sapiens_ERP7_droplet_based.h5ad"
    adata.write_h5ad(named)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rw.SourceFormatWarning)
        assert rw.open_catalog(named).experiment_ids == ["ERP7"]
        assert rw.open_catalog(cell_file).experiment_ids == ["ERP000001"]


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"", "No columns to parse from file"),
        ("cell_id\tbarcode\nc\xe9ll\tAAAC\n".encode("latin-1"), "'utf-8' codec can't decode"),
    ],
)
def test_unreadable_cell_metadata_in_a_zip_is_named(tmp_path, cell_file, data, problem):
    cat = rw.open_catalog(cell_file)
    res = rw.build(rw.Dataset({"ERP000001": ["ALL"]}, quantile_normalize=False), cat)
    good = res.write_zip(tmp_path / "good.zip") or tmp_path / "good.zip"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            kept = info.filename != "ERP000001/metadata_ERP000001.tsv"
            zout.writestr(info, zin.read(info) if kept else data)
    with pytest.raises(rw.SourceFormatError) as info:
        rw.read_zip(bad)
    message = str(info.value)
    assert message.startswith(
        "bad.zip: cannot read the cells of ERP000001/metadata_ERP000001.tsv ("
    )
    assert problem in message and "write it again (Result.write_zip)" in message


# -- caches notice a file changed in place ----------------------------------------------------
def _rewrite_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) inside ``path``, keeping its size and its
    modification time as ``touch -d`` would set them back."""
    assert len(old) == len(new)
    st = path.stat()
    data = path.read_bytes()
    assert data.count(old) == 1
    with open(path, "r+b") as fh:
        fh.seek(data.index(old))
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_the_parsed_cache_notices_a_matrix_changed_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "dl"
    (folder / "E1").mkdir(parents=True)
    (folder / "aggregated_metadata.json").write_text(_META)
    (folder / "E1" / "metadata_E1.tsv").write_text(_ROWS)
    # the change is in the middle of a file larger than the two MiB its edges cover (long
    # gene ids: few rows to parse)
    pad = "_" + "x" * 80
    rows = [f"G{i}{pad}\t{i}.5\t{i}.25\n" for i in range(1, 30_001)]
    rows[15_000] = f"G15001{pad}\t1.111\t2.5\n"
    matrix = folder / "E1" / "E1.tsv"
    matrix.write_text("Gene\tGSM1\tGSM2\n" + "".join(rows))
    middle = matrix.read_bytes().index(b"\t1.111\t")
    assert 2**20 < middle < matrix.stat().st_size - 2**20  # outside the first and last MiB
    dataset = rw.Dataset({"E1": ["GSM1"]}, quantile_normalize=False)

    def value():
        cat = rw.open_catalog(folder)
        (source,) = cat.sources
        misses = source.parsed_cache.misses
        out = rw.build(dataset, cat).expression("E1").loc[f"G15001{pad}", "GSM1"]
        return out, source.parsed_cache.misses - misses

    assert value() == (pytest.approx(1.111), 1)
    assert value() == (pytest.approx(1.111), 0)  # served by the cache
    _rewrite_in_place(matrix, b"\t1.111\t", b"\t9.999\t")
    assert value() == (pytest.approx(9.999), 1)  # not the stale 1.111


def test_file_identity_sees_a_rewrite_with_size_and_mtime_kept(tmp_path):
    from refinewidgets.io.refinebio.parsed_cache import file_identity

    for size in (100, 6 * 2**20, 20 * 2**20):  # hashed whole; whole; by its edges
        path = tmp_path / f"m{size}.tsv"
        path.write_bytes(b"a" * (size // 2) + b"1.111" + b"b" * (size - size // 2 - 5))
        before = file_identity(path)
        time.sleep(0.01)  # a coarse clock would otherwise give the same change time
        _rewrite_in_place(path, b"1.111", b"9.999")
        after = file_identity(path)
        assert after["ctime_ns"] != before["ctime_ns"], size
        assert (after["size"], after["mtime_ns"]) == (before["size"], before["mtime_ns"])
        assert after != before
        assert (after["edges"] != before["edges"]) == (size <= 8 * 2**20)
        # a file replaced by another of the same bytes and times: a new inode
        copy = tmp_path / "copy"
        copy.write_bytes(path.read_bytes())
        st = path.stat()
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(copy, path)
        assert file_identity(path)["inode"] != after["inode"]


def _bgee_tarball(tmp_path: Path) -> tuple[Path, Path]:
    from refinewidgets.testing.bgee_files import write_bgee_h5ad as write

    h5ad = write(tmp_path / "Homo_sapiens_ERP7_droplet_based.h5ad", variant="bgee15_2", n_cells=40)
    tarball = tmp_path / "Homo_sapiens_droplet_based_h5ad.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(h5ad, arcname=f"Homo_sapiens/{h5ad.name}")
    return tarball, h5ad


def test_a_tarball_rewritten_in_place_is_indexed_again(tmp_path):
    from refinewidgets.io.bgee.tarball import BgeeTarball

    tarball, _ = _bgee_tarball(tmp_path)
    first = BgeeTarball(tarball, tmp_path / "cache")
    assert BgeeTarball(tarball, tmp_path / "cache").passes == 0  # the index is reused
    data = tarball.read_bytes()
    st = tarball.stat()
    time.sleep(0.01)
    with open(tarball, "r+b") as fh:  # a byte of the member's body, size and mtime kept
        fh.seek(len(data) // 2)
        fh.write(bytes([data[len(data) // 2] ^ 0xFF]))
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(rw.SourceFormatError, match="changed since it was indexed: open it again"):
        first.extract(first.members[0].name)
    second = BgeeTarball(tarball, tmp_path / "cache")
    assert second.passes == 1 and second.index_dir != first.index_dir


def test_an_extracted_member_overwritten_in_the_cache_is_extracted_again(tmp_path):
    from refinewidgets.io.bgee.tarball import BgeeTarball

    tarball, h5ad = _bgee_tarball(tmp_path)
    tb = BgeeTarball(tarball, tmp_path / "cache")
    name = tb.members[0].name
    path = tb.extract(name)
    assert path.read_bytes() == h5ad.read_bytes() and tb.passes == 2
    assert tb.extract(name) == path and tb.passes == 2  # an intact copy is reused
    middle = path.stat().st_size // 2
    st = path.stat()
    with open(path, "r+b") as fh:  # same size, same modification time, other bytes
        fh.seek(middle)
        fh.write(b"\xab" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.read_bytes() != h5ad.read_bytes()
    again = BgeeTarball(tarball, tmp_path / "cache")
    assert again.extract(name) == path and again.passes == 1  # extracted again
    assert path.read_bytes() == h5ad.read_bytes()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


# -- the app's kernels are bounded --------------------------------------------------------------
def _get(port: int, path: str, headers=()) -> tuple[int, dict, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    try:
        conn.request("GET", path, headers=dict(headers))
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


@contextlib.contextmanager
def _connected_page(port: int, kernel_id: str, token: str, cookie: str):
    """An open websocket to a page's kernel, held (pings answered) as the page's script holds it."""
    import asyncio

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    loop = asyncio.new_event_loop()
    opened = threading.Event()
    holder = {}

    async def hold():
        request = HTTPRequest(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={token}",
            headers={"Origin": f"http://127.0.0.1:{port}", "Cookie": cookie},
        )
        holder["ws"] = await websocket_connect(request)
        opened.set()
        while await holder["ws"].read_message() is not None:  # reading answers the pings
            pass

    thread = threading.Thread(target=loop.run_until_complete, args=(hold(),), daemon=True)
    thread.start()
    assert opened.wait(60), "the websocket was not accepted"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(holder["ws"].close)
        thread.join(30)
        loop.close()


def test_a_bad_page_bound_is_named_before_anything_starts(monkeypatch, tmp_path, capsys):
    from refinewidgets.app import serve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFINEWIDGETS_APP_MAX_PAGES", "lots")
    assert serve(open_browser=False) == 2
    assert capsys.readouterr().err == (
        "error: REFINEWIDGETS_APP_MAX_PAGES='lots' is not a number of pages: give 0 (no bound) "
        "or more\n"
    )
    assert serve(open_browser=False, max_pages=-1) == 2
    assert "the number of pages must be 0 (no bound) or more" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the kernels")
def test_the_app_holds_at_most_max_pages_kernels(tmp_path, monkeypatch):
    """Page loads that never connect (a script) or pages closed without Voila's shutdown
    request cannot pile up kernels: beyond ``--max-pages`` a page takes the kernel of a page
    gone (never one still connected or just loaded), else it is told to close a page."""
    from refinewidgets.app import free_port

    from .browser.server import alive, cmdline, start_app, wait_for

    # a page gone is one unconnected for RECLAIM seconds here (30 s by default), set in a
    # Jupyter configuration folder (the app reads none from its own folder)
    RECLAIM = 8
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "voila.json").write_text(
        json.dumps({"RefineWidgetsVoila": {"reclaim_after_seconds": RECLAIM}})
    )
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config))
    args = ["--port", str(free_port()), "--pool-size", "0", "--max-pages", "2"]
    app = start_app(tmp_path, tmp_path / "app.log", *args, "--cull-idle-seconds", "0")
    try:

        def page():
            status, headers, body = _get(app.port, f"/?token={app.token}")
            found = re.search(r'"kernelId": "([0-9a-f-]{36})"', body)
            return status, headers, body, found and found[1]

        def process(kernel_id):
            (pid,) = wait_for(
                lambda: [p for p in app.kernels() if f"kernel-{kernel_id}" in cmdline(p)],
                60,
                f"kernel {kernel_id}",
            )
            return pid

        status, headers, _, first = page()
        assert status == 200 and first
        cookie = "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie"))
        with _connected_page(app.port, first, app.token, cookie):
            status, _, _, second = page()  # a page that never connects (a script, a crash)
            assert status == 200 and second not in (None, first)
            pids = {first: process(first), second: process(second)}
            # at the bound, one page connected, one just loaded: the next page is told why
            status, headers, body, third = page()
            assert status == 503 and third is None
            assert headers["Content-Type"].startswith("text/plain")
            assert body.startswith("503 Service Unavailable: the app already serves 2 open pages")
            assert "Close a page of the app, then reload this one" in body
            assert sorted(app.kernels()) == sorted(pids.values())
            # the second page never connected: a while later its kernel makes room
            time.sleep(RECLAIM + 0.5)
            status, _, _, third = page()
            assert status == 200 and third not in (None, first, second)
            wait_for(lambda: not alive(pids[second]), 60, "the unconnected kernel to stop")
            assert alive(pids[first])  # the page still connected keeps its kernel
            assert sorted(app.kernels()) == sorted([pids[first], process(third)])
            assert f"shutting down kernel {second}: no page is connected" in app.log.read_text()
            status, _, _, fourth = page()  # the third page has just loaded: not taken
            assert status == 503 and fourth is None
        # the first page goes (closed without Voila's shutdown request): its kernel at once
        time.sleep(1)
        status, _, _, fifth = page()
        assert status == 200 and fifth not in (None, first, second, third)
        wait_for(lambda: not alive(pids[first]), 60, "the kernel of the page gone to stop")
        assert f"shutting down kernel {first}: no page is connected" in app.log.read_text()
    finally:
        app.stop()


# -- mutation: readers raise only our errors -----------------------------------------------
_SETTINGS = settings(
    max_examples=int(os.environ.get("RW_MUTATIONS", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _proc_status(field: str) -> int:
    """A field of ``/proc/self/status`` in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _peak_is_resettable() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status("VmHWM") > 0
    except (OSError, KeyError):
        return False


#: Linux resets a process's peak resident memory on request (``clear_refs``): the peak of a
#: block is then read at no cost, native allocations (polars, zlib, HDF5) included. Tracing
#: every Python allocation instead (tracemalloc) made the mutation tests 4x slower (42 s and
#: 22 s on a loaded two-core CI machine) and missed native memory; it is the fallback.
_RESETTABLE_PEAK = _peak_is_resettable()


@pytest.fixture(scope="module", autouse=True)
def _tracing():
    """Without a resettable peak, memory is traced for the whole module, started and stopped
    once: stopping tracemalloc while other threads free memory can crash CPython 3.11."""
    if _RESETTABLE_PEAK:
        yield
        return
    tracemalloc.start()
    yield
    tracemalloc.stop()


@contextlib.contextmanager
def _measured():
    """``{"seconds", "peak"}`` of the block: wall time, and the peak of memory above what was
    in use when it began (resident memory, or traced memory without ``clear_refs``)."""
    cost = {}
    if _RESETTABLE_PEAK:
        Path("/proc/self/clear_refs").write_text("5")
        before = _proc_status("VmRSS")
    else:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost["seconds"] = time.perf_counter() - start
        if _RESETTABLE_PEAK:
            cost["peak"] = _proc_status("VmHWM") - before
        else:
            cost["peak"] = tracemalloc.get_traced_memory()[1] - before


def _bounded(read, *args):
    """Run a reader; only our errors may escape, within generous time and memory bounds."""
    with _measured() as cost:
        try:
            read(*args)
        except rw.RefineWidgetsError:
            pass
    assert cost["seconds"] < 30 and cost["peak"] < 512 * 2**20, cost


def _quiet(read):
    def run(path):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read(path)

    return run


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, pos, value in edits:
        if not out:
            break
        pos %= len(out)
        if kind == "flip":
            out[pos] ^= value or 1
        elif kind == "cut":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = bytes([value]) * 3
        else:
            del out[pos : pos + 1 + value % 7]
    return bytes(out)


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert", "drop"]),
        st.integers(0, 10**6),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


@_SETTINGS
@given(edits=_EDITS)
def test_mutated_zip_bytes(tmp_path, edits):
    path = tmp_path / "m.zip"
    path.write_bytes(_mutate((DATA / "experiment_shuffled.zip").read_bytes(), edits))
    _bounded(_quiet(rw.read_zip), path)
    _bounded(_quiet(rw.open_catalog), path)


@_SETTINGS
@given(
    member=st.sampled_from(
        [
            "aggregated_metadata.json",
            "GSE100001/GSE100001.tsv",
            "GSE100001/metadata_GSE100001.tsv",
            "filtered_samples_metadata.json",
        ]
    ),
    edits=_EDITS,
)
def test_mutated_members_of_a_valid_zip(tmp_path, member, edits):
    src = DATA / "experiment_shuffled.zip"
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, _mutate(data, edits) if info.filename == member else data)
    _bounded(_quiet(rw.read_zip), path)

    def build(p):
        cat = rw.open_catalog(p)
        rw.build(rw.Dataset({"GSE100001": ["ALL"]}, quantile_normalize=False), cat)

    _bounded(_quiet(build), path)


@pytest.fixture(scope="module")
def h5ad_bytes(tmp_path_factory):
    path = write_bgee_h5ad(
        tmp_path_factory.mktemp("h5") / "Homo_sapiens_ERP5_droplet_based.h5ad",
        variant="bgee15_2",
        n_cells=80,
        n_genes=30,
    )
    return path.read_bytes()


@_SETTINGS
@given(edits=_EDITS)
def test_mutated_h5ad_bytes(tmp_path, h5ad_bytes, edits):
    path = tmp_path / "Homo_sapiens_ERP5_droplet_based.h5ad"
    path.write_bytes(_mutate(h5ad_bytes, edits))

    def open_and_build(p):
        cat = rw.open_catalog(p)
        rw.build(rw.Dataset({"ERP5": ["ALL"]}, quantile_normalize=False), cat)

    _bounded(_quiet(open_and_build), path)


def test_infinite_values_in_quantile_normalize_are_named_as_data():
    frame = pd.DataFrame({"a": [1.0, np.inf, 3.0], "b": [1.0, 2.0, 3.0]}, index=["g1", "g2", "g3"])
    with pytest.raises(rw.ExpressionValueError, match="1 infinite value.*gene 'g2', sample 'a'"):
        rw.quantile_normalize(frame)


# -- tar archives: the same checks, header by header ---------------------------------------
def _tar(path, members, mode="w:gz"):
    import io
    import tarfile

    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):  # (type, link target)
                info.type, info.linkname = data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def test_a_valid_tar_reads_like_the_zip(tmp_path):
    members = {}
    with zipfile.ZipFile(DATA / "experiment_shuffled.zip") as zf:
        for info in zf.infolist():
            if not info.is_dir():
                members[info.filename] = zf.read(info)
    path = _tar(tmp_path / "download.tar.gz", members)
    with pytest.warns(rw.MetadataMismatchWarning):
        from_tar = rw.read_zip(path)
    with pytest.warns(rw.MetadataMismatchWarning):
        from_zip = rw.read_zip(DATA / "experiment_shuffled.zip")
    for key in from_zip:
        pd.testing.assert_frame_equal(from_tar.expression(key), from_zip.expression(key))


def test_tar_bomb_is_refused_at_its_header(tmp_path):
    import tarfile

    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=9) as tf:
        info = tarfile.TarInfo("Homo_sapiens_ERP1_droplet_based.h5ad")
        info.size = 64 * 2**20  # above the 16 MiB floor of the ratio cap; quick to compress

        class Zeros:
            def __init__(self):
                self.left = info.size

            def read(self, n=-1):
                n = self.left if n < 0 else min(n, self.left)
                self.left -= n
                return b"\0" * n

        tf.addfile(info, Zeros())
    assert bomb.stat().st_size < 2 * 2**20
    with _measured() as cost, pytest.raises(rw.UnsafeArchiveError) as caught:
        stores.open_store(bomb)
    peak = cost["peak"]
    message = str(caught.value)
    assert "Homo_sapiens_ERP1_droplet_based.h5ad would expand" in message
    assert "cap of 200x" in message and "REFINEWIDGETS_MAX_RATIO" in message
    assert peak < 20 * 2**20  # refused from the header, the member was never inflated


@pytest.mark.parametrize(
    "member,match",
    [
        ({"../evil.txt": b"x"}, "unsafe member name '../evil.txt'"),
        ({"/etc/evil": b"x"}, "unsafe member name '/etc/evil'"),
        ({"link": (b"2", "/etc/passwd")}, "'link', a link or special file"),
        ({"hard": (b"1", "aggregated_metadata.json")}, "'hard', a link or special file"),
        ({"dev": (b"3", "")}, "'dev', a link or special file"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, member, match):
    path = _tar(tmp_path / "x.tar", {"aggregated_metadata.json": _META.encode(), **member}, "w")
    with pytest.raises(rw.UnsafeArchiveError, match=match):
        rw.read_zip(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tar"]


def test_truncated_tar_is_our_error(tmp_path):
    members = {"aggregated_metadata.json": _META.encode(), "E1/E1.tsv": b"Gene\tGSM1\n" * 5000}
    good = _tar(tmp_path / "good.tar.gz", members)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(rw.SourceFormatError, match="cut.tar.gz"):
        rw.read_zip(cut)


def test_the_memory_measure_sees_what_a_reader_allocates():
    with _measured() as cost:
        block = np.ones(64 * 2**20 // 8)  # touched: resident
        del block
    assert cost["peak"] > 60 * 2**20
