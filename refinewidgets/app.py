"""The web app: the DatasetBuilder served by Voila.

``refinewidgets app [PATH ...]`` starts our Voila (:mod:`refinewidgets.app_server`: token,
Host/Origin guard, readiness nonce) on the packaged ``notebooks/app.ipynb``, on 127.0.0.1 only;
the server dies with the command. The notebook calls :func:`show_app`, which opens the sources
given on the command line (passed in the ``REFINEWIDGETS_SOURCES`` environment variable) and those
named in the page's URL query (``?source=downloads/GSE1.zip&source=bgee``), which must resolve
inside the folder the server was started in (``REFINEWIDGETS_BASE``); its Save panel writes only
inside the output folder (``REFINEWIDGETS_OUTPUT_DIR``).

The "refine.bio" and "Bgee" sources of the app reach the services at the addresses the
environment gives (``$REFINEWIDGETS_REFINEBIO_API``, ``$REFINEWIDGETS_BGEE_FTP``; tests point
them at :mod:`refinewidgets.testing.fake_services`) and download into ``$REFINEWIDGETS_CACHE``;
the server's kernels inherit the environment of ``refinewidgets app``.

The page's address holds the dataset (``?exp=GSE1&aggregate_by=SPECIES``, see
:mod:`refinewidgets.core.url_state`): reloading restores it and the address is a link to it.
Voila keeps a pool of ready kernels (:data:`POOL_SIZE`), each of which has run the notebook up to
the point where it needs the page's request (:func:`page_query`), so a page opens in about a
second.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, parse_qsl, urlencode

from .errors import RefineWidgetsError

__all__ = [
    "MAX_PAGES_ENV",
    "OUTPUT_ENV",
    "SOURCES_ENV",
    "app_notebook",
    "page_query",
    "resolve_url_source",
    "serve",
    "show_app",
    "sources_from_environment",
    "wait_for_page",
    "without_sources",
]

SOURCES_ENV = "REFINEWIDGETS_SOURCES"
BASE_ENV = "REFINEWIDGETS_BASE"
OUTPUT_ENV = "REFINEWIDGETS_OUTPUT_DIR"
#: How long Voila waits for a cell's output after its reply before dropping it (its default, 4 s,
#: lost the widgets of pages on a loaded machine).
IOPUB_TIMEOUT_SECONDS = 120
#: Kernels idle, with no page connected, for this long are shut down (``--cull-idle-seconds``).
#: A page connects within seconds of loading and stays connected while open, so this only ends
#: the kernels of pages gone without saying so (a crashed tab, a page fetched by a script).
CULL_IDLE_SECONDS = 120
#: Pages holding a kernel at once, each about 300 MB (``$REFINEWIDGETS_APP_MAX_PAGES``; 0: no
#: bound); see :mod:`refinewidgets.app_server`.
MAX_PAGES = 4
MAX_PAGES_ENV = "REFINEWIDGETS_APP_MAX_PAGES"
#: The app's themes: "auto" follows the browser's preference (``prefers-color-scheme``).
THEMES = ("auto", "light", "dark")
#: Kernels kept ready for the next pages (each holds the demo catalog and the app's widgets,
#: about 250 MB), never more than ``max_pages``. They warm up one fewer than the cores at a time
#: (seconds of CPU each), so that five visitors in a row each find one ready (issue 24).
POOL_SIZE = 4
#: How the launcher starts the server: ``python -c`` with the working folder, which Python puts
#: first on the module path as ``''`` (unless ``PYTHONSAFEPATH`` is set), taken off before
#: anything is imported. The server runs in the folder the app was started in, the user's data:
#: with ``python -m`` a ``voila.py`` or ``pandas.py`` there would be imported in place of the
#: package.
SERVER_BOOT = (
    "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; "
    "from refinewidgets.app_server import main; sys.argv[0] = 'refinewidgets.app_server'; main()"
)
# Shared with refinewidgets.app_server (not imported from it: that module imports Voila).
TOKEN_ENV = "REFINEWIDGETS_SERVER_TOKEN"
NONCE_ENV = "REFINEWIDGETS_SERVER_NONCE"
READY_PATH = "/refinewidgets/ready"


def app_notebook() -> Path:
    """The packaged app notebook (works from a non-editable install)."""
    return Path(str(resources.files("refinewidgets") / "notebooks" / "app.ipynb"))


def resolve_url_source(value: str, base: str | os.PathLike) -> Path:
    """The file or folder ``?source=value`` names, which must lie inside ``base``.

    Symbolic links are followed (``Path.resolve(strict=True)``): a link inside ``base`` pointing
    elsewhere is refused, and so is ``base`` itself (``?source=.``).

    Examples
    --------
    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp()).resolve()
    >>> (base / "a.zip").touch()
    >>> resolve_url_source("a.zip", base) == base / "a.zip"
    True
    >>> resolve_url_source(".", base)
    Traceback (most recent call last):
    ValueError: source='.' in the URL names the app's folder itself: name a zip, an .h5ad file or a folder inside it.
    """
    parts = PurePosixPath(value).parts
    if value.startswith(("/", "\\")) or ".." in parts or (len(value) > 1 and value[1] == ":"):
        raise ValueError(
            f"source={value!r} in the URL must be a path relative to the app's folder, without '..'."
        )
    root = Path(base).resolve(strict=True)
    try:
        target = (root / value).resolve(strict=True)
    except FileNotFoundError:
        raise ValueError(
            f"source={value!r} in the URL does not exist in the app's folder."
        ) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long...
        raise ValueError(f"source={value!r} in the URL cannot be opened ({exc}).") from None
    if target == root:
        raise ValueError(
            f"source={value!r} in the URL names the app's folder itself: name a zip, an .h5ad "
            "file or a folder inside it."
        )
    if root not in target.parents:
        raise ValueError(
            f"source={value!r} in the URL leads outside the app's folder (through a symbolic "
            "link?): the URL can only name files and folders inside it."
        )
    return target


def sources_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Source paths from ``REFINEWIDGETS_SOURCES`` and the URL query's ``source`` values.

    Sources from the command line are used as given (the user typed them). A URL value is
    resolved by :func:`resolve_url_source` inside ``REFINEWIDGETS_BASE`` (the folder the server
    was started in; the working folder when unset): a visitor of the page can only open sources
    below it.

    Examples
    --------
    >>> sources_from_environment({"REFINEWIDGETS_SOURCES": "/data/a.zip:/data/b"})
    ['/data/a.zip', '/data/b']
    """
    environ = os.environ if environ is None else environ
    paths = [p for p in environ.get(SOURCES_ENV, "").split(os.pathsep) if p]
    base = environ.get(BASE_ENV) or os.getcwd()
    for value in parse_qs(environ.get("QUERY_STRING", "")).get("source", []):
        paths.append(str(resolve_url_source(value, base)))
    return paths


