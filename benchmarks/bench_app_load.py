"""Benchmark: page loads of ``refinewidgets app`` one after the other, in Debian's chromium.

What is measured
----------------
``refinewidgets app --no-browser`` is started as a user would start it (the demo sources, a
fresh folder) with its default kernel pool, or with ``--pool-size``/``--max-pages`` given here.
Once it printed its URL and its pool of ready kernels is full (its log says each warmed up; or
after ``--settle`` seconds), ``--loads`` visitors come
one after the other, each in a fresh browser context (Playwright driving ``/usr/bin/chromium``):
the time from ``page.goto`` to the page's first control (the search box) visible, then the
visitor leaves (``page.close(run_before_unload=True)``, Voila's shutdown beacon) and the next one
comes at once. ``--stay`` keeps every page open instead (visitors who do not leave; the app's
``--max-pages`` bound then applies). ``--gap`` seconds pass between visitors (0: at once).

Printed: each load's seconds, min / median / max, the load average (the machine is shared), and
whether the goal of issue 24 holds (every load under 3 s). Beside them, the page's own phases
(Navigation Timing): its first byte (the server found a kernel), its HTML whole (the notebook's
output streamed), DOM ready and the load event (scripts run); what remains up to the search box is
the widgets' state coming over the kernel's socket and their views drawn.

Usage
-----
``python benchmarks/bench_app_load.py`` (5 loads; about a minute) or
``python benchmarks/bench_app_load.py --loads 10 --pool-size 2``. Run from the repository root
with the package importable (installed, or ``PYTHONPATH=.``); needs ``playwright`` and Debian's
``chromium``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refinewidgets.app import POOL_SIZE

from _measure import load_average

CHROMIUM = os.environ.get("REFINEWIDGETS_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
URL_LINE = re.compile(r"refinewidgets app: (http://\S+)")
WARMED = re.compile(r"warmed up in ([\d.]+) s")
GOAL_SECONDS = 3.0


def start_app(folder: Path, extra: list[str]) -> tuple[subprocess.Popen, str, Path]:
    """``refinewidgets app --no-browser`` in ``folder``; the process, its URL, its log."""
    log = folder / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "refinewidgets.cli", "app", "--no-browser", *extra],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = URL_LINE.search(log.read_text())
        if found:
            return proc, found.group(1), log
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the app did not print its URL:\n{log.read_text()}")


#: The page's own account of its load (Navigation Timing), in ms from the start of navigation.
PHASES_JS = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {first_byte: n.responseStart, html_done: n.responseEnd,
          dom_ready: n.domContentLoadedEventEnd, loaded: n.loadEventEnd};
}"""
#: The page's renderer busy (seconds of its main thread, Chromium's own counters).
BROWSER_CPU = {
    "scripts": "ScriptDuration",
    "layout": "LayoutDuration",
    "style": "RecalcStyleDuration",
    "tasks": "TaskDuration",
}
PHASES = ("first_byte", "html_done", "dom_ready", "loaded", *BROWSER_CPU)


def visit(browser, url: str, stay: bool, opened: list) -> tuple[float, dict[str, float]]:
    """One visitor: seconds until the search box shows, and the page's phases (seconds: first
    byte of the page, its HTML whole, DOM ready, load event); the page closes unless ``stay``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(180_000)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator(".rw-search input").wait_for()
    seconds = time.perf_counter() - start
    phases = {k: v / 1000 for k, v in page.evaluate(PHASES_JS).items()}
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    phases.update({name: metrics.get(key, 0.0) for name, key in BROWSER_CPU.items()})
    if stay:
        opened.append(context)
    else:
        page.close(run_before_unload=True)
        context.close()
    return seconds, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=5, help="visitors in a row (default 5)")
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds to wait for the pool to fill (default: until the app's log says each "
        "ready kernel warmed up)",
    )
    parser.add_argument("--gap", type=float, default=0, help="seconds between visitors")
    parser.add_argument("--stay", action="store_true", help="visitors keep their page open")
    parser.add_argument("--pool-size", type=int, help="the app's --pool-size (its default)")
    parser.add_argument("--max-pages", type=int, help="the app's --max-pages (its default)")
    parser.add_argument("--log", type=Path, help="keep a copy of the app's log here")
    parser.add_argument(
        "--warm-up-at-once",
        type=int,
        help="ready kernels warming up together (the app's PacedKernelManager.warm_up_at_once, "
        "given in a voila.json in a Jupyter configuration folder of its own; default: the app's)",
    )
    args = parser.parse_args()
    extra = []
    if args.pool_size is not None:
        extra += ["--pool-size", str(args.pool_size)]
    if args.max_pages is not None:
        extra += ["--max-pages", str(args.max_pages)]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        if args.warm_up_at_once is not None:  # the app reads no voila.json in its own folder
            config = {"PacedKernelManager": {"warm_up_at_once": args.warm_up_at_once}}
            config_dir = Path(tmp) / "jupyter-config"
            config_dir.mkdir()
            (config_dir / "voila.json").write_text(json.dumps(config))
            os.environ["JUPYTER_CONFIG_DIR"] = str(config_dir)
        proc, url, log = start_app(Path(tmp), extra)
        try:
            if args.settle is None:
                pool = POOL_SIZE if args.pool_size is None else args.pool_size
                if args.max_pages:
                    pool = min(pool, args.max_pages)
                deadline = time.monotonic() + 300
                while len(WARMED.findall(log.read_text())) < pool:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the pool was not ready in 300 s:\n{log.read_text()}")
                    time.sleep(0.5)
            else:
                time.sleep(args.settle)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                opened: list = []
                loads, phases = [], []
                for i in range(args.loads):
                    if i and args.gap:
                        time.sleep(args.gap)
                    seconds, phase = visit(browser, url, args.stay, opened)
                    loads.append(seconds)
                    phases.append(phase)
                    steps = ", ".join(f"{k} {v:.2f}" for k, v in phase.items())
                    print(f"load {i + 1}: {seconds:.2f} s ({steps})", flush=True)
                for context in opened:
                    context.close()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log_text = log.read_text()
            if args.log is not None:
                args.log.write_text(log_text)
    options = " ".join(extra) or "defaults"
    print(
        f"\n| app ({options}), {args.loads} loads{' kept open' if args.stay else ''}, gap "
        f"{args.gap:g} s | min | median | max |\n|---|---|---|---|\n"
        f"| seconds to the first control | {min(loads):.2f} | {statistics.median(loads):.2f} "
        f"| {max(loads):.2f} |"
    )
    for name in PHASES:
        values = [p[name] for p in phases]
        print(
            f"| page's {name.replace('_', ' ')} (s) | {min(values):.2f} | "
            f"{statistics.median(values):.2f} | {max(values):.2f} |"
        )
    warm = [float(s) for s in WARMED.findall(log_text)]
    if warm:
        print(
            f"ready kernels' warm-up (from the app's log): {len(warm)} kernels, "
            f"{min(warm):.1f} / {statistics.median(warm):.1f} / {max(warm):.1f} s min/median/max"
        )
    print(f"\n{load_average()}")
    slow = [f"{t:.2f}" for t in loads if t >= GOAL_SECONDS]
    print(
        f"goal (issue 24): every load under {GOAL_SECONDS:g} s: "
        + ("met" if not slow else f"NOT met ({len(slow)} slower: {', '.join(slow)} s)")
    )


if __name__ == "__main__":
    main()
