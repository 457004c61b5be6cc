"""The README's first command, exactly as written, on a fresh copy in a fresh virtual environment:
it must install and serve a working app (a kernel runs the app notebook and shows the widget)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from refinewidgets.app import wait_until_up

ROOT = Path(__file__).resolve().parents[1]


def _first_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands[0].endswith("refinewidgets app"), commands[0]
    return commands[0]


@pytest.mark.slow
def test_readme_first_command_serves_a_working_app(tmp_path):
    command = _first_command()
    copy = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name, follow_symlinks=False)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if ".venv" not in p and "venv" not in p
    )
    env["BROWSER"] = "true"  # the command opens a browser: a no-op one here
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        url = None
        for line in proc.stdout:
            lines.append(line)
            if "refinewidgets app:" in line:
                url = line.split("refinewidgets app: ", 1)[1].split()[0]
                break
        assert url, "".join(lines[-30:])
        wait_until_up(url, proc, timeout=60)
        with urllib.request.urlopen(url, timeout=300) as page:
            html = page.read().decode()
        assert page.status == 200
        assert "application/vnd.jupyter.widget-view+json" in html, html[-2000:]
        assert "No Jupyter kernel" not in html
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
