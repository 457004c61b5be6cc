"""refine.bio's tokens and datasets: the half of :class:`~.refinebio.RefineBio` that asks
refine.bio to build downloads, waits for them and fetches them.

Read from refine.bio's own code (AlexsLemonade/refinebio commit
288d43cad259daecc95d6a3d43f74fd92ccbf57d, ``api/data_refinery_api/`` abbreviated ``api/``):
tokens are ``api/views/api_token.py`` (``POST token/`` creates ``{id, is_activated,
terms_and_conditions}``, ``PUT token/<id>/ {"is_activated": true}`` accepts the terms; the id
goes in the ``API-KEY`` header); datasets are ``api/views/dataset.py`` (``POST dataset/`` with
``data``/``aggregate_by``/``scale_by``/``quantile_normalize``; ``PUT dataset/<id>/`` with
``data``, ``start: true`` and ``email_address``; ``GET dataset/<id>/`` shows ``is_processing``,
``is_processed``, ``success``, ``failure_reason`` and, with a token, ``download_url``,
``size_in_bytes`` and ``sha1``), and ``DatasetView.convert_ALL_to_accessions`` turns ``["ALL"]``
into the processed samples of organisms with a quantile-normalization target.

:class:`Datasets` is a base class of :class:`~.refinebio.RefineBio`, which gives it ``http``
(:class:`~.http.Http`), ``cache`` (:class:`~.cache.DownloadCache`), ``_token``, ``_email``,
``experiment()`` and ``included_samples()``; use it through ``RefineBio``.
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
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from ...core.names import check_accession
from ...errors import BuildCancelled, DatasetSpecError, SourceFormatError
from .config import EMAIL_ENV, TOKEN_ENV, config_path
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
from .http import expect

__all__ = ["PRIVACY_URL", "TERMS_URL", "Datasets"]

TERMS_URL = "https://www.refine.bio/terms"
PRIVACY_URL = "https://www.refine.bio/privacy"
#: A token or dataset id (a UUID; api/urls.py: ``(?P<id>[0-9a-f-]+)``).
_ID = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,63}")
_HOW_TO_TOKEN = (
    "Get one once with `refinewidgets fetch refinebio --accept-terms ...` or, in Python, "
    "`rw.remote.refinebio.create_token(accept_terms=True)` (this accepts refine.bio's terms of "
    f"use, {TERMS_URL}, and privacy policy, {PRIVACY_URL}); it is saved in {{config}}. Or set "
    f"${TOKEN_ENV} to a token you activated."
)


class Datasets:
    """Tokens, datasets and fetching (see the module); a base class of ``RefineBio``."""

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

    def _dataset_of(self, acc: str, path: Path) -> str:
        """The dataset that downloads ``acc``: the one a previous call started (noted beside
        ``path``) unless refine.bio says it failed, else a new one, started and noted."""
        pending = _pending_path(path)
        ds_id = _read_pending(pending)
        if ds_id is not None:
            try:
                state = self.dataset(ds_id)
            except RemoteError:
                state = {"success": False}
            if state.get("success") is not False:
                return ds_id
        ds_id = self.create_dataset({acc: ["ALL"]})
        self.start_dataset(ds_id)
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.write_text(json.dumps({"dataset_id": ds_id}), encoding="utf-8")
        return ds_id

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
        ids = {acc: self._dataset_of(acc, paths[acc]) for acc in accs}
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


def _int(value) -> int | None:
    try:
        return int(value) if value is not None and not pd.isna(value) else None
    except (TypeError, ValueError):
        return None
