"""Bgee species tarballs: indexed once into stubs, members extracted on demand, safely."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas.testing as pdt
import pytest

from refinewidgets.errors import OutputError, SourceFormatError, UnsafeArchiveError
from refinewidgets.io.anndata_elems import read_elem
from refinewidgets.io.bgee.tarball import (
    BgeeTarball,
    default_cache_dir,
    is_tarball,
    tar_compression,
)
from refinewidgets.io.containers import limits
from refinewidgets.testing.bgee_files import write_bgee_h5ad

DATA = Path(__file__).parent / "data" / "bgee"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three seeded Bgee files of different writers (two species folders' worth)."""
    folder = tmp_path_factory.mktemp("h5ad")
    specs = [
        ("Homo_sapiens_ERP101_droplet_based.h5ad", "bgee15_0", 120, 0),
        ("Homo_sapiens_ERP102_droplet_based.h5ad", "newest", 90, 1),
        ("Homo_sapiens_SRP103_droplet_based.h5ad", "bgee15_1", 60, 2),
    ]
    return [
        write_bgee_h5ad(folder / name, variant=variant, n_cells=n, n_genes=80, seed=seed)
        for name, variant, n, seed in specs
    ]


def _tar(path, entries, mode="w:gz") -> Path:
    """A tarball of ``(name in the tar, file on disk | bytes | TarInfo)`` entries."""
    with tarfile.open(path, mode) as tar:
        for name, what in entries:
            if isinstance(what, tarfile.TarInfo):
                what.name = name
                tar.addfile(what)
            elif isinstance(what, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
            else:
                tar.add(what, arcname=name)
    return Path(path)


@pytest.fixture
def tarball(tmp_path, files):
    """Bgee's layout: ``Homo_sapiens/<file>.h5ad`` members, a folder entry, a README."""
    entries = [("Homo_sapiens/README.txt", b"Bgee 15.2\n")]
    entries += [(f"Homo_sapiens/{f.name}", f) for f in files]
    return _tar(tmp_path / "Homo_sapiens_droplet_based_h5ad.tar.gz", entries)


def _cache_entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*")) if cache.exists() else []


# -- the cache folder ----------------------------------------------------------------------


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("REFINEWIDGETS_CACHE")
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG folders are Linux's")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "refinewidgets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "refinewidgets"


def test_the_cache_defaults_to_refinewidgets_cache(monkeypatch, tmp_path, tarball):
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "envcache"))
    tb = BgeeTarball(tarball)
    assert tb.index_dir.parent == tmp_path / "envcache" / "bgee-tarballs"
    assert (tb.index_dir / "manifest.json").is_file()


# -- index and stubs -----------------------------------------------------------------------


def test_index_lists_the_members_with_their_experiments(tmp_path, tarball, files):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    assert tb.passes == 1
    assert [m.name for m in tb.members] == [f"Homo_sapiens/{f.name}" for f in files]
    assert [m.experiment for m in tb.members] == ["ERP101", "ERP102", "SRP103"]
    assert {m.species for m in tb.members} == {"Homo_sapiens"}
    assert [(m.n_obs, m.n_vars) for m in tb.members] == [(120, 80), (90, 80), (60, 80)]
    assert [m.size for m in tb.members] == [f.stat().st_size for f in files]
    assert {m.x_encoding for m in tb.members} == {"csr_matrix"}
    # only the index: stubs and a manifest, no extracted member, no temporary file
    names = {p.relative_to(tb.index_dir).as_posix() for p in _cache_entries(tb.index_dir)}
    assert names == {"manifest.json", "stubs"} | {f"stubs/{f.name}" for f in files}


