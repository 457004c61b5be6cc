"""A real ``refinewidgets app`` for tests: started as a user would, its printed URL, its processes.

Used by the browser fixtures (``conftest.py``) and by the plain HTTP tests in ``tests/test_app.py``.
Process trees are read from ``/proc`` (Linux).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

URL_LINE = re.compile(r"refinewidgets app: (http://\S+)")


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids = [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []
    return [p for p in pids if state(p) != "Z"]


def state(pid: int) -> str:
    """The state letter of ``pid`` in ``/proc`` ("Z" when it is gone too)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "Z"


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and state(pid) != "Z"


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition()`` until it is truthy (returns its value) or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class RunningApp:
    """``refinewidgets app`` running: the command's process, the URL it printed, its log."""

    proc: subprocess.Popen
    url: str
    log: Path
    cwd: Path

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def token(self) -> str:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["token"][0]

    def voila_pid(self) -> int:
        servers = [p for p in children(self.proc.pid) if "refinewidgets.app_server" in cmdline(p)]
        assert len(servers) == 1, f"expected one Voila child, found {servers}"
        return servers[0]

    def kernels(self) -> list[int]:
        """The kernel processes of the Voila server (its ipykernel children)."""
        return [p for p in children(self.voila_pid()) if "ipykernel" in cmdline(p)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_app(cwd: Path, log: Path, *args: str, timeout: float = 180) -> RunningApp:
    """Run ``refinewidgets app --no-browser ARGS`` in ``cwd``; wait for the URL it prints."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "refinewidgets.cli", "app", "--no-browser", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def printed_url():
        match = URL_LINE.search(log.read_text())
        if match is None and proc.poll() is not None:
            raise AssertionError(f"refinewidgets app exited {proc.returncode}:\n{log.read_text()}")
        return match and match.group(1)

    try:
        url = wait_for(printed_url, timeout, "refinewidgets app to print its URL")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return RunningApp(proc, url, log, Path(cwd))
