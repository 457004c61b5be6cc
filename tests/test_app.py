"""The app layer: where its sources come from, and what it shows when they cannot be opened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from refinewidgets.app import (
    free_port,
    show_app,
    sources_from_environment,
    voila_command,
    wait_until_up,
)


def test_sources_from_the_command_line_and_the_url_query(tmp_path):
    env = {
        "REFINEWIDGETS_SOURCES": "/data/a.zip:/data/b",
        "REFINEWIDGETS_BASE": str(tmp_path),
        "QUERY_STRING": "source=downloads/c.zip&other=1&source=bgee",
    }
    assert sources_from_environment(env) == [
        "/data/a.zip",
        "/data/b",
        str(tmp_path / "downloads" / "c.zip"),
        str(tmp_path / "bgee"),
    ]
    assert sources_from_environment({}) == []


@pytest.mark.parametrize("bad", ["/etc/passwd", "../secret.zip", "a/../../b", "C:/x.zip"])
def test_url_sources_cannot_leave_the_app_folder(bad):
    with pytest.raises(ValueError, match="must be a path relative to the app's folder"):
        sources_from_environment({"QUERY_STRING": f"source={bad}"})


def test_unopenable_sources_are_shown_as_a_message(monkeypatch, tmp_path):
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", str(tmp_path / "missing.zip"))
    widget = show_app()
    assert (
        "rw-error" in widget.value
        and "missing.zip" in widget.value
        and "does not exist" in widget.value
    )
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", "")
    monkeypatch.setenv("QUERY_STRING", "source=../x")
    assert "must be a path relative" in show_app().value


def test_demo_app_is_the_builder(monkeypatch):
    monkeypatch.delenv("REFINEWIDGETS_SOURCES", raising=False)
    monkeypatch.delenv("QUERY_STRING", raising=False)
    app = show_app()
    assert type(app).__name__ == "DatasetBuilder"
    assert "ERP900101" in app.catalog.experiment_ids


def test_voila_command_serves_the_packaged_notebook_on_the_port():
    cmd = voila_command(9999)
    assert cmd[1:3] == ["-m", "voila"] and cmd[3].endswith("notebooks/app.ipynb")
    assert "--port=9999" in cmd and "--no-browser" in cmd


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the Voila process"
)
def test_terminating_the_app_command_stops_voila(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "refinewidgets.cli", "app", "--no-browser", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", proc, timeout=180)
        voila = _children(proc.pid)
        assert voila, "refinewidgets app should run Voila as a child process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 30
        while (
            any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in voila)
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert not [p for p in voila if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
    finally:
        if proc.poll() is None:
            proc.kill()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "Z"