def test_stubs_hold_obs_var_uns_exactly_and_describe_x(tmp_path, tarball, files):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    for member, original in zip(tb.members, files):
        stub = tb.stub(member.name)
        assert stub.stat().st_size < original.stat().st_size
        full = anndata.read_h5ad(original)
        with h5py.File(stub, "r") as f, h5py.File(original, "r") as g:
            assert "X" not in f and "layers" not in f
            for group in ("obs", "var"):
                pdt.assert_frame_equal(read_elem(f[group]), read_elem(g[group]))
                assert set(f[group].attrs) == set(g[group].attrs) != set()
                for key, value in g[group].attrs.items():
                    assert np.array_equal(f[group].attrs[key], value), (group, key)
            assert ("uns" in f) == ("uns" in g)
            if "uns" in f:
                assert read_elem(f["uns"]) == read_elem(g["uns"]) == full.uns
            pdt.assert_frame_equal(read_elem(f["obs"]), full.obs)
            assert f.attrs["refinewidgets_member"] == member.name
            assert f.attrs["refinewidgets_member_size"] == original.stat().st_size
            assert list(f.attrs["refinewidgets_x_shape"]) == list(full.shape)
            assert f.attrs["refinewidgets_x_encoding"] == "csr_matrix"
            assert f.attrs["refinewidgets_x_dtype"] == "float32"
            assert f.attrs["refinewidgets_x_nnz"] == full.X.nnz
        # anndata itself opens a stub: obs and var, no X
        light = anndata.read_h5ad(stub)
        assert light.X is None and light.shape == full.shape
        pdt.assert_frame_equal(light.obs, full.obs)
        pdt.assert_frame_equal(light.var, full.var)
    newest = anndata.read_h5ad(tb.stub(tb.members[1].name))
    assert newest.uns["organism"] == "Homo sapiens"


def test_a_second_open_reuses_the_index(tmp_path, tarball):
    first = BgeeTarball(tarball, tmp_path / "cache")
    manifest = first.index_dir / "manifest.json"
    before = manifest.stat().st_mtime_ns
    second = BgeeTarball(tarball, tmp_path / "cache")
    assert second.passes == 0
    assert manifest.stat().st_mtime_ns == before
    assert second.members == first.members


def test_a_changed_tarball_is_indexed_again(tmp_path, tarball):
    first = BgeeTarball(tarball, tmp_path / "cache")
    st = tarball.stat()
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = BgeeTarball(tarball, tmp_path / "cache")
    assert second.passes == 1 and second.index_dir != first.index_dir


def test_a_damaged_manifest_is_rebuilt(tmp_path, tarball):
    first = BgeeTarball(tarball, tmp_path / "cache")
    (first.index_dir / "manifest.json").write_text('{"format": "something else"')
    second = BgeeTarball(tarball, tmp_path / "cache")
    assert second.passes == 1 and second.members == first.members


