"""The web app: the DatasetBuilder served by Voila.

``refinewidgets app [PATH ...]`` starts Voila on the packaged ``notebooks/app.ipynb``; the
notebook calls :func:`show_app`, which opens the sources given on the command line (passed in the
``REFINEWIDGETS_SOURCES`` environment variable) and those named in the page's URL query
(``?source=downloads/GSE1.zip&source=bgee``), relative to the folder the server was started in.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs

__all__ = ["SOURCES_ENV", "app_notebook", "serve", "show_app", "sources_from_environment"]

SOURCES_ENV = "REFINEWIDGETS_SOURCES"
BASE_ENV = "REFINEWIDGETS_BASE"


def app_notebook() -> Path:
    """The packaged app notebook (works from a non-editable install)."""
    return Path(str(resources.files("refinewidgets") / "notebooks" / "app.ipynb"))


def sources_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Source paths from ``REFINEWIDGETS_SOURCES`` and the URL query's ``source`` values.

    A query value must be a relative path without ``..``: a visitor of the page can only open
    sources below the folder the server was started in.

    Examples
    --------
    >>> sources_from_environment({"REFINEWIDGETS_SOURCES": "/data/a.zip", "QUERY_STRING": "source=b&source=c"})
    ['/data/a.zip', 'b', 'c']
    """
    environ = os.environ if environ is None else environ
    paths = [p for p in environ.get(SOURCES_ENV, "").split(os.pathsep) if p]
    base = Path(environ.get(BASE_ENV, "."))
    for value in parse_qs(environ.get("QUERY_STRING", "")).get("source", []):
        parts = PurePosixPath(value).parts
        if value.startswith(("/", "\\")) or ".." in parts or (len(value) > 1 and value[1] == ":"):
            raise ValueError(
                f"source={value!r} in the URL must be a path relative to the app's folder, without '..'."
            )
        paths.append(value if environ.get(BASE_ENV) is None else str(base / value))
    return paths


def show_app():
    """The widget the app notebook displays: a DatasetBuilder, or a message saying what failed."""
    import html

    import ipywidgets as widgets

    from .errors import RefineWidgetsError
    from .io.catalog_open import open_catalog
    from .widgets.builder import DatasetBuilder

    try:
        catalog = open_catalog(*sources_from_environment())
    except (RefineWidgetsError, ValueError, OSError) as exc:
        return widgets.HTML(
            f"<div class='rw-error'><b>Could not open the data sources:</b> {html.escape(str(exc))}</div>"
        )
    return DatasetBuilder(catalog)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voila_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voila",
        str(app_notebook()),
        f"--port={port}",
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--VoilaConfiguration.show_tracebacks=False",
    ]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until the server answers (or raise if it exits or times out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Voila exited with status {proc.returncode} before serving {url}.")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"Voila did not answer at {url} within {timeout:.0f} s.")


def serve(paths: Sequence[str] = (), *, port: int | None = None, open_browser: bool = True) -> int:
    """Run Voila on the app notebook until interrupted; returns Voila's exit status."""
    for p in paths:
        if not Path(p).exists():
            print(f"error: {p} does not exist", file=sys.stderr)
            return 2
    port = port or free_port()
    env = dict(os.environ)
    env[SOURCES_ENV] = os.pathsep.join(str(Path(p).resolve()) for p in paths)
    env[BASE_ENV] = str(Path.cwd())
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(voila_command(port), env=env)
    # A plain SIGTERM would end this process without the cleanup below and leave Voila running.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_until_up(url, proc)
        print(f"refinewidgets app: {url}  (Ctrl+C stops it)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
