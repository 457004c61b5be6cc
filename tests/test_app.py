"""The app layer: where its sources come from, and what it shows when they cannot be opened."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from refinewidgets.app import (
    free_port,
    resolve_url_source,
    show_app,
    sources_from_environment,
    voila_command,
    wait_until_up,
)
from refinewidgets.testing.aio import run_in_thread

from .browser.server import alive, cmdline, start_app, wait_for


def test_sources_from_the_command_line_and_the_url_query(tmp_path):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "c.zip").touch()
    (tmp_path / "bgee").mkdir()
    env = {
        "REFINEWIDGETS_SOURCES": "/data/a.zip:/data/b",
        "REFINEWIDGETS_BASE": str(tmp_path),
        "QUERY_STRING": "source=downloads/c.zip&other=1&source=bgee",
    }
    base = tmp_path.resolve()
    assert sources_from_environment(env) == [
        "/data/a.zip",  # from the command line: used as typed, even if missing
        "/data/b",
        str(base / "downloads" / "c.zip"),
        str(base / "bgee"),
    ]
    assert sources_from_environment({}) == []


@pytest.mark.parametrize("bad", ["/etc/passwd", "../secret.zip", "a/../../b", "C:/x.zip"])
def test_url_sources_cannot_leave_the_app_folder(bad, tmp_path):
    with pytest.raises(ValueError, match="must be a path relative to the app's folder"):
        sources_from_environment(
            {"QUERY_STRING": f"source={bad}", "REFINEWIDGETS_BASE": str(tmp_path)}
        )


def test_url_sources_resolve_inside_the_base_folder(tmp_path):
    base = tmp_path / "base"
    (base / "data").mkdir(parents=True)
    (base / "data" / "a.zip").touch()
    (tmp_path / "secret.zip").touch()
    (tmp_path / "secret_dir").mkdir()
    (base / "escape.zip").symlink_to(tmp_path / "secret.zip")
    (base / "escape_dir").symlink_to(tmp_path / "secret_dir")
    (base / "inside.zip").symlink_to(base / "data" / "a.zip")
    (base / "loop").symlink_to(base / "loop")
    root = base.resolve()
    assert resolve_url_source("data/a.zip", base) == root / "data" / "a.zip"
    assert resolve_url_source("data", base) == root / "data"
    assert resolve_url_source("inside.zip", base) == root / "data" / "a.zip"  # a link inside
    for value in ("escape.zip", "escape_dir", "escape_dir/."):
        with pytest.raises(ValueError) as info:
            resolve_url_source(value, base)
        assert str(info.value) == (
            f"source={value!r} in the URL leads outside the app's folder (through a symbolic "
            "link?): the URL can only name files and folders inside it."
        )
    for value in (".", "./", "data/.."):
        with pytest.raises(ValueError) as info:
            resolve_url_source(value, base)
        message = str(info.value)
        assert "names the app's folder itself" in message or "without '..'" in message
    with pytest.raises(ValueError, match="names the app's folder itself"):
        resolve_url_source(".", base)
    with pytest.raises(ValueError, match=r"source='nope.zip' in the URL does not exist"):
        resolve_url_source("nope.zip", base)
    with pytest.raises(ValueError, match=r"source='loop' in the URL cannot be opened"):
        resolve_url_source("loop", base)
    # the base folder may itself be reached through a link: only where it leads counts
    (tmp_path / "base_link").symlink_to(base)
    assert resolve_url_source("data/a.zip", tmp_path / "base_link") == root / "data" / "a.zip"


def test_url_source_refusals_are_shown_in_the_page(monkeypatch, tmp_path):
    (tmp_path / "outside.zip").touch()
    base = tmp_path / "base"
    base.mkdir()
    (base / "link.zip").symlink_to(tmp_path / "outside.zip")
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", "")
    monkeypatch.setenv("REFINEWIDGETS_BASE", str(base))
    for query, text in [
        ("source=.", "names the app&#x27;s folder itself"),
        ("source=link.zip", "leads outside the app&#x27;s folder"),
    ]:
        monkeypatch.setenv("QUERY_STRING", query)
        widget = show_app()
        assert type(widget).__name__ == "HTML"
        assert "rw-error" in widget.value and text in widget.value


def test_unopenable_sources_are_shown_as_a_message(monkeypatch, tmp_path):
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", str(tmp_path / "missing.zip"))
    widget = show_app()
    assert (
        "rw-error" in widget.value
        and "missing.zip" in widget.value
        and "does not exist" in widget.value
    )
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", "")
    monkeypatch.setenv("QUERY_STRING", "source=../x")
    assert "must be a path relative" in show_app().value


def test_demo_app_is_the_builder(monkeypatch, tmp_path):
    monkeypatch.delenv("REFINEWIDGETS_SOURCES", raising=False)
    monkeypatch.delenv("QUERY_STRING", raising=False)
    monkeypatch.delenv("REFINEWIDGETS_OUTPUT_DIR", raising=False)
    app = show_app()
    assert type(app).__name__ == "DatasetBuilder"
    assert "ERP900101" in app.catalog.experiment_ids
    assert app.save.output_dir is None  # a notebook user saves anywhere
    monkeypatch.setenv("REFINEWIDGETS_OUTPUT_DIR", str(tmp_path))
    app = show_app()
    assert app.save.output_dir == tmp_path.resolve()
    assert (
        app.save.path.description == "File name"
        and str(tmp_path.resolve()) in app.save.folder.value
    )


@pytest.mark.parametrize("safe_path", ["", "1"])
def test_the_server_boot_takes_only_the_working_folder_off_the_path(tmp_path, safe_path):
    from refinewidgets.app import SERVER_BOOT

    boot = SERVER_BOOT.split("; from ")[0]  # the path statement, before any import of ours
    env = {**os.environ, "PYTHONSAFEPATH": safe_path}
    env.pop("PYTHONPATH", None)

    def path_of(code: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code + "; import json; print(json.dumps(sys.path))"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    plain, booted = path_of("import sys"), path_of(boot)
    assert ("" in plain) is (safe_path == "")
    assert booted == [p for p in plain if p != ""]


def test_voila_command_serves_the_packaged_notebook_on_the_port():
    cmd = voila_command(9999, cull_idle_seconds=30)
    assert cmd[1] == "-c" and "from refinewidgets.app_server import main" in cmd[2]
    assert cmd[3].endswith("notebooks/app.ipynb")
    for option in [
        "--port=9999",
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--MappingKernelManager.cull_idle_timeout=30",
        "--MappingKernelManager.cull_interval=15",
        "--MappingKernelManager.cull_connected=False",
        "--RefineWidgetsVoila.max_pages=4",
    ]:
        assert option in cmd
    # a page gone without saying so frees its kernel after 2 minutes; at most 4 pages at once
    assert "--MappingKernelManager.cull_idle_timeout=120" in voila_command(1)
    assert "--RefineWidgetsVoila.max_pages=0" in voila_command(1, max_pages=0)


def test_voila_keeps_ready_kernels_and_takes_a_theme():
    cmd = voila_command(9999)
    assert "--preheat_kernel=True" in cmd and "--pool_size=4" in cmd
    # by default the page follows the browser's preference (rendered light)
    assert "--theme=light" in cmd and "--RefineWidgetsVoila.follow_color_scheme=True" in cmd
    assert "--VoilaExecutor.iopub_timeout=120" in cmd  # the page's widgets are never dropped
    for theme in ("light", "dark"):  # an explicit theme is forced
        cmd = voila_command(9999, theme=theme)
        assert f"--theme={theme}" in cmd and not [c for c in cmd if "follow_color" in c]
    cmd = voila_command(9999)
    assert "--VoilaKernelManager.fill_delay=0" in cmd  # a kernel taken is replaced at once
    # ...by kernels starting one at a time
    manager = "--VoilaConfiguration.multi_kernel_manager_class="
    assert f"{manager}refinewidgets.app_server.PacedKernelManager" in cmd
    # never more ready kernels than pages that could take them
    assert "--pool_size=2" in voila_command(9999, pool_size=4, max_pages=2)
    assert "--pool_size=4" in voila_command(9999, pool_size=4, max_pages=0)
    cmd = voila_command(9999, pool_size=0, theme="dark")
    assert not [c for c in cmd if "preheat" in c or "pool_size" in c or "fill_delay" in c]
    assert "--theme=dark" in cmd
    assert "--KernelManager.transport=ipc" in cmd  # no TCP ports for kernels


class _Pool:
    """The part of Voila's kernel manager that :func:`drop_failed_ready_kernels` uses: its
    pools of kernel-starting tasks per notebook, and the call that refills them."""

    def __init__(self, pools, kernels=()):
        self._pools = pools
        self.refilled = []
        self.kernels = list(kernels)
        self.shut_down = []

    def fill_if_needed(self, notebook_name=None, **kwargs):
        self.refilled.append(notebook_name)

    def list_kernel_ids(self):
        return list(self.kernels)

    async def shutdown_kernel(self, kernel_id):
        self.kernels.remove(kernel_id)
        self.shut_down.append(kernel_id)


def test_a_ready_kernel_that_failed_to_start_is_dropped_and_replaced(caplog):
    import asyncio
    import logging

    from refinewidgets.app_server import drop_failed_ready_kernels

    async def started(kernel_id):
        return {"kernel_id": kernel_id}

    async def died():
        raise RuntimeError("Kernel died before replying to kernel_info")

    async def pending():
        await asyncio.sleep(60)

    async def scenario():
        ok, dead, waiting = (asyncio.ensure_future(c) for c in (started("k1"), died(), pending()))
        await asyncio.sleep(0.01)
        km = _Pool({"app.ipynb": [dead, ok, waiting]})
        log = logging.getLogger("test-pool")
        with caplog.at_level(logging.ERROR, logger="test-pool"):
            assert drop_failed_ready_kernels(km, log) == 1
            assert drop_failed_ready_kernels(km, log) == 0  # nothing more to drop
        waiting.cancel()
        # the page gets the kernel that started; the one starting stays; one more is started
        return km._pools["app.ipynb"] == [ok, waiting], km.refilled

    kept, refilled = run_in_thread(scenario)
    assert kept and refilled == ["app.ipynb"]
    assert caplog.messages == [
        "a ready kernel for app.ipynb failed to start "
        "(RuntimeError('Kernel died before replying to kernel_info')); starting another"
    ]


def test_a_ready_kernel_whose_notebook_run_failed_is_dropped_and_shut_down(caplog):
    """A kernel that started but whose run of the notebook failed (it did not answer within
    the notebook client's start-up time on a loaded machine) would answer its page 500."""
    import asyncio
    import logging

    from refinewidgets.app_server import drop_failed_ready_kernels

    async def run(fails):
        if fails:
            raise RuntimeError("Kernel didn't respond in 60 seconds")
        await asyncio.sleep(60)

    async def started(kernel_id, render):
        return {"kernel_id": kernel_id, "task": render}

    async def scenario():
        bad_run, good_run = asyncio.ensure_future(run(True)), asyncio.ensure_future(run(False))
        bad = asyncio.ensure_future(started("k1", bad_run))
        good = asyncio.ensure_future(started("k2", good_run))
        await asyncio.sleep(0.01)
        km = _Pool({"app.ipynb": [bad, good]}, kernels=["k1", "k2"])
        log = logging.getLogger("test-pool")
        with caplog.at_level(logging.ERROR, logger="test-pool"):
            assert drop_failed_ready_kernels(km, log) == 1
        await asyncio.sleep(0.01)  # the shutdown runs
        good_run.cancel()
        return km._pools["app.ipynb"] == [good], km.refilled, km.shut_down

    kept, refilled, shut_down = run_in_thread(scenario)
    assert kept and refilled == ["app.ipynb"] and shut_down == ["k1"]
    assert caplog.messages == [
        "a ready kernel for app.ipynb failed to start (its notebook's run failed: "
        'RuntimeError("Kernel didn\'t respond in 60 seconds")); starting another'
    ]


def test_a_ready_kernel_taken_at_once_no_longer_holds_back_the_next(caplog):
    """A pool kernel whose notebook opened the request socket and was taken by a page within
    moments (the socket closed before the pacing looked) counts as ready: the next kernel starts
    at once. It used to be taken for one still warming up, holding the next start (and a page
    waiting for it) for ``warm_up_seconds``."""
    import asyncio
    import logging

    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from refinewidgets.app_kernels import PacedKernelManager

    class _Started(AsyncMappingKernelManager):  # jupyter's start, without a process
        async def start_kernel(self, *args, **kwargs):
            kernel_id = f"k{len(self._kernels) + 1}"
            self._kernels[kernel_id] = object()
            return kernel_id

    class _Paced(PacedKernelManager, _Started):
        pass

    async def scenario():
        km = _Paced(warm_up_at_once=1, warm_up_seconds=30)
        km.log = logging.getLogger("test-paced")
        preheat = {"env": {"VOILA_PREHEAT": "True"}}
        first = await km.start_kernel(**preheat)
        second = asyncio.ensure_future(km.start_kernel(**preheat))
        await asyncio.sleep(0.3)
        held = not second.done()  # one at a time: the second waits for the first
        km.note_ready(first)  # its socket opened and closed between two looks
        await asyncio.wait_for(asyncio.shield(second), 5)
        return held, first, second.result()

    with caplog.at_level(logging.INFO, logger="test-paced"):
        held, first, second = run_in_thread(scenario)
    assert held and (first, second) == ("k1", "k2")
    assert re.fullmatch(r"ready kernel k1: warmed up in 0\.\d s", caplog.messages[0])


def test_page_query_outside_voila_is_empty_and_inside_is_the_request():
    from refinewidgets.app import page_query

    assert page_query({}) == ""
    assert page_query({"QUERY_STRING": "token=a&exp=GSE1"}) == "token=a&exp=GSE1"


_WAITING_KERNEL = """
import json, sys
from refinewidgets.app import page_query
query = page_query()
heavy = sorted(m for m in ("voila", "jupyter_server", "jsonschema") if m in sys.modules)
print(json.dumps([query, heavy]))
"""


def test_a_ready_kernel_gets_its_pages_request_from_voilas_socket():
    """A ready kernel waits on Voila's own request socket (its real handler, here in a tornado
    server) and gets the page's query, without importing Voila or Jupyter Server, and without
    going through a proxy the environment names."""
    import asyncio

    import tornado.web
    from voila.request_info_handler import RequestInfoSocketHandler

    port = free_port()
    env = {
        **os.environ,
        "VOILA_PREHEAT": "True",
        "VOILA_APP_PORT": str(port),
        "VOILA_SERVER_URL": "/base/",
        "VOILA_KERNEL_ID": "kernel-1",
        # a proxy the environment names (nothing listens there): our own server is reached
        # directly all the same
        "http_proxy": f"http://127.0.0.1:{free_port()}",
        "all_proxy": f"http://127.0.0.1:{free_port()}",
    }
    env.pop("QUERY_STRING", None)

    async def scenario():
        app = tornado.web.Application([(r"/base/voila/query/(.*)", RequestInfoSocketHandler)])
        server = app.listen(port, address="127.0.0.1")
        kernel = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WAITING_KERNEL, env=env, stdout=asyncio.subprocess.PIPE
        )
        try:
            for _ in range(600):  # the kernel connects, then waits for its page
                if "kernel-1" in RequestInfoSocketHandler._waiters:
                    break
                await asyncio.sleep(0.05)
            waited = "kernel-1" in RequestInfoSocketHandler._waiters
            payload = json.dumps({"QUERY_STRING": "exp=GSE71102&aggregate_by=SPECIES"})
            RequestInfoSocketHandler.send_updates({"kernel_id": "kernel-1", "payload": payload})
            out, _ = await asyncio.wait_for(kernel.communicate(), 60)
        finally:
            server.stop()
        return waited, json.loads(out)

    waited, (query, heavy) = run_in_thread(scenario)
    assert waited
    assert query == "exp=GSE71102&aggregate_by=SPECIES"
    assert heavy == []


