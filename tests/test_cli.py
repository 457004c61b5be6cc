"""The command line: build, info, demo, app flags; errors as one line each."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import zipfile

import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.io.catalog_open import demo_path

from .conftest import bulk_ids


def test_build_writes_the_zip_and_says_what_it_built(tmp_path, capsys):
    cat = rw.open_catalog()
    exps = bulk_ids(cat)[:2]
    spec = tmp_path / "spec.json"
    spec.write_text(rw.Dataset({e: ["ALL"] for e in exps}, aggregate_by="SPECIES").to_json())
    out = tmp_path / "out.zip"
    assert main(["build", str(spec), "-o", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "aggregate_by=SPECIES" in text and f"wrote {out}" in text
    with zipfile.ZipFile(out) as zf:
        assert "HOMO_SAPIENS/HOMO_SAPIENS.tsv" in zf.namelist()
    # an existing output is an error with exit status 2
    assert main(["build", str(spec), "-o", str(out), "-q"]) == 2
    assert "exists: choose another name with -o, or add --overwrite" in capsys.readouterr().err


def test_build_with_sources_and_a_bad_spec(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"data": {"GSE_NOPE": ["ALL"]}}))
    src = sorted(demo_path().glob("*.zip"))[0]
    assert (
        main(["build", str(spec), "--source", str(src), "-o", str(tmp_path / "x.zip"), "-q"]) == 2
    )
    err = capsys.readouterr().err
    assert "Experiment(s) not in the sources: GSE_NOPE" in err
    assert f"(opened: {src})" in err and "--source PATH" in err
    assert "rw.open_catalog" not in err  # the command line's words, not the Python API's
    assert not (tmp_path / "x.zip").exists()


def test_output_is_checked_before_building(tmp_path, capsys):
    """A bad -o fails at once, in the command's own words, before any build output."""
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"keep me")
    assert main(["demo", "-o", str(taken), "-q"]) == 2
    captured = capsys.readouterr()
    assert "Building" not in captured.out  # nothing was built
    assert f"{taken} exists: choose another name with -o, or add --overwrite" in captured.err
    assert "overwrite=True" not in captured.err
    assert taken.read_bytes() == b"keep me"
    missing = tmp_path / "no" / "such" / "x.zip"
    spec = tmp_path / "spec.json"
    spec.write_text(rw.Dataset({bulk_ids(rw.open_catalog())[0]: ["ALL"]}).to_json())
    for argv in (["demo", "-o", str(missing), "-q"], ["build", str(spec), "-o", str(missing)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "Building" not in captured.out and "wrote" not in captured.out
        assert f"The folder {missing.parent} does not exist; create it first." in captured.err


def test_help_is_plain_text_and_flags_are_checked(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    text = " ".join(text.split())  # argparse wraps at the terminal width
    assert "``" not in text and "search and fetch from refine.bio and Bgee" in text
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    assert "a Bgee .h5ad file or species tarball" in " ".join(capsys.readouterr().out.split())
    for bad in ("-3", "0", "soon", "inf"):
        with pytest.raises(SystemExit) as stop:
            main(["cache", "prune", "--older-than", bad])
        assert stop.value.code == 2
        assert "is not a number of days above 0" in capsys.readouterr().err


def test_info_on_a_zip_and_a_folder(tmp_path, capsys):
    zip_path = sorted(demo_path().glob("*.zip"))[0]
    assert main(["info", str(zip_path)]) == 0
    text = capsys.readouterr().out
    assert "a refine.bio download" in text and "aggregate_by=EXPERIMENT" in text
    assert main(["info", str(demo_path())]) == 0
    text = capsys.readouterr().out
    assert "<Catalog:" in text and "MICROARRAY" in text


@pytest.mark.slow
def test_demo_command_runs_as_an_installed_script(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "refinewidgets.cli", "demo", "-o", str(tmp_path / "demo.zip"), "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "HOMO_SAPIENS:" in out.stdout and "MUS_MUSCULUS:" in out.stdout
    assert (tmp_path / "demo.zip").exists()


def test_info_on_a_real_download_reports_mismatches_and_filtered_samples(capsys):
    from pathlib import Path

    path = Path(__file__).parent / "data" / "refinebio" / "experiment_shuffled.zip"
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert "  GSE100001: 7 genes x 3 samples" in captured.out
    assert "GSM3170190 (GSE100001): listed in the metadata, no values in the matrix" in captured.out
    warning = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "GSM3170190" in warning[0]


def _spec(tmp_path):
    cat = rw.open_catalog()
    spec = tmp_path / "spec.json"
    spec.write_text(rw.Dataset({bulk_ids(cat)[0]: ["ALL"]}).to_json())
    return spec


def test_a_spec_that_is_a_folder_or_not_utf8_is_one_error_line(tmp_path, capsys):
    assert main(["build", str(tmp_path), "-o", str(tmp_path / "x.zip"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path} is a folder: give the path of a dataset spec JSON file.\n"
    latin1 = tmp_path / "spec.json"
    raw = '{"data": {"GSE1": ["ALL"]}, "title": "caf\xe9"}'.encode("latin-1")
    latin1.write_bytes(raw)
    where = raw.index(b"\xe9")
    assert main(["build", str(latin1), "-o", str(tmp_path / "x.zip"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {latin1} is not UTF-8 text (byte {where}): a dataset spec is "
        "JSON, as written by rw.Dataset(...).to_json().\n"
    )


@pytest.mark.parametrize(
    ("code", "strerror", "message"),
    [
        (
            errno.EROFS,
            "Read-only file system",
            "the file system is read-only: write somewhere else",
        ),
        (errno.ENOSPC, "No space left on device", "no space left on the disk: free some space"),
        (errno.EACCES, "Permission denied", "permission denied"),
    ],
)
def test_os_errors_a_user_can_cause_are_one_line(
    tmp_path, capsys, monkeypatch, code, strerror, message
):
    # as root (CI containers) chmod cannot make a folder unwritable: the OS error is raised
    # where the real one would come from, the zip writer
    out = tmp_path / "out.zip"

    def failing_write(self, path, **kwargs):
        raise OSError(code, strerror, str(path))

    monkeypatch.setattr(rw.Result, "write_zip", failing_write)
    assert main(["build", str(_spec(tmp_path)), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: {message}") and err.count("\n") == 1
    assert "Traceback" not in err
    # --debug adds the traceback, then the same line
    assert main(["--debug", "build", str(_spec(tmp_path)), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert f"Error: [Errno {code}] {strerror}: '{out}'" in err  # OSError, PermissionError...
    assert err.splitlines()[-1].startswith(f"error: {out}: {message}")


def test_a_real_os_error_writing_into_a_missing_folder(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "folder" / "out.zip"
    status = main(["build", str(_spec(tmp_path)), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_our_errors_get_a_traceback_only_with_debug(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert main(["build", str(missing), "-o", str(tmp_path / "x.zip")]) == 2
    assert capsys.readouterr().err == (
        f"error: {missing} does not exist: give the path of a dataset spec JSON file.\n"
    )
    assert main(["--debug", "build", str(missing), "-o", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith(
        f"error: {missing} does not exist: give the path of a dataset spec JSON file.\n"
    )


def test_app_flags_reach_serve(monkeypatch):
    import refinewidgets.app as app

    seen = {}
    monkeypatch.setattr(app, "serve", lambda paths, **kw: seen.update(kw, paths=paths) or 0)
    assert (
        main(
            [
                "app",
                "a.zip",
                "--no-browser",
                "--port",
                "9",
                "--no-token",
                "--output-dir",
                "out",
                "--cull-idle-seconds",
                "5",
                "--pool-size",
                "0",
                "--theme",
                "dark",
                "--max-pages",
                "3",
            ]
        )
        == 0
    )
    assert seen == {
        "paths": ["a.zip"],
        "port": 9,
        "open_browser": False,
        "token": False,
        "output_dir": "out",
        "cull_idle_seconds": 5,
        "pool_size": 0,
        "theme": "dark",
        "max_pages": 3,
    }
    assert main(["app"]) == 0
    assert seen["token"] is True and seen["output_dir"] is None and seen["cull_idle_seconds"] == 120
    assert seen["pool_size"] == 4 and seen["theme"] == "auto" and seen["max_pages"] is None
