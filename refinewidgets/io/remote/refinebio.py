"""A client of refine.bio's public API (v1): search, metadata, QN targets, compendia, tokens,
datasets.

Read from refine.bio's own code (``api/data_refinery_api``): ``/v1/search/`` (Elasticsearch:
``search=<text>``, filters ``technology``, ``organism``, ``platform``, ``has_publication``,
``num_downloadable_samples__gt``; ``limit``/``offset`` pages ``{count, next, previous, results,
facets}``, facets as ``{field: {value: samples}}``), ``/v1/experiments/<acc>/``,
``/v1/samples/?experiment_accession_code=``, ``/v1/qn_targets/[<ORGANISM>]``, ``/v1/compendia/``,
``/v1/token/`` (POST creates, PUT ``is_activated: true`` accepts the terms; the id goes in the
``API-KEY`` header) and ``/v1/dataset/`` (POST ``data``/``aggregate_by``/``scale_by``/
``quantile_normalize``; PUT ``start: true`` with ``email_address`` and an activated token; GET
shows ``is_processing``, ``is_processed``, ``success``, ``failure_reason`` and, with a token,
``download_url``, ``size_in_bytes`` and ``sha1``).

The unit fetched is **one experiment**: a dataset ``{acc: ["ALL"]}`` aggregated by EXPERIMENT,
without quantile normalization or scaling. refinewidgets aggregates and normalizes locally, so
changing an option never needs the server again, and each experiment's zip is cached once.

Configuration (pyrefinebio's, so one token serves both; AlexsLemonade/refinebio-py
``pyrefinebio/config.py``, commit 770d3f6efcc82c47a1b2ba885c564388403f340e: the environment first,
then the YAML file ``$REFINEBIO_CONFIG_FILE`` or ``~/.refinebio.yaml``, then the default): the
token is the ``token=`` argument, else ``$REFINEBIO_TOKEN``, else ``token:`` in the file. The API
address is the ``api=`` argument, else ``$REFINEWIDGETS_REFINEBIO_API`` (ours, for tests and the
app), else ``$REFINEBIO_BASE_URL``, else ``base_url:`` in the file, else
``https://api.refine.bio/v1/``. refine.bio needs an e-mail address to process a dataset:
``email=``, else ``$REFINEBIO_EMAIL``, else ``email:`` in the same YAML file.

Sources, all at AlexsLemonade/refinebio commit 288d43cad259daecc95d6a3d43f74fd92ccbf57d unless
said otherwise (``api/data_refinery_api/`` abbreviated ``api/``): the routes are
``api/urls.py``; search is ``api/views/experiment_document.py`` (filters ``filter_fields``,
facets ``faceted_search_fields``, fields ``ExperimentDocumentSerializer``); pages are
limit/offset (``api/pagination.py``: at most 1000 a page; ``settings.py``: 25 by default), and
the client computes each page's offset as pyrefinebio's ``util.py`` ``PaginatedList`` does,
never following the ``next`` link (DRF builds it from the request behind a TLS proxy, so it may
read ``http://``); experiments ``api/views/experiment.py`` (``DetailedExperimentSerializer``);
samples ``api/views/sample.py`` (``DetailedSampleSerializer``, ``SampleListView``); QN targets
``api/views/qn_targets.py``; tokens ``api/views/api_token.py``; datasets
``api/views/dataset.py`` (``DatasetSerializer``, ``DatasetView.convert_ALL_to_accessions``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from ...core.names import check_accession, check_organism
from ...errors import BuildCancelled, DatasetSpecError, SourceFormatError
from .cache import DownloadCache, safe_name
from .config import (
    API_ENV,
    BASE_URL_ENV,
    DEFAULT_API,
    EMAIL_ENV,
    TOKEN_ENV,
    api_address,
    config_path,
)
from .config import read_config as _read_config
from .config import write_config as _write_config
from .errors import (
    RemoteDatasetError,
    RemoteError,
    ResponseFormatError,
    SamplesLeftOutWarning,
    ServiceUnavailableError,
    TokenError,
)
from .http import Http, expect

__all__ = [
    "API_ENV",
    "BASE_URL_ENV",
    "DEFAULT_API",
    "RefineBio",
    "SearchResult",
    "api_address",
    "compendia",
    "create_token",
    "experiment",
    "fetch",
    "fetch_compendium",
    "fetch_qn_target",
    "qn_targets",
    "samples",
    "save_email",
    "search",
]

TERMS_URL = "https://www.refine.bio/terms"
PRIVACY_URL = "https://www.refine.bio/privacy"
_ID = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,63}")
_PAGE = 100  # results per request
_MAX_PAGE = 1000  # api/pagination.py: LimitedLimitOffsetPagination.max_limit
# api/views/experiment_document.py: filter_fields "technology" on the document's technology,
# a TextField lowercased by its analyzer (common/data_refinery_common/models/documents.py,
# html_strip_no_stop); the view's own example: ?technology=microarray&technology=rna-seq
_TECHNOLOGIES = {"microarray": "microarray", "rna-seq": "rna-seq", "rnaseq": "rna-seq"}
_HOW_TO_TOKEN = (
    "Get one once with `refinewidgets fetch refinebio --accept-terms ...` or, in Python, "
    "`rw.remote.refinebio.create_token(accept_terms=True)` (this accepts refine.bio's terms of "
    f"use, {TERMS_URL}, and privacy policy, {PRIVACY_URL}); it is saved in {{config}}. Or set "
    f"${TOKEN_ENV} to a token you activated."
)


def _technology(value: object) -> str:
    key = str(value).strip().lower().replace("_", "-").replace(" ", "-")
    if key not in _TECHNOLOGIES:
        raise DatasetSpecError(
            f"technology {value!r} is not one refine.bio's search knows: use 'microarray' or "
            "'rna-seq'."
        )
    return _TECHNOLOGIES[key]


def save_email(email: str) -> Path:
    """Keep ``email`` as the address refine.bio processes datasets for (``email:`` in the
    config file, where :meth:`RefineBio.email` reads it); returns the file's path."""
    return _write_config({"email": str(email)})