def test_a_ready_kernel_without_its_server_goes_on_with_no_request(monkeypatch):
    from refinewidgets.app import wait_for_page

    monkeypatch.setenv("VOILA_APP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("VOILA_KERNEL_ID", "kernel-2")
    monkeypatch.delenv("QUERY_STRING", raising=False)
    with pytest.warns(
        UserWarning,
        match=r"No page request for this kernel \(ws://127\.0\.0\.1:"
        r"\d+/voila/query/kernel-2\)",
    ):
        assert wait_for_page(open_timeout=2) is False
    assert "QUERY_STRING" not in os.environ


@pytest.mark.slow
def test_readiness_is_our_nonce_not_any_http_answer():
    """Another program answering HTTP on the port is not taken for our server."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with pytest.raises(RuntimeError, match="exited with status 0 before serving"):
            wait_until_up(url, sleeper, timeout=30, expect="our-nonce")
        waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        wait_until_up(url, waiting, timeout=30)  # without expect, any answer will do
        waiting.kill()
        waiting.wait()
    finally:
        server.shutdown()
        server.server_close()


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the Voila process"
)


def _request(port, path, headers=(), method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, headers=dict(headers))
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _websocket_handshake(port, path, headers):
    key = base64.b64encode(os.urandom(16)).decode()
    status, _, _ = _request(
        port,
        path,
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
            **headers,
        },
    )
    return status


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``refinewidgets app`` with a token, kernels culled after 3 idle seconds."""
    cwd = tmp_path_factory.mktemp("served")
    # a downloaded project's Voila configuration in the app's folder: it must not be read
    (cwd / "voila.py").write_text(f"open({str(cwd / 'voila-py-ran')!r}, 'w').close()\n")
    (cwd / "voila.json").write_text('{"RefineWidgetsVoila": {"max_pages": 1}}')
    log = tmp_path_factory.mktemp("served-log") / "app.log"
    app = start_app(cwd, log, "--port", str(free_port()), "--cull-idle-seconds", "3")
    try:
        yield app
    finally:
        app.stop()


@linux_only
@pytest.mark.slow
def test_the_app_reads_no_voila_configuration_from_its_folder(served):
    """A ``voila.py`` in the folder the app is started in (the user's data) never runs, neither
    as Voila's configuration nor imported in place of Voila (the server started with
    ``python -m`` did), and a ``voila.json`` there changes nothing (it would allow one page at a
    time)."""
    assert not (served.cwd / "voila-py-ran").exists()
    assert "voila.py" not in served.log.read_text()
    pages = [_request(served.port, f"/?token={served.token}") for _ in range(2)]
    assert [status for status, _, _ in pages] == [200, 200]


@linux_only
@pytest.mark.slow
def test_the_app_needs_its_token_and_its_own_host_and_origin(served):
    port, token = served.port, served.token
    assert served.url == f"http://127.0.0.1:{port}/?token={token}"
    assert len(token) >= 40
    kernels = set(served.kernels())

    # no token, or a wrong one: the login page, never the app (and no kernel started)
    for path in ["/", "/?token=wrong"]:
        status, headers, body = _request(port, path)
        assert status == 302 and headers["Location"].startswith("/login?next=")
        assert "kernelId" not in body
    status, _, body = _request(port, "/login")
    assert status == 200 and "kernelId" not in body and "rw-search" not in body
    assert set(served.kernels()) == kernels

    # the token: the app, and a login cookie for the next requests
    status, headers, body = _request(port, f"/?token={token}")
    assert status == 200 and '"kernelId"' in body
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]+)"', body).group(1)
    cookie = "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie"))
    assert "username-127-0-0-1-" in cookie and "_xsrf=" in cookie
    status, _, body = _request(port, f"/api/kernels/{kernel_id}", {"Cookie": cookie})
    assert status == 200 and kernel_id in body

    # foreign Host or Origin: 403 with a short text, even with the token
    evil_host = {"Host": f"evil.example:{port}"}
    status, headers, body = _request(port, f"/?token={token}", evil_host)
    assert status == 403 and headers["Content-Type"].startswith("text/plain")
    assert body.startswith(f"403 Forbidden: Host 'evil.example:{port}' is not this app's address")
    for origin in [
        "http://evil.example",
        f"http://evil.example:{port}",
        "null",
        f"https://127.0.0.1:{port}",
    ]:
        status, _, body = _request(port, f"/?token={token}", {"Origin": origin})
        assert status == 403, origin
        assert body.startswith(f"403 Forbidden: Origin {origin!r} is not this app's address")
    status, _, _ = _request(port, f"/?token={token}", {"Host": f"127.0.0.1:{port + 1}"})
    assert status == 403
    for host in [f"localhost:{port}", f"[::1]:{port}"]:  # the other names of this machine
        status, _, body = _request(port, "/refinewidgets/ready", {"Host": host})
        assert status == 200 and len(body) == 32
    status, _, _ = _request(
        port, f"/voila/api/shutdown/{kernel_id}", {"Origin": "http://evil.example"}, "POST"
    )
    assert status == 403

    # the kernel's websocket: refused from a foreign origin or host, accepted from ours
    channels = f"/api/kernels/{kernel_id}/channels?token={token}"
    assert _websocket_handshake(port, channels, {"Origin": "http://evil.example"}) == 403
    assert _websocket_handshake(port, channels, {"Host": f"evil.example:{port}"}) == 403
    ours = {"Origin": f"http://127.0.0.1:{port}", "Cookie": cookie}
    assert _websocket_handshake(port, channels, ours) == 101

    # the log shows the requests, never the token: only the line giving the user the address
    log = served.log.read_text()
    assert "GET /?token=[secret] (127.0.0.1)" in log
    assert "GET /?token=wrong" not in log  # a wrong guess is hidden too
    with_token = [line for line in log.splitlines() if token in line]
    assert with_token == [f"refinewidgets app: {served.url}  (Ctrl+C stops it)"]