def page_query(environ: Mapping[str, str] | None = None) -> str:
    """The query string of the page this kernel serves ('' outside Voila).

    A kernel Voila started for the request has it in ``QUERY_STRING``. A preheated kernel (the
    app keeps a pool of them, see :func:`voila_command`) ran the notebook before any page asked
    for it: :func:`wait_for_page` waits until a page takes this kernel and puts that page's
    request into the environment.
    """
    if environ is None:
        if os.environ.get("VOILA_PREHEAT") == "True":
            wait_for_page()
        environ = os.environ
    return environ.get("QUERY_STRING", "")


def wait_for_page(open_timeout: float = 5.0) -> bool:
    """In a ready kernel, wait until a page takes it; put that page's request into the
    environment (``QUERY_STRING`` and the rest). Whether the request came.

    Voila's server keeps a websocket, ``<base>voila/query/<kernel id>``, on which it sends a
    ready kernel its page's request as a JSON object of environment variables once a page takes
    the kernel (``voila.utils.wait_for_request`` and ``voila.request_info_handler`` in Voila
    0.5). The address comes from the variables Voila gives its kernels, as Voila reads them.
    This is our own client of that socket: importing ``voila.utils`` costs each kernel about
    1.4 s of CPU (it imports Jupyter Server, whose event schemas compile a grammar), where
    websockets' client costs 0.07 s. The socket is reached directly, whatever proxy the
    environment names (websockets 15 and later would use it, and the page's request would not
    come). When the socket cannot be reached the kernel goes on without a request, as Voila's
    does, and the page shows the app's defaults.
    """
    import inspect
    import json
    import warnings

    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    env = os.environ
    base = env.get("VOILA_WS_BASE_URL", env.get("VOILA_SERVER_URL", "/"))
    url = (
        f"{env.get('VOILA_WS_PROTOCOL', 'ws')}://{env.get('VOILA_APP_IP', '127.0.0.1')}:"
        f"{env.get('VOILA_APP_PORT', '8866')}{base}voila/query/{env.get('VOILA_KERNEL_ID', '')}"
    )
    options = {"open_timeout": open_timeout, "max_size": None}
    if "proxy" in inspect.signature(connect).parameters:  # websockets 15 and later
        options["proxy"] = None  # our own server on this machine: never through a proxy
    try:
        with connect(url, **options) as socket_:
            request = json.loads(socket_.recv())
    except (OSError, TimeoutError, WebSocketException, ValueError) as err:
        warnings.warn(f"No page request for this kernel ({url}): {err}", stacklevel=2)
        return False
    if not isinstance(request, dict):
        warnings.warn(
            f"The page request for this kernel is not an object: {request!r}", stacklevel=2
        )
        return False
    env.update({str(k): str(v) for k, v in request.items()})
    return True


