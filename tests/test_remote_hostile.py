"""rw.remote against hostile or odd answers, over real HTTP on 127.0.0.1: redirects to another
host and to file://, self-pointing pages, trickling replies, wrong JSON types, huge pages, a file
that changed between two attempts, HTML where an archive was expected; tokens kept out of every
message; refine.bio's ["ALL"] accounted for; the addresses read as pyrefinebio reads them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.errors import DatasetSpecError
from refinewidgets.io.remote.bgee import Bgee
from refinewidgets.io.remote.cache import DownloadCache
from refinewidgets.io.remote.http import Http
from refinewidgets.io.remote.refinebio import RefineBio
from refinewidgets.testing.aio import run_in_thread
from refinewidgets.testing.fake_services import (
    FakeServices,
    isolate_remote_settings,
    split_experiment_download,
)

DATA = Path(__file__).parent / "data" / "refinebio"
EMAIL = "someone@example.org"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return isolate_remote_settings(monkeypatch, tmp_path, retries=1)


@pytest.fixture
def fake(env, monkeypatch):
    server = FakeServices(
        experiments=split_experiment_download(DATA / "experiment_shuffled.zip"),
        processing_polls=0,
    )
    with server:
        monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", server.api)
        yield server


@pytest.fixture
def other(env):
    """A second server: "another host" (127.0.0.1 on another port is another origin)."""
    with FakeServices() as server:
        yield server


@pytest.fixture
def client(fake):
    return RefineBio(token=fake.activated_token(), email=EMAIL)


def _zip(content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo("a.txt", date_time=(2024, 1, 1, 0, 0, 0)), content)
    return out.getvalue()


# ---- credentials stay home ---------------------------------------------------------------


def test_a_redirect_to_another_host_drops_the_token(client, fake, other):
    token = client.token()
    ds_id = client.create_dataset({"E-MTAB-4001": ["ALL"]})
    fake.redirect(f"/v1/dataset/{ds_id}/", other.url + "{path}")
    with pytest.raises(rw.remote.RemoteNotFoundError) as info:
        client.dataset(ds_id)
    assert [h.get("API-KEY") for h in fake.seen("GET", f"/v1/dataset/{ds_id}/")] == [token]
    (followed,) = other.seen("GET", f"/v1/dataset/{ds_id}/")
    assert "API-KEY" not in followed  # the redirect was followed, the token was not sent
    assert token not in str(info.value)


def test_a_redirect_on_the_same_host_keeps_the_token(client, fake):
    token = client.token()
    ds_id = client.create_dataset({"E-MTAB-4001": ["ALL"]})
    fake.redirect("/v1/old-dataset/", fake.url + f"/v1/dataset/{ds_id}/")
    assert client.http.json("old-dataset/", headers={"API-KEY": token})["id"] == ds_id
    assert fake.seen("GET", f"/v1/dataset/{ds_id}/")[-1].get("API-KEY") == token


def test_a_redirect_to_a_local_file_is_refused(client, fake):
    fake.redirect("/v1/experiments/", "file:///etc/passwd")
    with pytest.raises(rw.remote.ResponseFormatError) as info:
        client.experiment("GSE100001")
    assert "redirected" in str(info.value) and "'file:///etc/passwd'" in str(info.value)
    assert "which is not an http(s) address; refused" in str(info.value)


def test_endless_redirects_stop(client, fake):
    fake.redirect("/v1/experiments/", fake.url + "{path}")
    with pytest.raises(rw.remote.ResponseFormatError, match="more than 5 times; refused"):
        client.experiment("GSE100001")
    assert len(fake.seen("GET", "/v1/experiments/")) == 6


def test_tokens_are_scrubbed_from_messages_and_the_command_line(fake, env, capsys):
    unknown = "0b1c2d3e-0000-4000-8000-00000000abcd"
    with pytest.raises(rw.remote.TokenError) as info:
        RefineBio(token=unknown, email=EMAIL).fetch(["E-MTAB-4001"])
    message = str(info.value)
    assert "does not know the token ending in ...abcd" in message and unknown not in message
    args = ["fetch", "refinebio", "E-MTAB-4001", "--token", unknown, "--email", EMAIL, "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: refine.bio does not know the token ending in ...abcd" in err
    assert unknown not in err
    # a 5xx on the token's own address names that address, token scrubbed
    fake.fail("/v1/token/", 500, times=10)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refine.bio answered HTTP 500" in err and "/v1/token/[token]/" in err
    assert unknown not in err


def test_tornados_403_line_does_not_show_the_apps_token(tmp_path, caplog):
    """Voila's own static handler refusing a file, served by tornado on 127.0.0.1."""

    import tornado.httpserver
    import tornado.web
    from voila.static_file_handler import AllowListFileHandler

    from refinewidgets.app_server import hide_secrets_in_logs

    (tmp_path / "secret.py").write_text("x = 1\n")
    app = tornado.web.Application(
        [(r"/voila/files/(.*)", AllowListFileHandler, {"allowlist": [], "path": str(tmp_path)})]
    )

    async def scenario():
        server = tornado.httpserver.HTTPServer(app)
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}/voila/files/secret.py?token=s3cr3t-app-token"
        client = tornado.httpclient.AsyncHTTPClient()
        response = await client.fetch(url, raise_error=False)
        server.stop()
        return response.code

    import tornado.httpclient
    import tornado.netutil

    hide_secrets_in_logs()
    # a loop of its own in a thread: earlier tests (Playwright's sync API) may leave one running
    # in this thread, where asyncio.run refuses to start
    with caplog.at_level(logging.WARNING, logger="tornado.general"):
        code = run_in_thread(scenario)
    assert code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.general"]
    assert any("File not allowlisted" in line for line in lines), lines
    assert all("s3cr3t-app-token" not in line for line in lines)
    assert any("token=[secret]" in line for line in lines)