@linux_only
@pytest.mark.slow
def test_a_page_asking_for_the_dark_theme_takes_a_ready_kernel(served):
    """``?theme=dark`` used to bypass the (light) ready pool: a new kernel, many seconds."""
    taken = "Using pre-heated kernel"
    before = served.log.read_text().count(taken)
    status, _, body = _request(served.port, f"/?token={served.token}&theme=dark")
    assert status == 200 and '"kernelId"' in body
    assert served.log.read_text().count(taken) == before + 1
    # restyled dark whatever the browser prefers
    assert re.search(r'<link [^>]*href="[^"]*/theme-dark\.css">', body)
    assert 'window.matchMedia("all")' in body and "cdn.jsdelivr" not in body


@linux_only
@pytest.mark.slow
def test_a_kernel_whose_page_vanished_is_culled(served):
    status, _, body = _request(served.port, f"/?token={served.token}")
    assert status == 200 and '"kernelId"' in body
    # the page got a ready kernel of the pool (or a new one): its id is in the page
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', body)[1]
    (kernel,) = wait_for(
        lambda: [p for p in served.kernels() if f"kernel-{kernel_id}" in cmdline(p)],
        30,
        "the page's kernel",
    )
    # nobody connects to it and no beforeunload comes: culled after 3 idle seconds
    wait_for(lambda: not alive(kernel), 60, f"kernel {kernel} to be culled")
    assert "Culling 'idle' kernel" in served.log.read_text()


