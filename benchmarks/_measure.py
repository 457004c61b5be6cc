"""Wall time and peak memory of one function call, each in a fresh process.

Shared by the scripts under ``benchmarks/``. :func:`measure` runs ``fn(*args, **kwargs)`` in a
new interpreter (``multiprocessing`` *spawn*), so the memory one way of doing a task leaves
behind (allocator caches, imported modules, freed-but-kept arenas) never counts against the
other way, and reports:

- ``seconds``: wall time of the call alone (imports and argument unpickling excluded);
- ``cpu_seconds``: user + system CPU time of the call, of all its threads and of the child
  processes it waited for (above ``seconds`` when threads ran);
- ``peak_mb``: the peak resident memory during the call **above** the resident memory just
  before it, i.e. after the ``preload`` imports and after the input data is on disk. Measured
  with the kernel's high-water mark (``VmHWM`` of ``/proc/self/status``, reset through
  ``/proc/self/clear_refs``); where that reset is not allowed, a thread samples ``VmRSS``
  every millisecond instead (which can miss short spikes);
- ``baseline_mb``: the resident memory just before the call;
- ``value``: what ``fn`` returned (it must be picklable; keep it small).

``fn`` is a module-level callable (a function of the ``__main__`` script works when the script
guards its entry point with ``if __name__ == "__main__":``), ``"package.module:function"``, or
``"path/to/file.py:function"``.

Examples
--------
>>> from _measure import measure
>>> r = measure("math:factorial", 20)
>>> r["value"], sorted(r)
(2432902008176640000, ['baseline_mb', 'cpu_seconds', 'memory_method', 'peak_mb', 'seconds', 'value'])
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import math
import multiprocessing
import os
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["exponent", "format_mb", "interleaved", "load_average", "measure", "rss_mb", "summary"]

_KB = 1024.0


def _status_kb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """The current resident memory of this process in MiB (0.0 where unknown)."""
    kb = _status_kb("VmRSS")
    return kb / _KB if kb is not None else 0.0


def _reset_high_water_mark() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024  # within 1 MiB: it worked


class _Sampler(threading.Thread):
    """Polls ``VmRSS`` and keeps its maximum (the fallback when VmHWM cannot be reset)."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kb = _status_kb("VmRSS") or 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS") or 0.0)
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        self.peak_kb = max(self.peak_kb, _status_kb("VmRSS") or 0.0)
        return self.peak_kb