def show_app():
    """The widget the app notebook displays: a DatasetBuilder, or a message saying what failed.

    The builder saves inside ``REFINEWIDGETS_OUTPUT_DIR`` when the launcher set it (file names
    only), anywhere otherwise (the notebook opened in Jupyter or on Binder). In the web app
    (Voila) the page's address holds the dataset: the URL's query restores it, and the builder
    keeps the address up to date (:mod:`refinewidgets.core.url_state`).

    In a preheated kernel, everything that does not depend on the page (importing, opening the
    command line's sources, making the widgets) is done before a page asks for it; the page's
    own ``?source=`` values, when there are any, are opened once it does.
    """
    import html

    import ipywidgets as widgets

    from .errors import RefineWidgetsError
    from .io.catalog_open import open_catalog
    from .widgets.builder import DatasetBuilder

    in_voila = "VOILA_KERNEL_ID" in os.environ or "QUERY_STRING" in os.environ
    output = os.environ.get(OUTPUT_ENV) or None
    try:
        ready = open_catalog(*sources_from_environment({**os.environ, "QUERY_STRING": ""}))
        builder = DatasetBuilder(ready, output_dir=output)
    except (RefineWidgetsError, ValueError, OSError):
        builder = None  # reported below, once the page's own sources are known
    if in_voila and os.environ.get("VOILA_PREHEAT") == "True":
        from .widgets._plots import warm_up

        warm_up()  # the first plot of the page is then as quick as the next ones
    query = page_query() if in_voila else ""
    try:
        environ = {**os.environ, "QUERY_STRING": query}
        if builder is None or parse_qs(query).get("source"):
            catalog = open_catalog(*sources_from_environment(environ))
        else:
            catalog = ready
    except (RefineWidgetsError, ValueError, OSError) as exc:
        back = ""
        if builder is not None and parse_qs(query).get("source"):  # the app's own data open
            href = html.escape("?" + without_sources(query), quote=True)
            back = (
                f"<p><a class='rw-app-link' href=\"{href}\">Open the app without the address's "
                "sources</a> (the app's own data), or correct <code>source=</code> in the "
                "address.</p>"
            )
        return widgets.HTML(
            "<div class='rw-error'><b>Could not open the data sources:</b> "
            f"{html.escape(str(exc))}</div>{back}"
        )
    if builder is None or catalog is not ready:
        builder = DatasetBuilder(catalog, output_dir=output)
    if in_voila:
        builder.link_to_page(query)  # the dataset lives in the page's address
    return builder