@dataclass
class SearchResult:
    """One search of refine.bio's experiments.

    Attributes
    ----------
    count
        How many experiments match on the server (more than ``experiments`` may hold).
    experiments
        The experiments fetched, indexed by accession: title, technology, organism_names,
        platform_names, num_downloadable_samples, ...
    facets
        ``{field: {value: number of samples}}`` for technology, downloadable_organism_names,
        platform_accession_codes and has_publication, as refine.bio counts them.
    """

    count: int
    experiments: pd.DataFrame
    facets: dict[str, dict[str, int]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"SearchResult({self.count} experiment(s) match, {len(self.experiments)} fetched; "
            f"facets: {', '.join(self.facets) or 'none'})"
        )


def _check_organism(value: str) -> str:
    return check_organism(str(value).upper().replace(" ", "_"), "refine.bio")


class RefineBio:
    """A refine.bio API client.

    Parameters
    ----------
    api
        The API root (default: :func:`~.config.api_address`, read as pyrefinebio reads it).
    token, email
        The API token and e-mail address (default: the environment, then the config file).
    cache_dir
        The cache folder (default: ``$REFINEWIDGETS_CACHE`` or the platform's cache folder).
    timeout, retries, backoff
        HTTP settings (see :func:`~refinewidgets.io.remote.http.http_settings`).

    Examples
    --------
    >>> RefineBio("http://127.0.0.1:9/v1/", token="x").api
    'http://127.0.0.1:9/v1/'
    """

    def __init__(
        self,
        api: str | None = None,
        *,
        token: str | None = None,
        email: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        address, where = api_address(api)
        self.http = Http(
            address,
            service="refine.bio",
            hint=f"the address in {where}",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        self._token = token
        self.http.add_secret(token)
        self._email = email
        self.cache = DownloadCache(cache_dir)

    @property
    def api(self) -> str:
        return self.http.base_url

    # ---- search and metadata -------------------------------------------------------------

    def _pages(
        self, path: str, params: dict, max_results: int | None, *, what: str = ""
    ) -> tuple[int, list, dict]:
        """``(count, results, facets)`` of a paginated list, the offsets computed here.

        Pages are asked by ``limit``/``offset`` until ``count`` (or ``max_results``) results
        came, as pyrefinebio's ``util.PaginatedList`` does; the ``next`` link is never
        followed (it may point elsewhere, or at itself).
        """
        params = dict(params)
        size = _count(params.pop("limit", _PAGE), "limit")
        offset = _count(params.pop("offset", 0), "offset")
        size = max(1, min(size, _MAX_PAGE, max_results or _MAX_PAGE))
        where = path.rstrip("/") + "/"

        def page_at(off: int) -> tuple[int, list, object]:
            page = self.http.json(path, params={**params, "limit": size, "offset": off}, what=what)
            expect(page, dict, f"the page of {where}")
            if "results" not in page or "count" not in page:
                raise ResponseFormatError(
                    f"refine.bio answered {where} without 'count' and 'results' (its "
                    f"paginated lists have both): is {self.api} its API?"
                )
            count = expect(page["count"], int, f"'count' of {where}")
            results = expect(page["results"], list, f"'results' of {where}")
            for i, row in enumerate(results):
                expect(row, dict, f"results[{i}] of {where}")
            return count, results, page.get("facets")

        count, results, facets = page_at(offset)
        wanted = max(count - offset, 0)
        if max_results is not None:
            wanted = min(wanted, max_results)
        while len(results) < wanted:
            again, more, _ = page_at(offset + len(results))
            if again != count:
                raise ServiceUnavailableError(
                    f"refine.bio's list {where} changed while it was read ({count} then {again} "
                    "results). Try again."
                )
            if not more:  # fewer than it counted: what there is
                break
            results.extend(more)
        return count, results[:wanted], facets if isinstance(facets, dict) else {}

    def search(
        self,
        text: str | None = None,
        *,
        organism: str | Iterable[str] | None = None,
        technology: str | Iterable[str] | None = None,
        platform: str | Iterable[str] | None = None,
        has_publication: bool | None = None,
        downloadable_only: bool = True,
        filters: Mapping[str, Any] | None = None,
        max_results: int | None = 100,
    ) -> SearchResult:
        """Search experiments by text and filters; returns matches and facet counts.

        ``organism`` is refine.bio's name (``HOMO_SAPIENS``); ``technology`` ``microarray`` or
        ``rna-seq``; ``platform`` an accession (``hgu133plus2``); ``filters`` any other of the
        API's search filters. ``max_results=None`` follows every page.
        """
        params: dict[str, Any] = dict(filters or {})
        if text:
            params["search"] = text
        # api/views/experiment_document.py filter_fields: organism -> organism_names.raw (the
        # names as stored, HOMO_SAPIENS), technology -> technology (lowercased terms),
        # platform -> platform_accession_codes, has_publication, num_downloadable_samples__gt
        for name, value in (
            ("organism", organism),
            ("technology", technology),
            ("platform", platform),
        ):
            if value is not None:
                params[name] = [value] if isinstance(value, str) else list(value)
        if organism is not None:
            params["organism"] = [_check_organism(o) for o in params["organism"]]
        if technology is not None:
            params["technology"] = list(dict.fromkeys(_technology(t) for t in params["technology"]))
        if has_publication is not None:
            params["has_publication"] = "true" if has_publication else "false"
        if downloadable_only:
            params.setdefault("num_downloadable_samples__gt", 0)
        count, results, facets = self._pages("search/", params, max_results)
        for i, row in enumerate(results):  # ExperimentDocumentSerializer's fields
            expect(row.get("accession_code"), str, f"'accession_code' of search result {i}")
            for key in ("organism_names", "platform_names", "platform_accession_codes"):
                if row.get(key) is not None:
                    expect(row[key], list, f"{key!r} of search result {i}")
            if row.get("num_downloadable_samples") is not None:
                expect(row["num_downloadable_samples"], int, f"'num_downloadable_samples' of {i}")
        frame = pd.DataFrame(results)
        if len(frame):
            frame["accession_code"] = [
                check_accession(a, "experiment", "refine.bio's search")
                for a in frame["accession_code"]
            ]
            frame = frame.set_index("accession_code", drop=False)
            frame.index.name = None
        clean = {}
        for key, counts in facets.items():  # {field: {value: number of samples}}
            expect(counts, dict, f"the facet {key!r} of search/")
            clean[str(key)] = {
                str(v): expect(n, int, f"the count of {v!r} in the facet {key!r}")
                for v, n in counts.items()
            }
        return SearchResult(count, frame, clean)

    def experiment(self, accession: str) -> dict:
        """An experiment's metadata (``/v1/experiments/<accession>/``,
        ``DetailedExperimentSerializer``: ``samples`` lists ``{accession_code, is_processed,
        ...}``, plus ``num_downloadable_samples``)."""
        acc = check_accession(accession, "experiment", "your request")
        # api/urls.py (288d43ca): ^experiments/(?P<accession_code>.+)/$; api/views/experiment.py
        # DetailedExperimentSerializer: samples (views/relation_serializers.py
        # DetailedExperimentSampleSerializer: accession_code, is_processed, ...),
        # num_downloadable_samples
        body = self.http.json(f"experiments/{acc}/", what=f"the experiment {acc!r}")
        where = f"experiments/{acc}/"
        expect(body, dict, f"the answer of {where}")
        if body.get("samples") is not None:
            for i, row in enumerate(expect(body["samples"], list, f"'samples' of {where}")):
                expect(row, dict, f"samples[{i}] of {where}")
                expect(row.get("accession_code"), str, f"'accession_code' of samples[{i}]")
        if body.get("num_downloadable_samples") is not None:
            expect(body["num_downloadable_samples"], int, f"'num_downloadable_samples' of {where}")
        return body

    def sample(self, accession: str) -> dict:
        """A sample's metadata (``/v1/samples/<accession>/``)."""
        acc = check_accession(accession, "sample", "your request")
        # api/urls.py (288d43ca): ^samples/(?P<accession_code>.+)/$ (views/sample.py
        # DetailedSampleSerializer)
        return self.http.json(f"samples/{acc}/", what=f"the sample {acc!r}")

    def samples(
        self,
        experiment: str | None = None,
        *,
        filters: Mapping[str, Any] | None = None,
        max_results: int | None = None,
    ) -> pd.DataFrame:
        """Samples (``/v1/samples/``) of an experiment and/or matching ``filters`` (``organism__name``,
        ``technology``, ``is_processed``, ``specimen_part``, ...), indexed by accession."""
        params = dict(filters or {})
        what = "the samples"
        if experiment is not None:
            # api/views/sample.py (288d43ca) SampleListView: ?experiment_accession_code=; rows are
            # DetailedSampleSerializer's (organism {name, taxonomy_id}, is_processed, ...)
            params["experiment_accession_code"] = check_accession(
                experiment, "experiment", "your request"
            )
            what = f"the experiment {experiment!r}"
        count, results, _ = self._pages("samples/", params, max_results, what=what)
        frame = pd.DataFrame(results)
        if len(frame):
            frame = frame.set_index("accession_code", drop=False)
            frame.index.name = None
        return frame

    def organisms(self) -> list[str]:
        """The organism names refine.bio knows (``/v1/organisms/``)."""
        # api/urls.py (288d43ca): ^organisms/$ (OrganismListView, paginated; name, taxonomy_id)
        _, results, _ = self._pages("organisms/", {}, None)
        return [
            expect(r.get("name"), str, f"'name' of organisms/ result {i}")
            for i, r in enumerate(results)
        ]

    def qn_targets(self) -> list[str]:
        """The organisms that have a quantile-normalization target (``/v1/qn_targets/``).

        api/views/qn_targets.py ``QNTargetsAvailable``: a plain list (``paginator = None``) of
        ``OrganismRelationSerializer`` objects ``{name, taxonomy_id}``.
        """
        body = self.http.json("qn_targets/")  # api/urls.py (288d43ca): ^qn_targets/$
        results = body.get("results", body) if isinstance(body, Mapping) else body
        expect(results, list, "the answer of qn_targets/")
        return [
            expect(expect(r, dict, f"qn_targets/ item {i}").get("name"), str, f"'name' of {i}")
            for i, r in enumerate(results)
        ]

    def included_samples(self, experiment: str) -> pd.DataFrame:
        """What refine.bio will put in a download of ``{experiment: ["ALL"]}``, before asking.

        refine.bio replaces ``["ALL"]`` by the experiment's samples that are processed **and**
        whose organism has a quantile-normalization target, even when quantile normalization is
        off (api/views/dataset.py ``DatasetView.convert_ALL_to_accessions``:
        ``experiment.samples.filter(is_processed=True, organism__in=qn_organisms)``, refinebio
        commit 288d43ca). One row per sample of the experiment (indexed by accession) with
        ``organism``, ``is_processed``, ``included`` and ``reason`` (empty when included).

        Examples
        --------
        >>> rb = RefineBio()  # doctest: +SKIP
        >>> rb.included_samples("GSE1").query("not included")["reason"]  # doctest: +SKIP
        """
        table = self.samples(experiment)
        targets = set(self.qn_targets())
        rows = []
        for acc, rec in zip(table.index, table.to_dict("records")):
            organism = rec.get("organism")
            name = organism.get("name") if isinstance(organism, Mapping) else organism
            name = expect(name, str, f"the organism of the sample {acc!r}")
            processed = rec.get("is_processed") is True
            rows.append((acc, name, processed, *_left_out_reason(processed, name, targets)))
        frame = pd.DataFrame(
            rows, columns=["accession_code", "organism", "is_processed", "included", "reason"]
        ).set_index("accession_code", drop=False)
        frame.index.name = None
        return frame

    def cached_download(self, experiment: str) -> Path | None:
        """The cached, checked download of ``experiment``, or None when :meth:`fetch` would ask
        refine.bio for it (needs no network)."""
        acc = check_accession(experiment, "experiment", "your request")
        path = self.cache.path_for("refinebio", "experiments", f"{acc}.zip")
        return path if self.cache.record(path) is not None else None

    def left_out(self, experiment: str) -> dict[str, str]:
        """``{sample: reason}`` of the samples refine.bio left out of the cached download of
        ``experiment`` (recorded when it was fetched; empty when none or not fetched)."""
        acc = check_accession(experiment, "experiment", "your request")
        record = self.cache.record(self.cache.path_for("refinebio", "experiments", f"{acc}.zip"))
        left = (record or {}).get("left_out") or {}
        return {str(k): str(v) for k, v in left.items()} if isinstance(left, dict) else {}

    def qn_target(self, organism: str) -> dict:
        """The description of an organism's QN target file (``/v1/qn_targets/<ORGANISM>``)."""
        name = _check_organism(organism)
        # api/urls.py (288d43ca): ^qn_targets/(?P<organism_name>.+)$ (no trailing slash);
        # api/views/qn_targets.py QNTargetSerializer: filename, size_in_bytes, sha1, s3_url
        return self.http.json(f"qn_targets/{name}", what=f"a QN target for {name}")

    def fetch_qn_target(self, organism: str, *, progress=None, refresh: bool = False) -> Path:
        """Download an organism's QN target as ``qn_target_<ORGANISM>.tsv`` (which
        ``rw.open_catalog`` uses as that organism's target); cached."""
        name = _check_organism(organism)
        path = self.cache.path_for("refinebio", "qn_targets", f"qn_target_{name}.tsv")
        if not refresh and self.cache.record(path) is not None:
            return path
        info = self.qn_target(name)
        url = info.get("s3_url") or info.get("download_url")
        if not url:
            raise RemoteDatasetError(f"refine.bio describes the QN target of {name} without a URL.")
        return self.cache.download(
            self.http,
            _http_url(url),
            path,
            size=info.get("size_in_bytes"),
            checksum=_sha1(info),
            progress=progress,
            refresh=refresh,
        )

    def compendia(
        self, *, organism: str | None = None, quant_sf_only: bool | None = None, latest: bool = True
    ) -> pd.DataFrame:
        """Species compendia (``quant_sf_only=False``) and RNA-seq quantpendia (True): one row
        each with organism, version, file name, size and, with a token, its download URL."""
        # api/views/compendium_result.py (288d43ca) CompendiumResultListView: filterset_fields
        # primary_organism__name, quant_sf_only; latest_version=true; rows have
        # primary_organism_name, compendium_version, quant_sf_only and computed_file
        # {filename, size_in_bytes, sha1, download_url (only with a valid token)}
        params: dict[str, Any] = {}
        if organism is not None:
            params["primary_organism__name"] = _check_organism(organism)
        if quant_sf_only is not None:
            params["quant_sf_only"] = "true" if quant_sf_only else "false"
        if latest:
            params["latest_version"] = "true"
        token = self.token(required=False)
        # the token goes in the API-KEY header (api/views/api_token.py, 288d43ca; read as
        # request.META["HTTP_API_KEY"] in api/views/compendium_result.py)
        headers = {"API-KEY": token} if token else {}
        page = self.http.json("compendia/", params={"limit": 1000, **params}, headers=headers)
        results = page.get("results", []) if isinstance(page, Mapping) else page
        rows = []
        for r in results or []:
            cf = r.get("computed_file") or {}
            rows.append(
                {
                    "id": r.get("id"),
                    "organism": r.get("primary_organism_name"),
                    "quant_sf_only": bool(r.get("quant_sf_only")),
                    "compendium_version": r.get("compendium_version"),
                    "filename": cf.get("filename"),
                    "size_in_bytes": cf.get("size_in_bytes"),
                    "sha1": cf.get("sha1"),
                    "download_url": cf.get("download_url"),
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "id",
                "organism",
                "quant_sf_only",
                "compendium_version",
                "filename",
                "size_in_bytes",
                "sha1",
                "download_url",
            ],
        )

    def fetch_compendium(
        self, organism: str, *, quant_sf_only: bool = False, progress=None, refresh: bool = False
    ) -> Path:
        """Download the latest species compendium (or quantpendium) of ``organism``; cached.
        Needs an activated token."""
        name = _check_organism(organism)
        self.token()
        table = self.compendia(organism=name, quant_sf_only=quant_sf_only)
        kind = "quantpendium" if quant_sf_only else "compendium"
        if table.empty:
            raise RemoteDatasetError(
                f"refine.bio lists no {kind} for {name}; `rw.remote.refinebio.compendia()` shows "
                "the organisms that have one."
            )
        row = table.sort_values("compendium_version").iloc[-1]
        if not row["download_url"]:
            raise TokenError(
                f"refine.bio did not give a download URL for the {kind} of {name}: the token is "
                "not activated. " + _HOW_TO_TOKEN.format(config=config_path())
            )
        filename = safe_name(row["filename"] or f"{name}_{kind}.zip", "compendium file name")
        path = self.cache.path_for("refinebio", "compendia", filename)
        return self.cache.download(
            self.http,
            _http_url(row["download_url"]),
            path,
            size=_int(row["size_in_bytes"]),
            checksum=f"sha1:{row['sha1']}" if row["sha1"] else None,
            progress=progress,
            refresh=refresh,
        )

    # ---- token ---------------------------------------------------------------------------

    def token(self, *, required: bool = True) -> str | None:
        """The API token: the argument, ``$REFINEBIO_TOKEN`` or the config file; None or a
        TokenError (saying how to get one) when there is none."""
        token = self._token or os.environ.get(TOKEN_ENV) or _read_config().get("token")
        if token:
            token = str(token).strip()
            if not _ID.fullmatch(token):
                raise TokenError(
                    f"The refine.bio token {_masked(token)} is not a token id (a UUID): check "
                    f"${TOKEN_ENV}, the token= argument or 'token:' in {config_path()}."
                )
            self.http.add_secret(token)
            return token
        if required:
            raise TokenError(
                "refine.bio needs an API token to process and download datasets, and none is "
                "set. " + _HOW_TO_TOKEN.format(config=config_path())
            )
        return None

    def create_token(self, *, accept_terms: bool = False, save: bool = True) -> str:
        """Create a token and activate it, which accepts refine.bio's terms of use and privacy
        policy; only with ``accept_terms=True``. Saved in the config file with ``save``."""
        if accept_terms is not True:
            raise TokenError(
                "Creating a refine.bio token accepts its terms of use "
                f"({TERMS_URL}) and privacy policy ({PRIVACY_URL}). Read them, then call "
                "create_token(accept_terms=True) (command line: --accept-terms)."
            )
        # api/urls.py (288d43ca): ^token/$ (POST creates) and ^token/(?P<id>[0-9a-f-]+)/$;
        # api/views/api_token.py APITokenSerializer: id, is_activated (writable),
        # terms_and_conditions
        body = self.http.json("token/", method="POST", json={})
        token = str(body.get("id", "")) if isinstance(body, Mapping) else ""
        if not _ID.fullmatch(token):
            raise ResponseFormatError(
                "refine.bio answered POST token/ without a token id (its APITokenSerializer "
                f"writes 'id'); the answer had {sorted(body) if isinstance(body, dict) else body!r:.200}."
            )
        self.http.add_secret(token)
        self.http.json(f"token/{token}/", method="PUT", json={"is_activated": True})
        self._token = token
        if save:
            _write_config({"token": token})
        return token

    def check_token(self) -> str:
        """The token, checked with refine.bio (``/v1/token/<id>/``): it must exist and be activated."""
        token = self.token()
        # api/views/api_token.py: GET token/<id>/ -> {id, is_activated, terms_and_conditions}
        try:
            body = self.http.json(f"token/{token}/", what="the token")
        except RemoteError as exc:
            if "HTTP 404" in str(exc):
                raise TokenError(
                    f"refine.bio does not know the token {_masked(token)}. "
                    + _HOW_TO_TOKEN.format(config=config_path())
                ) from None
            raise
        expect(body, dict, "the answer of token/<id>/")
        if body.get("is_activated") is not True:
            raise TokenError(
                f"The refine.bio token {_masked(token)} exists but its terms of use were not "
                "accepted (is_activated is false). " + _HOW_TO_TOKEN.format(config=config_path())
            )
        return token

    def email(self) -> str:
        email = self._email or os.environ.get(EMAIL_ENV) or _read_config().get("email")
        if not email or "@" not in str(email):
            raise RemoteDatasetError(
                "refine.bio needs an e-mail address to process a dataset (it writes when the "
                f"dataset is ready): pass email=..., set ${EMAIL_ENV}, or add 'email: you@example.org' "
                f"to {config_path()}."
            )
        return str(email)

    # ---- datasets ------------------------------------------------------------------------

    def create_dataset(
        self,
        data: Mapping[str, list[str]],
        *,
        aggregate_by: str = "EXPERIMENT",
        scale_by: str = "NONE",
        quantile_normalize: bool = False,
    ) -> str:
        """Create a dataset (not started); returns its id."""
        # api/urls.py (288d43ca): ^dataset/$ (POST creates); api/views/dataset.py
        # DatasetSerializer fields data, aggregate_by, scale_by, quantile_normalize
        body = {
            "data": {
                check_accession(k, "experiment", "the dataset"): list(v) for k, v in data.items()
            },
            "aggregate_by": aggregate_by,
            "scale_by": scale_by,
            "quantile_normalize": bool(quantile_normalize),
        }
        answer = self.http.json("dataset/", method="POST", json=body)
        return _dataset_id(answer)

    def start_dataset(self, dataset_id: str) -> dict:
        """Start processing a dataset (needs an activated token and an e-mail address)."""
        ds = self.dataset(dataset_id)
        # api/views/dataset.py (288d43ca): a PUT with data (required), start (not a model field),
        # email_address (write-only); the token in the API-KEY header
        body = {"data": ds.get("data"), "start": True, "email_address": self.email()}
        return self.http.json(
            f"dataset/{_check_id(dataset_id)}/",
            method="PUT",
            json=body,
            headers={"API-KEY": self.token()},
        )

    def dataset(self, dataset_id: str) -> dict:
        """A dataset's state; with a token it includes ``download_url`` once processed."""
        token = self.token(required=False)
        state = self.http.json(
            f"dataset/{_check_id(dataset_id)}/",
            what=f"the dataset {dataset_id}",
            headers={"API-KEY": token} if token else {},
        )
        # DatasetSerializer: is_processing/is_processed booleans, success null until done,
        # failure_reason, size_in_bytes, sha1, download_url (only with a token)
        expect(state, dict, "the answer of dataset/<id>/")
        for key, kinds in (
            ("is_processing", bool),
            ("is_processed", bool),
            ("success", (bool, type(None))),
            ("failure_reason", (str, type(None))),
            ("size_in_bytes", (int, type(None))),
            ("sha1", (str, type(None))),
            ("download_url", (str, type(None))),
        ):
            if key in state:
                expect(state[key], kinds, f"{key!r} of the dataset {dataset_id}")
        return state

    def wait(
        self,
        dataset_ids: Mapping[str, str],
        *,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        progress=None,
        cancel: threading.Event | None = None,
    ) -> dict[str, dict]:
        """Poll ``{label: dataset id}`` until each is processed; ``{label: state}``. A failed
        dataset raises RemoteDatasetError with refine.bio's ``failure_reason``. Once ``cancel``
        (an event) is set, waiting stops before the next question to refine.bio, and during the
        pause between two, with :class:`~refinewidgets.errors.BuildCancelled` (the datasets
        stay on refine.bio: a later wait or fetch takes them up again)."""
        pending = dict(dataset_ids)
        done: dict[str, dict] = {}
        bar = _bar(progress, len(pending), "refine.bio processing", "dataset")
        start = time.monotonic()
        try:
            while pending:
                for label, ds_id in list(pending.items()):
                    _stop_if_cancelled(cancel, pending)
                    state = self.dataset(ds_id)
                    if state.get("success") is False or state.get("failure_reason"):
                        raise RemoteDatasetError(
                            f"refine.bio could not process {label} (dataset {ds_id}): "
                            f"{state.get('failure_reason') or 'no reason given'}. Try again later, or "
                            "ask refine.bio (requests@ccdatalab.org) quoting the dataset id."
                        )
                    if state.get("is_processed") and state.get("success") is not False:
                        done[label] = state
                        del pending[label]
                        if bar is not None:
                            bar.update(1)
                if pending:
                    if timeout is not None and time.monotonic() - start > timeout:
                        raise ServiceUnavailableError(
                            f"refine.bio is still processing {', '.join(pending)} after "
                            f"{timeout:g} s. Run the same command again later: it resumes "
                            "waiting for the same dataset(s)."
                        )
                    if cancel is None:
                        time.sleep(poll_interval)
                    else:
                        cancel.wait(poll_interval)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        return done

    def fetch(
        self,
        experiments: str | Iterable[str],
        *,
        out: str | os.PathLike | None = None,
        refresh: bool = False,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        progress=None,
        cancel: threading.Event | None = None,
    ) -> list[Path]:
        """One EXPERIMENT-aggregated zip per experiment (no QN, no scaling), cached; returns
        their paths (copies in ``out`` when given) for ``rw.open_catalog(*paths)``. Setting
        ``cancel`` (an event) stops the wait for refine.bio promptly (see :meth:`wait`)."""
        accs = [experiments] if isinstance(experiments, str) else list(experiments)
        if not accs:
            raise DatasetSpecError("Give at least one experiment accession to fetch.")
        accs = [check_accession(a, "experiment", "your request") for a in dict.fromkeys(accs)]
        paths = {a: self.cache.path_for("refinebio", "experiments", f"{a}.zip") for a in accs}
        missing = [a for a in accs if refresh or self.cache.record(paths[a]) is None]
        if missing:
            self._fetch_missing(missing, paths, poll_interval, timeout, progress, cancel)
        result = [paths[a] for a in accs]
        if out is not None:
            result = [self.cache.copy_to(p, out) for p in result]
        return result

    def _left_out(self, acc: str, info: Mapping, state: Mapping) -> dict[str, str]:
        """``{sample: reason}`` of the experiment's samples missing from the dataset's ``data``
        (refine.bio expands ``["ALL"]`` when the dataset is created; see
        :meth:`included_samples`)."""
        included = _included(acc, state)
        listed = [row["accession_code"] for row in info.get("samples") or ()]
        if included is None or not listed:
            return {}
        missing = [s for s in listed if s not in set(included)]
        if not missing:
            return {}
        try:
            known = self.included_samples(acc)["reason"].to_dict()
        except RemoteError:
            known = {}
        fallback = (
            "refine.bio left it out of the download (unprocessed, or its organism has no "
            "quantile-normalization target on refine.bio)"
        )
        return {s: known.get(s) or fallback for s in missing}

    def _fetch_missing(self, accs, paths, poll_interval, timeout, progress, cancel) -> None:
        infos = {}
        for acc in accs:  # a 404 names the experiment before anything is created
            info = infos[acc] = self.experiment(acc)
            if info.get("num_downloadable_samples") == 0:
                raise RemoteDatasetError(
                    f"refine.bio has no processed sample of {acc} to download "
                    "(num_downloadable_samples is 0)."
                )
        self.check_token()
        self.email()
        ids = {}
        for acc in accs:
            pending = _pending_path(paths[acc])
            ds_id = _read_pending(pending)
            if ds_id is not None:
                try:
                    state = self.dataset(ds_id)
                except RemoteError:
                    state = {"success": False}
                if state.get("success") is False:
                    ds_id = None
            if ds_id is None:
                ds_id = self.create_dataset({acc: ["ALL"]})
                self.start_dataset(ds_id)
                pending.parent.mkdir(parents=True, exist_ok=True)
                pending.write_text(json.dumps({"dataset_id": ds_id}), encoding="utf-8")
            ids[acc] = ds_id
        states = self.wait(
            ids, poll_interval=poll_interval, timeout=timeout, progress=progress, cancel=cancel
        )
        for acc in accs:
            state = states[acc]
            url = state.get("download_url")
            if not url:
                raise TokenError(
                    f"refine.bio processed {acc} (dataset {ids[acc]}) but gave no download URL: "
                    "the token is not activated. " + _HOW_TO_TOKEN.format(config=config_path())
                )
            left_out = self._left_out(acc, infos[acc], state)
            self.cache.download(
                self.http,
                _http_url(url),
                paths[acc],
                size=_int(state.get("size_in_bytes")),
                checksum=_sha1(state),
                progress=progress,
                refresh=True,
                what=f"the download of {acc}",
                extra={"left_out": left_out},
            )
            if left_out:
                shown = "; ".join(f"{k}: {v}" for k, v in list(left_out.items())[:3])
                warnings.warn(
                    f"refine.bio's download of {acc} holds {len(infos[acc]['samples']) - len(left_out)} "
                    f"of its {len(infos[acc]['samples'])} samples; {len(left_out)} were left out "
                    f"({shown}{' ...' if len(left_out) > 3 else ''}). A build lists them in "
                    f"filtered_samples; `RefineBio().left_out({acc!r})` lists them all.",
                    SamplesLeftOutWarning,
                    stacklevel=4,
                )
            with contextlib.suppress(FileNotFoundError):
                _pending_path(paths[acc]).unlink()


def _included(acc: str, state: Mapping) -> list[str] | None:
    """The samples refine.bio put in a dataset for ``acc`` (its ``data`` once ALL is expanded)."""
    data = state.get("data")
    if data is None:
        return None
    expect(data, dict, "'data' of the dataset")
    codes = data.get(acc)
    if codes is None or codes == ["ALL"]:
        return None
    expect(codes, list, f"the samples of {acc} in the dataset's 'data'")
    return [expect(c, str, f"a sample of {acc} in the dataset's 'data'") for c in codes]


def _bar(progress, total: int, desc: str, unit: str):
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
    if progress:
        progress.reset(total=total)
        return progress
    return None


def _stop_if_cancelled(cancel: threading.Event | None, pending: Mapping[str, str]) -> None:
    if cancel is not None and cancel.is_set():
        raise BuildCancelled(
            f"Cancelled while refine.bio prepares {', '.join(pending)}: its dataset(s) "
            f"{', '.join(pending.values())} are kept, and the next fetch waits for them again."
        )


def _pending_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.dataset.json")


def _read_pending(path: Path) -> str | None:
    try:
        ds_id = json.loads(path.read_text(encoding="utf-8")).get("dataset_id")
    except (OSError, ValueError, AttributeError):
        return None
    return ds_id if isinstance(ds_id, str) and _ID.fullmatch(ds_id) else None


def _check_id(dataset_id: str) -> str:
    if not isinstance(dataset_id, str) or not _ID.fullmatch(dataset_id):
        raise RemoteDatasetError(f"{dataset_id!r} is not a refine.bio dataset id (a UUID).")
    return dataset_id


def _dataset_id(answer) -> str:
    ds_id = answer.get("id") if isinstance(answer, Mapping) else None
    if not isinstance(ds_id, str) or not _ID.fullmatch(ds_id):
        raise ResponseFormatError(
            f"refine.bio answered a new dataset without an id: {str(answer)[:200]!r}"
        )
    return ds_id


def _http_url(url: object) -> str:
    text = str(url)
    if urlsplit(text).scheme not in ("http", "https"):
        raise SourceFormatError(f"refine.bio gave the download URL {text!r}, which is not http(s).")
    return text


def _sha1(info: Mapping) -> str | None:
    value = info.get("sha1")
    return (
        f"sha1:{value}"
        if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{40}", value)
        else None
    )


def _masked(token: str) -> str:
    """A token shown without its secret part: ``'…' + its last 4 characters``."""
    return f"ending in ...{str(token)[-4:]}" if len(str(token)) > 8 else "(hidden)"


def _left_out_reason(processed: bool, organism: str, targets: set[str]) -> tuple[bool, str]:
    """``(included, reason)`` of a sample in refine.bio's ``["ALL"]`` (convert_ALL_to_accessions)."""
    if not processed:
        return False, "refine.bio left it out of the download: it has not processed it"
    if organism not in targets:
        return False, (
            f"refine.bio left it out of the download: its organism {organism} has no "
            "quantile-normalization target on refine.bio (refine.bio includes only organisms "
            "that have one when it expands ALL)"
        )
    return True, ""


def _count(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DatasetSpecError(f"{name} {value!r} is not a whole number.") from None
    if number < 0:
        raise DatasetSpecError(f"{name} {value!r} must not be negative.")
    return number


def _int(value) -> int | None:
    try:
        return int(value) if value is not None and not pd.isna(value) else None
    except (TypeError, ValueError):
        return None


# ---- module-level verbs: a client from the environment per call ---------------------------


def search(text: str | None = None, **kwargs: Any) -> SearchResult:
    """Search refine.bio's experiments (see :meth:`RefineBio.search`).

    Examples
    --------
    >>> search("medulloblastoma", organism="HOMO_SAPIENS", technology="rna-seq")  # doctest: +SKIP
    """
    client_args = {k: kwargs.pop(k) for k in ("api", "token", "cache_dir") if k in kwargs}
    return RefineBio(**client_args).search(text, **kwargs)


def experiment(accession: str, *, api: str | None = None) -> dict:
    """An experiment's metadata (see :meth:`RefineBio.experiment`)."""
    return RefineBio(api).experiment(accession)


def samples(
    experiment: str | None = None, *, api: str | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Samples of an experiment or matching filters (see :meth:`RefineBio.samples`)."""
    return RefineBio(api).samples(experiment, **kwargs)


def qn_targets(*, api: str | None = None) -> list[str]:
    """Organisms with a QN target (see :meth:`RefineBio.qn_targets`)."""
    return RefineBio(api).qn_targets()


def fetch_qn_target(
    organism: str, *, api: str | None = None, cache_dir=None, **kwargs: Any
) -> Path:
    """Download an organism's QN target (see :meth:`RefineBio.fetch_qn_target`)."""
    return RefineBio(api, cache_dir=cache_dir).fetch_qn_target(organism, **kwargs)


def compendia(*, api: str | None = None, token: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """Species compendia and quantpendia (see :meth:`RefineBio.compendia`)."""
    return RefineBio(api, token=token).compendia(**kwargs)


def fetch_compendium(
    organism: str,
    *,
    api: str | None = None,
    token: str | None = None,
    cache_dir=None,
    **kwargs: Any,
) -> Path:
    """Download a species compendium (see :meth:`RefineBio.fetch_compendium`)."""
    return RefineBio(api, token=token, cache_dir=cache_dir).fetch_compendium(organism, **kwargs)


def create_token(*, accept_terms: bool = False, save: bool = True, api: str | None = None) -> str:
    """Create and activate a token, accepting refine.bio's terms (see :meth:`RefineBio.create_token`)."""
    return RefineBio(api).create_token(accept_terms=accept_terms, save=save)


def fetch(
    experiments: str | Iterable[str],
    *,
    api: str | None = None,
    token: str | None = None,
    email: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> list[Path]:
    """Fetch experiments as EXPERIMENT-aggregated zips (see :meth:`RefineBio.fetch`).

    Examples
    --------
    >>> paths = fetch(["GSE3167", "SRP012345"], email="me@example.org")  # doctest: +SKIP
    >>> cat = rw.open_catalog(*paths)  # doctest: +SKIP
    """
    client = RefineBio(api, token=token, email=email, cache_dir=cache_dir)
    return client.fetch(experiments, **kwargs)