@linux_only
@pytest.mark.slow
def test_the_ready_kernels_warm_up_a_few_at_a_time(served):
    """At most one fewer ready kernels than cores (at least one) run the notebook towards a
    page at once; the next starts when one of them is ready (issue 24: the third visitor in a row
    waited 10 s for kernels all started together, and a core is left for the visitors)."""
    from refinewidgets.app_kernels import available_cores, warm_up_slots

    slots = warm_up_slots()
    assert slots == max(1, available_cores() - 1)
    warmed = re.compile(r"ready kernel ([0-9a-f-]{36}): warmed up in ([\d.]+) s")
    wanted = min(4, slots + 1)  # the pool's 4, or one more than may warm at once
    wait_for(lambda: len(warmed.findall(served.log.read_text())) >= wanted, 300, "ready kernels")
    warming, most, events = set(), 0, []
    for line in served.log.read_text().splitlines():
        if (m := re.search(r"Kernel started: ([0-9a-f-]{36})", line)) is not None:
            warming.add(m[1])
            events.append(("started", m[1]))
        elif (m := warmed.search(line)) is not None:
            warming.discard(m[1])
            events.append(("ready", m[1]))
        most = max(most, len(warming))
    assert most <= slots, events
    started = [k for e, k in events if e == "started"]
    if slots < 4:  # the pool's kernel after the first `slots` waited for one to be ready
        later = events.index(("started", started[slots]))
        assert any(e == "ready" for e, _ in events[:later]), events


