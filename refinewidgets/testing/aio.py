"""Running a coroutine to its end from tests, whatever loop the calling thread holds.

Playwright's sync API (the browser tests) leaves an event loop running in the main thread, where
``asyncio.run`` then refuses to start. :func:`run_in_thread` runs the coroutine with a loop of
its own in a new thread and hands back its result or its exception.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_in_thread"]

T = TypeVar("T")


def run_in_thread(make: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    """``asyncio.run(make())`` in a thread of its own; its result, or its exception re-raised.

    Examples
    --------
    >>> async def answer():
    ...     await asyncio.sleep(0)
    ...     return 42
    >>> run_in_thread(answer)
    42
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"the coroutine did not end within {timeout:.0f} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
