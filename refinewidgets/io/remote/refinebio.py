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

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...core.names import check_accession
from ...errors import DatasetSpecError
from .cache import DownloadCache
from .config import (
    API_ENV,
    BASE_URL_ENV,
    DEFAULT_API,
    EMAIL_ENV,
    TOKEN_ENV,
    api_address,
    config_path,
)
from .config import write_config as _write_config
from .errors import (
    ResponseFormatError,
    ServiceUnavailableError,
)
from .http import Http, expect
from .refinebio_compendia import Compendia, check_organism_name
from .refinebio_datasets import (
    PRIVACY_URL,
    TERMS_URL,
    Datasets,
)

__all__ = [
    "API_ENV",
    "BASE_URL_ENV",
    "DEFAULT_API",
    "EMAIL_ENV",
    "PRIVACY_URL",
    "TERMS_URL",
    "TOKEN_ENV",
    "config_path",
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

_PAGE = 100  # results per request
_MAX_PAGE = 1000  # api/pagination.py: LimitedLimitOffsetPagination.max_limit
# api/views/experiment_document.py: filter_fields "technology" on the document's technology,
# a TextField lowercased by its analyzer (common/data_refinery_common/models/documents.py,
# html_strip_no_stop); the view's own example: ?technology=microarray&technology=rna-seq
_TECHNOLOGIES = {"microarray": "microarray", "rna-seq": "rna-seq", "rnaseq": "rna-seq"}


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


class RefineBio(Compendia, Datasets):
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
            params["organism"] = [check_organism_name(o) for o in params["organism"]]
        if technology is not None:
            params["technology"] = list(dict.fromkeys(_technology(t) for t in params["technology"]))
        if has_publication is not None:
            params["has_publication"] = "true" if has_publication else "false"
        if downloadable_only:
            params.setdefault("num_downloadable_samples__gt", 0)
        count, results, facets = self._pages("search/", params, max_results)
        return SearchResult(count, _search_table(results), _facet_counts(facets))

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


def _search_table(results: list) -> pd.DataFrame:
    """Search results (ExperimentDocumentSerializer's fields), checked, by accession."""
    for i, row in enumerate(results):
        expect(row.get("accession_code"), str, f"'accession_code' of search result {i}")
        for key in ("organism_names", "platform_names", "platform_accession_codes"):
            if row.get(key) is not None:
                expect(row[key], list, f"{key!r} of search result {i}")
        if row.get("num_downloadable_samples") is not None:
            expect(row["num_downloadable_samples"], int, f"'num_downloadable_samples' of {i}")
    frame = pd.DataFrame(results)
    if len(frame):
        frame["accession_code"] = [
            check_accession(a, "experiment", "refine.bio's search") for a in frame["accession_code"]
        ]
        frame = frame.set_index("accession_code", drop=False)
        frame.index.name = None
    return frame


def _facet_counts(facets: Mapping) -> dict[str, dict[str, int]]:
    """``{field: {value: number of samples}}`` of search/, checked."""
    clean = {}
    for key, counts in facets.items():
        expect(counts, dict, f"the facet {key!r} of search/")
        clean[str(key)] = {
            str(v): expect(n, int, f"the count of {v!r} in the facet {key!r}")
            for v, n in counts.items()
        }
    return clean


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