@linux_only
@pytest.mark.slow
def test_no_token_serves_everyone_and_says_so(tmp_path):
    app = start_app(tmp_path, tmp_path / "app.log", "--no-token", "--port", str(free_port()))
    try:
        assert app.url == f"http://127.0.0.1:{app.port}/"
        warning = [line for line in app.log.read_text().splitlines() if "--no-token" in line]
        assert warning == [
            f"warning: --no-token: anyone who can reach port {app.port} on this machine can use "
            f"the app (and save files in {tmp_path.resolve()})"
        ]
        status, _, body = _request(app.port, "/")
        assert status == 200 and '"kernelId"' in body, (
            f"{status}: {body[-2000:]}\n{app.log.read_text()}"
        )
        status, _, _ = _request(app.port, "/", {"Host": f"evil.example:{app.port}"})
        assert status == 403
        # the kernels listen on Unix sockets in a folder only this user can enter, not on ports
        kernel = wait_for(app.kernels, 30, "a kernel")[0]
        connection = Path(re.search(r"-f (\S+\.json)", cmdline(kernel))[1])
        info = json.loads(connection.read_text())
        assert info["transport"] == "ipc" and "shell_port" in info
        assert Path(info["ip"]).parent == connection.parent
        assert connection.parent.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO) == 0
    finally:
        app.stop()