def without_sources(query: str) -> str:
    """``query`` without its ``source`` values (the link back to the app from a page whose
    sources could not be opened; the token and the dataset stay).

    Examples
    --------
    >>> without_sources("token=t&source=../x.zip&exp=GSE1")
    'token=t&exp=GSE1'
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k != "source"])


def free_port() -> int:
    """A port nothing listens on at the moment (the system picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether the app could not listen on ``127.0.0.1:port`` (as tornado binds: SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def voila_command(
    port: int,
    *,
    cull_idle_seconds: int = CULL_IDLE_SECONDS,
    pool_size: int = POOL_SIZE,
    theme: str = "auto",
    max_pages: int = MAX_PAGES,
) -> list[str]:
    """The command running our Voila (:mod:`refinewidgets.app_server`) on the app notebook.

    Kernels idle and without a page connected for ``cull_idle_seconds`` are shut down (0: never).
    At most ``max_pages`` pages hold a kernel at once (0: no bound): a page beyond it takes the
    kernel of a page gone, or is asked to wait. The server then holds at most ``max_pages +
    pool_size`` kernels.
    ``pool_size`` kernels (never more than ``max_pages``, the pages that could take them) are
    kept ready (Voila's preheated kernels: each has run the notebook up to the point where it
    needs the page's request), so a page opens without waiting for a kernel to start; they start
    one fewer than the cores at a time (:class:`refinewidgets.app_server.PacedKernelManager`); 0 starts a kernel per
    page. ``theme``: Voila's "light" or "dark", or "auto": each page follows the browser's
    ``prefers-color-scheme`` (rendered light, the dark theme applied in the browser when it
    prefers dark; see :func:`refinewidgets.app_server.follow_color_scheme`). A page can still
    ask for one with ``?theme=dark`` or ``?theme=light``.

    Examples
    --------
    >>> cmd = voila_command(8866, pool_size=4, max_pages=2)
    >>> "--pool_size=2" in cmd  # two ready kernels are all two pages can use
    True
    """
    if max_pages > 0:
        pool_size = min(pool_size, max_pages)
    interval = max(1, min(60, cull_idle_seconds // 2))
    return [
        sys.executable,
        "-c",
        SERVER_BOOT,
        str(app_notebook()),
        f"--port={port}",
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--VoilaConfiguration.show_tracebacks=False",
        f"--theme={'light' if theme == 'auto' else theme}",
        *(["--RefineWidgetsVoila.follow_color_scheme=True"] if theme == "auto" else []),
        *(
            # a used kernel is replaced at once (Voila waits 1 s by default)
            [
                "--preheat_kernel=True",
                f"--pool_size={pool_size}",
                "--VoilaKernelManager.fill_delay=0",
                # ...and the pool's kernels warm up a few at a time: each is ready sooner, and a
                # core is left for the visitors
                "--VoilaConfiguration.multi_kernel_manager_class="
                "refinewidgets.app_server.PacedKernelManager",
            ]
            if pool_size > 0
            else []
        ),
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_seconds}",
        f"--MappingKernelManager.cull_interval={interval}",
        "--MappingKernelManager.cull_connected=False",
        # kernels talk over Unix sockets in Voila's private connection folder: no TCP ports a
        # kernel could lose to another program starting at the same moment, none other users
        # of the machine can reach
        "--KernelManager.transport=ipc",
        # the page's widgets are the notebook cell's output, sent after the cell's reply: a page
        # whose sources open after its request (``?source=``) makes its ~500 widgets then, and on
        # a loaded machine they came later than Voila's 4 s wait, which then drops the output:
        # a page without its widgets (seen in a loop of browser tests, the log saying "Timeout
        # waiting for IOPub output")
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_SECONDS}",
        f"--RefineWidgetsVoila.max_pages={max_pages}",
    ]


def wait_until_up(
    url: str, proc: subprocess.Popen, timeout: float = 120, *, expect: str | None = None
) -> None:
    """Poll ``url`` until the server answers (or raise if it exits or times out).

    With ``expect``, the answer's body must be that text: another program answering HTTP on the
    same port does not count.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Voila exited with status {proc.returncode} before serving {url}.")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if expect is None or answer.read().decode("utf-8", "replace") == expect:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"Voila did not answer at {url} within {timeout:.0f} s.")


def _die_with_this_process():
    """A ``preexec_fn`` making the child get SIGTERM when this process dies, even by SIGKILL.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); None elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl: follow it now
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _port_error(port: int) -> str:
    return (
        f"error: port {port} is in use (by another program): choose another with --port, "
        "or omit --port"
    )


def serve(
    paths: Sequence[str] = (),
    *,
    port: int | None = None,
    open_browser: bool = True,
    token: bool = True,
    output_dir: str | os.PathLike | None = None,
    cull_idle_seconds: int = CULL_IDLE_SECONDS,
    pool_size: int = POOL_SIZE,
    theme: str = "auto",
    max_pages: int | None = None,
) -> int:
    """Run our Voila on the app notebook until interrupted; returns the exit status.

    0 when stopped (Ctrl+C, SIGTERM), 2 for a bad argument or a taken port, 1 when Voila fails.
    The server listens on 127.0.0.1 only, asks for a fresh token (unless ``token=False``), saves
    only inside ``output_dir`` (default: the current folder) and dies with this process.
    ``max_pages`` (default ``$REFINEWIDGETS_APP_MAX_PAGES``, else :data:`MAX_PAGES`) bounds the
    pages holding a kernel at once.
    """
    try:
        out = _output_folder(paths, output_dir)
        _check_options(theme, cull_idle_seconds)
        max_pages = _page_bound(max_pages)
        _check_port(port)
    except _BadArgument as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen = port or free_port()
    secret = secrets.token_urlsafe(32) if token else ""
    nonce = secrets.token_hex(16)
    downloads = tempfile.mkdtemp(prefix="refinewidgets-downloads-")
    env = _server_env(paths, out, secret=secret, nonce=nonce, downloads=downloads)
    root = f"http://127.0.0.1:{chosen}/"
    url = f"{root}?token={secret}" if token else root
    proc = subprocess.Popen(
        voila_command(
            chosen,
            cull_idle_seconds=cull_idle_seconds,
            pool_size=pool_size,
            theme=theme,
            max_pages=max_pages,
        ),
        env=env,
        preexec_fn=_die_with_this_process(),
    )
    # A plain SIGTERM would end this process without the cleanup below and leave Voila running.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        try:
            wait_until_up(root.rstrip("/") + READY_PATH, proc, expect=nonce)
        except RuntimeError as exc:
            if proc.poll() is not None and port_in_use(chosen):
                print(_port_error(chosen), file=sys.stderr)
                return 2
            print(f"error: {exc}", file=sys.stderr)
            return 1
        _announce(url, port=chosen, token=token, out=out, open_browser=open_browser)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc)
        shutil.rmtree(downloads, ignore_errors=True)


