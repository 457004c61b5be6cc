"""Where a build computes: the memory budget, tasks on a Dask cluster, a local cluster.

The out-of-core bulk path (:mod:`.out_of_core`) and the cell path (:mod:`.single_cell`) both
send tasks to a ``dask.distributed`` client and both size their work to the memory a build may
use; this module holds those parts, so that neither imports the other.

- :func:`memory_budget`: the bytes a build may use (``$REFINEWIDGETS_MEMORY_BUDGET``, else half
  the memory available);
- :func:`submit` and :func:`gather`: ``client.submit`` / ``client.gather`` that bring the warnings
  a task raised on its worker back to the user's process;
- :func:`local_client`: a local cluster sized to the machine, with :data:`WORKER_ENVIRON`.
"""

from __future__ import annotations

import os

from ..errors import BuildError

__all__ = [
    "BUDGET_ENV",
    "WORKER_ENVIRON",
    "available_memory",
    "gather",
    "local_client",
    "memory_budget",
    "submit",
]

BUDGET_ENV = "REFINEWIDGETS_MEMORY_BUDGET"
#: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it turns off
#: glibc's adaptive mmap threshold, so every allocation above 128 KiB is a fresh ``mmap`` and
#: its pages fault in again each time (measured: numpy's temporaries made a block's quantile
#: normalization 3x slower on a worker than in a plain process). Our workers allocate large
#: blocks and free them whole: they keep the trim threshold high and allocations below 64 MiB
#: on the heap. Give a cluster of your own the same with ``dask.config.set(WORKER_ENVIRON)``
#: before creating it.
WORKER_ENVIRON = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 64 * 2**20,
}


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of ``/proc/meminfo``; the machine's
    memory where that is not readable).

    Examples
    --------
    >>> available_memory() > 0
    True
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def memory_budget() -> int:
    """Bytes a build may use: ``$REFINEWIDGETS_MEMORY_BUDGET``, else half the memory available.

    Examples
    --------
    >>> import os
    >>> os.environ["REFINEWIDGETS_MEMORY_BUDGET"] = "2e9"
    >>> memory_budget()
    2000000000
    >>> del os.environ["REFINEWIDGETS_MEMORY_BUDGET"]
    """
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        try:
            return int(float(text))
        except ValueError:
            raise BuildError(f"${BUDGET_ENV} must be a number of bytes, got {text!r}.") from None
    return available_memory() // 2


# -- warnings raised on the workers -------------------------------------------------------------
def _with_warnings(fn, args, kwargs):
    """Run ``fn`` on a worker, keeping the warnings it raises: ``(value, [(category, text)])``.
    A worker's warnings go to its own log otherwise, never to the user."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return value, [(w.category, str(w.message)) for w in caught]


def submit(client, fn, *args, **kwargs):
    """``client.submit(fn, *args, **kwargs, pure=False)``, keeping the task's warnings for
    :func:`gather`."""
    return client.submit(_with_warnings, fn, args, kwargs, pure=False)


def gather(client, futures) -> list:
    """The values of :func:`submit`'s futures; each distinct warning the tasks raised is raised
    again here, in the user's process (the same text from several tasks once)."""
    import warnings

    values, seen = [], set()
    for value, caught in client.gather(list(futures)):
        values.append(value)
        for category, text in caught:
            if (category, text) not in seen:
                seen.add((category, text))
                warnings.warn(text, category, stacklevel=3)
    return values


def local_client(reason: str):
    """A client of a local cluster sized to the machine (a worker per core, the budget shared
    among them), after an :class:`~refinewidgets.errors.OutOfCoreWarning` giving ``reason``."""
    import warnings

    from ..errors import OutOfCoreWarning

    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BuildError(
            f"{reason[0].upper()}{reason[1:]}, but Dask is not installed: "
            'pip install "refinewidgets[dask]", or build fewer samples per group.'
        ) from None
    workers = max(1, min(os.cpu_count() or 1, 8))
    warnings.warn(
        f"{reason[0].upper()}{reason[1:]} ({workers} workers).", OutOfCoreWarning, stacklevel=4
    )
    with dask.config.set(WORKER_ENVIRON):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=max(memory_budget() // workers, 2**30),
            dashboard_address=":0",
        )
    return Client(cluster)