def _resolve(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(fn):
        return fn
    target, sep, name = str(fn).rpartition(":")
    if not sep or not target or not name:
        raise ValueError(f"expected 'module:function' or 'file.py:function', got {fn!r}")
    if target.endswith(".py"):
        path = Path(target).resolve()
        spec = importlib.util.spec_from_file_location(f"_measured_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


def _child(conn, fn, args, kwargs, preload, warmup) -> None:
    try:
        for name in preload:
            importlib.import_module(name)
        for step in warmup:
            _resolve(step)()
        func = _resolve(fn)
        gc.collect()
        baseline_kb = _status_kb("VmRSS") or 0.0
        sampler = None
        method = "VmHWM"
        if not _reset_high_water_mark():
            method = "VmRSS sampling"
            sampler = _Sampler()
            sampler.start()
        cpu0 = os.times()  # every thread of this process, and its children waited for
        t0 = time.perf_counter()
        value = func(*args, **kwargs)
        seconds = time.perf_counter() - t0
        cpu1 = os.times()
        peak_kb = sampler.stop() if sampler is not None else (_status_kb("VmHWM") or 0.0)
        conn.send(
            {
                "seconds": seconds,
                "cpu_seconds": sum(cpu1[:4]) - sum(cpu0[:4]),
                "peak_mb": max(peak_kb - baseline_kb, 0.0) / _KB,
                "baseline_mb": baseline_kb / _KB,
                "memory_method": method,
                "value": value,
            }
        )
    except BaseException:  # report anything, then let the process end
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def measure(
    fn: Callable[..., Any] | str,
    *args: Any,
    preload: Sequence[str] = (),
    warmup: Sequence[Callable[[], Any] | str] = (),
    timeout: float | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run ``fn(*args, **kwargs)`` in a fresh process; return its time and peak memory.

    Parameters
    ----------
    fn
        A picklable module-level callable, ``"module:function"`` or ``"file.py:function"``.
    *args, **kwargs
        Passed to ``fn``; they must be picklable (pass paths, not large arrays: the data
        should be on disk before the measurement starts).
    preload
        Modules imported in the child before the baseline is taken, so that import time and
        import memory are not measured. Give both ways of a comparison the same list.
    warmup
        Callables (or ``"module:function"``) run in the child after ``preload`` and before the
        baseline: a library's one-time start-up (a thread pool, say) is then not measured.
    timeout
        Seconds to wait for the child; it is terminated after that (None: no limit).

    Returns
    -------
    ``{"seconds", "cpu_seconds", "peak_mb", "baseline_mb", "memory_method", "value"}``.

    Raises
    ------
    RuntimeError
        ``fn`` raised in the child (the child's traceback is in the message), the child died,
        or it did not finish within ``timeout``.
    """
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(child_conn, fn, args, kwargs, tuple(preload), tuple(warmup))
    )
    proc.start()
    child_conn.close()
    result = None
    try:
        if not parent_conn.poll(timeout):  # also True when the child died (end of file)
            proc.terminate()
            raise RuntimeError(f"measure({fn!r}) did not finish within {timeout} s")
        try:
            result = parent_conn.recv()
        except EOFError:
            pass
    finally:
        proc.join()
        parent_conn.close()
    if result is None:
        raise RuntimeError(
            f"measure({fn!r}): the child process died (exit code {proc.exitcode}); out of memory?"
        )
    if "error" in result:
        raise RuntimeError(f"measure({fn!r}) failed in the child process:\n{result['error']}")
    return result


def format_mb(value: float) -> str:
    """A memory size in MiB for a table: ``"123.4"``."""
    return f"{value:,.1f}"


def load_average() -> str:
    """The machine's load average and cores, for a table's caption: on a shared machine the
    wall times mean little without it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min), {os.cpu_count()} cores"


def interleaved(
    ways: dict[str, Callable[[], dict[str, Any]]],
    repeat: int,
    *,
    label: str = "",
    log: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Run every way once per round, ``repeat`` rounds, the ways in turn (A, B, A, B, the
    order rotated each round so no way always runs first); the runs of each way.

    A load that comes and goes then falls on every way alike. Each way is a callable of no
    arguments returning one :func:`measure` result. ``log`` prints each run as it starts, with
    the load average.

    Examples
    --------
    >>> runs = interleaved({"a": lambda: {"seconds": 1.0}, "b": lambda: {"seconds": 2.0}}, 3, log=False)
    >>> {way: len(r) for way, r in runs.items()}
    {'a': 3, 'b': 3}
    """
    names = list(ways)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(repeat):
        shift = i % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if log:
                print(f"{label}{name}, run {i + 1}/{repeat} ({load_average()}) ...", flush=True)
            runs[name].append(ways[name]())
    return runs


def summary(runs: Sequence[dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    """Min and median of wall and CPU seconds, the largest peak, of a way's runs.

    Examples
    --------
    >>> r = [{"seconds": s, "cpu_seconds": 2 * s, "peak_mb": 10.0} for s in (3.0, 1.0, 2.0)]
    >>> summary(r)
    {'min': 1.0, 'median': 2.0, 'cpu_min': 2.0, 'cpu_median': 4.0, 'peak_mb': 10.0, 'runs': 3}
    """
    wall = sorted(float(r[key]) for r in runs)
    cpu = sorted(float(r.get("cpu_seconds", float("nan"))) for r in runs)
    return {
        "min": wall[0],
        "median": statistics.median(wall),
        "cpu_min": cpu[0],
        "cpu_median": statistics.median(cpu),
        "peak_mb": max(float(r.get("peak_mb", float("nan"))) for r in runs),
        "runs": len(runs),
    }


def exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """``b`` of the least-squares fit ``log(seconds) = a + b log(size)`` (1.0 is linear).

    Examples
    --------
    >>> round(exponent([250, 1000, 4000], [1.0, 4.0, 16.0]), 6)
    1.0
    """
    if len(sizes) < 2:
        return float("nan")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
