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
into the app's words; :func:`trouble` says what went wrong with a service in a biologist's
words (the client's technical message goes in a folded :class:`Details`), and
:class:`Spinner` shows that a service is being asked.

When a service cannot be reached, a job does not stop there: it fetches from the other
services, and :attr:`FetchJob.unreachable` names what it could not fetch (the build goes on
with what is at hand and lists the rest as not fetched).
"""

from __future__ import annotations

import contextlib
import html
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..core.catalog import Catalog
from ..core.pending import RemoteExperiment
from ..errors import BuildCancelled, RefineWidgetsWarning

__all__ = [
    "Details",
    "RefineBioPlan",
    "ask_refinebio",
    "FetchJob",
    "FetchProgress",
    "Spinner",
    "cached_paths",
    "cannot_reach",
    "open_downloads",
    "remote_words",
    "trouble",
]

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


def cannot_reach(exc: BaseException) -> bool:
    """Whether ``exc`` says that a service could not be reached at all: no network, a name
    that does not resolve, a refused connection, no answer in time (not a service that answered
    with an error of its own)."""
    from ..io.remote import errors

    unreachable = getattr(errors, "ServiceUnreachableError", None)  # a client that has one
    if unreachable is not None and isinstance(exc, unreachable):
        return True
    if not isinstance(exc, errors.ServiceUnavailableError):
        return False
    text = str(exc)
    return text.startswith("Cannot reach ") or " did not answer within " in text


def trouble(service_name: str, exc: BaseException) -> tuple[str, str]:
    """``(headline, detail)`` of a failed call to a service: the headline in the user's words
    (no address, no setting), the detail the client's own message, for a folded
    :class:`Details`.

    Examples
    --------
    >>> from refinewidgets.io.remote.errors import ServiceUnavailableError
    >>> trouble("refine.bio", ServiceUnavailableError("Cannot reach refine.bio at x (refused)."))[0]
    'refine.bio cannot be reached from this computer.'
    """
    from ..io.remote.errors import ServiceUnavailableError
    from ._status import describe

    detail = remote_words(describe(exc))
    if cannot_reach(exc):
        return f"{service_name} cannot be reached from this computer.", detail
    if isinstance(exc, ServiceUnavailableError):
        return f"{service_name} is not available right now: try again later.", detail
    return f"{service_name} answered with an error: {detail}", ""


#: The style of :class:`Spinner` (a ring turning, without any font or image).
_SPIN_CSS = (
    "<style>@keyframes rw-spin{to{transform:rotate(360deg)}}"
    ".rw-spinner-ring{display:inline-block;width:16px;height:16px;border-radius:50%;"
    "border:3px solid var(--jp-border-color2,#ccc);border-top-color:var(--rw-info,#1f4e79);"
    "animation:rw-spin 0.9s linear infinite;vertical-align:middle}"
    "@media (prefers-reduced-motion:reduce){.rw-spinner-ring{animation-duration:3s}}</style>"
)


class Spinner(w.HTML):
    """A turning ring and what is being waited for (``rw-spinner`` and ``css_class``); hidden
    until :meth:`start`.

    Examples
    --------
    >>> s = Spinner("rw-example-spinner"); s.start("Searching refine.bio")
    >>> "Searching refine.bio" in s.value, s.layout.display
    (True, None)
    >>> s.stop(); s.layout.display
    'none'
    """

    def __init__(self, css_class: str, **kwargs: Any) -> None:
        super().__init__(layout=w.Layout(display="none"), **kwargs)
        self.add_class("rw-spinner")
        self.add_class(css_class)

    def start(self, what: str) -> None:
        """Show the spinner, saying ``what...``."""
        self.value = (
            f'{_SPIN_CSS}<span role="status"><span class="rw-spinner-ring" aria-hidden="true">'
            f"</span> {html.escape(what)}...</span>"
        )
        self.layout.display = None

    def stop(self) -> None:
        self.layout.display = "none"
        self.value = ""


class Details(w.Accordion):
    """The technical detail of a failure, folded under "Technical details" (``css_class``);
    hidden when there is none.

    Examples
    --------
    >>> d = Details("rw-example-details"); d.show("Cannot reach refine.bio at x.")
    >>> d.text, d.selected_index, d.layout.display
    ('Cannot reach refine.bio at x.', None, None)
    """

    def __init__(self, css_class: str, **kwargs: Any) -> None:
        self._body = w.HTML()
        super().__init__(
            children=[self._body],
            titles=("Technical details",),
            selected_index=None,
            layout=w.Layout(display="none"),
            **kwargs,
        )
        self.add_class(css_class)
        self.text = ""

    def show(self, text: str) -> None:
        """Fold ``text`` away (nothing shown for '')."""
        self.text = text
        self.selected_index = None
        self._body.value = (
            f'<div style="white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace)">'
            f"{html.escape(text)}</div>"
        )
        self.layout.display = None if text else "none"

    def clear(self) -> None:
        self.show("")


@dataclass
class RefineBioPlan:
    """What refine.bio says of an experiment before it is fetched: its title, organisms,
    technology, how many samples it lists and how many a download of it holds, and the samples
    left out with their reasons (with refine.bio's records of them)."""

    accession: str
    title: str = ""
    organisms: list[str] = field(default_factory=list)
    technology: str = ""
    total: int | None = None
    included: int | None = None
    left_out: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    #: Every sample refine.bio lists for the experiment, when it was asked for them.
    listed: list[str] = field(default_factory=list)

    def lacking(self, has_sample) -> dict[str, str]:
        """``{sample: reason}`` of the samples refine.bio lists (or left out) that a download
        lacks (``has_sample(accession)`` false)."""
        from ..core.pending import NOT_IN_DOWNLOAD

        reasons = {s: self.left_out.get(s, NOT_IN_DOWNLOAD) for s in self.listed}
        reasons.update({s: r for s, r in self.left_out.items() if s not in reasons})
        return {s: r for s, r in reasons.items() if not has_sample(s)}

    def describe(self) -> str:
        """``GSE1: refine.bio will include 3 of 4 samples; it leaves out GSM2 (...)``."""
        if self.total is None or self.included is None:
            return ""
        head = (
            f"{self.accession}: refine.bio will include {self.included:,} of {self.total:,} samples"
        )
        if not self.left_out:
            return head + "." if self.included < self.total else ""
        shown = list(self.left_out.items())[:5]
        why = "; ".join(
            f"{acc} ({reason.removesuffix(' (left out by refine.bio)')})" for acc, reason in shown
        )
        more = (
            f"; and {len(self.left_out) - len(shown)} more"
            if len(self.left_out) > len(shown)
            else ""
        )
        return f"{head}; it leaves out {why}{more}."


def ask_refinebio(
    client,
    accessions: Sequence[str],
    qn_organisms: list[str] | None = None,
    *,
    every_sample: bool = False,
):
    """``{accession: RefineBioPlan}`` from refine.bio (``experiments/<acc>/``; its samples and
    QN targets only when it lists more samples than a download would hold, or always with
    ``every_sample``: after a download, to account for every sample it lacks)."""
    from ..core.pending import left_out_by_refinebio

    plans = {}
    for acc in accessions:
        doc = client.experiment(acc)
        if not isinstance(doc, Mapping):
            continue
        total, included = (
            _int(doc.get("num_total_samples")),
            _int(doc.get("num_downloadable_samples")),
        )
        plan = RefineBioPlan(
            acc,
            title=str(doc.get("title") or ""),
            organisms=[str(o) for o in doc.get("organism_names") or [] if isinstance(o, str)],
            technology=str(doc.get("technology") or ""),
            total=total,
            included=included,
        )
        if every_sample or (total is not None and included is not None and included < total):
            if qn_organisms is None:
                qn_organisms = client.qn_targets()
            frame = client.samples(acc)
            records = frame.to_dict("records") if len(frame) else []
            plan.left_out = left_out_by_refinebio(records, qn_organisms)
            plan.listed = [str(r["accession_code"]) for r in records]
            plan.records = {str(r["accession_code"]): r for r in records}
        plans[acc] = plan
    return plans


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
    plans
        ``{accession: RefineBioPlan}`` of refine.bio's experiments, when known.
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
        plans: Mapping[str, RefineBioPlan] | None = None,
    ) -> None:
        self.pending = list(pending)
        #: ``{accession: RefineBioPlan}``: given, and asked of refine.bio for the experiments it
        #: downloads when not given (the samples a download lacks are accounted for with them).
        self.plans: dict[str, RefineBioPlan] = dict(plans or {})
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
        #: ``{service: error}`` of the services that could not be reached (their experiments
        #: are not fetched; the others are).
        self.unreachable: dict[str, BaseException] = {}
        #: The warnings the clients gave while fetching (the app shows them).
        self.warnings: list[warnings.WarningMessage] = []
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

    def messages(self) -> list[str]:
        """The clients' warnings, in the app's words; those about samples refine.bio left out
        are not repeated (the app lists those samples in the result's filtered samples)."""
        from ..io.remote import errors

        left_out = getattr(errors, "SamplesLeftOutWarning", None)  # a client that has one
        return [
            remote_words(str(w.message))
            for w in self.warnings
            if left_out is None or not issubclass(w.category, left_out)
        ]

    @property
    def not_fetched(self) -> list[RemoteExperiment]:
        """The experiments of the services that could not be reached."""
        return [p for p in self.pending if p.service in self.unreachable]

    def _reaching(self, service: str, fetch, *args) -> None:
        """``fetch(*args)``, unless ``service`` was found unreachable (then noted, not raised)."""
        if service in self.unreachable:
            return
        try:
            fetch(*args)
        except Exception as exc:
            if not cannot_reach(exc):
                raise
            self.unreachable[service] = exc

    def _run(self) -> None:
        try:
            refinebio = [p for p in self.pending if p.service == "refinebio"]
            self._reaching("refinebio", self._fetch_refinebio, refinebio)
            species: dict[str, list[RemoteExperiment]] = {}
            for p in self.pending:
                if p.service == "bgee":
                    species.setdefault(p.species, []).append(p)
            for sp, wanted in species.items():
                self._reaching("bgee", self._fetch_bgee, sp, wanted)
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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RefineWidgetsWarning)
            paths = client.fetch(
                accs,
                poll_interval=self.poll_interval,
                progress=self.progress,
                cancel=self.cancel_event,
            )
        self.warnings.extend(caught)
        for acc, path in zip(accs, paths):
            self._paths[acc] = [path]
        if missing:  # just downloaded: ask which listed samples the downloads lack, and why
            from ..io.remote.errors import RemoteError

            with contextlib.suppress(RemoteError):
                self.plans.update(ask_refinebio(client, missing, every_sample=True))

    def _fetch_bgee(self, species: str, wanted: list[RemoteExperiment]) -> None:
        from ..io.remote.bgee import Bgee

        client = Bgee()
        whole = any(not p.accession for p in wanted)
        accs = [] if whole else [p.accession for p in wanted]
        name = species.replace("_", " ")
        self.to_download += 1
        self.progress.expect([("download", f"downloading {name} from Bgee")] * (len(accs) + 1))
        self.progress._check()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RefineWidgetsWarning)
            paths = client.fetch(species, accs, progress=self.progress)
        self.warnings.extend(caught)
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
