"""refine.bio's client against a real local HTTP server answering with refine.bio's shapes.

No test reaches the internet: every address is 127.0.0.1 (refinewidgets.testing.fake_services).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.errors import MetadataMismatchWarning, SourceFormatError
from refinewidgets.io.remote.refinebio import RefineBio
from refinewidgets.testing.fake_services import (
    FakeServices,
    isolate_remote_settings,
    split_experiment_download,
)

DATA = Path(__file__).parent / "data" / "refinebio"
EMAIL = "someone@example.org"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A cache and config file of the test's own; no token or e-mail from the user's setup."""
    return isolate_remote_settings(monkeypatch, tmp_path, retries=2)


@pytest.fixture
def fake(env, monkeypatch):
    experiments = split_experiment_download(DATA / "experiment_shuffled.zip")
    target = "\n".join(f"{v:.3f}" for v in range(1, 9)).encode() + b"\n"
    server = FakeServices(
        experiments=experiments,
        files={
            "/files/compendia/homo_sapiens_1.zip": DATA / "compendium_HOMO_SAPIENS.zip",
            "/files/qn/HOMO_SAPIENS.tsv": target,
        },
        compendia=[
            {
                "id": 7,
                "organism": "HOMO_SAPIENS",
                "quant_sf_only": False,
                "filename": "homo_sapiens_1.zip",
                "path": "/files/compendia/homo_sapiens_1.zip",
            }
        ],
        qn_targets={"HOMO_SAPIENS": "/files/qn/HOMO_SAPIENS.tsv"},
        processing_polls=2,
    )
    with server:
        monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", server.api)
        yield server