def _run_app(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "refinewidgets.cli", "app", "--no-browser", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_taken_port_is_an_error_that_says_so(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        out = _run_app("--port", str(port), cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: port {port} is in use (by another program): choose another with --port, "
        "or omit --port"
    )
    assert "http://" not in out.stdout


@pytest.mark.slow
def test_app_argument_errors(tmp_path):
    out = _run_app("--output-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: --output-dir {tmp_path / 'nope'} is not an existing folder: create it first"
    )
    out = _run_app(str(tmp_path / "missing.zip"), cwd=tmp_path)
    assert (
        out.returncode == 2
        and out.stderr.strip() == f"error: {tmp_path / 'missing.zip'} does not exist"
    )


@linux_only
@pytest.mark.slow
def test_terminating_the_app_command_stops_voila(tmp_path):
    app = start_app(tmp_path, tmp_path / "app.log", "--port", str(free_port()))
    try:
        voila = app.voila_pid()
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=30) == 0
        wait_for(lambda: not alive(voila), 30, "Voila to stop")
    finally:
        app.stop()


@linux_only
@pytest.mark.slow
def test_killing_the_app_command_stops_voila_and_its_kernels(tmp_path):
    app = start_app(tmp_path, tmp_path / "app.log", "--port", str(free_port()))
    try:
        voila = app.voila_pid()
        status, _, _ = _request(app.port, f"/?token={app.token}")
        assert status == 200
        kernels = wait_for(app.kernels, 30, "a kernel")
        app.proc.send_signal(signal.SIGKILL)  # no cleanup code runs in the command
        app.proc.wait(timeout=10)
        wait_for(lambda: not alive(voila), 15, "Voila to die with the command")
        wait_for(lambda: not any(alive(k) for k in kernels), 15, "the kernels to stop")
        with pytest.raises(OSError):
            _request(app.port, "/")
    finally:
        app.stop()


@pytest.fixture(scope="module")
def small_result():
    import refinewidgets as rw

    return rw.build(rw.Dataset({"SRP091833": ["ALL"]}), rw.open_catalog())


def test_save_names_resolve_inside_the_output_folder(tmp_path):
    from refinewidgets.widgets.save import SaveNameError, resolve_save_name

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere.zip").touch()
    (out / "away.zip").symlink_to(tmp_path / "elsewhere.zip")
    (out / "down.zip").symlink_to(out / "sub" / "x.zip")
    (out / "same.zip").symlink_to(out / "target.zip")
    folder = out.resolve()
    assert resolve_save_name("mine.zip", out) == folder / "mine.zip"
    assert resolve_save_name("  my data.h5ad ", out) == folder / "my data.h5ad"
    assert resolve_save_name("same.zip", out) == folder / "target.zip"  # a link inside, to inside
    for name in ["../x.zip", "sub/x.zip", "/tmp/x.zip", "a\\b.zip", ".hidden.zip", "..", "."]:
        with pytest.raises(SaveNameError) as info:
            resolve_save_name(name, out)
        assert str(info.value) == (
            f"{name.strip()!r} is not a file name: use a name such as dataset.zip, without '/', "
            f"'\\' or a leading '.'; files are saved in {folder}"
        )
    for name in ["away.zip", "down.zip"]:
        with pytest.raises(SaveNameError, match=f"'{name}' leads outside {folder}"):
            resolve_save_name(name, out)
    with pytest.raises(SaveNameError, match="give a file name"):
        resolve_save_name("  ", out)


def test_save_panel_with_an_output_folder_refuses_in_the_panel(tmp_path, small_result):
    from refinewidgets.widgets.save import SavePanel

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere.zip").write_bytes(b"keep me")
    (out / "away.zip").symlink_to(tmp_path / "elsewhere.zip")
    panel = SavePanel(output_dir=out)
    panel.result = small_result
    assert panel.path.value == "dataset.zip" and panel.path.description == "File name"
    assert panel.folder.value == f"Saved in <code>{out.resolve()}</code>"

    for name, text in [
        ("../x.zip", "'../x.zip' is not a file name"),
        (str(tmp_path / "abs.zip"), "is not a file name"),
        ("away.zip", f"'away.zip' leads outside {out.resolve()}"),
    ]:
        panel.path.value = name
        assert panel.save() is None  # no exception: a message
        assert panel.status.kind == "error" and panel.status.text.startswith("Not saved: ")
        assert text in panel.status.text
    panel.overwrite.value = True  # even "Overwrite" does not follow the link out
    panel.path.value = "away.zip"
    assert panel.save() is None and panel.status.kind == "error"
    assert (tmp_path / "elsewhere.zip").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.zip", "out"]

    panel.overwrite.value = False
    panel.path.value = "mine.zip"
    written = panel.save()
    assert written == out.resolve() / "mine.zip" and written.is_file()
    assert panel.status.kind == "success" and panel.status.text.startswith(f"Saved {written}")
    panel.format.value = "h5ad:SRP091833"
    assert panel.path.value == "mine.h5ad"
    assert panel.save() == out.resolve() / "mine.h5ad"
    assert sorted(p.name for p in out.iterdir()) == ["away.zip", "mine.h5ad", "mine.zip"]


def test_a_write_failure_is_a_message_in_the_panel(tmp_path, small_result, monkeypatch):
    import errno

    import refinewidgets as rw
    from refinewidgets.widgets.save import SavePanel

    def read_only(self, path, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    panel = SavePanel(output_dir=tmp_path)
    panel.result = small_result
    monkeypatch.setattr(rw.Result, "write_zip", read_only)
    assert panel.save() is None
    assert panel.status.kind == "error"
    assert panel.status.text == (
        f"Not saved: cannot write {tmp_path.resolve() / 'dataset.zip'}: Read-only file system."
    )


def test_without_an_output_folder_any_path_is_accepted(tmp_path, small_result):
    from refinewidgets.widgets.builder import DatasetBuilder
    from refinewidgets.widgets.save import SavePanel

    panel = SavePanel()
    panel.result = small_result
    assert panel.output_dir is None and panel.path.description == "Save to"
    (tmp_path / "deeper").mkdir()
    panel.path.value = str(tmp_path / "deeper" / ".." / "anywhere.zip")
    assert panel.save() is not None and (tmp_path / "anywhere.zip").is_file()
    panel.path.value = str(tmp_path / "missing" / "x.zip")
    assert panel.save() is None and panel.status.kind == "error"
    text = panel.status.text
    assert text.startswith("Not saved: ") and "does not exist" in text and "missing" in text
    builder = DatasetBuilder(output_dir=tmp_path)
    assert builder.save.output_dir == tmp_path.resolve()
    assert DatasetBuilder().save.output_dir is None


def test_serve_refuses_an_unknown_theme(capsys, tmp_path, monkeypatch):
    from refinewidgets.app import serve

    monkeypatch.chdir(tmp_path)
    assert serve(theme="blue", open_browser=False) == 2
    assert capsys.readouterr().err == "error: theme 'blue' is not 'auto', 'light' or 'dark'\n"


def test_serve_refuses_a_bad_port_or_cull_time_before_starting(capsys, tmp_path, monkeypatch):
    from refinewidgets.app import serve

    monkeypatch.chdir(tmp_path)
    assert serve(port=70000, open_browser=False) == 2
    assert capsys.readouterr().err == "error: --port 70000 is not a port number (1 to 65535)\n"
    assert serve(cull_idle_seconds=-1, open_browser=False) == 2
    assert capsys.readouterr().err == "error: --cull-idle-seconds must be 0 (never) or more\n"
    # the first bad argument is the one named: a missing source before a bad port
    assert serve([str(tmp_path / "gone.zip")], port=0, open_browser=False) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'gone.zip'} does not exist\n"


def test_a_bad_url_source_page_links_back_to_the_app(monkeypatch, tmp_path):
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", "")
    monkeypatch.setenv("REFINEWIDGETS_BASE", str(tmp_path))
    monkeypatch.setenv("QUERY_STRING", "token=abc&source=nope.zip&exp=GSE71102&x=<b>")
    widget = show_app()
    assert "source=&#x27;nope.zip&#x27; in the URL does not exist" in widget.value
    assert (
        "<a class='rw-app-link' href=\"?token=abc&amp;exp=GSE71102&amp;x=%3Cb%3E\">"
        "Open the app without the address's sources</a>"
    ) in widget.value
    # without the page's sources the app opens, with the dataset of the address
    monkeypatch.setenv("QUERY_STRING", "token=abc&exp=GSE71102")
    app = show_app()
    assert type(app).__name__ == "DatasetBuilder" and app.cart_view.data == {"GSE71102": ["ALL"]}
    # the command line's own sources broken: no link that would fail the same way
    monkeypatch.setenv("REFINEWIDGETS_SOURCES", str(tmp_path / "missing.zip"))
    monkeypatch.setenv("QUERY_STRING", "source=nope.zip")
    assert "rw-app-link" not in show_app().value