def test_an_interrupted_index_leaves_nothing_and_is_cleaned_later(tmp_path, tarball, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    real = BgeeTarball._write_stub

    def interrupted(self, info, member, stub):
        calls.append(info.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, info, member, stub)

    monkeypatch.setattr(BgeeTarball, "_write_stub", interrupted)
    with pytest.raises(KeyboardInterrupt):
        BgeeTarball(tarball, cache)
    assert [p.name for p in _cache_entries(cache)] == ["bgee-tarballs"]
    monkeypatch.undo()
    # a folder left by a killed indexer (its process is gone) is removed by the next index
    stale = cache / "bgee-tarballs" / ".0123abcd.999999999.x1y2.partial"
    (stale / "stubs").mkdir(parents=True)
    tb = BgeeTarball(tarball, cache)
    assert not stale.exists()
    assert len(tb.members) == 3


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_compression_is_recognized_by_content(tmp_path, files, mode):
    # named .tar.gz whatever it holds: the first bytes decide
    path = _tar(
        tmp_path / "Mus_musculus_droplet_based_h5ad.tar.gz", [(files[0].name, files[0])], mode
    )
    tb = BgeeTarball(path, tmp_path / "cache")
    assert [m.name for m in tb.members] == [files[0].name]
    assert _sha(tb.extract(files[0].name)) == _sha(files[0])


def test_members_at_the_top_level_and_repeated_base_names(tmp_path, files):
    path = _tar(
        tmp_path / "mixed.tgz",
        [
            ("./" + files[0].name, files[0]),
            (f"release_a/{files[1].name}", files[1]),
            (f"release_b/{files[1].name}", files[2]),  # same base name, other content
            (f"__MACOSX/._{files[1].name}", b"\x00\x05\x16\x07 AppleDouble"),
        ],
    )
    tb = BgeeTarball(path, tmp_path / "cache")
    assert [m.file for m in tb.members] == [files[0].name, files[1].name, f"2/{files[1].name}"]
    assert [m.experiment for m in tb.members] == ["ERP101", "ERP102", "ERP102"]
    a, b = tb.extract_many([f"release_a/{files[1].name}", f"release_b/{files[1].name}"]).values()
    assert (_sha(a), _sha(b)) == (_sha(files[1]), _sha(files[2]))
    assert a.name == b.name == files[1].name and a != b


# -- extraction and the cache bound --------------------------------------------------------


def test_extract_gives_byte_identical_members_and_reuses_them(tmp_path, tarball, files):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    last = tb.members[-1].name
    path = tb.extract(last)
    assert path == tb.index_dir / "members" / files[-1].name
    assert _sha(path) == _sha(files[-1])
    assert tb.passes == 2
    mtime = path.stat().st_mtime_ns
    assert tb.extract(last) == path and tb.passes == 2  # reused, not read again
    # another object over the same cache reuses it too
    other = BgeeTarball(tarball, tmp_path / "cache")
    assert other.extract(last) == path and other.passes == 0
    assert path.stat().st_mtime_ns >= mtime
    # a member of the wrong size (a damaged cache) is extracted again
    with open(path, "r+b") as fh:
        fh.truncate(100)
    assert _sha(other.extract(last)) == _sha(files[-1]) and other.passes == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(SourceFormatError, match=r"has no H5AD member 'nope.h5ad'; it has 3: "):
        tb.extract("nope.h5ad")


def test_extract_many_reads_the_tarball_once(tmp_path, tarball, files):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    paths = tb.extract_many(m.name for m in tb.members)
    assert tb.passes == 2
    assert [_sha(p) for p in paths.values()] == [_sha(f) for f in files]


def test_least_recently_used_members_are_evicted(tmp_path, tarball, files):
    sizes = [f.stat().st_size for f in files]
    cap = sizes[0] + sizes[1] + sizes[2] - 1  # any two fit, not three
    tb = BgeeTarball(tarball, tmp_path / "cache", max_cache_bytes=cap)
    a, b, c = (m.name for m in tb.members)
    pa, pb = tb.extract(a), tb.extract(b)
    stubs_before = sorted(p.name for p in (tb.index_dir / "stubs").iterdir())
    os.utime(pa, ns=(1, 1_000_000_000))  # a older than b...
    os.utime(pb, ns=(1, 2_000_000_000))
    assert tb.extract(a) == pa and tb.passes == 3  # ...until used again (no extraction)
    pc = tb.extract(c)
    assert pa.exists() and not pb.exists() and pc.exists()
    assert tb.cached_bytes() == sizes[0] + sizes[2] <= cap
    assert sorted(p.name for p in (tb.index_dir / "stubs").iterdir()) == stubs_before
    assert (tb.index_dir / "manifest.json").exists()


def test_the_bound_comes_from_the_environment(tmp_path, tarball, files, monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_CACHE_MAX_BYTES", "1")
    tb = BgeeTarball(tarball, tmp_path / "cache")
    assert tb.max_cache_bytes == 1
    first, second = tb.extract(tb.members[0].name), tb.extract(tb.members[1].name)
    assert second.exists() and not first.exists()  # the one just extracted is always kept
    monkeypatch.setenv("REFINEWIDGETS_CACHE_MAX_BYTES", "lots")
    with pytest.raises(SourceFormatError, match="REFINEWIDGETS_CACHE_MAX_BYTES='lots' is not"):
        BgeeTarball(tarball, tmp_path / "cache")
    assert BgeeTarball(tarball, tmp_path / "cache", max_cache_bytes=0).max_cache_bytes == 0


def test_clear_removes_members_and_optionally_the_index(tmp_path, tarball):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    path = tb.extract(tb.members[0].name)
    tb.clear()
    assert not path.exists() and tb.stub(tb.members[0].name).exists()
    tb.clear(index=True)
    assert not tb.index_dir.exists()
    with pytest.raises(SourceFormatError, match="open the tarball again"):
        tb.stub(tb.members[0].name)
    assert BgeeTarball(tarball, tmp_path / "cache").passes == 1


def test_a_tarball_changed_after_indexing_is_not_extracted_from(tmp_path, tarball, files):
    tb = BgeeTarball(tarball, tmp_path / "cache")
    _tar(tarball, [(files[0].name, files[0])])
    with pytest.raises(SourceFormatError, match="changed since it was indexed: open it again"):
        tb.extract(tb.members[0].name)


# -- bad input -----------------------------------------------------------------------------


def test_a_truncated_tarball_is_refused_and_leaves_nothing(tmp_path, tarball):
    data = tarball.read_bytes()
    for cut in (len(data) // 2, len(data) - 8):  # in a member; in the gzip trailer
        path = tmp_path / f"cut{cut}.tar.gz"
        path.write_bytes(data[:cut])
        cache = tmp_path / f"cache{cut}"
        with pytest.raises(SourceFormatError) as err:
            BgeeTarball(path, cache)
        assert str(path) in str(err.value)
        assert "truncated or corrupt" in str(err.value) and "download it again" in str(err.value)
        assert [p.name for p in _cache_entries(cache)] == ["bgee-tarballs"]


def test_a_truncated_plain_tar_is_refused(tmp_path, files):
    path = _tar(tmp_path / "x.tar", [(files[0].name, files[0])], "w")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(SourceFormatError, match="truncated or corrupt.*download it again"):
        BgeeTarball(path, tmp_path / "cache")


def test_tarballs_are_recognized_by_content(tmp_path, tarball, files):
    assert tar_compression(tarball) == "gzip" and is_tarball(tarball)
    plain = _tar(tmp_path / "plain.bin", [(files[0].name, files[0])], "w")
    assert tar_compression(plain) == "none" and is_tarball(plain)
    gz_h5ad = tmp_path / "x.h5ad.gz"
    gz_h5ad.write_bytes(gzip.compress(files[0].read_bytes()))
    assert tar_compression(gz_h5ad) is None and not is_tarball(gz_h5ad)
    assert not is_tarball(files[0]) and not is_tarball(tmp_path) and not is_tarball(tmp_path / "no")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tarball.read_bytes()[:40])
    assert not is_tarball(cut)
    with pytest.raises(SourceFormatError, match=r"cut.tar.gz is truncated or corrupt"):
        BgeeTarball(cut, tmp_path / "cache")
    with pytest.raises(SourceFormatError, match=r"x.h5ad.gz is not a tar archive"):
        BgeeTarball(gz_h5ad, tmp_path / "cache")


def test_progress_is_reported_while_the_tarball_is_read(tmp_path, tarball):
    calls = []
    tb = BgeeTarball(tarball, tmp_path / "cache", progress=lambda done, total: calls.append(done))
    size = tarball.stat().st_size
    assert len(calls) >= 4 and calls == sorted(calls) and calls[-1] == size
    calls.clear()
    tb.extract(tb.members[0].name)  # stops after the first member
    assert calls and calls[-1] < size


def test_a_file_that_is_not_a_tarball_is_refused(tmp_path):
    path = tmp_path / "Homo_sapiens_droplet_based_h5ad.tar.gz"
    path.write_text("<html>Not found</html>\n" * 40)
    with pytest.raises(SourceFormatError, match=r"is not a tar archive .*Download it again"):
        BgeeTarball(path, tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BgeeTarball(tmp_path / "missing.tar.gz", tmp_path / "cache")


def _assert_nothing_escaped(tmp_path: Path, *allowed: str) -> None:
    """Only the tarball and the cache under tmp_path; no ``x.h5ad`` anywhere, even above it."""
    assert {p.name for p in tmp_path.iterdir()} <= {*allowed, "cache"}
    assert not list(tmp_path.rglob("x.h5ad"))
    assert not (tmp_path.parent / "x.h5ad").exists()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../x.h5ad", "'../x.h5ad'"),
        ("Homo_sapiens/../../x.h5ad", "'Homo_sapiens/../../x.h5ad'"),
        ("/tmp/x.h5ad", "'/tmp/x.h5ad'"),
        ("C:/x.h5ad", "'C:/x.h5ad'"),
    ],
)
def test_members_escaping_their_folder_are_refused(tmp_path, files, name, shown):
    path = _tar(
        tmp_path / "evil.tar.gz", [(files[0].name, files[0]), (name, files[1].read_bytes())]
    )
    assert name in tarfile.open(path).getnames()  # the tarball really holds that name
    with pytest.raises(UnsafeArchiveError) as err:
        BgeeTarball(path, tmp_path / "cache")
    assert f"evil.tar.gz holds an unsafe member name {shown}" in str(err.value)
    assert "Nothing was extracted" in str(err.value)
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]
    _assert_nothing_escaped(tmp_path, "evil.tar.gz")


