"""A real HTTP server on 127.0.0.1 answering as Ensembl's REST service does, for tests.

The two calls :mod:`refinewidgets.io.gene_symbols` makes: ``GET /info/data/`` (``{"releases":
[N]}``) and ``POST /lookup/id`` with ``{"ids": [...]}`` (``{id: {"id", "display_name",
"species", "object_type": "Gene"} or null}``; more than 1,000 ids is a 400 with ``{"error":
...}``, as Ensembl answers). ``genes`` maps ids to ``(symbol, species)`` (a symbol of None: a
gene without a display name). Every request is logged in ``requests`` as ``(method, path,
number of ids)``; ``fail_next`` makes the next N requests answer HTTP 503.

>>> import requests
>>> with FakeEnsembl({"ENSMUSG00000059552": ("Trp53", "mus_musculus")}) as fake:
...     r = requests.post(fake.url + "lookup/id", json={"ids": ["ENSMUSG00000059552", "X"]})
...     r.json()["ENSMUSG00000059552"]["display_name"], r.json()["X"]
('Trp53', None)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeEnsembl"]

MAX_IDS = 1000


class FakeEnsembl:
    """Ensembl's REST lookups over ``genes``; a context manager (``url`` ends with ``/``)."""

    def __init__(self, genes: Mapping[str, tuple[str | None, str]], *, release: int = 113) -> None:
        self.genes = dict(genes)
        self.release = release
        self.requests: list[tuple[str, str, int]] = []
        self.fail_next = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakeEnsembl:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _failing(self) -> bool:
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    self._send(503, {"error": "Service unavailable (injected)"})
                    return True
                return False

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, 0))
                if self._failing():
                    return
                if self.path.rstrip("/") == "/info/data":
                    self._send(200, {"releases": [fake.release]})
                else:
                    self._send(404, {"error": f"page not found: {self.path}"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    ids = json.loads(self.rfile.read(length) or b"{}").get("ids")
                except (ValueError, AttributeError):
                    ids = None
                fake.requests.append(("POST", self.path, len(ids or [])))
                if self._failing():
                    return
                if self.path.rstrip("/") != "/lookup/id":
                    self._send(404, {"error": f"page not found: {self.path}"})
                elif not isinstance(ids, list):
                    self._send(400, {"error": "Cannot find 'ids' key in your POST"})
                elif len(ids) > MAX_IDS:
                    self._send(400, {"error": f"POST message too large: max {MAX_IDS} ids"})
                else:
                    self._send(200, {str(i): self._gene(str(i)) for i in ids})

            @staticmethod
            def _gene(gene_id: str):
                if gene_id not in fake.genes:
                    return None
                symbol, species = fake.genes[gene_id]
                out = {"id": gene_id, "species": species, "object_type": "Gene"}
                if symbol is not None:
                    out["display_name"] = symbol
                return out

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
