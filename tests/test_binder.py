"""Binder: a fresh virtual environment from binder/'s files runs the app notebook headless."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from refinewidgets.testing.notebooks import execute_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_binder_files_install_the_app_and_its_notebook_runs(tmp_path, monkeypatch):
    postbuild = (ROOT / "binder" / "postBuild").read_text()
    assert postbuild.splitlines()[1] == "set -e", "postBuild must start with set -e"
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    env = dict(
        os.environ,
        PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(env_dir),
    )
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            str(ROOT / "binder" / "requirements.txt"),
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )
    subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], check=True, env=env, cwd=ROOT)
    # a kernel running the Binder environment's interpreter
    spec = tmp_path / "jupyter" / "kernels" / "binder-env"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "binder env",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # the notebook Binder's link opens (README): the packaged one, in the repository's tree
    link = re.search(r"urlpath=voila/render/(\S+?\.ipynb)", (ROOT / "README.md").read_text())[1]
    assert link == "refinewidgets/notebooks/app.ipynb"
    nb = nbformat.read(ROOT / link, as_version=4)
    nb = execute_notebook(nb, "binder-env", tmp_path, timeout=300)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, "the app notebook must display one widget (the DatasetBuilder)"
    assert "DatasetBuilder" in views[0]["data"]["text/plain"]
    # the package came from the repository, not the test runner's environment
    where = subprocess.run(
        [str(python), "-c", "import refinewidgets, sys; print(refinewidgets.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert str(env_dir) in where
    assert "site-packages" in where  # a regular, non-editable install

    # `refinewidgets app` from that install: prints the tokenized URL on the given port and serves
    # the app there (and only the login page without the token)
    from refinewidgets.app import free_port, wait_until_up

    port = free_port()
    proc = subprocess.Popen(
        [str(env_dir / "bin" / "refinewidgets"), "app", "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        root = f"http://127.0.0.1:{port}/"
        wait_until_up(root, proc, timeout=180)
        url = None
        for line in proc.stdout:
            if "refinewidgets app:" in line:
                url = line.split("refinewidgets app: ", 1)[1].split()[0]
                break
        assert url is not None and url.startswith(f"{root}?token="), url
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=60) as page:  # the printed URL: the app
                assert page.status == 200 and '"kernelId"' in page.read().decode()
            with urllib.request.urlopen(root, timeout=60) as page:  # no token: the login page
                body = page.read().decode()
                assert page.url.startswith(f"{root}login") and '"kernelId"' not in body
        except BaseException:
            proc.terminate()  # the server's own account of what failed, with the failure
            print("refinewidgets app's output:\n" + proc.communicate(timeout=30)[0][-20_000:])
            raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