@pytest.mark.parametrize(
    ("kind", "link", "message"),
    [
        (tarfile.SYMTYPE, "../../x.h5ad", "a symbolic link to '../../x.h5ad'"),
        (tarfile.LNKTYPE, "Homo_sapiens_ERP101_droplet_based.h5ad", "a hard link to"),
        (tarfile.FIFOTYPE, "", "a device or FIFO"),
        (tarfile.CHRTYPE, "", "a device or FIFO"),
    ],
)
def test_links_and_special_files_are_refused(tmp_path, files, kind, link, message):
    info = tarfile.TarInfo()
    info.type, info.linkname = kind, link
    path = _tar(
        tmp_path / "links.tar.gz",
        [(files[0].name, files[0]), ("Homo_sapiens_ERP9_droplet_based.h5ad", info)],
    )
    with pytest.raises(UnsafeArchiveError) as err:
        BgeeTarball(path, tmp_path / "cache")
    text = str(err.value)
    assert "links.tar.gz holds 'Homo_sapiens_ERP9_droplet_based.h5ad', " + message in text
    assert "refused and nothing was extracted" in text
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]
    _assert_nothing_escaped(tmp_path, "links.tar.gz")


def test_a_member_name_bgee_does_not_write_is_refused(tmp_path, files):
    path = _tar(tmp_path / "odd.tar.gz", [("Homo sapiens; rm -rf.h5ad", files[0])])
    with pytest.raises(SourceFormatError, match=r"holds 'Homo sapiens; rm -rf.h5ad', a file name"):
        BgeeTarball(path, tmp_path / "cache")


