"""A real HTTP server on 127.0.0.1 playing refine.bio's API (v1) and Bgee's FTP site, for tests.

It answers with the shapes of the real services (read from refine.bio's serializers and views):
paginated JSON ``{count, next, previous, results}`` (search adds ``facets``), DRF's
``{"detail": ...}`` 404s and refine.bio's ``{error_type, message, details}`` 400s, tokens that
must be activated, datasets moving from created to processing to processed (or failed, with a
``failure_reason``) with ``download_url``/``size_in_bytes``/``sha1``; and Bgee-style Apache
index pages over a folder tree. Files are served with ``ETag``/``Last-Modified`` and ``Range``
with ``If-Range`` support (as S3 and Apache do). Failures are injected per path prefix: an HTTP
status for the next N requests, a delay, a download cut after some bytes, a wrong checksum or
size, a failed dataset. Every request is logged in ``requests``.

As refine.bio does (AlexsLemonade/refinebio commit 288d43cad259daecc95d6a3d43f74fd92ccbf57d):

- ``next`` links are absolute and, like DRF's behind refine.bio's TLS proxy, need not point back
  here (``link_host``, default ``http://api.refine.bio``: a client that follows them leaves the
  test server); the client must compute its offsets (api/pagination.py);
- a dataset's ``["ALL"]`` becomes the processed samples of organisms with a QN target
  (api/views/dataset.py ``convert_ALL_to_accessions``), and its download holds only those
  (``unprocessed`` samples, ``qn_organisms``);
- search documents have ``ExperimentDocumentSerializer``'s fields, samples
  ``DetailedSampleSerializer``'s, experiments ``DetailedExperimentSerializer``'s, datasets
  ``DatasetSerializer``'s, QN targets ``QNTargetSerializer``'s (the files of api/views/).

Hostile modes: :meth:`FakeServices.redirect` (to another host, to ``file://``),
``self_next`` (a ``next`` link pointing at its own page), :meth:`FakeServices.trickle` (any reply
a few bytes at a time), :meth:`FakeServices.trickle_headers` (headers that never end),
:meth:`FakeServices.answer` (wrong JSON types, a huge page with or without a length, HTML
instead of an archive), :meth:`FakeServices.hold` (no answer until released), content changed
between two attempts (replace a file; ``etags=False`` serves no validators).

>>> with FakeServices() as fake:
...     fake.api.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from .fake_refinebio import RefineBioRoutes, _Dataset

__all__ = [
    "USER_SETTINGS",
    "FakeServices",
    "isolate_remote_settings",
    "retitled",
    "split_experiment_download",
]

_NO_LENGTH = "X-Fake-No-Length"  # internal marker of FakeServices.answer(length=False)


#: The variables a test of ``rw.remote`` must not take from the user's environment.
USER_SETTINGS = (
    "REFINEBIO_TOKEN",
    "REFINEBIO_EMAIL",
    "REFINEBIO_BASE_URL",
    "REFINEWIDGETS_REFINEBIO_API",
    "REFINEWIDGETS_BGEE_FTP",
    "REFINEWIDGETS_HTTP_CONNECT_TIMEOUT",
    "REFINEWIDGETS_HTTP_DEADLINE",
    "REFINEWIDGETS_JSON_MAX_MB",
    "REFINEWIDGETS_HTTP_MIN_RATE",
)


def isolate_remote_settings(monkeypatch, folder: str | Path, *, retries: int = 1) -> Path:
    """Give a test its own download cache and pyrefinebio config file under ``folder``, none of
    the user's token, e-mail, addresses or limits (:data:`USER_SETTINGS`), ``retries`` quick
    retries and a 10 s read timeout; ``monkeypatch`` is pytest's. Returns ``folder``.

    Examples
    --------
    >>> class Patch(dict):  # records what pytest's monkeypatch would set (None: removed)
    ...     def setenv(self, k, v): self[k] = v
    ...     def delenv(self, k, raising=True): self[k] = None
    >>> patch = Patch()
    >>> folder = isolate_remote_settings(patch, "/tmp/t")
    >>> patch["REFINEWIDGETS_CACHE"], patch["REFINEBIO_TOKEN"], patch["REFINEWIDGETS_HTTP_RETRIES"]
    ('/tmp/t/cache', None, '1')
    """
    folder = Path(folder)
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(folder / "cache"))
    monkeypatch.setenv("REFINEBIO_CONFIG_FILE", str(folder / "refinebio.yaml"))
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REFINEWIDGETS_HTTP_RETRIES", str(retries))
    monkeypatch.setenv("REFINEWIDGETS_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("REFINEWIDGETS_HTTP_TIMEOUT", "10")
    return folder


def split_experiment_download(path: str | Path) -> dict[str, bytes]:
    """``{experiment: zip bytes}``: an EXPERIMENT-aggregated refine.bio download cut into one
    download per experiment, as refine.bio builds for a dataset ``{acc: ["ALL"]}``."""
    out = {}
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("aggregated_metadata.json"))
        for acc, exp in meta["experiments"].items():
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as w:
                rows = []
                for info in z.infolist():
                    name = info.filename
                    copy = zipfile.ZipInfo(name, date_time=info.date_time)
                    copy.compress_type = info.compress_type  # writestr changes its ZipInfo
                    if name.startswith(f"{acc}/"):
                        w.writestr(copy, z.read(name))
                        if name.endswith(".tsv") and "/metadata_" in name:
                            lines = z.read(name).decode("utf-8").splitlines()[1:]
                            rows = [line.split("\t")[0] for line in lines if line]
                    elif name in ("README.md", "LICENSE.TXT"):
                        w.writestr(copy, z.read(name))
                filtered = {}
                if "filtered_samples_metadata.json" in z.namelist():
                    every = json.loads(z.read("filtered_samples_metadata.json"))
                    filtered = {
                        k: v for k, v in every.items() if v.get("experiment_accession_code") == acc
                    }
                if filtered:
                    w.writestr("filtered_samples_metadata.json", json.dumps(filtered, indent=4))
                    lines = z.read("filtered_samples_metadata.tsv").decode("utf-8").split("\r\n")
                    keep = [lines[0]] + [x for x in lines[1:] if f"\t{acc}\t" in x]
                    w.writestr("filtered_samples_metadata.tsv", "\r\n".join(keep) + "\r\n")
                sub = dict(meta)
                sub["experiments"] = {acc: exp}
                sub["samples"] = {s: v for s, v in meta["samples"].items() if s in rows}
                sub["num_experiments"], sub["num_samples"] = 1, len(sub["samples"])
                w.writestr("aggregated_metadata.json", json.dumps(sub, indent=4, sort_keys=True))
            out[acc] = buf.getvalue()
    return out


def retitled(download: bytes, accession: str, title: str) -> bytes:
    """A per-experiment download (zip bytes) whose experiment has another title, as refine.bio
    would send it (names from a service are data: tests give them markup)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(download)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "aggregated_metadata.json":
                meta = json.loads(data)
                meta["experiments"][accession]["title"] = title
                data = json.dumps(meta, indent=4, sort_keys=True).encode()
            dst.writestr(info, data)
    return out.getvalue()


