"""refine.bio's quantile-normalization targets and species compendia: listed, described and
fetched into the download cache (the part of :class:`~.refinebio.RefineBio` that serves them).

Routes as in refine.bio's ``api/urls.py`` (commit 288d43ca): ``qn_targets/``,
``qn_targets/<ORGANISM>``, ``compendia/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ...core.names import check_organism
from .cache import safe_name
from .config import config_path
from .errors import RemoteDatasetError, TokenError
from .http import expect
from .refinebio_datasets import _HOW_TO_TOKEN, _http_url, _int, _sha1

__all__ = ["Compendia", "check_organism_name"]


def check_organism_name(value: str) -> str:
    """An organism as refine.bio names it (``HOMO_SAPIENS``), checked as a name from data.

    >>> check_organism_name("homo sapiens")
    'HOMO_SAPIENS'
    """
    return check_organism(str(value).upper().replace(" ", "_"), "refine.bio")


class Compendia:
    """QN targets and compendia of a refine.bio client (mixed into
    :class:`~.refinebio.RefineBio`, which gives ``http``, ``cache``, ``token`` and
    ``_pages``)."""

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

    def qn_target(self, organism: str) -> dict:
        """The description of an organism's QN target file (``/v1/qn_targets/<ORGANISM>``)."""
        name = check_organism_name(organism)
        # api/urls.py (288d43ca): ^qn_targets/(?P<organism_name>.+)$ (no trailing slash);
        # api/views/qn_targets.py QNTargetSerializer: filename, size_in_bytes, sha1, s3_url
        return self.http.json(f"qn_targets/{name}", what=f"a QN target for {name}")

    def fetch_qn_target(self, organism: str, *, progress=None, refresh: bool = False) -> Path:
        """Download an organism's QN target as ``qn_target_<ORGANISM>.tsv`` (which
        ``rw.open_catalog`` uses as that organism's target); cached."""
        name = check_organism_name(organism)
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
            params["primary_organism__name"] = check_organism_name(organism)
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
        name = check_organism_name(organism)
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