def test_a_member_that_is_not_hdf5_is_refused(tmp_path, files):
    path = _tar(
        tmp_path / "bad.tar.gz",
        [(files[0].name, files[0]), ("Homo_sapiens_ERP9_droplet_based.h5ad", b"PK\x03\x04" * 300)],
    )
    with pytest.raises(SourceFormatError) as err:
        BgeeTarball(path, tmp_path / "cache")
    assert (
        "bad.tar.gz: the member Homo_sapiens_ERP9_droplet_based.h5ad is not a valid HDF5 (H5AD) file"
        in str(err.value)
    )
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]


def test_an_hdf5_member_that_is_not_h5ad_is_refused(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["matrix"] = np.zeros(3)
    path = _tar(tmp_path / "h5.tar.gz", [("Danio_rerio_SRP9_droplet_based.h5ad", plain)])
    with pytest.raises(
        SourceFormatError, match=r"not an H5AD file \(no obs or var group; it holds matrix\)"
    ):
        BgeeTarball(path, tmp_path / "cache")


def test_a_tarball_without_h5ad_members_lists_what_it_holds(tmp_path):
    entries = [(f"Homo_sapiens/file{i}.tsv", b"a\tb\n") for i in range(12)]
    path = _tar(tmp_path / "tsv.tar.gz", entries)
    with pytest.raises(SourceFormatError) as err:
        BgeeTarball(path, tmp_path / "cache")
    text = str(err.value)
    assert f"{path} holds no .h5ad file; it holds 12 other files: Homo_sapiens/file0.tsv, " in text
    assert "Homo_sapiens/file7.tsv, ..." in text and "file8" not in text
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]
    empty = _tar(tmp_path / "empty.tar.gz", [])
    with pytest.raises(SourceFormatError, match=r"holds no .h5ad file\. Bgee's droplet tarballs"):
        BgeeTarball(empty, tmp_path / "cache")


