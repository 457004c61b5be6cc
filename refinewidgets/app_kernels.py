"""The kernels behind ``refinewidgets app``: Voila's ready pool paced to the cores, its failed
kernels dropped, and the room for one more page.

:mod:`refinewidgets.app_server` serves the pages and uses these parts:

- :class:`PacedKernelManager` warms the ready kernels of Voila's pool up a few at a time (one
  fewer than the cores, at least one);
- :func:`drop_failed_ready_kernels` takes the kernels that failed to start out of the pool;
- :func:`page_room` chooses which page kernels to shut down so that one more page fits, among
  the kernels :func:`_page_kernels` lists.

Every public name stays importable from :mod:`refinewidgets.app_server` too.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Iterable

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float, Integer
from voila.request_info_handler import RequestInfoSocketHandler

__all__ = [
    "WARM_UP_SECONDS",
    "PacedKernelManager",
    "ReadySignal",
    "available_cores",
    "warm_up_slots",
    "drop_failed_ready_kernels",
    "page_room",
]

#: A ready kernel not waiting for its page after this long no longer holds back the next one.
WARM_UP_SECONDS = 90.0


def drop_failed_ready_kernels(km, log: logging.Logger) -> int:
    """Take out of Voila's ready pool the kernels that failed to start (and start others).

    Voila hands the next page the first kernel of its pool and awaits it: one whose start
    failed (a kernel that died while starting), or whose run of the notebook failed (the kernel
    died, or did not answer within the notebook client's start-up time on a loaded machine),
    would answer that page ``500``; a kernel still running is shut down. Dropped here,
    the page gets the next ready kernel, or a kernel of its own when none is left. Returns how
    many were dropped; each is logged with its error.
    """
    dropped = 0
    for notebook, pool in getattr(km, "_pools", {}).items():
        failed = [t for t in pool if _failure(t) is not None]
        for task in failed:
            pool.remove(task)
            reason = _failure(task)
            started = task.exception() is None if not task.cancelled() else False
            kernel_id = task.result().get("kernel_id") if started else None
            if kernel_id is not None and kernel_id in km.list_kernel_ids():
                asyncio.ensure_future(ensure_async(km.shutdown_kernel(kernel_id)))
            log.error(
                "a ready kernel for %s failed to start (%s); starting another", notebook, reason
            )
        if failed:
            dropped += len(failed)
            km.fill_if_needed(notebook_name=notebook)
    return dropped


def _failure(task) -> str | None:
    """Why a task of Voila's pool failed: its kernel did not start, or it started but the
    notebook's run towards the page's request failed (the kernel died, or did not answer in
    time); None when it has not failed (yet)."""
    if not task.done():
        return None
    if task.cancelled():
        return "cancelled"
    if task.exception() is not None:
        return repr(task.exception())
    render = task.result().get("task") if isinstance(task.result(), dict) else None
    if render is not None and render.done():
        if render.cancelled():
            return "its notebook's run was cancelled"
        if render.exception() is not None:
            return f"its notebook's run failed: {render.exception()!r}"
    return None


def _page_kernels(km, connected: set[str]) -> list[tuple[str, int, float, bool]]:
    """``(kernel id, connected pages, seconds since its last activity, whether a page has
    connected to it)`` of the kernels that serve pages: every kernel but those waiting, ready,
    in Voila's pool. ``connected`` (kernels a page has connected to) loses the kernels gone."""
    pooled: set[str] = set()
    starting = 0
    for pool in getattr(km, "_pools", {}).values():  # Voila's preheated kernels
        for task in pool:
            if task.done() and not task.cancelled() and task.exception() is None:
                pooled.add(task.result().get("kernel_id"))
            elif not task.done():
                starting += 1  # its kernel may already be listed: not a page's
    starting = max(0, starting - getattr(km, "pool_waiting", 0))  # not started: not listed
    now = datetime.datetime.now(datetime.timezone.utc)
    found = []
    for kernel_id in km.list_kernel_ids():
        if kernel_id in pooled:
            continue
        try:
            model = km.kernel_model(kernel_id)
            last = km.get_kernel(kernel_id).last_activity
        except (KeyError, AttributeError):
            continue
        idle = (now - last).total_seconds() if isinstance(last, datetime.datetime) else 0.0
        found.append((kernel_id, int(model.get("connections", 0)), idle, kernel_id in connected))
    connected.intersection_update(km.list_kernel_ids())
    found.sort(key=lambda k: k[2])  # the most recently active first
    return found[starting:] if starting else found


def page_room(
    kernels: Iterable[tuple[str, int, float, bool]], max_pages: int, reclaim_after: float
) -> tuple[list[str], bool]:
    """Which page kernels to shut down so that one more page fits, and whether it still does
    not fit.

    ``kernels`` are ``(kernel id, connected pages, idle seconds, whether a page has connected)``.
    A kernel no page is connected to any more is one whose page is gone (closed without
    Voila's shutdown request, or crashed): those go first, the longest idle first. A kernel no
    page has connected to yet may be a page still loading (a page connects within seconds):
    it goes only once idle for ``reclaim_after`` seconds (a page fetched by a script).

    Examples
    --------
    >>> kernels = [("a", 1, 900.0, True), ("b", 0, 45.0, False), ("c", 0, 5.0, False),
    ...            ("d", 0, 2.0, True)]
    >>> page_room(kernels, 4, 30.0)  # d's page has left
    (['d'], False)
    >>> page_room(kernels, 2, 30.0)  # then b, unconnected for long; c is still loading
    (['d', 'b'], True)
    >>> page_room(kernels, 8, 30.0)
    ([], False)
    """
    kernels = list(kernels)
    excess = len(kernels) - max_pages + 1
    if excess <= 0:
        return [], False
    left = sorted((k for k in kernels if k[1] == 0 and k[3]), key=lambda k: -k[2])
    never = sorted(
        (k for k in kernels if k[1] == 0 and not k[3] and k[2] >= reclaim_after),
        key=lambda k: -k[2],
    )
    reclaim = [k[0] for k in [*left, *never][:excess]]
    return reclaim, len(reclaim) < excess


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity; all of them where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def warm_up_slots() -> int:
    """How many ready kernels warm up at once by default: one core fewer than this process may
    use, and at least one. The core left is the visitors': their page's kernel answering the
    page's first requests, and the server sending it. With every core warming a kernel, each
    visitor of a row of them competed with the refills (3.4-5.8 s loads on 2 cores, where the
    first took 2.9 s; issue 24)."""
    return max(1, available_cores() - 1)


class PacedKernelManager(AsyncMappingKernelManager):
    """Jupyter server's kernel manager, starting the kernels of Voila's ready pool a few at a time
    (one fewer than the machine's cores, :func:`warm_up_slots`).

    Voila refills its pool by starting every missing kernel at once. Each runs the app notebook
    up to the page's request (imports, the demo catalog, the widgets: seconds of CPU), so with
    more kernels than cores they are all ready late, and the visitor after the pool ran dry
    waits for all of them (10 s and more on 2 cores, issue 24). Here at most ``warm_up_at_once``
    (default: :func:`warm_up_slots`) kernels of the pool warm up together; the next
    starts once one of them is ready (its notebook waits for a page: Voila's
    ``/voila/query/<kernel id>`` socket is open) or a page took it, or it ended, or
    ``warm_up_seconds`` passed. Kernels started for a page (none ready) are never held back.

    ``pool_waiting`` is how many of the pool's kernels wait for their turn (they are not started:
    :func:`_page_kernels` does not look for them among the server's kernels).
    """

    warm_up_seconds = Float(
        WARM_UP_SECONDS,
        config=True,
        help="A ready kernel starting for longer no longer holds back the next one.",
    )
    warm_up_at_once = Integer(
        0, config=True, help="Ready kernels warming up at once (0: one fewer than the cores)."
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._turn = asyncio.Semaphore(self.warm_up_at_once or warm_up_slots())
        self.pool_waiting = 0
        self._closing = False
        #: The pool's kernels warming up, and those of them whose notebook reached the page's
        #: request (see :meth:`note_ready`).
        self._warming: set[str] = set()
        self._ready: set[str] = set()

    def note_ready(self, kernel_id: str) -> None:
        """Called when ``kernel_id``'s notebook opens Voila's request socket: it is ready.

        Looking at the socket's open connections alone misses a kernel that a page took within
        moments of its connecting (the connection is closed as soon as the request is sent):
        that kernel then seemed to warm up for ``warm_up_seconds``, holding back the pool's next
        start, and a page waiting for that start waited as long (a page that never showed, seen
        once in a loop of browser tests)."""
        if kernel_id in self._warming:
            self._ready.add(kernel_id)

    async def start_kernel(self, *args, **kwargs):
        env = kwargs.get("env") or {}
        if env.get("VOILA_PREHEAT") != "True":  # a page's own kernel: at once
            return await super().start_kernel(*args, **kwargs)
        self.pool_waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.pool_waiting -= 1
        if self._closing:
            self._turn.release()
            raise RuntimeError("the server is stopping: no kernel is started")
        try:
            kernel_id = await super().start_kernel(*args, **kwargs)
        except BaseException:
            self._turn.release()
            raise
        self._warming.add(kernel_id)
        asyncio.get_running_loop().create_task(self._release_when_ready(kernel_id))
        return kernel_id

    def warming_up(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` still runs the notebook towards the page's request."""
        waiting = RequestInfoSocketHandler._waiters  # kernels whose notebook waits for a page
        taken = RequestInfoSocketHandler._cache  # kernels a page asked for before they were ready
        return (
            kernel_id in self
            and kernel_id not in self._ready
            and kernel_id not in waiting
            and kernel_id not in taken
        )

    async def _release_when_ready(self, kernel_id: str) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        warming = True
        try:
            while (warming := self.warming_up(kernel_id)) and loop.time() < start + (
                self.warm_up_seconds
            ):
                await asyncio.sleep(0.1)
        finally:
            self._turn.release()
            self._warming.discard(kernel_id)
            self._ready.discard(kernel_id)
        seconds = loop.time() - start
        if warming:
            self.log.warning(
                "ready kernel %s: still warming up after %.1f s; the next one starts",
                kernel_id,
                seconds,
            )
        else:
            self.log.info("ready kernel %s: warmed up in %.1f s", kernel_id, seconds)

    async def shutdown_all(self, *args, **kwargs):
        self._closing = True  # the pool's kernels waiting for their turn never start
        return await super().shutdown_all(*args, **kwargs)


class ReadySignal(RequestInfoSocketHandler):
    """Voila's request socket (``/voila/query/<kernel id>``), which a ready kernel's notebook opens
    to wait for its page, also telling the kernel manager that the kernel is ready
    (:meth:`PacedKernelManager.note_ready`)."""

    def open(self, kernel_id: str) -> None:
        note_ready = getattr(self.settings.get("kernel_manager"), "note_ready", None)
        if note_ready is not None:
            note_ready(kernel_id)
        super().open(kernel_id)
