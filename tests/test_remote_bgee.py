"""Bgee's FTP client against a real local HTTP server serving Apache-style index pages over a
folder tree made from the repository's Bgee fixtures. No test reaches the internet."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.io.remote.bgee import Bgee, parse_index, species_name
from refinewidgets.testing.fake_services import FakeServices

DATA = Path(__file__).parent / "data" / "bgee"
TARBALL = "Danio_rerio_droplet_based_h5ad.tar.gz"
HUMAN = "Homo_sapiens_ERP132576_droplet_based.h5ad"


@pytest.fixture
def ftp_root(tmp_path):
    root = tmp_path / "ftp"
    danio = root / "h5ad" / "droplet_based" / "Danio_rerio"
    human = root / "h5ad" / "droplet_based" / "Homo_sapiens"
    danio.mkdir(parents=True)
    human.mkdir(parents=True)
    shutil.copy(DATA / "tarball" / TARBALL, danio / TARBALL)
    shutil.copy(DATA / HUMAN, human / HUMAN)
    digest = hashlib.md5((DATA / HUMAN).read_bytes()).hexdigest()
    (human / f"{HUMAN}.md5").write_text(f"{digest}  {HUMAN}\n")
    shutil.copy(DATA / "Homo_sapiens_ERP400001_droplet_based.h5ad", human)
    (root / "h5ad" / "droplet_based" / "README.txt").write_text("not a species\n")
    return root


@pytest.fixture
def fake(ftp_root, tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINEWIDGETS_HTTP_RETRIES", "2")
    monkeypatch.setenv("REFINEWIDGETS_HTTP_BACKOFF", "0.01")
    with FakeServices(ftp_root=ftp_root) as server:
        monkeypatch.setenv("REFINEWIDGETS_BGEE_FTP", server.ftp)
        yield server


def test_list_species_from_the_index_page(fake):
    assert rw.remote.bgee.list_species() == ["Danio_rerio", "Homo_sapiens"]


def test_list_experiments_of_a_species_with_files(fake):
    table = rw.remote.bgee.list_experiments("homo sapiens")
    assert list(table["experiment"]) == ["ERP132576", "ERP400001"]
    assert set(table["source"]) == {"file"}
    files = rw.remote.bgee.list_files("Homo_sapiens")
    assert dict(zip(files["name"], files["kind"]))[f"{HUMAN}.md5"] == "md5"


def test_a_tarball_only_species_lists_its_experiments_once_fetched(fake):
    before = rw.remote.bgee.list_experiments("Danio_rerio")
    assert before.empty and before.attrs["tarball"] is True
    (path,) = rw.remote.bgee.fetch("Danio_rerio")
    assert path.name == TARBALL
    assert path.read_bytes() == (DATA / "tarball" / TARBALL).read_bytes()
    after = rw.remote.bgee.list_experiments("Danio_rerio")
    assert list(after["experiment"]) == ["SRP310001", "SRP310002"]
    assert set(after["source"]) == {"tarball"}


def test_fetch_experiment_files_then_open_and_build(fake, tmp_path):
    paths = rw.remote.bgee.fetch("Homo_sapiens", ["ERP132576"])
    assert [p.name for p in paths] == [HUMAN]
    cat = rw.open_catalog(*paths)
    assert list(cat.experiments.index) == ["ERP132576"]
    res = rw.build(rw.Dataset({"ERP132576": ["ALL"]}, quantile_normalize=False), cat)
    assert res["ERP132576"].shape == (90, 48)
    # the md5 Bgee published was fetched to check the file
    assert fake.seen("GET", f"/ftp/current/h5ad/droplet_based/Homo_sapiens/{HUMAN}.md5")


def test_fetch_is_reused_offline(fake, monkeypatch):
    client = Bgee()
    paths = client.fetch("Homo_sapiens", ["ERP132576"])
    fake.stop()
    # listing needs the network; fetching what is cached does not
    assert client.fetch("Homo_sapiens", ["ERP132576"]) == paths
    assert rw.remote.cached(service="bgee") == paths
    cat = rw.open_catalog(*rw.remote.cached(service="bgee"))
    assert list(cat.experiments.index) == ["ERP132576"]


def test_an_experiment_only_in_the_tarball_fetches_the_tarball(fake):
    (path,) = rw.remote.bgee.fetch("Danio_rerio", ["SRP310002"])
    cat = rw.open_catalog(path)
    assert sorted(cat.experiments.index) == ["SRP310001", "SRP310002"]
    fake.stop()  # then it is found in the cached tarball's index, offline
    assert rw.remote.bgee.fetch("Danio_rerio", ["SRP310001"]) == [path]


def test_an_unknown_experiment_names_what_bgee_has(fake):
    with pytest.raises(rw.remote.RemoteNotFoundError) as info:
        rw.remote.bgee.fetch("Danio_rerio", ["SRP999999"])
    assert "Bgee has no droplet experiment SRP999999 for Danio_rerio" in str(info.value)
    assert "SRP310001, SRP310002" in str(info.value)


def test_an_unknown_species_is_a_404_that_says_where_to_look(fake):
    with pytest.raises(rw.remote.RemoteNotFoundError) as info:
        rw.remote.bgee.list_experiments("Xenopus_laevis")
    assert "Bgee has no droplet single-cell folder for Xenopus_laevis" in str(info.value)
    assert "list_species()" in str(info.value)
    with pytest.raises(rw.remote.RemoteNotFoundError, match="is not a species name"):
        species_name("../etc")


def test_a_wrong_md5_discards_the_file(fake, ftp_root, tmp_path):
    human = ftp_root / "h5ad" / "droplet_based" / "Homo_sapiens"
    (human / f"{HUMAN}.md5").write_text("0" * 32 + f"  {HUMAN}\n")
    with pytest.raises(rw.remote.DownloadIntegrityError, match="has MD5 .* but the server"):
        rw.remote.bgee.fetch("Homo_sapiens", ["ERP132576"])
    assert rw.remote.cached() == []
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        rw.remote.ServiceUnreachableError,
        match=r"Bgee cannot be reached from this computer \(connection refused at 127.0.0.1",
    ):
        Bgee(f"http://127.0.0.1:{port}/ftp/current/", retries=0).list_species()


def test_503_is_retried_then_a_clear_error(fake):
    fake.fail("/ftp/current/h5ad/", 503, times=100)
    with pytest.raises(rw.remote.ServiceUnavailableError, match="Bgee answered HTTP 503"):
        Bgee(retries=1, backoff=0.01).list_species()
    assert len(fake.seen("GET", "/ftp/current/h5ad/")) == 2


def test_index_pages_drop_unsafe_and_foreign_links():
    page = (
        '<a href="?C=N;O=D">Name</a><a href="/ftp/">Parent Directory</a><a href="../">up</a>'
        '<a href="http://evil.example/x.h5ad">x</a><a href="..%2Fx.h5ad">y</a>'
        '<a href=".hidden.h5ad">h</a><a href="Mus_musculus/">Mus_musculus/</a> 2023 -'
        '<a href="Mus_musculus_SRP1_droplet_based.h5ad">f</a> 2023-11-14 22:13  88K'
    )
    assert parse_index(page) == [
        ("Mus_musculus", True, ""),
        ("Mus_musculus_SRP1_droplet_based.h5ad", False, "88K"),
    ]


def test_cli_fetch_bgee(fake, tmp_path, capsys):
    out = tmp_path / "bgee"
    assert main(["fetch", "bgee", "Homo_sapiens", "ERP132576", "--out", str(out), "-q"]) == 0
    assert str(out / HUMAN) in capsys.readouterr().out
    assert main(["info", str(out / HUMAN)]) == 0
    assert "ERP132576" in capsys.readouterr().out
    assert main(["fetch", "bgee", "Danio_rerio", "--list"]) == 0
    assert "refinewidgets fetch bgee Danio_rerio" in capsys.readouterr().out
    assert main(["fetch", "bgee", "Danio_rerio", "SRP9", "-q"]) == 2
    assert capsys.readouterr().err.startswith("error: Bgee has no droplet experiment SRP9")
