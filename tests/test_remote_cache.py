"""The download cache over real HTTP (a local server): resume, checks, atomic writes, a full
disk, offline reuse, list and prune. No test reaches the internet."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

import refinewidgets as rw
from refinewidgets.cli import main
from refinewidgets.errors import OutputError, SourceFormatError
from refinewidgets.io.remote.cache import DownloadCache, safe_name
from refinewidgets.io.remote.http import Http
from refinewidgets.testing.fake_services import FakeServices

DATA = Path(__file__).parent / "data" / "refinebio"
BLOB = (DATA / "species.zip").read_bytes()
SHA1 = "sha1:" + hashlib.sha1(BLOB).hexdigest()


@pytest.fixture
def fake():
    with FakeServices(files={"/files/species.zip": BLOB}) as server:
        yield server


@pytest.fixture
def cache(tmp_path):
    return DownloadCache(tmp_path / "cache")


def _http(fake, retries=2):
    return Http(fake.url, service="the test server", retries=retries, backoff=0.01)


def _target(cache):
    return cache.path_for("refinebio", "experiments", "species.zip")


def test_download_is_checked_recorded_and_opened(fake, cache):
    path = cache.download(
        _http(fake), "/files/species.zip", _target(cache), size=len(BLOB), checksum=SHA1
    )
    assert path.read_bytes() == BLOB
    (entry,) = cache.entries()
    assert entry.complete and entry.checksum == SHA1 and entry.size == len(BLOB)
    # the downloads folder opens like any local folder; hidden records are not sources
    cat = rw.open_catalog(cache.root)
    assert sorted(cat.experiments.index) == ["GSE200001", "GSE200004", "SRP100002", "SRP100003"]


def test_a_cached_file_is_reused_without_the_network(fake, cache):
    http = _http(fake)
    cache.download(http, "/files/species.zip", _target(cache))
    fake.stop()
    assert cache.download(http, "/files/species.zip", _target(cache)) == _target(cache)


def test_an_interrupted_download_resumes_in_a_later_call(fake, cache):
    fake.cut("/files/species.zip", after=2000)
    with pytest.raises(rw.remote.ServiceUnavailableError) as info:
        cache.download(_http(fake, retries=0), "/files/species.zip", _target(cache), checksum=SHA1)
    assert "was interrupted 1 times" in str(info.value)
    assert "2,000 bytes are kept" in str(info.value)
    assert "the next call resumes where it stopped" in str(info.value)
    assert not _target(cache).exists()  # nothing half-downloaded is ever used
    part = cache.part_path(_target(cache))
    assert part.stat().st_size == 2000
    with pytest.raises(SourceFormatError):  # the partial file is not a source
        rw.open_catalog(cache.root)
    listed = cache.list()
    assert list(listed["complete"]) == [False]
    path = cache.download(_http(fake), "/files/species.zip", _target(cache), checksum=SHA1)
    assert path.read_bytes() == BLOB
    asked = fake.seen("GET", "/files/species.zip")
    assert [h.get("Range") for h in asked] == [None, "bytes=2000-"]
    etag = '"' + hashlib.md5(BLOB).hexdigest() + '"'
    assert asked[1].get("If-Range") == etag  # resumed only if the file is still the same
    assert not part.exists()
    assert not cache.validators_path(part).exists()


def test_a_stale_part_longer_than_the_file_starts_over(fake, cache):
    part = cache.part_path(_target(cache))
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(BLOB) + 10))
    path = cache.download(_http(fake), "/files/species.zip", _target(cache), checksum=SHA1)
    assert path.read_bytes() == BLOB
    assert [h.get("Range") for h in fake.seen("GET", "/files/species.zip")][-1] is None


def test_a_checksum_mismatch_discards_the_file(fake, cache):
    with pytest.raises(rw.remote.DownloadIntegrityError) as info:
        cache.download(
            _http(fake), "/files/species.zip", _target(cache), checksum="sha1:" + "0" * 40
        )
    message = str(info.value)
    assert f"has SHA1 {SHA1[5:]}, but the server announced {'0' * 40}" in message
    assert "It was discarded" in message
    assert list(cache.entries()) == []


def test_a_size_mismatch_discards_the_file(fake, cache):
    with pytest.raises(
        rw.remote.DownloadIntegrityError,
        match=f"has {len(BLOB):,} bytes but the server announced 5",
    ):
        cache.download(_http(fake), "/files/species.zip", _target(cache), size=5)
    assert list(cache.entries()) == []


def test_a_full_disk_removes_the_partial_file_and_says_what_to_do(fake, cache, monkeypatch):
    real_write = os.write
    part = cache.part_path(_target(cache))

    def write(fd, data):  # the OS write fails as on a full disk, for the download only
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(part.resolve()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc to tell the download's file descriptor")
    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OutputError) as info:
        cache.download(_http(fake), "/files/species.zip", _target(cache))
    monkeypatch.undo()
    message = str(info.value)
    assert f"No space left on the disk for species.zip in {_target(cache).parent}" in message
    assert (
        f"({len(BLOB):,} bytes needed)" in message and "The unfinished file was removed" in message
    )
    assert "REFINEWIDGETS_CACHE" in message
    assert not part.exists() and not _target(cache).exists()


def test_a_404_names_the_file(fake, cache):
    with pytest.raises(rw.remote.RemoteNotFoundError, match="HTTP 404 Not Found for GSE0.zip"):
        cache.download(_http(fake), "/files/GSE0.zip", _target(cache), what="GSE0.zip")


def test_names_from_servers_are_checked():
    assert safe_name("Danio_rerio_droplet_based_h5ad.tar.gz", "file name")
    for bad in ("../x", ".hidden", "a/b", "", "x\x00y", "C:x"):
        with pytest.raises(SourceFormatError):
            safe_name(bad, "file name")


def test_prune_removes_unfinished_then_everything(fake, cache):
    cache.download(_http(fake), "/files/species.zip", _target(cache))
    fake.cut("/files/species.zip", after=100)
    other = cache.path_for("refinebio", "experiments", "other.zip")
    with pytest.raises(rw.remote.ServiceUnavailableError):
        cache.download(_http(fake, retries=0), "/files/species.zip", other)
    assert [e.complete for e in cache.entries()] == [False, True]
    assert cache.prune(dry_run=True) == [cache.part_path(other)]
    assert cache.prune() == [cache.part_path(other)]
    assert [e.path for e in cache.entries()] == [_target(cache)]
    assert cache.prune(older_than_days=1) == []
    assert cache.prune(everything=True) == [_target(cache)]
    assert list(cache.entries()) == []


def test_cli_cache_list_and_prune(fake, cache, capsys):
    cache.download(_http(fake), "/files/species.zip", _target(cache))
    root = str(cache.root.parent)
    assert main(["cache", "list", "--cache-dir", root]) == 0
    out = capsys.readouterr().out
    assert str(_target(cache)) in out and f"1 file(s), {len(BLOB):,} bytes" in out
    assert main(["cache", "prune", "--all", "--cache-dir", root]) == 0
    assert f"removed {_target(cache)}" in capsys.readouterr().out
    assert main(["cache", "list", "--cache-dir", root]) == 0
    assert "0 file(s)" in capsys.readouterr().out
