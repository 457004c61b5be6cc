"""How many threads the build uses for independent work (reading matrices).

The default follows the machine (``os.cpu_count()``); ``$REFINEWIDGETS_THREADS`` or
``rw.build(..., threads=n)`` sets it. Reading a matrix inflates and parses text in libraries
that release the GIL, so threads overlap on separate cores.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import DatasetSpecError

__all__ = ["THREADS_ENV", "ordered_map", "thread_count"]

THREADS_ENV = "REFINEWIDGETS_THREADS"
T = TypeVar("T")


def thread_count(threads: int | None = None) -> int:
    """``threads`` if given, else ``$REFINEWIDGETS_THREADS``, else the number of CPUs.

    >>> thread_count(3)
    3
    """
    if threads is None:
        text = os.environ.get(THREADS_ENV, "").strip()
        if text:
            try:
                threads = int(text)
            except ValueError:
                raise DatasetSpecError(
                    f"${THREADS_ENV} must be a whole number of threads, got {text!r}."
                ) from None
        else:
            threads = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise DatasetSpecError(f"threads must be a whole number of at least 1, got {threads!r}.")
    return threads


def ordered_map(fn: Callable[[Any], T], items: Iterable[Any], threads: int) -> Iterator[T]:
    """``fn`` over ``items`` on up to ``threads`` threads, results in the items' order, with at
    most ``threads`` results waiting (memory stays bounded); an error is raised in order.

    >>> list(ordered_map(lambda x: x * x, range(5), threads=2))
    [0, 1, 4, 9, 16]
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="refinewidgets") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an error or an early stop: drop what is not started
                future.cancel()