@pytest.fixture
def client(fake):
    return RefineBio(token=fake.activated_token(), email=EMAIL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cached(env) -> list[str]:
    root = env / "cache" / "downloads"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- search and metadata -----------------------------------------------------------------


def test_search_returns_experiments_and_facet_counts(fake):
    found = rw.remote.refinebio.search("kidney")
    assert found.count == 1
    assert list(found.experiments.index) == ["E-MTAB-4001"]
    assert found.facets["technology"] == {"microarray": 4}
    assert found.facets["downloadable_organism_names"] == {"HOMO_SAPIENS": 4}
    everything = rw.remote.refinebio.search(organism="HOMO_SAPIENS", technology="microarray")
    assert sorted(everything.experiments.index) == ["E-MTAB-4001", "GSE100001"]
    assert everything.facets["has_publication"] == {"false": 4, "true": 4}
    query = fake.seen("GET", "/v1/search/")
    assert query  # the filters went to the server as refine.bio's parameter names


def test_search_follows_pages(fake):
    found = RefineBio().search(filters={"limit": 1}, max_results=None)
    assert sorted(found.experiments.index) == ["E-MTAB-4001", "GSE100001"]
    assert len(fake.seen("GET", "/v1/search/")) == 2


def test_experiment_and_sample_metadata(client):
    exp = client.experiment("GSE100001")
    assert exp["accession_code"] == "GSE100001"
    assert exp["num_downloadable_samples"] == 4
    table = client.samples("GSE100001")
    assert sorted(table.index) == ["GSM3170190", "GSM3170327", "GSM3170545", "GSM3170811"]
    assert client.sample("GSM3170811")["organism"]["name"] == "HOMO_SAPIENS"
    assert client.organisms() == ["HOMO_SAPIENS"]


def test_qn_target_and_compendium_are_fetched_and_opened(client, env):
    assert client.qn_targets() == ["HOMO_SAPIENS"]
    target = client.fetch_qn_target("homo sapiens")
    assert target.name == "qn_target_HOMO_SAPIENS.tsv"
    table = client.compendia(organism="HOMO_SAPIENS")
    assert table.loc[0, "download_url"].endswith("/files/compendia/homo_sapiens_1.zip")
    path = client.fetch_compendium("HOMO_SAPIENS")
    assert path.read_bytes() == (DATA / "compendium_HOMO_SAPIENS.zip").read_bytes()
    cat = rw.open_catalog(path, target)
    assert sorted(cat.experiments.index) == ["ERP500002", "GSE500001", "SRP500003"]


def test_compendium_without_activated_token_gives_no_url(fake, env):
    with pytest.raises(rw.remote.TokenError, match="needs an API token"):
        RefineBio().fetch_compendium("HOMO_SAPIENS")
    assert RefineBio().compendia()["download_url"].isna().all()


# ---- fetch end to end --------------------------------------------------------------------


def test_search_fetch_open_build_end_to_end(client, fake, env):
    found = client.search("kidney")
    paths = client.fetch(found.experiments.index, poll_interval=0.01)
    assert [p.name for p in paths] == ["E-MTAB-4001.zip"]
    # the unit fetched: one EXPERIMENT-aggregated dataset, no QN, no scaling
    (post,) = [json.loads(b) for b in _posted(fake, "/v1/dataset/")]
    assert post == {
        "data": {"E-MTAB-4001": ["ALL"]},
        "aggregate_by": "EXPERIMENT",
        "scale_by": "NONE",
        "quantile_normalize": False,
    }
    cat = rw.open_catalog(*paths)
    res = rw.build(rw.Dataset({"E-MTAB-4001": ["ALL"]}, scale_by="STANDARD"), cat)
    assert res["E-MTAB-4001"].n_obs == 4
    # fetched once: a second fetch uses the cache, with no request at all, even offline
    fake.stop()
    assert client.fetch(["E-MTAB-4001"]) == paths
    assert rw.remote.cached(service="refinebio") == paths


def test_fetch_two_experiments_then_build_together(client, env):
    paths = client.fetch(["GSE100001", "E-MTAB-4001"], poll_interval=0.01)
    with pytest.warns(MetadataMismatchWarning, match="GSM3170190"):  # refine.bio's own bug
        cat = rw.open_catalog(*paths)
    res = rw.build(
        rw.Dataset({"GSE100001": ["ALL"], "E-MTAB-4001": ["ALL"]}, aggregate_by="ALL"), cat
    )
    assert res["ALL"].n_obs == 7
    assert "GSM3170190" in set(res.filtered_samples["accession"])


def test_fetch_copies_into_out(client, tmp_path):
    out = tmp_path / "downloads"
    (path,) = client.fetch("E-MTAB-4001", out=out, poll_interval=0.01)
    assert path == out / "E-MTAB-4001.zip"
    assert zipfile.ZipFile(path).testzip() is None


def test_fetch_polls_until_processed_with_a_progress_object(client, fake):
    class Bar:
        def __init__(self):
            self.calls = []

        def reset(self, total=None):
            self.calls.append(("reset", total))

        def update(self, n):
            self.calls.append(("update", n))

        def close(self):
            self.calls.append(("close",))

    bar = Bar()
    client.fetch(["E-MTAB-4001"], poll_interval=0.01, progress=bar)
    polls = [h for h in fake.seen("GET", "/v1/dataset/")]
    assert len(polls) >= fake.processing_polls + 1  # created -> processing -> processed
    assert ("reset", 1) in bar.calls and ("update", 1) in bar.calls
    size = len(fake.experiments["E-MTAB-4001"])
    assert ("reset", size) in bar.calls


def _posted(fake, prefix):
    return [b for m, p, h, b in fake.bodies if m == "POST" and p == prefix]


# ---- failures, each with its message -----------------------------------------------------


def test_no_network_says_so_at_once_without_retrying(env):
    port = _free_port()
    client = RefineBio(f"http://127.0.0.1:{port}/v1/", retries=5, backoff=1)
    began = time.monotonic()
    with pytest.raises(rw.remote.ServiceUnreachableError) as info:
        client.search("x")
    assert time.monotonic() - began < 2  # a refused connection is not retried with backoff
    message = str(info.value)
    assert message.startswith(
        f"refine.bio cannot be reached from this computer (connection refused at 127.0.0.1:{port})"
    )
    assert "Check your network connection and the address in the api= argument" in message
    assert info.value.service == "refine.bio" and "/v1/search/" in info.value.detail
    assert isinstance(info.value, rw.remote.ServiceUnavailableError)
    assert isinstance(info.value, ConnectionError)


def test_a_name_that_does_not_resolve_fails_at_once(env):
    client = RefineBio("http://no-such-host.invalid/v1/", retries=5, backoff=1)
    began = time.monotonic()
    with pytest.raises(rw.remote.ServiceUnreachableError) as info:
        client.experiment("GSE1")
    assert time.monotonic() - began < 2
    assert "(the host name does not resolve (no network?) at no-such-host.invalid)" in str(
        info.value
    )


def test_timeout_says_how_long_it_waited(fake):
    fake.delay("/v1/search/", 1.5)
    client = RefineBio(timeout=0.2, retries=1, backoff=0.01)
    with pytest.raises(rw.remote.ServiceUnavailableError, match=r"did not answer within 0.2 s"):
        client.search("x")
    assert len(fake.seen("GET", "/v1/search/")) == 2  # retried once


def test_429_is_retried_with_backoff_then_succeeds(fake):
    fake.fail("/v1/search/", 429, times=2)
    found = RefineBio(retries=3, backoff=0.01).search("kidney")
    assert found.count == 1
    assert len(fake.seen("GET", "/v1/search/")) == 3


def test_429_that_persists_is_a_clear_error(fake):
    fake.fail("/v1/search/", 429, times=100)
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        RefineBio(retries=2, backoff=0.01).search("kidney")
    message = str(info.value)
    assert "refine.bio answered HTTP 429 Too Many Requests" in message
    assert "after 2 retries with backoff" in message and "Wait a minute" in message
    assert len(fake.seen("GET", "/v1/search/")) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_a_clear_error(fake, status):
    fake.fail("/v1/experiments/", status, times=100)
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        RefineBio(retries=2, backoff=0.01).experiment("GSE100001")
    assert f"refine.bio answered HTTP {status}" in str(info.value)
    assert "the service has a problem of its own. Try again later." in str(info.value)
    assert len(fake.seen("GET", "/v1/experiments/")) == 3


def test_unknown_accession_is_a_404_naming_it(client, fake):
    with pytest.raises(rw.remote.RemoteNotFoundError) as info:
        client.experiment("GSE0")
    assert "refine.bio answered HTTP 404 Not Found for the experiment 'GSE0'" in str(info.value)
    with pytest.raises(rw.remote.RemoteNotFoundError, match="the experiment 'GSE0'"):
        client.fetch(["E-MTAB-4001", "GSE0"])
    assert not fake.seen("POST", "/v1/dataset/")  # nothing was created
    with pytest.raises(rw.remote.RemoteNotFoundError, match="the experiment 'GSE0'"):
        client.samples("GSE0")


def test_an_unsafe_accession_is_refused_before_any_request(client, fake):
    with pytest.raises(SourceFormatError, match="not a valid accession"):
        client.fetch(["../../etc"])
    assert fake.requests == []


def test_missing_token_says_how_to_get_one(fake, env):
    with pytest.raises(rw.remote.TokenError) as info:
        RefineBio(email=EMAIL).fetch(["E-MTAB-4001"])
    message = str(info.value)
    assert "refine.bio needs an API token" in message
    assert "--accept-terms" in message and "create_token(accept_terms=True)" in message
    assert "REFINEBIO_TOKEN" in message and str(env / "refinebio.yaml") in message
    assert not fake.seen("POST", "/v1/dataset/")


def test_unaccepted_token_says_the_terms_were_not_accepted(fake, monkeypatch):
    token = RefineBio().http.json("token/", method="POST", json={})["id"]  # never activated
    monkeypatch.setenv("REFINEBIO_TOKEN", token)
    with pytest.raises(rw.remote.TokenError, match="its terms of use were not accepted"):
        RefineBio(email=EMAIL).fetch(["E-MTAB-4001"])
    assert not fake.seen("POST", "/v1/dataset/")


def test_unknown_token(fake, monkeypatch):
    monkeypatch.setenv("REFINEBIO_TOKEN", "0b1c2d3e-0000-4000-8000-000000000000")
    with pytest.raises(rw.remote.TokenError, match="does not know the token"):
        RefineBio(email=EMAIL).fetch(["E-MTAB-4001"])


def test_token_is_created_only_with_explicit_acceptance_and_saved(fake, env):
    with pytest.raises(rw.remote.TokenError, match="https://www.refine.bio/terms"):
        rw.remote.refinebio.create_token()
    assert not fake.seen("POST", "/v1/token/")
    token = rw.remote.refinebio.create_token(accept_terms=True)
    assert fake.tokens[token] is True  # activated on the server
    config = env / "refinebio.yaml"
    assert f"token: {token}" in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert RefineBio().token() == token  # read back from the file, as pyrefinebio does


def test_missing_email_is_explained(client, fake, monkeypatch):
    client._email = None
    with pytest.raises(rw.remote.RemoteDatasetError, match="needs an e-mail address"):
        client.fetch(["E-MTAB-4001"])


def test_a_failed_dataset_shows_refinebios_reason(client, fake, env):
    fake.failed["E-MTAB-4001"] = "Smasher ran out of memory while merging samples."
    with pytest.raises(rw.remote.RemoteDatasetError) as info:
        client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    message = str(info.value)
    assert "refine.bio could not process E-MTAB-4001" in message
    assert "Smasher ran out of memory while merging samples." in message
    assert "E-MTAB-4001.zip" not in _cached(env)


def test_waiting_too_long_keeps_the_dataset_for_the_next_run(client, fake):
    fake.processing_polls = 10**6
    with pytest.raises(rw.remote.ServiceUnavailableError, match="still processing E-MTAB-4001"):
        client.fetch(["E-MTAB-4001"], poll_interval=0.01, timeout=0.05)
    fake.processing_polls = 0
    client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert len(fake.seen("POST", "/v1/dataset/")) == 1  # the same dataset was polled again


def test_checksum_mismatch_discards_the_file(client, fake, env):
    fake.bad_sha1.add("E-MTAB-4001")
    with pytest.raises(rw.remote.DownloadIntegrityError) as info:
        client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert "has SHA1" in str(info.value) and "0" * 40 in str(info.value)
    assert "It was discarded" in str(info.value)
    assert [n for n in _cached(env) if n.endswith((".zip", ".part"))] == []


def test_size_mismatch_discards_the_file(client, fake, env):
    fake.bad_size.add("E-MTAB-4001")
    size = len(fake.experiments["E-MTAB-4001"])
    with pytest.raises(rw.remote.DownloadIntegrityError) as info:
        client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert f"has {size:,} bytes but the server announced {size + 7:,}" in str(info.value)
    assert [n for n in _cached(env) if n.endswith((".zip", ".part"))] == []


def test_an_interrupted_download_is_resumed_with_range(client, fake):
    fake.cut("/files/datasets/", after=1000)
    (path,) = client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert path.read_bytes() == fake.experiments["E-MTAB-4001"]
    ranges = [h.get("Range") for h in fake.seen("GET", "/files/datasets/")]
    assert ranges == [None, "bytes=1000-"]


# ---- the command line --------------------------------------------------------------------


def test_cli_fetch_then_build(fake, env, tmp_path, capsys):
    out = tmp_path / "got"
    args = ["fetch", "refinebio", "E-MTAB-4001", "--out", str(out), "--email", EMAIL]
    args += ["--accept-terms", "--poll-interval", "0.01", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "created and saved a refine.bio token (terms accepted)" in printed
    assert str(out / "E-MTAB-4001.zip") in printed
    spec = tmp_path / "spec.json"
    spec.write_text(rw.Dataset({"E-MTAB-4001": ["ALL"]}).to_json())
    built = tmp_path / "built.zip"
    assert main(["build", str(spec), "--source", str(out), "-o", str(built), "-q"]) == 0
    assert rw.read_zip(built)["E-MTAB-4001"].n_obs == 4


def test_cli_search(fake, capsys):
    assert main(["search", "kidney", "--organism", "HOMO_SAPIENS"]) == 0
    printed = capsys.readouterr().out
    assert "1 experiment(s) match" in printed and "E-MTAB-4001" in printed
    assert "technology: microarray 4" in printed


def test_cli_errors_are_one_line(fake, capsys):
    token = fake.activated_token()
    args = ["fetch", "refinebio", "GSE0", "--token", token, "--email", EMAIL, "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "error: refine.bio answered HTTP 404 Not Found for the experiment 'GSE0'"
    )
    assert main(["fetch", "refinebio", "E-MTAB-4001", "--email", EMAIL, "-q"]) == 2
    assert "error: refine.bio needs an API token" in capsys.readouterr().err


def test_a_post_is_not_repeated_on_5xx(client, fake):
    fake.fail("/v1/dataset/", 503, times=1)
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert "refine.bio answered HTTP 503 Service Unavailable" in str(info.value)
    assert "(a POST is not retried: repeating it could act twice)" in str(info.value)
    assert len(fake.seen("POST", "/v1/dataset/")) == 1


def test_refinebios_validation_message_is_shown(client):
    with pytest.raises(rw.remote.RemoteDatasetError) as info:
        client.create_dataset({"GSE0": ["ALL"]})
    message = str(info.value)
    assert "refine.bio answered HTTP 400 Bad Request" in message
    assert "It said: Experiment(s) in dataset have zero downloadable samples" in message
    assert "(details: GSE0)" in message


def test_pages_are_computed_never_followed(fake):
    """refine.bio's next links may read http:// behind its proxy (the fake's point to
    http://api.refine.bio): the client asks limit/offset itself, bounded by count."""
    first = RefineBio().http.json("search/", params={"limit": 1})
    assert first["next"].startswith("http://api.refine.bio/v1/search/")
    found = RefineBio().search(filters={"limit": 1}, max_results=None)
    assert sorted(found.experiments.index) == ["E-MTAB-4001", "GSE100001"]
    offsets = [p for m, p, h in fake.requests if p == "/v1/search/"]
    assert len(offsets) == 3  # the page above, then two pages of one, nothing more
    table = RefineBio().samples("GSE100001", filters={"limit": 3})
    assert sorted(table.index) == ["GSM3170190", "GSM3170327", "GSM3170545", "GSM3170811"]
    assert len(fake.seen("GET", "/v1/samples/")) == 2


def test_a_self_pointing_next_link_does_not_loop(fake):
    fake.self_next = True
    found = RefineBio().search(filters={"limit": 1}, max_results=None)
    assert sorted(found.experiments.index) == ["E-MTAB-4001", "GSE100001"]
    assert len(fake.seen("GET", "/v1/search/")) == 2


@pytest.mark.slow
def test_the_installed_command_searches_fetches_and_builds(fake, env, tmp_path):
    """The real command in a subprocess, talking to the local server over 127.0.0.1."""
    token = fake.activated_token()
    environ = {**os.environ, "REFINEBIO_TOKEN": token, "REFINEBIO_EMAIL": EMAIL}
    run = [sys.executable, "-m", "refinewidgets.cli"]

    def cli(*args):
        return subprocess.run(run + list(args), env=environ, capture_output=True, text=True)

    found = cli("search", "kidney")
    assert found.returncode == 0, found.stderr
    assert "E-MTAB-4001" in found.stdout
    got = cli("fetch", "refinebio", "E-MTAB-4001", "--poll-interval", "0.01", "-q")
    assert got.returncode == 0, got.stderr
    (path,) = got.stdout.split()
    spec = tmp_path / "spec.json"
    spec.write_text(rw.Dataset({"E-MTAB-4001": ["ALL"]}, aggregate_by="SPECIES").to_json())
    built = cli("build", str(spec), "--source", path, "-o", str(tmp_path / "d.zip"), "-q")
    assert built.returncode == 0, built.stderr
    assert "HOMO_SAPIENS: 6 genes x 4 samples" in built.stdout
    offline = cli("fetch", "refinebio", "E-MTAB-4001", "-q")  # cached: no new dataset
    assert offline.returncode == 0 and offline.stdout.split() == [path]
    assert len(fake.seen("POST", "/v1/dataset/")) == 1