class _BadArgument(RefineWidgetsError, ValueError):
    """An argument of :func:`serve` it refuses (exit status 2); the message names it."""


def _output_folder(paths: Sequence[str], output_dir: str | os.PathLike | None) -> Path:
    """The folder the app saves in, once every source path exists."""
    for p in paths:
        if not Path(p).exists():
            raise _BadArgument(f"{p} does not exist")
    out = Path.cwd() if output_dir is None else Path(output_dir).expanduser()
    if not out.is_dir():
        raise _BadArgument(f"--output-dir {output_dir} is not an existing folder: create it first")
    return out


def _check_options(theme: str, cull_idle_seconds: int) -> None:
    if theme not in THEMES:
        raise _BadArgument(f"theme {theme!r} is not 'auto', 'light' or 'dark'")
    if cull_idle_seconds < 0:
        raise _BadArgument("--cull-idle-seconds must be 0 (never) or more")


def _page_bound(max_pages: int | None) -> int:
    """``max_pages``, else ``$REFINEWIDGETS_APP_MAX_PAGES``, else :data:`MAX_PAGES`."""
    if max_pages is None:
        value = os.environ.get(MAX_PAGES_ENV, "").strip()
        if value and not value.isdigit():
            raise _BadArgument(
                f"{MAX_PAGES_ENV}={value!r} is not a number of pages: give 0 (no bound) or more"
            )
        max_pages = int(value) if value else MAX_PAGES
    if max_pages < 0:
        raise _BadArgument("the number of pages must be 0 (no bound) or more")
    return max_pages


def _check_port(port: int | None) -> None:
    if port is not None and not 0 < port < 65536:
        raise _BadArgument(f"--port {port} is not a port number (1 to 65535)")
    if port is not None and port_in_use(port):
        raise _BadArgument(_port_error(port).removeprefix("error: "))


def _server_env(
    paths: Sequence[str], out: Path, *, secret: str, nonce: str, downloads: str
) -> dict[str, str]:
    """The server's environment: the sources, the folders, the token and the nonce."""
    from .widgets.save import DOWNLOADS_ENV

    env = dict(os.environ)
    env[SOURCES_ENV] = os.pathsep.join(str(Path(p).resolve()) for p in paths)
    env[BASE_ENV] = str(Path.cwd())
    env[OUTPUT_ENV] = str(out.resolve())
    env[TOKEN_ENV] = secret
    env[NONCE_ENV] = nonce
    env[DOWNLOADS_ENV] = downloads
    return env


def _announce(url: str, *, port: int, token: bool, out: Path, open_browser: bool) -> None:
    """Say where the app is (and warn when it has no token); open it in the browser."""
    if not token:
        print(
            f"warning: --no-token: anyone who can reach port {port} on this machine can use "
            f"the app (and save files in {out.resolve()})",
            file=sys.stderr,
            flush=True,
        )
    print(f"refinewidgets app: {url}  (Ctrl+C stops it)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
