"""The refine.bio half of :class:`~.fake_services.FakeServices`: its API routes (v1).

Answers in the shapes of refine.bio's own views and serializers (AlexsLemonade/refinebio commit
288d43cad259daecc95d6a3d43f74fd92ccbf57d, ``api/data_refinery_api/``): ``urls.py`` for the
routes; ``views/experiment_document.py`` for search (``filter_fields``, ``faceted_search_fields``,
``ExperimentDocumentSerializer``); ``pagination.py`` and ``settings.py`` for limit/offset pages
(25 by default, at most 1000) with absolute ``next``/``previous`` links built from the request, as
DRF does; ``views/experiment.py`` ``DetailedExperimentSerializer``; ``views/sample.py``
``DetailedSampleSerializer``; ``views/qn_targets.py`` (a plain list, and ``QNTargetSerializer``);
``views/compendium_result.py``; ``views/api_token.py``; ``views/dataset.py``
(``DatasetSerializer``, ``convert_ALL_to_accessions``, and its 400s ``{error_type, message,
details}``). :class:`RefineBioRoutes` is a base class of the server's request handler, which
gives it ``fake`` (the :class:`~.fake_services.FakeServices`), ``_json``, ``_body``,
``_token_ok`` and ``_serve_bytes``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["RefineBioRoutes"]

_TERMS = "By activating this token you agree to refine.bio's terms of use (test server)."


@dataclass
class _Dataset:
    id: str
    data: dict
    aggregate_by: str
    scale_by: str
    quantile_normalize: bool
    started: bool = False
    polls: int = 0
    email: str = ""


def _page(
    results: list, params: dict, base: str, extra: dict | None = None, *, self_next: bool = False
) -> dict:
    limit = min(int(params.get("limit", ["25"])[0]), 1000)  # settings.py PAGE_SIZE, max_limit
    offset = int(params.get("offset", ["0"])[0])
    chunk = results[offset : offset + limit]

    def link(off):
        query = {k: v for k, v in params.items() if k not in ("limit", "offset")}
        query.update(limit=[str(limit)], offset=[str(offset if self_next else off)])
        return f"{base}?{urlencode(query, doseq=True)}"

    return {
        "count": len(results),
        "next": link(offset + limit) if offset + limit < len(results) else None,
        "previous": link(max(offset - limit, 0)) if offset else None,
        "results": chunk,
        **(extra or {}),
    }


class RefineBioRoutes:
    """The ``/v1/`` routes (see the module)."""

    # -- refine.bio ------------------------------------------------------------------------

    def _refinebio(self, route: str, params: dict) -> None:
        fake = self.fake
        parts = [p for p in route.split("/") if p]
        method = self.command
        base = (fake.link_host or fake.url) + "/v1/" + route
        if parts == ["search"]:
            docs = [fake.experiment_document(a) for a in sorted(fake.experiments)]
            text = (params.get("search") or [""])[0].lower()
            if text:
                docs = [
                    d
                    for d in docs
                    if text in f"{d['title']} {d['description']} {d['accession_code']}".lower()
                ]
            for key, field_ in (
                ("technology", "technology"),
                ("organism", "organism_names"),
                ("platform", "platform_accession_codes"),
            ):
                wanted = params.get(key)
                if wanted:
                    docs = [
                        d
                        for d in docs
                        if set(wanted)
                        & set(d[field_] if isinstance(d[field_], list) else [d[field_]])
                    ]
            if "has_publication" in params:
                flag = params["has_publication"][0] == "true"
                docs = [d for d in docs if d["has_publication"] == flag]
            facets: dict[str, dict] = {
                "technology": {},
                "downloadable_organism_names": {},
                "platform_accession_codes": {},
                "has_publication": {},
            }
            for d in docs:
                n = d["num_downloadable_samples"]
                for key, values in (
                    ("technology", [d["technology"]]),
                    ("downloadable_organism_names", d["downloadable_organism_names"]),
                    ("platform_accession_codes", d["platform_accession_codes"]),
                    ("has_publication", [str(d["has_publication"]).lower()]),
                ):
                    for v in values:
                        facets[key][v] = facets[key].get(v, 0) + n
            self._json(200, _page(docs, params, base, {"facets": facets}, self_next=fake.self_next))
        elif len(parts) == 2 and parts[0] == "experiments":
            if parts[1] not in fake.experiments:
                self._json(404, {"detail": "Not found."})
            else:
                doc = fake.experiment_document(parts[1])
                doc["samples"] = [  # DetailedExperimentSampleSerializer
                    {
                        "accession_code": s["accession_code"],
                        "platform_name": s["platform_name"],
                        "pretty_platform": s["platform_name"],
                        "technology": s["technology"],
                        "is_processed": s["is_processed"],
                        "is_unable_to_be_processed": False,
                    }
                    for s in fake.sample_records(parts[1])
                ]
                self._json(200, doc)
        elif parts == ["samples"]:
            acc = (params.get("experiment_accession_code") or [None])[0]
            if acc is not None and acc not in fake.experiments:
                self._json(404, {"detail": "Not found."})
                return
            accs = [acc] if acc else sorted(fake.experiments)
            rows = [r for a in accs for r in fake.sample_records(a)]
            self._json(200, _page(rows, params, base, self_next=fake.self_next))
        elif len(parts) == 2 and parts[0] == "samples":
            rows = [r for a in fake.experiments for r in fake.sample_records(a)]
            found = [r for r in rows if r["accession_code"] == parts[1]]
            self._json(*((200, found[0]) if found else (404, {"detail": "Not found."})))
        elif parts == ["organisms"]:
            names = sorted(
                {o for a in fake.experiments for o in fake._meta(a)["experiments"][a]["organisms"]}
            )
            self._json(200, _page([{"name": n, "taxonomy_id": 0} for n in names], params, base))
        elif parts == ["qn_targets"]:
            names = sorted(fake.qn_organism_names())
            self._json(200, [{"name": n, "taxonomy_id": 0} for n in names])
        elif len(parts) == 2 and parts[0] == "qn_targets":
            where = fake.qn_targets.get(parts[1].upper())
            if where is None:
                self._json(404, {"detail": "Don't have a target for that organism!"})
                return
            data = fake._file_bytes(where)
            self._json(
                200,
                {
                    "id": 1,
                    "filename": f"{parts[1].lower()}_target.tsv",
                    "size_in_bytes": len(data),
                    "is_qn_target": True,
                    "sha1": hashlib.sha1(data).hexdigest(),
                    "s3_bucket": "data-refinery-s3-test",
                    "s3_key": "target.tsv",
                    "s3_url": fake.url + where,
                    "created_at": "2026-01-01T00:00:00Z",
                    "last_modified": "2026-01-01T00:00:00Z",
                    "result": {"id": 1},
                },
            )
        elif parts == ["compendia"]:
            rows = []
            for c in fake.compendia:
                org = (params.get("primary_organism__name") or [c["organism"]])[0]
                qsf = (params.get("quant_sf_only") or [str(c["quant_sf_only"]).lower()])[0]
                if org != c["organism"] or qsf != str(c["quant_sf_only"]).lower():
                    continue
                data = fake._file_bytes(c["path"])
                cf = {
                    "id": c["id"],
                    "filename": c["filename"],
                    "size_in_bytes": len(data),
                    "is_smashable": False,
                    "is_qc": False,
                    "sha1": hashlib.sha1(data).hexdigest(),
                    "s3_bucket": "data-refinery-s3-test",
                    "s3_key": c["filename"],
                    "created_at": "2026-01-01T00:00:00Z",
                    "last_modified": "2026-01-01T00:00:00Z",
                }
                if self._token_ok():
                    cf["download_url"] = fake.url + c["path"]
                rows.append(
                    {
                        "id": c["id"],
                        "primary_organism_name": c["organism"],
                        "organism_names": [c["organism"]],
                        "svd_algorithm": "ARPACK",
                        "quant_sf_only": c["quant_sf_only"],
                        "compendium_version": c.get("version", 1),
                        "computed_file": cf,
                    }
                )
            self._json(200, _page(rows, params, base))
        elif parts == ["token"] and method == "POST":
            token = str(uuid.uuid4())
            fake.tokens[token] = False
            self._json(201, {"id": token, "is_activated": False, "terms_and_conditions": _TERMS})
        elif len(parts) == 2 and parts[0] == "token":
            if parts[1] not in fake.tokens:
                self._json(404, {"detail": "Not found."})
                return
            if method == "PUT":
                fake.tokens[parts[1]] = bool(self._body().get("is_activated"))
            self._json(
                200,
                {
                    "id": parts[1],
                    "is_activated": fake.tokens[parts[1]],
                    "terms_and_conditions": _TERMS,
                },
            )
        elif parts == ["dataset"] and method == "POST":
            body = self._body()
            data = body.get("data")
            if not isinstance(data, dict):
                self._invalid("`data` must be a dict of lists.")
                return
            unknown = [k for k, v in data.items() if v == ["ALL"] and k not in fake.experiments]
            if unknown:
                self._invalid(
                    "Experiment(s) in dataset have zero downloadable samples. See `details` "
                    "for a full list",
                    unknown,
                )
                return
            data = {k: fake.expand_all(k) if v == ["ALL"] else v for k, v in data.items()}
            ds = _Dataset(
                str(uuid.uuid4()),
                data,
                body.get("aggregate_by", "EXPERIMENT"),
                body.get("scale_by", "NONE"),
                bool(body.get("quantile_normalize", True)),
            )
            fake.datasets[ds.id] = ds
            self._json(201, fake.dataset_json(ds, False))
        elif len(parts) == 2 and parts[0] == "dataset":
            ds = fake.datasets.get(parts[1])
            if ds is None:
                self._json(404, {"detail": "Not found."})
                return
            if method == "PUT":
                body = self._body()
                if body.get("start"):
                    if not self._token_ok():
                        self._invalid(
                            "You must provide an active API token ID", "", "invalid_token"
                        )
                        return
                    if not body.get("email_address"):
                        self._invalid("You must provide an email address.", "", "invalid_email")
                        return
                    ds.started, ds.email = True, body["email_address"]
            self._json(200, fake.dataset_json(ds, self._token_ok()))
        else:
            self._json(404, {"detail": "Not found."})

    def _invalid(self, message: str, details="", error_type: str = "invalid_data") -> None:
        self._json(400, {"error_type": error_type, "message": message, "details": details})
