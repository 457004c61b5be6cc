"""The command line: build, info, demo."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

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
    assert "exists; choose another name or pass overwrite=True" in capsys.readouterr().err


def test_build_with_sources_and_a_bad_spec(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"data": {"GSE_NOPE": ["ALL"]}}))
    src = sorted(demo_path().glob("*.zip"))[0]
    assert (
        main(["build", str(spec), "--source", str(src), "-o", str(tmp_path / "x.zip"), "-q"]) == 2
    )
    assert "Experiment(s) not in the catalog: GSE_NOPE" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


def test_info_on_a_zip_and_a_folder(tmp_path, capsys):
    zip_path = sorted(demo_path().glob("*.zip"))[0]
    assert main(["info", str(zip_path)]) == 0
    text = capsys.readouterr().out
    assert "a refine.bio download" in text and "aggregate_by=EXPERIMENT" in text
    assert main(["info", str(demo_path())]) == 0
    text = capsys.readouterr().out
    assert "<Catalog:" in text and "MICROARRAY" in text


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
