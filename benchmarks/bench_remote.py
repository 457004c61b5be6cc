"""Benchmark: how fast ``rw.remote`` gives up on a service that cannot or will not answer well.

What is measured
----------------
Each case runs the client with its **default settings** (retries, backoff, timeouts, caps)
against a real server on 127.0.0.1 (:class:`refinewidgets.testing.FakeServices`), except where
the table says a setting was lowered to keep the run short:

- **refused**: a port nothing listens on; seconds until ``ServiceUnreachableError``.
- **no name**: a host under ``.invalid`` (RFC 6761: never resolves); seconds until
  ``ServiceUnreachableError``.
- **self-pointing next**: every page's ``next`` link points at the page itself; a
  ``search(max_results=None)`` one result a page: requests made and seconds.
- **trickle**: a search answer sent 1 byte every 50 ms with the overall deadline lowered to
  ``--deadline`` seconds (the default is 120 s); seconds until the error.
- **endless headers**: a status line and headers sent 1 byte every 50 ms, never ending, with
  the default retries and the deadline lowered to ``--deadline`` seconds.
- **huge page**: a ``--huge-mb`` MB JSON search page, with and without ``Content-Length``,
  under the default cap (64 MB); wall time and peak memory of the client process above its
  baseline (``_measure.measure``: a fresh process per way).
- **CLI first line**: ``refinewidgets search`` against a server that waits 3 s before
  answering; seconds from starting the process to its first line on stderr.

Goals (issue 20): refused and no name under 2 s with no retry; a self-pointing ``next`` ends
after the pages ``count`` needs (one request each); a trickle ends at the deadline; a huge page is refused
with a peak well under its size; the command line's first line within 1 s of starting.

Usage
-----
``PYTHONPATH=. python benchmarks/bench_remote.py`` (about 30 s) or ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import format_mb, measure

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "refinebio"


def _error_after(call) -> tuple[float, str]:
    began = time.monotonic()
    try:
        call()
    except Exception as exc:  # the point: which error, and when
        return time.monotonic() - began, type(exc).__name__
    return time.monotonic() - began, "no error"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_huge(api: str) -> str:
    """In the measured process: one search of a huge page (returns the error's class)."""
    from refinewidgets.io.remote.refinebio import RefineBio

    try:
        RefineBio(api).search("kidney")
    except Exception as exc:
        return type(exc).__name__
    return "read whole"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smaller huge page")
    parser.add_argument("--huge-mb", type=int, default=400, help="size of the huge page")
    parser.add_argument("--deadline", type=float, default=3.0, help="deadline of the trickle")
    args = parser.parse_args(argv)
    huge_mb = 100 if args.quick else args.huge_mb

    from refinewidgets.io.remote.refinebio import RefineBio
    from refinewidgets.testing.fake_services import FakeServices, split_experiment_download

    for name in ("REFINEWIDGETS_HTTP_RETRIES", "REFINEWIDGETS_HTTP_BACKOFF"):
        os.environ.pop(name, None)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    rows = []

    dead = f"http://127.0.0.1:{_free_port()}/v1/"
    seconds, error = _error_after(lambda: RefineBio(dead).search("kidney"))
    rows.append(("refused", "defaults", f"{seconds:.2f} s", error, seconds < 2))

    seconds, error = _error_after(lambda: RefineBio("http://no-such-host.invalid/v1/").search("x"))
    rows.append(("no name", "defaults", f"{seconds:.2f} s", error, seconds < 2))

    experiments = split_experiment_download(DATA / "experiment_shuffled.zip")
    with FakeServices(experiments=experiments, self_next=True) as fake:
        began = time.monotonic()
        found = RefineBio(fake.api).search(max_results=None, filters={"limit": 1})
        seconds = time.monotonic() - began
        asked = len(fake.seen("GET", "/v1/search/"))
        rows.append(
            (
                "self-pointing next",
                "defaults",
                f"{seconds:.2f} s, {asked} request(s)",
                f"{len(found.experiments)} of {found.count} results",
                asked == found.count == len(found.experiments),
            )
        )

    with FakeServices(experiments=experiments) as fake:
        fake.trickle("/v1/search/", chunk=1, pause=0.05)
        os.environ["REFINEWIDGETS_HTTP_DEADLINE"] = str(args.deadline)
        try:
            seconds, error = _error_after(lambda: RefineBio(fake.api, retries=0).search("x"))
        finally:
            del os.environ["REFINEWIDGETS_HTTP_DEADLINE"]
        rows.append(
            (
                "trickle, 1 byte / 50 ms",
                f"deadline {args.deadline:g} s",
                f"{seconds:.2f} s",
                error,
                seconds < args.deadline + 1,
            )
        )

    with FakeServices(experiments=experiments) as fake:
        fake.trickle_headers("/v1/search/", pause=0.05)
        os.environ["REFINEWIDGETS_HTTP_DEADLINE"] = str(args.deadline)
        try:
            seconds, error = _error_after(lambda: RefineBio(fake.api).search("x"))
        finally:
            del os.environ["REFINEWIDGETS_HTTP_DEADLINE"]
        rows.append(
            (
                "endless headers, 1 byte / 50 ms",
                f"deadline {args.deadline:g} s, 5 retries",
                f"{seconds:.2f} s",
                error,
                seconds < args.deadline + 1,
            )
        )

    page = b'{"count": 1, "results": [{"accession_code": "GSE1", "title": "'
    page += b"x" * (huge_mb * 2**20) + b'"}]}'
    for length in (True, False):
        with FakeServices() as fake:
            fake.answer("/v1/search/", page, length=length)
            result = measure(search_huge, fake.api, preload=["refinewidgets.io.remote.refinebio"])
        said = "with" if length else "without"
        rows.append(
            (
                f"huge page, {huge_mb} MB, {said} Content-Length",
                "cap 64 MB (default)",
                f"{result['seconds']:.2f} s, peak +{format_mb(result['peak_mb'])} MiB",
                result["value"],
                result["value"] == "ResponseFormatError" and result["peak_mb"] < 200,
            )
        )
    del page

    with FakeServices(experiments=experiments) as fake:
        fake.delay("/v1/search/", 3)
        env = {**os.environ, "REFINEWIDGETS_REFINEBIO_API": fake.api}
        code = "import sys; from refinewidgets.cli import main; sys.exit(main(sys.argv[1:]))"
        began = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "search", "kidney"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        line = proc.stderr.readline().decode().strip()
        first = time.monotonic() - began
        proc.communicate(timeout=60)
        total = time.monotonic() - began
        rows.append(
            (
                "CLI first line (server waits 3 s)",
                "defaults",
                f"{first:.2f} s (done after {total:.2f} s)",
                line[:40],
                first < 1,
            )
        )

    print("| case | settings | result | outcome | goal met |")
    print("|---|---|---|---|---|")
    for case, settings, result, outcome, met in rows:
        print(f"| {case} | {settings} | {result} | {outcome} | {'yes' if met else 'NO'} |")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