def test_an_unwritable_cache_is_named(tmp_path, tarball):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(OutputError) as err:
        BgeeTarball(tarball, blocker / "cache")
    text = str(err.value)
    assert f"Cannot write in the cache folder {blocker / 'cache' / 'bgee-tarballs'}" in text
    assert "set the environment variable REFINEWIDGETS_CACHE to a folder you can write to" in text


def test_archive_size_caps_apply(tmp_path, tarball, monkeypatch):
    monkeypatch.setattr(limits.READ_LIMITS, "max_bytes", 1000)
    with pytest.raises(UnsafeArchiveError, match="above the cap of 1,000: nothing was read"):
        BgeeTarball(tarball, tmp_path / "cache")
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]


# -- the shared fixtures (tests/data/bgee, made by scripts/make_bgee_fixtures.py) ------------

FIXTURE = DATA / "tarball" / "Danio_rerio_droplet_based_h5ad.tar.gz"
needs_fixtures = pytest.mark.skipif(not FIXTURE.exists(), reason="tests/data/bgee not generated")


@needs_fixtures
def test_the_danio_rerio_fixture_tarball(tmp_path):
    import json

    expected = json.loads((DATA / "expected.json").read_text())
    wanted = {
        key.split("!", 1)[1]: value
        for key, value in expected.items()
        if key.startswith("tarball/Danio_rerio_droplet_based_h5ad.tar.gz!")
    }
    tb = BgeeTarball(FIXTURE, tmp_path / "cache")
    assert [m.name for m in tb.members] == sorted(wanted)  # the .tsv companions are not members
    with tarfile.open(FIXTURE) as tar:
        originals = {m.name: tar.extractfile(m.name).read() for m in tb.members}
    for member in tb.members:
        want = wanted[member.name]
        assert (member.experiment, member.species) == (want["experiment"], want["species"])
        assert (member.n_obs, member.n_vars) == (want["n_obs"], want["n_vars"])
        with h5py.File(tb.stub(member.name), "r") as f:
            obs = read_elem(f["obs"])
        assert obs["library_id"].value_counts().to_dict() == want["cells_per_library"]
        data = tb.extract(member.name).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256(originals[member.name]).digest()


@needs_fixtures
@pytest.mark.parametrize(
    ("folder", "error", "message"),
    [
        ("truncated_tarball", SourceFormatError, r"truncated or corrupt .*download it again"),
        ("escape_tarball", UnsafeArchiveError, r"unsafe member name '\.\./escape\.h5ad'"),
        (
            "absolute_tarball",
            UnsafeArchiveError,
            r"unsafe member name '/tmp/refinewidgets_absolute\.h5ad'",
        ),
        (
            "symlink_tarball",
            UnsafeArchiveError,
            r"holds 'Danio_rerio/Danio_rerio_SRP310009_droplet_based\.h5ad', a symbolic link to "
            r"'\.\./\.\./\.\./etc/passwd'",
        ),
    ],
)
def test_the_bad_fixture_tarballs(tmp_path, folder, error, message):
    path = DATA / "bad" / folder / "Danio_rerio_droplet_based_h5ad.tar.gz"
    with pytest.raises(error, match=message):
        BgeeTarball(path, tmp_path / "cache")
    assert [p.name for p in _cache_entries(tmp_path / "cache")] == ["bgee-tarballs"]
