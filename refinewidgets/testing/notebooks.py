"""Execute a notebook in a process of its own (nbclient), for the tests.

A kernel client leaves ZeroMQ threads and an event-loop thread behind in the process that ran
it; when the test process garbage-collects them later, during another test, the process can
crash (seen once in CI: a segmentation fault in a native thread during the hostile-input
tests). Running nbclient in a child process keeps the test process free of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["execute_notebook"]

_RUN = """
import sys
import nbformat
from nbclient import NotebookClient

source, target, kernel, cwd, timeout = sys.argv[1:6]
nb = nbformat.read(source, as_version=4)
NotebookClient(
    nb, kernel_name=kernel, timeout=int(timeout), resources={"metadata": {"path": cwd}}
).execute()
nbformat.write(nb, target)
"""


def execute_notebook(nb, kernel_name: str, cwd: str | Path, *, timeout: int = 600):
    """``nb`` (a notebook node) executed by ``kernel_name`` in ``cwd``, in a child process;
    the executed notebook. A cell error raises ``AssertionError`` with nbclient's report."""
    import nbformat

    cwd = Path(cwd)
    source, target = cwd / ".to-execute.ipynb", cwd / ".executed.ipynb"
    nbformat.write(nb, source)
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(source), str(target), kernel_name, str(cwd), str(timeout)],
        capture_output=True,
        text=True,
    )
    source.unlink(missing_ok=True)
    if done.returncode != 0:
        raise AssertionError(f"the notebook failed to run:\n{done.stderr[-6000:]}")
    executed = nbformat.read(target, as_version=4)
    target.unlink(missing_ok=True)
    return executed