# ---- deadlines and caps ------------------------------------------------------------------


def test_a_trickling_reply_is_cut_at_the_deadline(fake, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_HTTP_DEADLINE", "0.5")
    fake.trickle("/v1/search/", chunk=1, pause=0.02)
    began = time.monotonic()
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        RefineBio(retries=0).search("kidney")
    assert time.monotonic() - began < 3
    message = str(info.value)
    assert "refine.bio did not finish answering" in message
    assert "within the deadline (0.5 s;" in message and "REFINEWIDGETS_HTTP_DEADLINE" in message


def test_trickling_headers_are_cut_at_the_deadline(fake, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_HTTP_DEADLINE", "0.5")
    fake.trickle_headers("/v1/search/", pause=0.02)
    began = time.monotonic()
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        RefineBio(retries=2).search("kidney")  # the deadline covers the retries too
    assert time.monotonic() - began < 3
    message = str(info.value)
    assert "refine.bio did not finish answering" in message and "/v1/search/" in message
    assert "within the deadline (0.5 s; 0 bytes received)" in message
    # the same server answers normally once it stops trickling
    fake.rules.clear()
    assert RefineBio().search("kidney").count == 1


def test_a_trickling_download_is_an_interruption_said_as_such(env, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_HTTP_MIN_RATE", "100000")
    blob = _zip(b"x" * 20000)
    with FakeServices(files={"/files/a.zip": blob}) as fake:
        fake.trickle("/files/a.zip", chunk=100, pause=0.01)
        http = Http(fake.url, service="the test server", retries=0, timeout=0.3)
        cache = DownloadCache(env / "cache")
        target = cache.path_for("bgee", "x", "a.zip")
        began = time.monotonic()
        with pytest.raises(rw.remote.ServiceUnavailableError) as info:
            cache.download(http, "/files/a.zip", target)
        assert time.monotonic() - began < 3
        assert "slower than 100,000 bytes/s" in str(info.value)
        assert "the next call resumes where it stopped" in str(info.value)
        fake.rules.clear()
        assert cache.download(http, "/files/a.zip", target).read_bytes() == blob


def test_a_huge_json_page_is_refused_before_it_is_read(fake, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_JSON_MAX_MB", "1")
    page = {"count": 1, "results": [{"accession_code": "GSE1", "title": "x" * 2_000_000}]}
    fake.answer("/v1/search/", page)
    with pytest.raises(rw.remote.ResponseFormatError) as info:
        RefineBio().search("kidney")
    assert "refine.bio sent more than 1 MB" in str(info.value)
    assert "REFINEWIDGETS_JSON_MAX_MB=<megabytes>" in str(info.value)


def test_a_huge_json_page_without_a_length_is_cut_at_the_cap(fake, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_JSON_MAX_MB", "1")
    page = {"count": 1, "results": [{"accession_code": "GSE1", "title": "x" * 3_000_000}]}
    fake.answer("/v1/search/", page, length=False)
    with pytest.raises(rw.remote.ResponseFormatError) as info:
        RefineBio().search("kidney")
    assert "refine.bio sent more than 1 MB for the answer" in str(info.value)
    # under the cap, the same close-delimited answer is read whole
    monkeypatch.setenv("REFINEWIDGETS_JSON_MAX_MB", "8")
    assert RefineBio().search("kidney").experiments.loc["GSE1", "title"] == "x" * 3_000_000


@pytest.mark.parametrize(
    "body, said",
    [
        (
            {"count": "2", "results": []},
            "'count' of search/ as a string ('2'); its API writes an integer",
        ),
        ({"count": 2, "results": {"a": 1}}, "'results' of search/ as an object"),
        ({"count": 1, "results": ["GSE1"]}, "results[0] of search/ as a string ('GSE1')"),
        ([1, 2], "the page of search/ as a list ([1, 2]); its API writes an object"),
        (
            {"count": 1, "results": [{"accession_code": 7}]},
            "'accession_code' of search result 0 as an integer (7); its API writes a string",
        ),
        (
            {"count": 0, "results": [], "facets": {"technology": {"microarray": "4"}}},
            "the count of 'microarray' in the facet 'technology' as a string ('4')",
        ),
        (b"[" * 100_000, "something that is JSON nested too deep"),
        (b"<html>busy</html>", "something that is not JSON"),
    ],
)
def test_wrong_json_types_name_the_field_and_both_types(fake, body, said):
    fake.answer("/v1/search/", body)
    with pytest.raises(rw.remote.ResponseFormatError) as info:
        RefineBio().search("kidney")
    assert said in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_dataset_state_of_the_wrong_type_is_named(client, fake):
    ds_id = client.create_dataset({"E-MTAB-4001": ["ALL"]})
    fake.answer(f"/v1/dataset/{ds_id}/", {"id": ds_id, "is_processed": "yes"})
    with pytest.raises(rw.remote.ResponseFormatError, match="'is_processed' of the dataset"):
        client.dataset(ds_id)


# ---- downloads that are right or absent ----------------------------------------------------


def test_a_file_changed_between_two_attempts_is_downloaded_whole(env):
    old, new = _zip(b"o" * 5000), _zip(b"n" * 5000)
    assert len(old) == len(new)
    with FakeServices(files={"/files/a.zip": old}) as fake:
        fake.cut("/files/a.zip", after=2000)
        cache = DownloadCache(env / "cache")
        target = cache.path_for("refinebio", "x", "a.zip")
        http = Http(fake.url, service="the test server", retries=0)
        with pytest.raises(rw.remote.ServiceUnavailableError):
            cache.download(http, "/files/a.zip", target)
        fake.files["/files/a.zip"] = new  # same size, other bytes: another ETag
        assert cache.download(http, "/files/a.zip", target).read_bytes() == new
        asked = fake.seen("GET", "/files/a.zip")
        assert asked[1]["Range"] == "bytes=2000-"
        assert asked[1]["If-Range"] == '"' + hashlib.md5(old).hexdigest() + '"'


def test_without_validators_a_part_is_never_resumed(env):
    blob = _zip(b"z" * 5000)
    with FakeServices(files={"/files/a.zip": blob}, etags=False) as fake:
        fake.cut("/files/a.zip", after=2000)
        cache = DownloadCache(env / "cache")
        target = cache.path_for("refinebio", "x", "a.zip")
        http = Http(fake.url, service="the test server", retries=0)
        with pytest.raises(rw.remote.ServiceUnavailableError) as info:
            cache.download(http, "/files/a.zip", target)
        assert "gives no ETag or Last-Modified to resume safely with" in str(info.value)
        assert cache.download(http, "/files/a.zip", target).read_bytes() == blob
        assert [h.get("Range") for h in fake.seen("GET", "/files/a.zip")] == [None, None]


def test_a_range_answer_for_other_bytes_starts_over(env):
    blob = _zip(b"r" * 5000)
    with FakeServices(files={"/files/a.zip": blob}) as fake:
        cache = DownloadCache(env / "cache")
        target = cache.path_for("refinebio", "x", "a.zip")
        part = cache.part_path(target)
        part.parent.mkdir(parents=True)
        part.write_bytes(blob[:1000])
        # validators of another file of another length: the 206 total does not match
        cache.validators_path(part).write_text(
            json.dumps(
                {
                    "source": fake.url + "/files/a.zip",
                    "validator": '"' + hashlib.md5(blob).hexdigest() + '"',
                    "total": len(blob) + 1,
                }
            )
        )
        http = Http(fake.url, service="the test server", retries=1, backoff=0.01)
        assert cache.download(http, "/files/a.zip", target).read_bytes() == blob
        assert [h.get("Range") for h in fake.seen("GET", "/files/a.zip")] == ["bytes=1000-", None]


@pytest.mark.parametrize(
    "name, body, said",
    [
        ("a.zip", b"<!DOCTYPE html><html><body>Maintenance</body></html>", "it is an HTML page"),
        ("a.zip", b"PK\x03\x04" + b"\0" * 200, "it is not a readable zip archive"),
        ("a.tar.gz", b"<html><body>Not here</body></html>", "not a gzip-compressed tar archive"),
        ("a.h5ad", b"\0" * 4096, "it does not carry the HDF5 signature"),
    ],
)
def test_a_file_of_the_wrong_structure_is_never_cached(env, name, body, said):
    with FakeServices(files={f"/files/{name}": body}) as fake:
        cache = DownloadCache(env / "cache")
        target = cache.path_for("bgee", "Homo_sapiens", name)
        http = Http(fake.url, service="Bgee", retries=0)
        with pytest.raises(rw.remote.DownloadIntegrityError) as info:
            cache.download(http, f"/files/{name}", target)
        assert said in str(info.value)
        assert "the next call downloads it again from the start" in str(info.value)
        assert not target.exists() and list(cache.entries()) == []


def test_a_truncated_tarball_is_refused_and_a_whole_one_kept(env):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = bytes(range(256)) * 400
        info = tarfile.TarInfo("Homo_sapiens_X_droplet_based.h5ad")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    whole = buf.getvalue()
    cut = whole[: len(whole) // 2]
    with FakeServices(files={"/files/t.tar.gz": cut}) as fake:
        cache = DownloadCache(env / "cache")
        target = cache.path_for("bgee", "Homo_sapiens", "t.tar.gz")
        http = Http(fake.url, service="Bgee", retries=0)
        with pytest.raises(rw.remote.DownloadIntegrityError, match="cannot be read to the end"):
            cache.download(http, "/files/t.tar.gz", target)
        fake.files["/files/t.tar.gz"] = whole  # the next call asks again (no --refresh needed)
        assert cache.download(http, "/files/t.tar.gz", target).read_bytes() == whole
        assert cache.record(target)["structure"] == "tar.gz"


def test_a_bad_file_cached_by_an_older_version_is_set_aside_and_fetched_again(env):
    blob = _zip(b"g" * 3000)
    with FakeServices(files={"/files/a.zip": blob}) as fake:
        cache = DownloadCache(env / "cache")
        target = cache.path_for("refinebio", "experiments", "a.zip")
        target.parent.mkdir(parents=True)
        html = b"<html><body>502 Bad Gateway</body></html>"
        target.write_bytes(html)  # what version 1 recorded as complete
        record = {"format": "refinewidgets-download", "version": 1, "size": len(html)}
        cache.record_path(target).write_text(json.dumps(record))
        assert cache.record(target) is None
        aside = target.with_name(".a.zip.bad")
        assert aside.read_bytes() == html
        assert "HTML page" in aside.with_name(".a.zip.bad.txt").read_text()
        http = Http(fake.url, service="the test server", retries=0)
        assert cache.download(http, "/files/a.zip", target).read_bytes() == blob
        assert len(fake.seen("GET", "/files/a.zip")) == 1


def test_refinebio_serving_html_as_the_download_says_what_the_next_call_does(client, fake, env):
    fake.answer("/files/datasets/", b"<!DOCTYPE html><html>Access Denied</html>", times=1)
    with pytest.raises(rw.remote.DownloadIntegrityError) as info:
        client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    assert "is not usable: it is an HTML page" in str(info.value)
    assert "the next call downloads it again from the start" in str(info.value)
    (path,) = client.fetch(["E-MTAB-4001"], poll_interval=0.01)  # the same dataset, downloaded
    assert zipfile.ZipFile(path).testzip() is None
    assert len(fake.seen("POST", "/v1/dataset/")) == 1


# ---- what refine.bio will really include ---------------------------------------------------


def test_all_is_predicted_and_left_out_samples_are_accounted_for(client, fake, env):
    fake.unprocessed = {"ERS1430216"}
    table = client.included_samples("E-MTAB-4001")
    assert table.loc["ERS1430216", "included"] == False  # noqa: E712
    assert table.loc["ERS1430216", "reason"] == (
        "refine.bio left it out of the download: it has not processed it"
    )
    assert sorted(table.index[table["included"]]) == ["ERS1430433", "ERS1430758", "ERS1430904"]
    with pytest.warns(rw.remote.SamplesLeftOutWarning) as caught:
        (path,) = client.fetch(["E-MTAB-4001"], poll_interval=0.01)
    message = str(caught[0].message)
    assert "download of E-MTAB-4001 holds 3 of its 4 samples; 1 were left out" in message
    assert "ERS1430216: refine.bio left it out of the download: it has not processed it" in message
    assert client.left_out("E-MTAB-4001") == {
        "ERS1430216": "refine.bio left it out of the download: it has not processed it"
    }
    # the download really lacks it, and a build lists it among the filtered samples
    cat = rw.open_catalog(path)
    res = rw.build(rw.Dataset({"E-MTAB-4001": ["ALL"]}), cat)
    assert sorted(res["E-MTAB-4001"].obs_names) == ["ERS1430433", "ERS1430758", "ERS1430904"]
    filtered = res.filtered_samples.set_index("accession")
    assert filtered.loc["ERS1430216", "reason"] == "no processed expression values in the source"


def test_all_leaves_out_organisms_without_a_qn_target(client, fake):
    fake.qn_organisms = {"MUS_MUSCULUS"}
    table = client.included_samples("GSE100001")
    assert not table["included"].any()
    assert set(table["organism"]) == {"HOMO_SAPIENS"}
    assert (
        table["reason"]
        .str.contains(
            "its organism HOMO_SAPIENS has no quantile-normalization target on refine.bio"
        )
        .all()
    )


# ---- addresses and filters as the services read them ---------------------------------------


def test_the_base_url_is_read_as_pyrefinebio_reads_it(fake, env, monkeypatch):
    monkeypatch.delenv("REFINEWIDGETS_REFINEBIO_API")
    assert RefineBio().api == "https://api.refine.bio/v1/"
    (env / "refinebio.yaml").write_text(f"base_url: {fake.api}\n")
    assert RefineBio().api == fake.api  # the config file's base_url
    assert RefineBio().search("kidney").count == 1
    monkeypatch.setenv("REFINEBIO_BASE_URL", "http://127.0.0.1:9/v1/")
    assert RefineBio().api == "http://127.0.0.1:9/v1/"  # the environment wins, as in pyrefinebio
    with pytest.raises(rw.remote.ServiceUnreachableError, match=r"\$REFINEBIO_BASE_URL"):
        RefineBio().search("kidney")


def test_technology_is_sent_as_the_index_holds_it(fake):
    found = RefineBio().search(technology="MICROARRAY")
    assert sorted(found.experiments.index) == ["E-MTAB-4001", "GSE100001"]
    RefineBio().search(technology=["RNA-SEQ", "rna_seq"])
    asked = [q for m, p, q in fake.queries if p == "/v1/search/"]
    assert asked[0]["technology"] == ["microarray"]
    assert asked[1]["technology"] == ["rna-seq"]
    with pytest.raises(DatasetSpecError, match="use 'microarray' or 'rna-seq'"):
        RefineBio().search(technology="nanopore")
    # organism_names.raw holds refine.bio's names as stored: HOMO_SAPIENS
    found = RefineBio().search(organism="Homo sapiens")
    assert [q for m, p, q in fake.queries if p == "/v1/search/"][-1]["organism"] == ["HOMO_SAPIENS"]
    assert found.count == 2
    assert RefineBio().search(organism="mus_musculus").count == 0


# ---- Bgee's layouts ------------------------------------------------------------------------


def test_bgee_tries_the_other_layout_and_names_every_address(env, tmp_path):
    root = tmp_path / "ftp"
    folder = root / "processed_expr_values" / "sc_rnaseq" / "Mus_musculus"
    folder.mkdir(parents=True)
    (root / "h5ad" / "droplet_based" / "Homo_sapiens").mkdir(parents=True)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as t:
        info = tarfile.TarInfo("x.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    (folder / "Mus_musculus_droplet_based_h5ad.tar.gz").write_bytes(tar.getvalue())
    with FakeServices(ftp_root=root) as fake:
        bgee = Bgee(fake.ftp, retries=0)
        files = bgee.list_files("Mus_musculus")
        assert list(files["kind"]) == ["tarball"]
        assert files["url"][0].startswith(fake.ftp + "processed_expr_values/sc_rnaseq/")
        with pytest.raises(rw.remote.RemoteNotFoundError) as info:
            bgee.list_files("Danio_rerio")
        message = str(info.value)
        assert "Bgee has no droplet single-cell folder for Danio_rerio" in message
        assert f"{fake.ftp}h5ad/droplet_based/Danio_rerio/" in message
        assert f"{fake.ftp}processed_expr_values/sc_rnaseq/Danio_rerio/" in message


def test_bgees_default_root_is_its_download_folder(monkeypatch):
    monkeypatch.delenv("REFINEWIDGETS_BGEE_FTP", raising=False)
    assert Bgee().folder_urls == [
        "https://www.bgee.org/ftp/current/download/h5ad/droplet_based/",
        "https://www.bgee.org/ftp/current/download/processed_expr_values/sc_rnaseq/",
    ]


# ---- the command line says what it is doing -------------------------------------------------


def test_the_command_says_what_it_does_before_the_service_answers(fake, env):
    """The first line comes while refine.bio has not answered (how soon: bench_remote.py)."""
    gate = fake.hold("/v1/search/")
    environ = {**__import__("os").environ, "REFINEWIDGETS_REFINEBIO_API": fake.api}
    code = "import sys; from refinewidgets.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "search", "kidney"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environ,
    )
    try:
        line = proc.stderr.readline().decode()  # the search is held: no answer yet
        assert proc.poll() is None and not gate.is_set()
        gate.set()
        out, _ = proc.communicate(timeout=60)
    finally:
        gate.set()
        proc.kill()
    assert line.startswith(f"Searching refine.bio ({fake.api}) ...")
    assert proc.returncode == 0
    assert "1 experiment(s) match" in out.decode()


def test_gzip_check_reads_to_the_end(tmp_path):
    from refinewidgets.io.remote.integrity import check_structure

    good = tmp_path / "a.gz"
    good.write_bytes(gzip.compress(b"x" * 10000))
    assert check_structure(good) is None
    bad = tmp_path / "b.gz"
    bad.write_bytes(gzip.compress(b"x" * 10000)[:-6])
    assert "cannot be read to the end" in check_structure(bad)


def test_the_command_says_which_samples_refinebio_will_leave_out_before_fetching(
    client, fake, env, capsys
):
    fake.unprocessed = {"ERS1430216"}
    args = ["fetch", "refinebio", "E-MTAB-4001", "--token", client.token(), "--email", EMAIL]
    assert main([*args, "--poll-interval", "0.01"]) == 0
    err = capsys.readouterr().err
    said = (
        "refine.bio will put 3 of the 4 samples of E-MTAB-4001 in its download; left out: "
        "ERS1430216: refine.bio left it out of the download: it has not processed it."
    )
    assert said in err
    # said before the dataset was asked for, and accounted for after the download
    assert err.index(said) < err.index("holds 3 of its 4 samples")
    assert client.cached_download("E-MTAB-4001") is not None
    assert main([*args, "--poll-interval", "0.01"]) == 0  # cached: nothing to predict or ask
    assert "will put" not in capsys.readouterr().err
    assert len(fake.seen("POST", "/v1/dataset/")) == 1


def test_a_prediction_refinebio_answers_oddly_does_not_stop_the_fetch(client, fake, env, capsys):
    fake.answer("/v1/qn_targets/", {"results": "HOMO_SAPIENS"}, times=1)  # not a list
    args = ["fetch", "refinebio", "E-MTAB-4001", "--token", client.token(), "--email", EMAIL]
    assert main([*args, "--poll-interval", "0.01"]) == 0
    err = capsys.readouterr().err
    assert "Cannot tell in advance which samples of E-MTAB-4001 refine.bio will include" in err
    assert (
        "the answer of qn_targets/ as a string ('HOMO_SAPIENS'); its API writes a list there" in err
    )
    assert client.cached_download("E-MTAB-4001") is not None
