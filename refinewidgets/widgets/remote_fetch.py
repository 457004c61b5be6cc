"""Fetching what a build needs from refine.bio and Bgee, with progress and Cancel.

:class:`FetchJob` downloads the pending experiments of a selection
(:class:`~refinewidgets.core.pending.RemoteExperiment`) through :mod:`refinewidgets.remote`, in
a thread of its own, so that the build waiting for it can stop at once when the user presses
Cancel (a refine.bio dataset may be processed on the server for minutes). Cancelling also stops
the job itself: the refine.bio client is given the job's cancel event, and stops waiting for its
datasets before its next question to refine.bio (the datasets stay on refine.bio, and the next
build waits for the same ones). Its :class:`FetchProgress` is the clients' progress object
(tqdm's ``reset``/``update``/``close``): it shows which experiment is prepared or downloaded
and how many bytes came, and raises :class:`~refinewidgets.errors.BuildCancelled` at the next
chunk once cancelled. The cache writes a download to a hidden part file and moves it into
place only when complete; a cancelled job also removes the part files it wrote, so nothing of
it is kept.

:func:`open_downloads` opens downloaded files beside a catalog's sources (a new
:class:`~refinewidgets.core.catalog.Catalog`); :func:`remote_words` turns the clients' messages
into the app's words.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.catalog import Catalog
from ..core.pending import RemoteExperiment
from ..errors import BuildCancelled

__all__ = ["FetchJob", "FetchProgress", "cached_paths", "open_downloads", "remote_words"]

#: The clients' words for command-line users, and what the app says instead.
_APP_WORDS = [
    (
        "Files already downloaded stay usable offline: `refinewidgets cache list` shows them.",
        'Files already downloaded stay usable offline: "Open downloaded files" opens them.',
    ),
    ("Run the same command again later", "Build again later"),
    ("run the same command again", "build again"),
    ("Run the same command again", "Build again"),
]


def remote_words(text: str) -> str:
    """A client's message with its command-line advice replaced by the app's.

    Examples
    --------
    >>> remote_words("Run the same command again to resume where it stopped.")
    'Build again to resume where it stopped.'
    """
    for api, app in _APP_WORDS:
        text = text.replace(api, app)
    return text


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def cached_paths(service: str | None = None) -> list[Path]:
    """The complete downloads in the cache (``$REFINEWIDGETS_CACHE``) of one service."""
    from ..remote import cached

    return cached(service=service)


def open_downloads(
    catalog: Catalog,
    paths: Sequence[str | os.PathLike],
    opened: Mapping[str, list[str]] | None = None,
) -> tuple[Catalog, dict[Path, list[str]], list[str]]:
    """``catalog``'s sources plus those of ``paths``, as a new catalog.

    ``opened`` is ``{path: experiments}`` of the downloads ``catalog`` already reads (they are
    not opened twice; neither is a path one of its sources was read from). Returns the
    catalog, ``{path: experiments it holds}`` for every path, and the warnings opening them
    gave (as messages: the app shows them instead of raising them).
    """
    from ..io.catalog_open import drop_duplicate_files, find_sources

    opened = dict(opened or {})
    for src in catalog.sources:
        path = getattr(src, "path", None)
        if path is not None:
            opened.setdefault(str(path), sorted(src.experiments))
    by_path: dict[Path, list[str]] = {}
    found = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in map(Path, dict.fromkeys(map(str, paths))):
            if str(path) in opened:
                by_path[path] = list(opened[str(path)])
                continue
            sources = find_sources(path)
            by_path[path] = sorted({e for src in sources for e in src.experiments})
            found.extend(sources)
        combined = Catalog([*catalog.sources, *drop_duplicate_files(found)]) if found else catalog
    return combined, by_path, [str(w.message) for w in caught]


class FetchProgress:
    """The clients' progress object: shows a fetch on the app's progress bar and stops it.

    Each client call is announced with :meth:`expect`: the experiments refine.bio prepares
    (its first ``reset``/``update``/``close`` round counts them) and the downloads that follow
    (one ``reset``/``update``/``close`` round each, in bytes).
    """

    def __init__(self, target: Any, job: FetchJob) -> None:
        self.target = target
        self.job = job
        self.rounds: list[tuple[str, str]] = []
        self.total: int | None = None
        self.done = 0

    def expect(self, rounds: Sequence[tuple[str, str]]) -> None:
        """The coming rounds: ``[("processing" | "download", label), ...]``."""
        self.rounds = list(rounds)

    def _check(self) -> None:
        if self.job.cancelled:
            raise BuildCancelled(f"Cancelled while fetching {self.job.describe()}.")

    def _label(self) -> str:
        kind, label = self.rounds[0] if self.rounds else ("download", "a file")
        if kind == "processing":
            return f"{label}: {self.done} of {self.total or '?'} ready"
        return f"{label}: {_size(self.done)} of {_size(self.total)}"

    def _show(self) -> None:
        if self.target is None:
            return
        if hasattr(self.target, "set_description"):
            self.target.set_description(f"{self._label()} ({self.job.step()})")

    def reset(self, total: int | None = None) -> None:
        self._check()
        self.total = None if total is None else int(total)
        self.done = 0
        if self.target is not None:
            self.target.reset(total=max(1, self.total or 1))
        self._show()

    def update(self, n: int = 1) -> None:
        self._check()
        self.done += int(n)
        if self.target is not None and self.total:
            self.target.update(int(n))
        self._show()

    def set_description(self, text: str) -> None:
        self._check()

    def close(self) -> None:
        if self.rounds:
            kind, _ = self.rounds.pop(0)
            if kind == "download":
                self.job.downloaded += 1


class FetchJob:
    """Fetch pending experiments in a thread: :meth:`start`, then :meth:`wait` or
    :meth:`cancel`; :meth:`result` gives ``{pending key: [paths]}`` or raises what failed.

    Parameters
    ----------
    pending
        The experiments to fetch.
    progress
        The app's progress object (``reset``/``update``/``set_description``), or None.
    poll_interval
        Seconds between two questions to refine.bio while it prepares a dataset.
    """

    def __init__(
        self,
        pending: Sequence[RemoteExperiment],
        *,
        progress: Any = None,
        poll_interval: float = 10.0,
    ) -> None:
        self.pending = list(pending)
        self.poll_interval = poll_interval
        self.cancelled = False
        #: Set by :meth:`cancel`: the refine.bio client stops waiting for its datasets then.
        self.cancel_event = threading.Event()
        self.downloaded = 0
        self.to_download = 0
        self.progress = FetchProgress(progress, self)
        self._done = threading.Event()
        self._paths: dict[str, list[Path]] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="refinewidgets-fetch", daemon=True)

    def describe(self) -> str:
        """``3 experiment(s) from refine.bio and Bgee``."""
        services = sorted({p.service_name for p in self.pending})
        return f"{len(self.pending)} experiment(s) from {' and '.join(services)}"

    def step(self) -> str:
        """Where the job is: ``file 1 of 3``."""
        if not self.to_download:
            return self.describe()
        return f"file {min(self.downloaded + 1, self.to_download)} of {self.to_download}"

    def start(self) -> FetchJob:
        self._started = time.time()
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end (True) or ``timeout`` seconds (False)."""
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Stop at the next chunk of a download, or before refine.bio is asked again whether
        a dataset is ready (at once while waiting between two questions)."""
        self.cancelled = True
        self.cancel_event.set()

    def result(self) -> dict[str, list[Path]]:
        """``{pending key: [downloaded paths]}``; raises the job's error."""
        if self._error is not None:
            raise self._error
        return self._paths

    def _run(self) -> None:
        try:
            self._fetch_refinebio([p for p in self.pending if p.service == "refinebio"])
            species: dict[str, list[RemoteExperiment]] = {}
            for p in self.pending:
                if p.service == "bgee":
                    species.setdefault(p.species, []).append(p)
            for sp, wanted in species.items():
                self._fetch_bgee(sp, wanted)
        except BaseException as exc:  # handed to the build thread by result()
            self._error = exc
            if isinstance(exc, BuildCancelled):
                self._discard_parts()
        finally:
            self._done.set()

    def _fetch_refinebio(self, wanted: list[RemoteExperiment]) -> None:
        if not wanted:
            return
        from ..io.remote.refinebio import RefineBio

        client = RefineBio()
        accs = [p.accession for p in wanted]
        missing = [
            a
            for a in accs
            if client.cache.record(client.cache.path_for("refinebio", "experiments", f"{a}.zip"))
            is None
        ]
        self.to_download += len(missing)
        rounds = [("processing", f"refine.bio prepares {', '.join(missing)}")] if missing else []
        rounds += [("download", f"downloading {a} from refine.bio") for a in missing]
        self.progress.expect(rounds)
        self.progress._check()
        paths = client.fetch(
            accs, poll_interval=self.poll_interval, progress=self.progress, cancel=self.cancel_event
        )
        for acc, path in zip(accs, paths):
            self._paths[acc] = [path]

    def _fetch_bgee(self, species: str, wanted: list[RemoteExperiment]) -> None:
        from ..io.remote.bgee import Bgee

        client = Bgee()
        whole = any(not p.accession for p in wanted)
        accs = [] if whole else [p.accession for p in wanted]
        name = species.replace("_", " ")
        self.to_download += 1
        self.progress.expect([("download", f"downloading {name} from Bgee")] * (len(accs) + 1))
        self.progress._check()
        paths = client.fetch(species, accs, progress=self.progress)
        for p in wanted:
            self._paths[p.key] = list(paths)

    def _discard_parts(self) -> None:
        """Remove the unfinished downloads this job wrote (hidden ``.part`` files)."""
        from ..io.remote.cache import DownloadCache

        for entry in DownloadCache().entries():
            if not entry.complete:
                with contextlib.suppress(OSError):
                    if entry.path.stat().st_mtime >= self._started - 1:
                        entry.path.unlink()
