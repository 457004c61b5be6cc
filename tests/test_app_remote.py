"""refine.bio and Bgee in the app (``rw.DatasetBuilder``), without a browser.

The services are the real local HTTP server of :mod:`refinewidgets.testing.fake_services`
(127.0.0.1 only); nothing of refinewidgets is replaced. Expected values come from the core API
on the same files.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

import refinewidgets as rw
from refinewidgets.app import free_port
from refinewidgets.core.pending import RemoteExperiment
from refinewidgets.io.remote.cache import DownloadCache
from refinewidgets.testing.fake_services import (
    FakeServices,
    retitled,
    split_experiment_download,
)
from refinewidgets.widgets import DatasetBuilder

DATA = Path(__file__).parent / "data"
EMAIL = "someone@example.org"
HUMAN = "Homo_sapiens_ERP132576_droplet_based.h5ad"
TARBALL = "Danio_rerio_droplet_based_h5ad.tar.gz"
HOSTILE = "<img src=x onerror=alert(1)> kidney"


@pytest.fixture
def ftp_root(tmp_path):
    root = tmp_path / "ftp" / "h5ad" / "droplet_based"
    (root / "Danio_rerio").mkdir(parents=True)
    (root / "Homo_sapiens").mkdir(parents=True)
    shutil.copy(DATA / "bgee" / "tarball" / TARBALL, root / "Danio_rerio" / TARBALL)
    for name in (HUMAN, "Homo_sapiens_ERP400001_droplet_based.h5ad"):
        shutil.copy(DATA / "bgee" / name, root / "Homo_sapiens" / name)
    return tmp_path / "ftp"


@pytest.fixture
def fake(tmp_path, ftp_root, monkeypatch):
    """The services, a cache of the test's own, a token and an e-mail address."""
    monkeypatch.setenv("REFINEWIDGETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINEBIO_CONFIG_FILE", str(tmp_path / "refinebio.yaml"))
    monkeypatch.setenv("REFINEWIDGETS_HTTP_RETRIES", "1")
    monkeypatch.setenv("REFINEWIDGETS_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("REFINEWIDGETS_HTTP_TIMEOUT", "10")
    experiments = split_experiment_download(DATA / "refinebio" / "experiment_shuffled.zip")
    experiments["E-MTAB-4001"] = retitled(experiments["E-MTAB-4001"], "E-MTAB-4001", HOSTILE)
    with FakeServices(experiments=experiments, ftp_root=ftp_root, processing_polls=2) as server:
        monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", server.api)
        monkeypatch.setenv("REFINEWIDGETS_BGEE_FTP", server.ftp)
        monkeypatch.setenv("REFINEBIO_TOKEN", server.activated_token())
        monkeypatch.setenv("REFINEBIO_EMAIL", EMAIL)
        yield server


@pytest.fixture
def builder(fake, demo_cat):
    app = DatasetBuilder(demo_cat)
    app.poll_interval = 0.01
    return app


def _refinebio(builder):
    builder.source.value = "refinebio"
    panel = builder.remote_panels["refinebio"]
    panel.wait()
    return panel


def _add_from_refinebio(builder, *accessions):
    panel = _refinebio(builder)
    for acc in accessions:
        panel.table.tick(acc)
    panel.add_button.click()
    return panel


def _to_fetch(builder, *accessions):
    """Put refine.bio experiments in the builder's dataset, to fetch (as the panel would)."""
    experiments = [RemoteExperiment("refinebio", acc) for acc in accessions]
    builder.state.selection = builder.state.selection.add_remote(experiments)


def _get_token(account):
    account.get_button.click()
    account.wait()
    return account.status


def _build(builder):
    builder.build_button.click()
    builder.wait(120)
    return builder.result


def _says_refused(detail, url, setting):
    """The client's technical message (folded away in the app) names the refused address and
    the setting that points there."""
    assert "connection refused" in detail and urlsplit(url).netloc in detail, detail
    assert setting in detail, detail


def _cache_files(tmp_path):
    return sorted(e.path.name for e in DownloadCache(tmp_path / "cache").entries())


def test_refinebio_search_facets_and_add_to_the_dataset(builder, fake):
    panel = _refinebio(builder)
    assert panel.status.kind == "info", panel.status.text
    assert panel.total == 2 and sorted(panel.table.row_keys) == ["E-MTAB-4001", "GSE100001"]
    assert list(panel.facets["organism"].options) == [("Homo sapiens (8 samples)", "HOMO_SAPIENS")]
    # the facets narrow the search on the server, with the server's counts
    panel.search.value = "kidney"
    panel.wait()
    assert panel.table.row_keys == ["E-MTAB-4001"]
    assert panel.status.text.startswith("refine.bio has 1 matching experiment(s)")
    assert list(panel.facets["technology"].options) == [("microarray (4 samples)", "microarray")]
    panel.search.value = ""
    panel.wait()
    panel.facets["technology"].value = ("microarray",)
    panel.wait()
    assert sorted(panel.table.row_keys) == ["E-MTAB-4001", "GSE100001"]
    assert len(fake.seen("GET", "/v1/search/")) == 4
    # titles from the service are text, never markup
    assert "&lt;img src=x onerror=alert(1)&gt; kidney" in panel.table.grid.value
    assert "<img src=x" not in panel.table.grid.value
    panel.table.tick("GSE100001")
    panel.add_button.click()
    selection = builder.state.selection
    assert [p.key for p in selection.pending] == ["GSE100001"]
    assert selection.pending[0].technology == "MICROARRAY" and selection.pending[0].samples == 4
    assert builder.dataset is None  # nothing local yet
    assert builder.tabs.get_title(1) == "My dataset (+1 to fetch)"
    assert builder.cart_view.summary.value == (
        "1 experiment(s) to fetch from refine.bio when you build"
    )
    (row,) = builder.cart_view.rows.children[1:]
    assert (
        "rw-cart-pending" in row._dom_classes
        and "to fetch from refine.bio" in row.children[0].value
    )
    assert panel.table.marked == ["GSE100001"]
    assert "rw.remote.refinebio.fetch(['GSE100001'])" in builder.code.value
    assert fake.seen("POST", "/v1/dataset/") == []  # adding never calls the server


def test_pending_experiments_are_removed_undone_and_cleared_like_local_ones(builder):
    builder.restore(rw.Dataset({"GSE71102": ["ALL"]}))
    _add_from_refinebio(builder, "GSE100001", "E-MTAB-4001")
    cart = builder.cart_view
    assert cart.summary.value.endswith("; 2 experiment(s) to fetch from refine.bio when you build")
    cart.remove_buttons["GSE100001"].click()
    assert [p.key for p in builder.state.selection.pending] == ["E-MTAB-4001"]
    cart.undo_button.click()
    assert [p.key for p in builder.state.selection.pending] == ["GSE100001", "E-MTAB-4001"]
    cart.clear_button.click()
    assert builder.state.selection.pending == () and builder.dataset is None
    cart.undo_button.click()
    assert len(builder.state.selection.pending) == 2 and builder.dataset.data == {
        "GSE71102": ["ALL"]
    }


def test_build_fetches_then_builds_and_a_second_build_never_fetches(
    builder, fake, tmp_path, demo_cat
):
    _add_from_refinebio(builder, "GSE100001")
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    # fetched once, opened beside the demo, every sample added, built locally
    assert len(fake.seen("POST", "/v1/dataset/")) == 1
    assert len(fake.seen("GET", "/files/datasets/")) == 1
    assert _cache_files(tmp_path) == ["GSE100001.zip"]
    (path,) = rw.remote.cached(service="refinebio")
    assert builder.state.selection.pending == ()
    assert builder.dataset.data == {"GSE100001": ["ALL"]}
    assert "GSE71102" in builder.catalog.experiments.index  # the demo is still there
    # refine.bio listed a sample it could not process: said in the app, never raised
    assert builder.cart_view.status.kind == "warning"
    assert builder.cart_view.status.text.startswith(
        "Opening the downloads: GSE100001.zip: 1 sample(s) are listed in the metadata but have "
        "no values"
    )
    with pytest.warns(rw.MetadataMismatchWarning, match="GSM3170190"):
        fetched = rw.open_catalog(path)
    # the demo's sources stay (its QN target for HOMO_SAPIENS included)
    same = rw.Catalog([*demo_cat.sources, *fetched.sources])
    expected = rw.build(rw.Dataset({"GSE100001": ["ALL"]}), same)
    assert list(result) == ["GSE100001"]
    got, want = result["GSE100001"], expected["GSE100001"]
    assert sorted(got.obs_names) == ["GSM3170327", "GSM3170545", "GSM3170811"]
    assert "GSM3170190" in set(result.filtered_samples["accession"])
    assert result.filtered_samples.equals(expected.filtered_samples)
    np.testing.assert_allclose(got[want.obs_names, want.var_names].X, want.X)
    assert "rw.remote.refinebio.fetch(['GSE100001'])" in builder.code.value
    # the local browser lists the fetched experiment
    builder.source.value = "local"
    builder.browser.search.value = "GSE100001"
    assert builder.browser.table.row_keys == ["GSE100001"]
    # other options: built again from the cache, no request at all
    before = len(fake.requests)
    builder.options.transformation.value = "STANDARD"
    result = _build(builder)
    assert builder.status.kind == "success" and result.dataset.scale_by == "STANDARD"
    assert len(fake.requests) == before
    # adding it again from refine.bio: it is local now, nothing to fetch
    panel = _refinebio(builder)
    panel.wait()
    assert "downloaded" in panel.table.grid.value
    builder.cart_view.clear_button.click()
    panel.table.tick("GSE100001")
    panel.add_button.click()
    assert builder.state.selection.pending == ()
    assert builder.dataset.data == {"GSE100001": ["ALL"]}


def test_cancel_stops_the_fetch_at_once_and_keeps_no_file(builder, fake, tmp_path):
    fake.throttle("/files/datasets/", chunk=256, pause=0.1)
    _add_from_refinebio(builder, "GSE100001")
    builder.build_button.click()
    deadline = time.monotonic() + 60
    while "bytes of" not in builder.progress.label.value:
        assert time.monotonic() < deadline, builder.progress.label.value
        time.sleep(0.02)
    assert "downloading GSE100001 from refine.bio" in builder.progress.label.value
    # a spinner says what the build waits for, beside the Cancel it can use
    spinner = builder.fetch_spinner
    assert spinner.layout.display is None and not builder.cancel_button.disabled
    assert "Fetching 1 experiment(s) from refine.bio (Cancel stops it)..." in spinner.value
    builder.cancel_button.click()
    started = time.monotonic()
    builder.wait(30)
    assert time.monotonic() - started < 5  # promptly, not after the whole file
    assert spinner.layout.display == "none" and spinner.value == ""
    assert builder.status.text == (
        "The build was cancelled: Cancelled while fetching 1 experiment(s) from refine.bio."
    )
    assert builder.progress.label.value == "cancelled"
    assert _cache_files(tmp_path) == []  # neither the file nor a part of it
    assert [p.key for p in builder.state.selection.pending] == ["GSE100001"]
    assert not builder.build_button.disabled and builder.cancel_button.disabled
    # the next build reuses refine.bio's dataset and fetches the whole file
    fake.rules.clear()
    _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert len(fake.seen("POST", "/v1/dataset/")) == 1
    assert _cache_files(tmp_path) == ["GSE100001.zip"]


def test_cancel_while_refinebio_processes_stops_the_polling_too(builder, fake, tmp_path):
    fake.processing_polls = 10**6  # refine.bio takes its time
    builder.poll_interval = 5.0  # the job is between two questions when Cancel comes
    _add_from_refinebio(builder, "GSE100001")
    builder.build_button.click()
    deadline = time.monotonic() + 30
    while (
        len(fake.seen("GET", "/v1/dataset/")) < 2 or "prepares" not in builder.progress.label.value
    ):
        assert time.monotonic() < deadline, builder.progress.label.value
        time.sleep(0.02)
    assert builder.progress.label.value.startswith("refine.bio prepares GSE100001: 0 of 1 ready")
    job = builder._fetch_job
    builder.cancel_button.click()
    started = time.monotonic()
    assert job.wait(2), "the fetch thread still polls refine.bio"
    assert time.monotonic() - started < 2 and not job._thread.is_alive()
    builder.wait(10)
    assert builder.status.text == (
        "The build was cancelled: Cancelled while fetching 1 experiment(s) from refine.bio."
    )
    with pytest.raises(rw.BuildCancelled, match="Cancelled while refine.bio prepares GSE100001"):
        job.result()
    polls = len(fake.seen("GET", "/v1/dataset/"))
    time.sleep(0.5)  # longer than the server would take to be asked again
    assert len(fake.seen("GET", "/v1/dataset/")) == polls  # no question after the thread ended
    assert _cache_files(tmp_path) == []  # nothing downloaded, no part file
    marker = DownloadCache(tmp_path / "cache").path_for("refinebio", "experiments", "GSE100001.zip")
    assert marker.with_name(".GSE100001.zip.dataset.json").is_file()  # the dataset is kept
    # the next build waits for the same refine.bio dataset, then fetches it
    fake.processing_polls = 2
    builder.poll_interval = 0.01
    _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert len(fake.seen("POST", "/v1/dataset/")) == 1
    assert _cache_files(tmp_path) == ["GSE100001.zip"]


def test_without_network_the_app_says_so_in_the_users_words_and_opens_the_cache(
    fake, demo_cat, monkeypatch
):
    rw.remote.refinebio.fetch(["GSE100001"], poll_interval=0.01)  # downloaded earlier
    dead = f"http://127.0.0.1:{free_port()}/v1/"
    monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", dead)
    builder = DatasetBuilder(demo_cat)
    panel = _refinebio(builder)
    assert panel.status.kind == "error"
    assert panel.status.text == (
        "refine.bio cannot be reached from this computer. Searching refine.bio failed: check "
        'this computer\'s network connection and try again. "Open downloaded files" opens the 1 '
        "file(s) from refine.bio already in the download cache."
    )
    # the client's technical message is there, folded away; the headline names no setting
    assert "$" not in panel.status.text and "127.0.0.1" not in panel.status.text
    assert panel.details.layout.display is None and panel.details.selected_index is None
    _says_refused(panel.details.text, dead, "$REFINEWIDGETS_REFINEBIO_API")
    # nothing to page through, nothing waited for
    assert panel.table.prev.disabled and panel.table.next.disabled
    assert not panel.busy and panel.busy_box.layout.display == "none"
    assert not panel.open_cache_button.disabled  # the cache holds GSE100001
    panel.open_cache_button.click()
    assert panel.status.kind == "success", panel.status.text
    assert "GSE100001" in builder.catalog.experiments.index
    sources = len(builder.catalog.sources)
    panel.open_cache_button.click()  # twice: nothing is opened twice
    assert len(builder.catalog.sources) == sources
    assert builder.catalog_code == (
        "rw.Catalog([*rw.open_catalog().sources, "
        "*rw.open_catalog(*rw.remote.cached(service='refinebio')).sources])"
    )
    # a build needing the network says so too, and offers the cache
    builder2 = DatasetBuilder(demo_cat)
    _to_fetch(builder2, "GSE100001", "E-MTAB-4001")
    assert _build(builder2) is None
    assert builder2.status.kind == "error"
    assert builder2.status.text == (
        "refine.bio cannot be reached from this computer. Nothing was fetched (GSE100001, "
        "E-MTAB-4001): check this computer's network."
    )
    _says_refused(builder2.fetch_details.text, dead, "$REFINEWIDGETS_REFINEBIO_API")
    assert builder2.fetch_details.selected_index is None
    assert builder2.offline_box.layout.display is None
    assert "1 file(s) from refine.bio are already in the download cache" in (
        builder2.offline_note.value
    )
    builder2.offline_button.click()
    assert builder2.dataset.data == {"GSE100001": ["ALL"]}
    assert [p.key for p in builder2.state.selection.pending] == ["E-MTAB-4001"]
    assert builder2.status.kind == "warning"
    assert "E-MTAB-4001 (remove them to build the rest)" in builder2.status.text
    builder2.cart_view.remove("E-MTAB-4001")
    assert _build(builder2) is not None and builder2.status.kind == "success"


def test_a_spinner_and_cancel_while_refinebio_is_asked(builder, fake):
    fake.delay("/v1/search/", 2.0, times=1)  # refine.bio takes its time, once
    builder.source.value = "refinebio"
    panel = builder.remote_panels["refinebio"]
    assert panel.busy and panel.busy_box.layout.display is None
    assert "Searching refine.bio..." in panel.spinner.value
    assert 'role="status"' in panel.spinner.value and not panel.cancel_button.disabled
    assert panel.status.text == "Searching refine.bio..."
    started = time.monotonic()
    panel.cancel_button.click()
    assert time.monotonic() - started < 1
    assert not panel.busy and panel.busy_box.layout.display == "none"
    assert panel.spinner.value == ""
    cancelled = (
        "Cancelled: searching refine.bio stopped. Ask again when you want; files already "
        'downloaded from refine.bio open without the network ("Open downloaded files").'
    )
    assert panel.status.text == cancelled and panel.status.kind == "info"
    panel.wait()  # the answer comes after Cancel: ignored
    assert len(fake.seen("GET", "/v1/search/")) == 1
    assert panel.table.row_keys == [] and panel.status.text == cancelled
    assert panel.table.prev.disabled and panel.table.next.disabled
    panel.search_button.click()  # asked again: answered
    panel.wait()
    assert sorted(panel.table.row_keys) == ["E-MTAB-4001", "GSE100001"]
    assert panel.status.text.startswith("refine.bio has 2 matching experiment(s)")


def test_open_downloaded_files_is_disabled_while_the_cache_holds_nothing(builder, fake):
    panel = _refinebio(builder)
    assert panel.open_cache_button.disabled
    assert panel.open_cache_button.tooltip == "Nothing from refine.bio is in the download cache yet"
    builder.source.value = "bgee"
    bgee = builder.remote_panels["bgee"]
    bgee.wait()
    assert bgee.open_cache_button.disabled
    assert bgee.table.prev.disabled and bgee.table.next.disabled  # no species chosen yet
    panel.table.tick("GSE100001")
    panel.add_button.click()
    assert _build(builder) is not None, builder.status.text
    assert not panel.open_cache_button.disabled and bgee.open_cache_button.disabled
    assert panel.open_cache_button.tooltip.startswith("Open the 1 refine.bio file(s)")


def test_a_link_mixing_remote_and_local_experiments_builds_the_local_part_offline(
    fake, demo_cat, monkeypatch
):
    from refinewidgets.core.pending import not_fetched

    dead = f"http://127.0.0.1:{free_port()}/v1/"
    monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", dead)
    builder = DatasetBuilder(demo_cat, page_query="exp=SRP091833&remote=refinebio:GSE100001")
    builder.poll_interval = 0.01
    builder.wait_described()
    (pending,) = builder.state.selection.pending
    assert (pending.key, pending.title, pending.samples) == ("GSE100001", "", None)
    started = time.monotonic()
    result = _build(builder)
    assert time.monotonic() - started < 30
    assert list(result) == ["SRP091833"] and result["SRP091833"].n_obs == 20
    filtered = result.filtered_samples
    assert filtered[filtered["accession"] == "GSE100001"].values.tolist() == [
        ["GSE100001", "GSE100001", not_fetched("refine.bio")]
    ]
    shape = f"{result['SRP091833'].n_obs:,} x {result['SRP091833'].n_vars:,}"
    assert builder.status.kind == "warning"
    assert builder.status.text == (
        f"Built 1 group(s) (SRP091833: {shape}); {len(filtered) - 1} sample(s) filtered. "
        "refine.bio cannot be reached from this computer: GSE100001 not fetched (listed in the "
        "filtered samples; still in the dataset, to fetch when you build again)."
    )
    assert "not fetched: refine.bio cannot be reached" in builder.results.filtered.value
    _says_refused(builder.fetch_details.text, dead, "$REFINEWIDGETS_REFINEBIO_API")
    assert builder.offline_box.layout.display is None
    # still to fetch: in the dataset and its link
    assert [p.key for p in builder.state.selection.pending] == ["GSE100001"]
    assert "remote=refinebio%3AGSE100001" in builder.link_query
    assert "exp=SRP091833" in builder.link_query
    # refine.bio answers again (a search): the experiment gets its title and sample count
    monkeypatch.setenv("REFINEWIDGETS_REFINEBIO_API", fake.api)
    _refinebio(builder)
    builder.wait_described()
    (pending,) = builder.state.selection.pending
    assert (pending.title, pending.organism, pending.samples) == (
        "Lung transcriptomes of COPD patients",
        "HOMO_SAPIENS",
        4,
    )
    (row,) = [r for r in builder.cart_view.rows.children[1:] if "rw-cart-pending" in r._dom_classes]
    assert "Lung transcriptomes of COPD patients" in row.children[0].value
    assert "4 to fetch" in row.children[0].value
    # and the next build fetches it
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert sorted(result) == ["GSE100001", "SRP091833"]
    assert "GSE100001" not in set(result.filtered_samples["accession"])


def test_bgee_unreachable_by_name_is_said_in_the_users_words_at_once(builder, fake, monkeypatch):
    # a host name that does not resolve: the name lookup fails, no connection is tried
    monkeypatch.setenv("REFINEWIDGETS_BGEE_FTP", "http://ftp.nonexistent.invalid/ftp/current/")
    started = time.monotonic()
    builder.source.value = "bgee"
    panel = builder.remote_panels["bgee"]
    panel.wait()
    assert time.monotonic() - started < 10
    assert panel.status.kind == "error"
    assert panel.status.text == (
        "Bgee cannot be reached from this computer. Listing Bgee's species failed: check this "
        "computer's network connection and try again. Nothing from Bgee is in the download "
        "cache yet."
    )
    assert "nonexistent.invalid" not in panel.status.text and "$" not in panel.status.text
    detail = panel.details.text
    assert "the host name does not resolve" in detail and "ftp.nonexistent.invalid" in detail
    assert "$REFINEWIDGETS_BGEE_FTP" in detail
    assert panel.details.selected_index is None  # folded
    assert panel.open_cache_button.disabled  # the cache holds nothing of Bgee
    assert panel.add_button.disabled and panel.add_species_button.disabled  # nothing to add
    assert not panel.species.options
    assert panel.table.prev.disabled and panel.table.next.disabled
    assert not panel.busy and panel.busy_box.layout.display == "none"
    assert fake.seen("GET", "/ftp/") == []


def test_a_service_that_answers_with_its_own_failure_is_not_blamed_on_the_network(builder, fake):
    fake.fail("/v1/search/", 503, times=2)  # the first try and its one retry
    panel = _refinebio(builder)
    assert panel.status.kind == "error"
    assert panel.status.text == (
        "refine.bio is not available right now: try again later. Searching refine.bio failed: "
        "the service has a problem of its own, not this computer. Nothing from refine.bio is in "
        "the download cache yet."
    )
    assert "503" in panel.details.text and panel.details.selected_index is None
    assert len(fake.seen("GET", "/v1/search/")) == 2
    panel.search_button.click()  # refine.bio is back
    panel.wait()
    assert panel.status.text.startswith("refine.bio has 2 matching experiment(s)")
    assert panel.details.text == "" and panel.details.layout.display == "none"
    # a build's fetch the same
    fake.fail("/v1/experiments/", 503, times=2)
    _to_fetch(builder, "GSE100001")
    assert _build(builder) is None
    assert builder.status.text == (
        "refine.bio is not available right now: try again later. Nothing was fetched "
        "(GSE100001): try again later."
    )
    assert "503" in builder.fetch_details.text


def test_a_build_fetches_from_the_service_that_answers_and_lists_the_other_as_not_fetched(
    fake, demo_cat, monkeypatch
):
    from refinewidgets.core.pending import not_fetched

    dead = f"http://127.0.0.1:{free_port()}/ftp/current/"
    monkeypatch.setenv("REFINEWIDGETS_BGEE_FTP", dead)
    builder = DatasetBuilder(
        demo_cat, page_query="remote=refinebio:GSE100001&remote=bgee:Homo_sapiens/ERP132576"
    )
    builder.poll_interval = 0.01
    builder.wait_described()
    refinebio, bgee = builder.state.selection.pending
    assert refinebio.title == "Lung transcriptomes of COPD patients" and bgee.title == ""
    result = _build(builder)
    assert list(result) == ["GSE100001"]
    with pytest.warns(rw.MetadataMismatchWarning, match="GSM3170190"):  # not processed
        downloaded = rw.open_catalog(*rw.remote.cached(service="refinebio"))
    expected = rw.build(rw.Dataset({"GSE100001": ["ALL"]}), downloaded)["GSE100001"]
    assert sorted(result["GSE100001"].obs_names) == sorted(expected.obs_names)
    filtered = result.filtered_samples
    assert filtered[filtered["experiment"] == "ERP132576"].values.tolist() == [
        ["ERP132576", "ERP132576", not_fetched("Bgee")]
    ]
    assert builder.status.kind == "warning"
    shape = f"{expected.n_obs:,} x {expected.n_vars:,}"
    assert builder.status.text == (
        f"Built 1 group(s) (GSE100001: {shape}); {len(filtered) - 1} sample(s) filtered. Bgee "
        "cannot be reached from this computer: ERP132576 not fetched (listed in the filtered "
        "samples; still in the dataset, to fetch when you build again)."
    )
    _says_refused(builder.fetch_details.text, dead, "$REFINEWIDGETS_BGEE_FTP")
    # refine.bio's experiment is at hand now; Bgee's is still to fetch, in the link too
    assert [p.key for p in builder.state.selection.pending] == ["ERP132576"]
    assert "GSE100001" in builder.dataset.data
    assert "remote=bgee%3AHomo_sapiens%2FERP132576" in builder.link_query
    # Bgee answers again: the next build fetches it and nothing is left out
    monkeypatch.setenv("REFINEWIDGETS_BGEE_FTP", fake.ftp)
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert sorted(result) == ["ERP132576", "GSE100001"]
    assert builder.state.selection.pending == ()
    assert not any(result.filtered_samples["reason"].str.startswith("not fetched"))


def test_experiments_restored_from_a_link_get_their_titles(fake, demo_cat):
    builder = DatasetBuilder(
        demo_cat,
        page_query="remote=refinebio:E-MTAB-4001&remote=bgee:Homo_sapiens/ERP132576",
    )
    assert [p.title for p in builder.state.selection.pending] == ["", ""]
    builder.wait_described()
    refinebio, bgee = builder.state.selection.pending
    assert refinebio.title == HOSTILE and refinebio.samples == 4
    assert refinebio.technology == "MICROARRAY"
    assert bgee.title == HUMAN
    cells = " ".join(r.children[0].value for r in builder.cart_view.rows.children[1:])
    assert "&lt;img src=x onerror=alert(1)&gt; kidney" in cells and "<img" not in cells
    assert HUMAN in cells
    # refine.bio lists no more samples than its download holds: nothing said
    assert builder.includes_note.value == ""
    assert len(fake.seen("GET", "/v1/experiments/E-MTAB-4001/")) == 1
    assert fake.seen("GET", "/v1/samples/") == []  # asked only when some would be left out


def test_what_refinebio_leaves_out_is_said_before_and_filtered_after_the_fetch(
    builder, fake, tmp_path
):
    from refinewidgets.core.pending import NOT_PROCESSED, left_out_by_refinebio, no_qn_target
    from refinewidgets.io.remote.refinebio import RefineBio
    from refinewidgets.widgets.remote_fetch import RefineBioPlan, ask_refinebio

    fake.qn_targets["HOMO_SAPIENS"] = "/files/qn/homo_sapiens.tsv"
    client = RefineBio()
    # refine.bio's own sample records: all four processed, of an organism with a QN target
    records = client.samples("GSE100001").to_dict("records")
    assert left_out_by_refinebio(records, client.qn_targets()) == {}
    reasons = left_out_by_refinebio(records, [])  # were Homo sapiens without a target
    assert sorted(reasons) == ["GSM3170190", "GSM3170327", "GSM3170545", "GSM3170811"]
    assert set(reasons.values()) == {no_qn_target("HOMO_SAPIENS")}
    (plan,) = ask_refinebio(client, ["GSE100001"]).values()
    assert (plan.total, plan.included, plan.left_out) == (4, 4, {})
    # an experiment whose download lacks two of the samples refine.bio lists
    others = [
        {
            "accession_code": "GSM9000001",
            "is_processed": False,
            "organism": {"name": "HOMO_SAPIENS"},
        },
        {
            "accession_code": "GSM9000002",
            "is_processed": True,
            "organism": {"name": "SUS_SCROFA"},
            "title": "pig lung",
            "specimen_part": "lung",
        },
    ]
    left_out = left_out_by_refinebio(records + others, client.qn_targets())
    assert left_out == {"GSM9000001": NOT_PROCESSED, "GSM9000002": no_qn_target("SUS_SCROFA")}
    # downloaded earlier (as refine.bio sent it then): the build reads the cache, and what
    # refine.bio says now of the experiment accounts for what the download lacks
    rw.remote.refinebio.fetch(["GSE100001"], poll_interval=0.01)
    _add_from_refinebio(builder, "GSE100001")
    builder.wait_described()
    builder.refinebio_plans["GSE100001"] = RefineBioPlan(
        "GSE100001",
        title="Lung transcriptomes of COPD patients",
        organisms=["HOMO_SAPIENS", "SUS_SCROFA"],
        total=6,
        included=4,
        left_out=left_out,
        records={r["accession_code"]: r for r in others},
    )
    builder._show_includes()
    note = builder.includes_note.value
    assert (
        "GSE100001: refine.bio will include 4 of 6 samples; it leaves out GSM9000001 (not "
        "processed by refine.bio: its downloads hold processed samples only); GSM9000002 "
        "(refine.bio has no quantile-normalization target for Sus scrofa: a download of the "
        "whole experiment leaves its samples out)." in note
    )
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    filtered = result.filtered_samples.set_index("accession")
    assert filtered.loc["GSM9000001", "reason"] == NOT_PROCESSED
    assert filtered.loc["GSM9000002", "reason"] == no_qn_target("SUS_SCROFA")
    assert set(filtered.loc[["GSM9000001", "GSM9000002"], "experiment"]) == {"GSE100001"}
    assert sorted(result["GSE100001"].obs_names) == ["GSM3170327", "GSM3170545", "GSM3170811"]
    assert builder.includes_note.value == ""  # nothing is to fetch any more
    # written into the download's filtered samples, with refine.bio's record of them
    out = result.write_zip(tmp_path / "out.zip")
    again = rw.read_zip(out)
    kept = again.filtered_samples.set_index("accession")
    assert kept.loc["GSM9000002", "reason"] == no_qn_target("SUS_SCROFA")
    assert again.filtered_records["GSM9000002"]["refinebio_specimen_part"] == "lung"


def test_after_a_download_refinebio_is_asked_again_what_it_holds(builder, fake):
    from refinewidgets.core.pending import NOT_PROCESSED
    from refinewidgets.widgets.remote_fetch import RefineBioPlan

    fake.qn_targets["HOMO_SAPIENS"] = "/files/qn/homo_sapiens.tsv"
    _add_from_refinebio(builder, "GSE100001")
    builder.wait_described()
    # what refine.bio said before the fetch (one sample not processed yet) ...
    builder.refinebio_plans["GSE100001"] = RefineBioPlan(
        "GSE100001", total=4, included=3, left_out={"GSM3170811": NOT_PROCESSED}
    )
    builder._show_includes()
    assert "GSE100001: refine.bio will include 3 of 4 samples" in builder.includes_note.value
    asked = len(fake.seen("GET", "/v1/samples/"))
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    # ... is replaced by what it says once the download is made: every sample it lists is in
    # the download (GSM3170190 in its metadata only), so nothing is said to be left out
    plan = builder.refinebio_plans["GSE100001"]
    assert sorted(plan.listed) == ["GSM3170190", "GSM3170327", "GSM3170545", "GSM3170811"]
    assert plan.left_out == {} and len(fake.seen("GET", "/v1/samples/")) > asked
    assert "GSM3170811" in result["GSE100001"].obs_names
    reasons = dict(zip(result.filtered_samples["accession"], result.filtered_samples["reason"]))
    assert reasons["GSM3170190"] == "listed in the metadata, no values in the matrix"
    assert not any("left out by refine.bio" in r for r in reasons.values())


@pytest.mark.parametrize(
    "case, expected",
    [
        ("unknown", "refine.bio answered HTTP 404 Not Found for the experiment 'GSE999999'"),
        ("no token", "refine.bio needs an API token to process and download datasets"),
        ("failed", "refine.bio could not process GSE100001 (dataset "),
    ],
)
def test_service_failures_are_messages(builder, fake, monkeypatch, case, expected):
    accession = "GSE999999" if case == "unknown" else "GSE100001"
    if case == "no token":
        monkeypatch.delenv("REFINEBIO_TOKEN")
    if case == "failed":
        fake.failed["GSE100001"] = "Too many samples failed quality control"
    _to_fetch(builder, accession)
    assert _build(builder) is None
    text = builder.status.text
    assert builder.status.kind == "error" and text.startswith("Fetching from refine.bio failed: ")
    assert expected in text
    assert "Traceback" not in text and "Unexpected" not in text
    if case == "no token":  # how to get one
        assert "create_token(accept_terms=True)" in text and "$REFINEBIO_TOKEN" in text
    if case == "failed":
        assert "Too many samples failed quality control" in text
    assert builder.offline_box.layout.display == "none"  # the service answered
    # the account form is offered for the token only
    assert (builder.account_button.layout.display is None) == (case == "no token")
    assert [p.key for p in builder.state.selection.pending] == [accession]


def test_a_token_is_got_in_the_app_only_once_the_terms_are_ticked(
    builder, fake, monkeypatch, tmp_path
):
    import json

    import yaml

    monkeypatch.delenv("REFINEBIO_TOKEN")
    monkeypatch.delenv("REFINEBIO_EMAIL")
    config = tmp_path / "refinebio.yaml"  # $REFINEBIO_CONFIG_FILE, set by the fixture
    known = dict(fake.tokens)  # the fixture's token, no longer in the environment
    _to_fetch(builder, "GSE100001")
    assert _build(builder) is None
    assert builder.status.text.startswith(
        "Fetching from refine.bio failed: refine.bio needs an API token"
    )
    assert builder.status.text.endswith('In the app: "Get a refine.bio token" below asks for both.')
    assert builder.account_button.layout.display is None
    builder.account_button.click()  # to the form, on the refine.bio source
    panel = builder.remote_panels["refinebio"]
    panel.wait()
    assert builder.tabs.selected_index == 0 and builder.source.value == "refinebio"
    assert panel.account_box.selected_index == 0
    account = panel.account
    assert not account.has_token and "No token is set yet" in account.intro.value
    assert "https://www.refine.bio/terms" in account.links.value
    assert "https://www.refine.bio/privacy" in account.links.value
    assert account.accept.value is False and account.get_button.disabled
    # not ticked: nothing is sent, nothing accepted, nothing saved
    account.email.value = EMAIL
    assert _get_token(account).kind == "warning"
    assert account.status.text.startswith(
        "Tick \u201cI accept refine.bio's terms of use and privacy policy\u201d first"
    )
    assert fake.seen("POST", "/v1/token/") == [] and fake.tokens == known
    assert not config.exists()
    # a bad address is refused before anything is sent
    account.accept.value = True  # the user's tick
    assert not account.get_button.disabled
    account.email.value = "not an address"
    assert _get_token(account).kind == "error" and "is not an e-mail address" in account.status.text
    assert fake.seen("POST", "/v1/token/") == []
    # ticked: created, activated, saved where the client reads it
    account.email.value = EMAIL
    assert _get_token(account).kind == "success", account.status.text
    assert account.status.text == (
        "You accepted refine.bio's terms of use and privacy policy: the token is created, "
        f"activated and saved with your e-mail address in {config}. Build now fetches from "
        "refine.bio."
    )
    ((token, activated),) = [(t, a) for t, a in fake.tokens.items() if t not in known]
    assert activated is True
    puts = [
        json.loads(b) for m, p, _, b in fake.bodies if m == "PUT" and p == f"/v1/token/{token}/"
    ]
    assert puts == [{"is_activated": True}]
    assert yaml.safe_load(config.read_text()) == {"token": token, "email": EMAIL}
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert account.has_token and str(config) in account.intro.value
    # the next Build fetches with that token and address
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert list(result) == ["GSE100001"] and builder.account_button.layout.display == "none"
    ((dataset),) = fake.datasets.values()
    assert dataset.started and dataset.email == EMAIL
    starts = [h for m, p, h, b in fake.bodies if m == "PUT" and p.startswith("/v1/dataset/")]
    assert [h.get("API-KEY") for h in starts] == [token]


def test_an_unaccepted_token_offers_the_form_and_says_what_shadows_it(builder, fake, monkeypatch):
    token = fake.activated_token()
    fake.tokens[token] = False  # created, terms never accepted
    monkeypatch.setenv("REFINEBIO_TOKEN", token)
    _to_fetch(builder, "GSE100001")
    assert _build(builder) is None
    assert "its terms of use were not accepted (is_activated is false)" in builder.status.text
    assert builder.account_button.layout.display is None
    builder.show_account()
    account = builder.remote_panels["refinebio"].account
    assert account.email.value == EMAIL  # from $REFINEBIO_EMAIL
    assert "$REFINEBIO_TOKEN" in account.intro.value
    account.accept.value = True
    assert _get_token(account).kind == "warning"
    assert account.status.text.endswith(
        "But $REFINEBIO_TOKEN and $REFINEBIO_EMAIL are set in the app's environment and used "
        "before the file: unset them to use what was saved."
    )


def test_bgee_species_experiments_add_build(builder, fake):
    builder.source.value = "bgee"
    panel = builder.remote_panels["bgee"]
    panel.wait()
    assert list(panel.species.options) == [
        ("Danio rerio", "Danio_rerio"),
        ("Homo sapiens", "Homo_sapiens"),
    ]
    panel.species.value = "Homo_sapiens"
    panel.wait()
    assert panel.table.row_keys == ["ERP132576", "ERP400001"]
    panel.table.tick("ERP132576")
    panel.add_button.click()
    (pending,) = builder.state.selection.pending
    assert (pending.service, pending.species, pending.technology) == (
        "bgee",
        "Homo_sapiens",
        "SINGLE-CELL",
    )
    assert builder.options.quantile_normalize.value is False  # single cells: the options follow
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert result["ERP132576"].shape == (90, 48)
    assert len(fake.seen("GET", f"/ftp/current/h5ad/droplet_based/Homo_sapiens/{HUMAN}")) == 1
    panel.list_experiments("Homo_sapiens")
    panel.wait()
    assert "downloaded" in panel.table.grid.value


def test_a_bgee_species_published_as_a_tarball_is_added_whole(builder, fake):
    builder.source.value = "bgee"
    panel = builder.remote_panels["bgee"]
    panel.wait()
    panel.species.value = "Danio_rerio"
    panel.wait()
    assert panel.table.row_keys == [] and not panel.add_species_button.disabled
    assert "one species tarball" in panel.status.text
    panel.add_species_button.click()
    assert [p.label for p in builder.state.selection.pending] == ["every experiment of Danio rerio"]
    builder.build_button.click()
    builder.wait(120)
    assert builder.state.selection.pending == ()
    assert sorted(builder.dataset.data) == ["SRP310001", "SRP310002"]
    assert len(fake.seen("GET", f"/ftp/current/h5ad/droplet_based/Danio_rerio/{TARBALL}")) == 1
    # opening the cache afterwards does not open the tarball a second time
    sources = len(builder.catalog.sources)
    panel.open_cache_button.click()
    assert panel.status.text.startswith("Opened 1 downloaded file(s) from Bgee")
    assert len(builder.catalog.sources) == sources and builder.status.kind != "warning"


def test_the_clients_cancel_event_stops_waiting_between_two_questions(fake):
    """The refine.bio client's part of Cancel (``cancel=``, used by the app's fetch job)."""
    import threading

    from refinewidgets.io.remote.refinebio import RefineBio

    fake.processing_polls = 10**6
    client = RefineBio()
    ds_id = client.create_dataset({"GSE100001": ["ALL"]})
    client.start_dataset(ds_id)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(rw.BuildCancelled) as info:
        client.wait({"GSE100001": ds_id}, poll_interval=30, cancel=cancel)
    assert time.monotonic() - started < 2  # not after the 30 s pause
    assert str(info.value) == (
        f"Cancelled while refine.bio prepares GSE100001: its dataset(s) {ds_id} are kept, and "
        "the next fetch waits for them again."
    )
    polls = [p for m, p, _ in fake.requests if m == "GET" and p == f"/v1/dataset/{ds_id}/"]
    assert len(polls) == 2  # start_dataset's look, then one question before the pause
    cancel.clear()
    fake.processing_polls = 0  # without the event set, waiting goes on as before
    assert client.wait({"GSE100001": ds_id}, poll_interval=0.01, cancel=cancel)["GSE100001"][
        "is_processed"
    ]


# ---- the core's part: pending experiments in the one state ----------------------------------


def test_pending_experiments_are_values_of_the_selection(demo_cat):
    from refinewidgets.core.selection import Selection

    sel = Selection(demo_cat).add({"GSE71102": None})
    gse = RemoteExperiment("refinebio", "GSE1", technology="rna-seq", samples=3)
    sel = sel.add_remote([gse, RemoteExperiment("refinebio", "GSE1", title="again")])
    assert sel.pending == (gse,) and sel.data == {"GSE71102": ["ALL"]}
    assert sel.technologies() == ["MICROARRAY", "RNA-SEQ"]
    assert sel.planned_dataset.data == {"GSE71102": ["ALL"], "GSE1": ["ALL"]}
    with pytest.raises(rw.DatasetSpecError, match=r"GSE1 \(refine.bio\) must be fetched first"):
        sel.to_dataset()
    # one already in the catalog is added as a local experiment
    assert Selection(demo_cat).add_remote([RemoteExperiment("refinebio", "SRP091833")]).data == {
        "SRP091833": ["ALL"]
    }
    # a download that does not hold what it was fetched for is an error naming both
    with pytest.raises(rw.DatasetSpecError, match="download of GSE1 from refine.bio does not"):
        sel.with_fetched(demo_cat, {"GSE1": ["SRP091833"]})
    assert sel.with_fetched(demo_cat, {}).pending == (gse,)  # nothing fetched: still pending


def test_remote_experiments_check_their_names():
    with pytest.raises(rw.SourceFormatError, match="not a valid accession"):
        RemoteExperiment("refinebio", "../GSE1")
    with pytest.raises(rw.DatasetSpecError, match="needs its species folder"):
        RemoteExperiment("bgee", "ERP1", species="homo sapiens")
    with pytest.raises(rw.DatasetSpecError, match="Unknown service 'geo'"):
        RemoteExperiment("geo", "GSE1")


def test_what_refinebio_leaves_out_end_to_end_through_the_real_client(builder, fake):
    """Nothing told by hand: the fake refine.bio leaves a sample unprocessed, the app asks the
    real client what a download of ["ALL"] will hold, says it before the fetch and lists the
    sample with refine.bio's reason after the build (the download lists it without values)."""
    from refinewidgets.core.pending import NOT_PROCESSED

    fake.unprocessed = {"GSM3170545"}
    fake.qn_organisms = {"HOMO_SAPIENS"}
    _add_from_refinebio(builder, "GSE100001")
    builder.wait_described()
    note = builder.includes_note.value
    assert (
        "GSE100001: refine.bio will include 3 of 4 samples; it leaves out GSM3170545 (not "
        "processed by refine.bio" in note
    )
    result = _build(builder)
    assert builder.status.kind == "success", builder.status.text
    assert "GSM3170545" not in result["GSE100001"].obs_names
    reasons = dict(zip(result.filtered_samples["accession"], result.filtered_samples["reason"]))
    assert reasons["GSM3170545"] == NOT_PROCESSED
    assert builder.includes_note.value == ""