@dataclass
class _Rule:
    prefix: str
    status: int = 0
    times: int = 0
    delay: float = 0.0
    cut_after: int | None = None
    retry_after: str | None = "0"
    pause: float = 0.0
    chunk: int = 0
    header_pause: float = 0.0


@dataclass
class FakeServices:
    """The server. Give it refine.bio experiment downloads and a Bgee FTP folder tree.

    Parameters
    ----------
    experiments
        ``{accession: zip bytes}`` (see :func:`split_experiment_download`).
    files
        Other files to serve: ``{url path: bytes or Path}`` (compendia, QN targets).
    ftp_root
        A folder served under ``/ftp/current/`` with Apache-style index pages.
    processing_polls
        GETs of a started dataset before refine.bio reports it processed.
    """

    experiments: Mapping[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes | Path] = field(default_factory=dict)
    ftp_root: Path | None = None
    processing_polls: int = 2
    compendia: list = field(default_factory=list)
    qn_targets: dict[str, str] = field(default_factory=dict)  # organism -> url path
    #: Organisms refine.bio has a QN target for, for ``["ALL"]`` (None: every organism).
    qn_organisms: set[str] | None = None
    #: Samples refine.bio lists but has not processed (``is_processed`` false).
    unprocessed: set[str] = field(default_factory=set)
    #: Where ``next`` links point (refine.bio's are built behind a proxy: ``http://``).
    link_host: str | None = "http://api.refine.bio"
    #: A ``next`` link pointing at the page itself (a server in a loop).
    self_next: bool = False
    #: Serve ``ETag`` and ``Last-Modified`` with files (False: no validators to resume with).
    etags: bool = True

    def __post_init__(self) -> None:
        self.tokens: dict[str, bool] = {}
        self.datasets: dict[str, _Dataset] = {}
        self.failed: dict[str, str] = {}  # experiment -> failure_reason
        self.bad_sha1: set[str] = set()  # experiments whose announced sha1 is wrong
        self.bad_size: set[str] = set()
        self.rules: list[_Rule] = []
        self.gates: list[tuple[str, threading.Event]] = []
        self.answers: list[list] = []  # [prefix, status, body bytes, content type, headers, times]
        self.requests: list[tuple[str, str, dict]] = []
        #: ``(method, path, {parameter: [values]})`` of every request (the query asked for).
        self.queries: list[tuple[str, str, dict]] = []
        self.bodies: list[tuple[str, str, dict, bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control ---------------------------------------------------------------------------

    def start(self) -> FakeServices:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        server = self._server
        threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.02), daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api(self) -> str:
        return self.url + "/v1/"

    @property
    def ftp(self) -> str:
        return self.url + "/ftp/current/"

    def fail(self, prefix: str, status: int, times: int = 1, *, retry_after: str | None = "0"):
        """Answer the next ``times`` requests under ``prefix`` with ``status``."""
        self.rules.append(_Rule(prefix, status=status, times=times, retry_after=retry_after))

    def delay(self, prefix: str, seconds: float, times: int = 10**9) -> None:
        """Wait ``seconds`` before answering requests under ``prefix``."""
        self.rules.append(_Rule(prefix, delay=seconds, times=times))

    def hold(self, prefix: str) -> threading.Event:
        """Keep every answer under ``prefix`` waiting until the returned event is set (at most
        60 s): what a client does while a service has not answered yet."""
        gate = threading.Event()
        self.gates.append((prefix, gate))
        return gate

    def cut(self, prefix: str, after: int, times: int = 1) -> None:
        """Close the connection after ``after`` body bytes of the next file downloads."""
        self.rules.append(_Rule(prefix, cut_after=after, times=times))

    def throttle(self, prefix: str, chunk: int, pause: float, times: int = 10**9) -> None:
        """Send the files under ``prefix`` ``chunk`` bytes at a time, ``pause`` seconds apart
        (a slow download, to cancel in the middle)."""
        self.rules.append(_Rule(prefix, pause=pause, chunk=max(1, int(chunk)), times=times))

    def redirect(self, prefix: str, location: str, *, status: int = 302, times: int = 10**9):
        """Answer requests under ``prefix`` with a redirect to ``location`` (``{path}`` in it
        is replaced by the path asked for, query included)."""
        headers = {"Location": location}
        self.answers.append([prefix, status, b"", "text/html", headers, times])

    def answer(
        self,
        prefix: str,
        body,
        *,
        status: int = 200,
        content_type: str = "application/json",
        times: int = 10**9,
        length: bool = True,
    ) -> None:
        """Answer requests under ``prefix`` with ``body`` (bytes as they are; anything else as
        JSON): wrong types, a huge page, an HTML page where an archive was expected.
        ``length=False`` sends no ``Content-Length``: the body ends when the connection closes
        (a size cap must then count what arrives)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {} if length else {_NO_LENGTH: "1"}
        self.answers.append([prefix, status, data, content_type, headers, times])

    def trickle(self, prefix: str, chunk: int = 1, pause: float = 0.05, times: int = 10**9):
        """Send every reply under ``prefix`` (JSON, pages, files) ``chunk`` bytes at a time,
        ``pause`` seconds apart: a reply that never stalls long enough for a read timeout."""
        self.throttle(prefix, chunk, pause, times)

    def trickle_headers(self, prefix: str, pause: float = 0.05, times: int = 10**9) -> None:
        """Answer requests under ``prefix`` with a status line and headers that never end, one
        byte every ``pause`` seconds: a client's read timeout never fires, only a deadline."""
        self.rules.append(_Rule(prefix, header_pause=pause, times=times))

    def activated_token(self) -> str:
        token = str(uuid.uuid4())
        self.tokens[token] = True
        return token

    def seen(self, method: str, prefix: str) -> list[dict]:
        """The headers of the logged requests ``method`` under ``prefix``."""
        return [h for m, p, h in self.requests if m == method and p.startswith(prefix)]

    def _rule(self, path: str, kind: str) -> _Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and path.startswith(rule.prefix) and bool(getattr(rule, kind)):
                    rule.times -= 1
                    return rule
        return None

    def _answer(self, path: str) -> list | None:
        with self._lock:
            for canned in self.answers:
                if canned[5] > 0 and path.startswith(canned[0]):
                    canned[5] -= 1
                    return canned
        return None

    def _file_bytes(self, where: str) -> bytes:
        value = self.files[where]
        return value if isinstance(value, bytes) else Path(value).read_bytes()

    # -- refine.bio ------------------------------------------------------------------------

    def _meta(self, acc: str) -> dict:
        with zipfile.ZipFile(io.BytesIO(self.experiments[acc])) as z:
            return json.loads(z.read("aggregated_metadata.json"))

    def experiment_document(self, acc: str) -> dict:
        meta = self._meta(acc)
        exp = meta["experiments"][acc]
        samples = meta["samples"]
        platforms = sorted({s.get("refinebio_platform", "") for s in samples.values()})
        return {
            "id": abs(hash(acc)) % 10**6,
            "title": exp.get("title", ""),
            "publication_title": exp.get("publication_title", ""),
            "description": exp.get("description", ""),
            "technology": str(exp.get("technology", "")).lower(),
            "accession_code": acc,
            "alternate_accession_code": "",
            "submitter_institution": exp.get("submitter_institution", ""),
            "has_publication": bool(exp.get("has_publication")),
            "publication_doi": exp.get("publication_doi", ""),
            "publication_authors": [],
            "sample_metadata_fields": ["sex", "specimen_part", "disease"],
            "platform_names": platforms,
            "platform_accession_codes": [p.rsplit("(", 1)[-1].rstrip(")") for p in platforms],
            "organism_names": exp.get("organisms", []),
            "downloadable_organism_names": exp.get("organisms", []),
            "pubmed_id": exp.get("pubmed_id", ""),
            "num_total_samples": len(samples),
            "num_processed_samples": len(set(samples) - self.unprocessed),
            "num_downloadable_samples": len(set(samples) - self.unprocessed),
            "source_first_published": exp.get("source_first_published", ""),
        }

    def sample_records(self, acc: str) -> list[dict]:
        rows = []
        for s, v in self._meta(acc)["samples"].items():
            rows.append(
                {
                    "id": abs(hash(s)) % 10**6,
                    "title": v.get("refinebio_title", ""),
                    "accession_code": s,
                    "source_database": v.get("refinebio_source_database", ""),
                    "organism": {"name": v.get("refinebio_organism", ""), "taxonomy_id": 0},
                    "platform_name": v.get("refinebio_platform", ""),
                    "technology": "",
                    "sex": v.get("refinebio_sex", ""),
                    "specimen_part": v.get("refinebio_specimen_part", ""),
                    "disease": v.get("refinebio_disease", ""),
                    "is_processed": s not in self.unprocessed,
                    "experiment_accession_codes": [acc],
                }
            )
        return rows

    def qn_organism_names(self) -> set[str]:
        """The organisms ``/v1/qn_targets/`` lists: ``qn_organisms``, or (when None) those of
        ``qn_targets`` and of every sample served."""
        if self.qn_organisms is not None:
            return set(self.qn_organisms)
        samples = {r["organism"]["name"] for a in self.experiments for r in self.sample_records(a)}
        return set(self.qn_targets) | samples

    def expand_all(self, acc: str) -> list[str]:
        """refine.bio's ``["ALL"]``: the processed samples of organisms with a QN target."""
        return [
            r["accession_code"]
            for r in self.sample_records(acc)
            if r["is_processed"] and r["organism"]["name"] in self.qn_organism_names()
        ]

    def download_of(self, acc: str, samples: list[str]) -> bytes:
        """The experiment's download holding ``samples`` only (the others' columns and rows
        dropped; the experiment still lists every sample, as refine.bio's
        ``Experiment.to_metadata_dict`` does)."""
        body = self.experiments[acc]
        if set(samples) >= set(self._meta(acc)["samples"]):
            return body
        keep = set(samples)
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(body)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                name = info.filename
                if name == f"{acc}/{acc}.tsv":
                    rows = [line.split("\t") for line in data.decode().split("\n")]
                    cols = [i for i, c in enumerate(rows[0]) if i == 0 or c in keep]
                    data = "\n".join(
                        "\t".join(r[i] for i in cols) if len(r) > 1 else "\t".join(r) for r in rows
                    ).encode()
                elif name == f"{acc}/metadata_{acc}.tsv":
                    lines = data.decode().split("\n")
                    data = "\n".join(
                        [lines[0]] + [x for x in lines[1:] if not x or x.split("\t")[0] in keep]
                    ).encode()
                elif name == "aggregated_metadata.json":
                    meta = json.loads(data)
                    meta["samples"] = {k: v for k, v in meta["samples"].items() if k in keep}
                    meta["num_samples"] = len(meta["samples"])
                    data = json.dumps(meta, indent=4, sort_keys=True).encode()
                dst.writestr(info, data)
        return out.getvalue()

    def dataset_json(self, ds: _Dataset, token_ok: bool) -> dict:
        acc = next(iter(ds.data))
        state = {
            "id": ds.id,
            "data": ds.data,
            "aggregate_by": ds.aggregate_by,
            "scale_by": ds.scale_by,
            "quantile_normalize": ds.quantile_normalize,
            "is_processing": False,
            "is_processed": False,
            "is_available": False,
            "has_email": bool(ds.email),
            "expires_on": None,
            "s3_bucket": None,
            "s3_key": None,
            "success": None,
            "failure_reason": None,
            "created_at": "2026-01-01T00:00:00Z",
            "last_modified": "2026-01-01T00:00:00Z",
            "start": None,
            "size_in_bytes": None,
            "sha1": None,
            "quant_sf_only": False,
            "svd_algorithm": "NONE",
        }
        if ds.started:
            ds.polls += 1
            state["is_processing"] = True
            if ds.polls > self.processing_polls:
                state["is_processing"] = False
                if acc in self.failed:
                    state["success"], state["failure_reason"] = False, self.failed[acc]
                else:
                    body = self.download_of(acc, ds.data[acc])
                    sha1 = hashlib.sha1(body).hexdigest()
                    if acc in self.bad_sha1:
                        sha1 = "0" * 40
                    size = len(body) + (7 if acc in self.bad_size else 0)
                    state.update(
                        is_processed=True,
                        is_available=True,
                        success=True,
                        size_in_bytes=size,
                        sha1=sha1,
                        s3_bucket="data-refinery-s3-test",
                        s3_key=f"{ds.id}_{acc}.zip",
                    )
        if token_ok:
            state["download_url"] = (
                f"{self.url}/files/datasets/{ds.id}.zip" if state["is_processed"] else None
            )
        return state


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: fine
            super().handle_error(request, client_address)


def _human(size: int) -> str:
    for unit in ("", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size}{unit}" if unit == "" else f"{size:.1f}{unit}"
        size /= 1024
    return str(size)


class _Handler(RefineBioRoutes, BaseHTTPRequestHandler):
    fake: FakeServices
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        headers = dict(headers or {})
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if headers.pop(_NO_LENGTH, None):  # the body ends with the connection (HTTP/1.1 allows)
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        slow = self.fake._rule(self._path, "pause")
        if slow is None:
            self.wfile.write(body)
            return
        for i in range(0, len(body), slow.chunk):
            self.wfile.write(body[i : i + slow.chunk])
            self.wfile.flush()
            time.sleep(slow.pause)

    def _endless_headers(self, pause: float) -> None:
        self.close_connection = True
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: "
        try:
            for i in range(10**6):  # until the client gives up (at most ~14 h at 50 ms)
                self.wfile.write(head[i : i + 1] if i < len(head) else b"a")
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the client hung up
            return

    def _json(self, status: int, data, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _body(self) -> dict:
        try:
            data = json.loads(self._raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _token_ok(self) -> bool:
        return self.fake.tokens.get(self.headers.get("API-KEY", ""), False)

    def _serve_bytes(self, data: bytes, ctype: str, path: str) -> None:
        total = len(data)
        start = 0
        status = 200
        headers = {"Accept-Ranges": "bytes"}
        etag = f'"{hashlib.md5(data).hexdigest()}"'  # S3's ETag of a single-part object
        if self.fake.etags:
            headers["ETag"] = etag
            headers["Last-Modified"] = "Tue, 14 Nov 2023 22:13:00 GMT"
        rng = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if if_range is not None and (not self.fake.etags or if_range != etag):
            rng = ""  # RFC 9110 13.1.5: the validator does not match: the whole (new) file
        if rng.startswith("bytes="):
            first = rng[len("bytes=") :].split("-")[0]
            start = int(first or 0)
            if start >= total:
                self._send(416, b"", ctype, {"Content-Range": f"bytes */{total}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        body = data[start:]
        slow = self.fake._rule(path, "pause")
        rule = self.fake._rule(path, "cut_after")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if rule is not None:
            self.wfile.write(body[: rule.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        if slow is not None:
            for i in range(0, len(body), slow.chunk):
                self.wfile.write(body[i : i + slow.chunk])
                self.wfile.flush()
                time.sleep(slow.pause)
            return
        self.wfile.write(body)

    def _handle(self) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        path, params = split.path, parse_qs(split.query)
        fake.requests.append((self.command, path, dict(self.headers)))
        fake.queries.append((self.command, path, params))
        self._raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake.bodies.append((self.command, path, dict(self.headers), self._raw))
        self._path = path
        canned = fake._answer(path)
        if canned is not None:
            _, status, body, ctype, headers, _ = canned
            if "Location" in headers:
                headers = {"Location": headers["Location"].replace("{path}", self.path)}
            self._send(status, body, ctype, headers)
            return
        rule = fake._rule(path, "header_pause")
        if rule is not None:
            self._endless_headers(rule.header_pause)
            return
        for prefix, gate in list(fake.gates):
            if path.startswith(prefix):
                gate.wait(60)
        rule = fake._rule(path, "delay")
        if rule is not None:
            time.sleep(rule.delay)
        rule = fake._rule(path, "status")
        if rule is not None:
            headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
            detail = "Request was throttled." if rule.status == 429 else "Server Error"
            self._json(rule.status, {"detail": detail}, headers)
            return
        if path.startswith("/v1/"):
            self._refinebio(path[len("/v1/") :], params)
        elif path.startswith("/files/"):
            self._file(path)
        elif path.startswith("/ftp/current/") and fake.ftp_root is not None:
            self._ftp(path, path[len("/ftp/current/") :])
        else:
            self._json(404, {"detail": "Not found."})

    do_GET = do_POST = do_PUT = do_HEAD = _handle

    # -- files and FTP ---------------------------------------------------------------------

    def _file(self, path: str) -> None:
        fake = self.fake
        if path.startswith("/files/datasets/"):
            ds = fake.datasets.get(path[len("/files/datasets/") :].removesuffix(".zip"))
            if ds is None or not ds.started:
                self._json(404, {"detail": "Not found."})
                return
            acc = next(iter(ds.data))
            self._serve_bytes(fake.download_of(acc, ds.data[acc]), "application/zip", path)
        elif path in fake.files:
            self._serve_bytes(fake._file_bytes(path), "application/octet-stream", path)
        else:
            self._json(404, {"detail": "Not found."})

    def _ftp(self, path: str, rel: str) -> None:
        root = self.fake.ftp_root.resolve()
        target = (root / rel).resolve()
        if root != target and root not in target.parents or not target.exists():
            self._send(404, b"<html><body><h1>Not Found</h1></body></html>", "text/html")
            return
        if target.is_file():
            self._serve_bytes(target.read_bytes(), "application/octet-stream", path)
            return
        if not path.endswith("/"):
            self._send(301, b"", "text/html", {"Location": path + "/"})
            return
        rows = ['<a href="/ftp/current/">Parent Directory</a>                             -']
        for child in sorted(target.iterdir()):
            name = child.name + ("/" if child.is_dir() else "")
            size = "-" if child.is_dir() else _human(child.stat().st_size)
            rows.append(
                f'<a href="{quote(name)}">{name}</a>{" " * max(1, 50 - len(name))}'
                f"2023-11-14 22:13  {size:>6}"
            )
        page = (
            f'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
            f"  <title>Index of {path}</title>\n </head>\n <body>\n<h1>Index of {path}</h1>\n"
            '<pre><a href="?C=N;O=D">Name</a>                    <a href="?C=M;O=A">Last '
            'modified</a>      <a href="?C=S;O=A">Size</a>  <hr>'
            + "\n".join(rows)
            + "\n<hr></pre>\n</body></html>\n"
        )
        self._send(200, page.encode(), "text/html;charset=UTF-8")
