"""The server behind ``refinewidgets app``: Voila, plus a Host/Origin guard and a readiness probe.

:func:`refinewidgets.app.serve` runs ``python -m refinewidgets.app_server NOTEBOOK [Voila
options]`` instead of ``python -m voila``. :class:`RefineWidgetsVoila` is Voila's standalone
application with these additions, all made just before Voila starts listening:

- every request, the websocket handshakes included, whose ``Host`` header is not
  ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT``, or whose ``Origin`` header (when
  present) is not ``http://`` + one of those, is answered ``403`` with a one-line text body
  (:func:`refusal`). A page on another site reaching the app through DNS rebinding sends its own
  host name; a page elsewhere posting to the app sends its own origin.
- ``GET /refinewidgets/ready`` answers the per-run nonce the launcher put in
  ``REFINEWIDGETS_SERVER_NONCE``: the launcher knows the server answering is this one, not
  another program on the same port.
- the page sets the ``_xsrf`` cookie, so the shutdown beacon Voila's page sends when it closes
  is accepted and the page's kernel stops (:class:`_VoilaPage`);
- the access log hides the token and ``_xsrf`` values of every URL (:func:`scrub_uri`), and so do
  tornado's own lines, such as Voila's 403 "File not allowlisted" (:func:`hide_secrets_in_logs`);
- at most ``max_pages`` pages hold a kernel at once (``--RefineWidgetsVoila.max_pages``): a page
  asked for beyond it first shuts down the kernels of pages gone (their websocket closed) and
  of pages that never connected within ``reclaim_after_seconds`` (least recently active
  first), else it is answered ``503`` with a message saying to close a page
  (:func:`page_room`). With Voila's ready pool and the idle culling
  (:func:`refinewidgets.app.voila_command`) this bounds the server's kernels;
- with ``--RefineWidgetsVoila.follow_color_scheme=True`` (``refinewidgets app --theme auto``,
  the default) a page that does not ask for a theme follows the browser's
  ``prefers-color-scheme`` (:func:`follow_color_scheme`);
- the ready kernels of Voila's pool warm up a few at a time (one fewer than the cores)
  (:class:`PacedKernelManager`), and one that failed is dropped
  (:func:`drop_failed_ready_kernels`);
- Voila's configuration files (``voila.json``, ``voila.py``) are looked for in the Jupyter
  configuration folders only, never in the folder the app was started in (Voila's default adds
  it): that folder holds the user's data, and a ``voila.py`` that came with a downloaded
  project would run as code when the app starts;
- the token comes from ``REFINEWIDGETS_SERVER_TOKEN`` (not the command line, which other users of
  the machine can read); ``""`` means no token. Both variables are removed from the environment
  before any kernel starts.

Voila's own identity provider (jupyter_server's ``PasswordIdentityProvider``) checks the token:
``?token=...`` once, then its login cookie. Port retries are off: the port asked for, or exit 1.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import tornado.web
from jupyter_core.paths import jupyter_config_path
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Integer, default
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.tornado.handler import TornadoVoilaHandler

from .app_kernels import (  # the kernel pool and the pacing, importable from here too
    WARM_UP_SECONDS,  # noqa: F401
    PacedKernelManager,
    ReadySignal,
    _page_kernels,
    available_cores,  # noqa: F401
    drop_failed_ready_kernels,
    page_room,
)
from .widgets.save import DOWNLOADS_ENV

__all__ = [
    "NONCE_ENV",
    "READY_PATH",
    "PacedKernelManager",
    "TOKEN_ENV",
    "RefineWidgetsVoila",
    "SecretScrubber",
    "allowed_hosts",
    "drop_failed_ready_kernels",
    "follow_color_scheme",
    "without_remote_stylesheets",
    "hide_secrets_in_logs",
    "log_request",
    "page_room",
    "refusal",
    "scrub_uri",
]

TOKEN_ENV = "REFINEWIDGETS_SERVER_TOKEN"
DOWNLOAD_PATH = "/refinewidgets/download"  # see widgets.save: the kernels write, we serve
_DOWNLOAD_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DOWNLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(zip|h5ad)")
NONCE_ENV = "REFINEWIDGETS_SERVER_NONCE"
READY_PATH = "/refinewidgets/ready"
#: Pages holding a kernel at once (``--RefineWidgetsVoila.max_pages``; 0: no bound).
MAX_PAGES = 4
#: A kernel no page has been connected to for this long may be shut down to make room.
RECLAIM_AFTER_SECONDS = 30.0


def allowed_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values the app answers on ``port`` (lower case)."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


def refusal(host: str | None, origin: str | None, hosts: frozenset[str]) -> str | None:
    """Why a request with these ``Host`` and ``Origin`` headers is refused, or None.

    Examples
    --------
    >>> hosts = allowed_hosts(8866)
    >>> refusal("127.0.0.1:8866", None, hosts) is None
    True
    >>> refusal("LOCALHOST:8866", "http://localhost:8866", hosts) is None
    True
    >>> refusal("evil.example:8866", None, hosts)
    "Host 'evil.example:8866' is not this app's address"
    >>> refusal("127.0.0.1:8866", "http://evil.example", hosts)
    "Origin 'http://evil.example' is not this app's address"
    """
    if (host or "").lower() not in hosts:
        return f"Host {host!r} is not this app's address"
    if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
        return f"Origin {origin!r} is not this app's address"
    return None


class _Forbidden(tornado.web.RequestHandler):
    """403 with a short text body, whatever the method (and before any Jupyter handler runs)."""

    def initialize(self, reason: str) -> None:
        self.reason = reason

    def prepare(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"403 Forbidden: {self.reason}. Open the app at the URL it printed.\n")


class _Ready(tornado.web.RequestHandler):
    """Answers the launcher's per-run nonce (it carries no secret: it only identifies the run)."""

    def initialize(self, nonce: str) -> None:
        self.nonce = nonce

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.nonce)


class _VoilaPage(TornadoVoilaHandler):
    """Voila's page, setting the ``_xsrf`` cookie that its ``beforeunload`` beacon sends back.

    Voila 0.5's page posts ``/voila/api/shutdown/<kernel_id>`` with the ``_xsrf`` value read from
    ``document.cookie``, but standalone Voila never sets that cookie, so jupyter_server refuses
    the post (403) and every closed page leaves its kernel running.
    """

    _follows_browser = False

    @tornado.web.authenticated
    async def get(self, path=None):
        drop_failed_ready_kernels(self.kernel_manager, self.log)
        if not await self._room_for_a_page():
            return
        self.xsrf_token  # noqa: B018 - reading it sets the cookie (before the page streams)
        # --theme auto: the page follows the browser's preference, unless it asks for a theme
        auto = self.settings.get("refinewidgets_follow_color_scheme", False)
        self._follows_browser = auto and self.get_argument("theme", None) is None
        await super().get(path)

    _head_done = False
    #: "dark" when a page asking for ``?theme=dark`` is served from the (light) ready pool.
    _scheme = "auto"

    def should_use_rendered_notebook(self, notebook_data, pool_size, template, theme, args):
        """Voila's test whether a ready kernel can serve the page. Those of ``--theme auto`` are
        rendered light and restyled per page; a page asking for the dark theme takes one too and
        is restyled dark (Voila's own test sends it to a new kernel: many seconds)."""
        auto = self.settings.get("refinewidgets_follow_color_scheme", False)
        if auto and theme == "dark" and notebook_data.get("theme") == "light":
            if super().should_use_rendered_notebook(notebook_data, pool_size, template, None, args):
                self._follows_browser, self._scheme = True, "dark"
                return True
        return super().should_use_rendered_notebook(notebook_data, pool_size, template, theme, args)

    def write(self, chunk):
        if not self._head_done and isinstance(chunk, str) and "</head>" in chunk:
            chunk = without_remote_stylesheets(chunk)
            if self._follows_browser:
                chunk = follow_color_scheme(chunk, scheme=self._scheme)
            self._head_done = True  # the page's head comes once
        return super().write(chunk)

    async def _room_for_a_page(self) -> bool:
        """Whether a kernel may start for this page: the unused kernels that make room are shut
        down; if no room can be made, the page is answered 503 (and False returned)."""
        max_pages = self.settings.get("refinewidgets_max_pages", MAX_PAGES)
        if max_pages <= 0:
            return True
        km = self.kernel_manager
        reclaim, full = page_room(
            _page_kernels(km, self.settings.get("refinewidgets_connected", set())),
            max_pages,
            self.settings.get("refinewidgets_reclaim_after", RECLAIM_AFTER_SECONDS),
        )
        for kernel_id in reclaim:
            self.log.warning(
                "shutting down kernel %s: no page is connected to it, and %d pages are open "
                "(--RefineWidgetsVoila.max_pages)",
                kernel_id,
                max_pages,
            )
            try:
                await ensure_async(km.shutdown_kernel(kernel_id))
            except (KeyError, RuntimeError):  # gone meanwhile (culled, its page closed)
                pass
        if not full:
            return True
        self.log.warning("refused a page: %d pages are open (max_pages)", max_pages)
        self.set_status(503)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Retry-After", str(int(RECLAIM_AFTER_SECONDS)))
        self.set_header("Cache-Control", "no-store")
        self.finish(
            f"503 Service Unavailable: the app already serves {max_pages} open pages, its "
            "limit (each page runs its own Python kernel). Close a page of the app, then "
            "reload this one; or start the app with a higher limit.\n"
        )
        return False


_LIGHT_THEME_LINK = re.compile(
    r'<link\b[^>]*\bhref="(?P<base>[^"]*/)theme-light\.css(?:\?[^"]*)?"[^>]*>'
)
_BODY_TAG = re.compile(r"<body\b[^>]*>")
#: Run as the page's body opens: the body's theme marks (read by JupyterLab's and our styles)
#: and the form controls' colours follow the browser's preference, and its changes.
_FOLLOW_SCRIPT = """<script>(function () {
  var dark = window.matchMedia("(prefers-color-scheme: dark)");
  function follow() {
    var body = document.body, isDark = dark.matches;
    body.dataset.jpThemeLight = String(!isDark);
    body.dataset.jpThemeName = isDark ? "JupyterLab Dark" : "JupyterLab Light";
    body.classList.toggle("theme-dark", isDark);
    body.classList.toggle("theme-light", !isDark);
    document.documentElement.style.colorScheme = isDark ? "dark" : "light";
  }
  follow();
  dark.addEventListener("change", follow);
})();</script>"""


_REMOTE_STYLESHEET = re.compile(
    r'[ \t]*<link\b(?=[^>]*\brel="stylesheet")[^>]*\bhref="(?:https?:)?//[^"]*"[^>]*>[ \t]*\n?'
)


def without_remote_stylesheets(page: str) -> str:
    """The page without the style sheets it would fetch from another site.

    Voila's page template links Font Awesome's style sheets on a public CDN. The widgets' icons
    come from the font bundled with Voila's own scripts, so those links only made every
    visitor's browser ask a third party (which learns who uses the app) and wait for it: on a
    machine without internet (an institute's cluster, this project's CI) the page's scripts
    waited for the link to fail. The app's pages load nothing from outside the app's server.

    Examples
    --------
    >>> head = ('<head>\\n  <link rel="stylesheet" href="https://cdn.example/fa.css" type="text/css" />'
    ...         '\\n  <link rel="stylesheet" href="/voila/static/index.css"></head>')
    >>> print(without_remote_stylesheets(head))
    <head>
      <link rel="stylesheet" href="/voila/static/index.css"></head>
    """
    return _REMOTE_STYLESHEET.sub("", page)


def follow_color_scheme(page: str, scheme: str = "auto") -> str:
    """The head of a page rendered in Voila's light theme, made to follow the browser's
    ``prefers-color-scheme``: the dark theme's style sheet (JupyterLab's variables, from the same
    folder as the light one) applies under ``@media (prefers-color-scheme: dark)``, after the
    light one, and a script sets the body's theme marks to match.

    The page is rendered once for every visitor (Voila's ready kernels are rendered before a
    visitor comes), so the choice is the browser's, in CSS and in the page, not the server's.
    A page without the light theme's style sheet, or without its body, is left as it is.
    ``scheme="dark"`` makes the page dark whatever the browser prefers (a page asking for
    ``?theme=dark``).

    Examples
    --------
    >>> head = ('<head><link rel="stylesheet" type="text/css" '
    ...         'href="/voila/templates/lab/static/theme-light.css?v=1"></head>'
    ...         '<body data-jp-theme-light="true">')
    >>> page = follow_color_scheme(head)
    >>> '<link rel="stylesheet" type="text/css" href="/voila/templates/lab/static/theme-dark.css" media="(prefers-color-scheme: dark)">' in page
    True
    >>> page.index("theme-light.css") < page.index("theme-dark.css") < page.index("matchMedia")
    True
    >>> follow_color_scheme("<head></head><body>") == "<head></head><body>"
    True
    >>> dark = follow_color_scheme(head, scheme="dark")
    >>> 'href="/voila/templates/lab/static/theme-dark.css">' in dark, 'matchMedia("all")' in dark
    (True, True)
    """
    light = _LIGHT_THEME_LINK.search(page)
    body = _BODY_TAG.search(page, light.end()) if light is not None else None
    if light is None or body is None:
        return page
    media = "" if scheme == "dark" else ' media="(prefers-color-scheme: dark)"'
    dark = f'<link rel="stylesheet" type="text/css" href="{light["base"]}theme-dark.css"{media}>'
    script = _FOLLOW_SCRIPT  # with "all" for the query, the page is dark for every browser
    if scheme == "dark":
        script = script.replace("(prefers-color-scheme: dark)", "all")
    return page[: light.end()] + dark + page[light.end() : body.end()] + script + page[body.end() :]


class _Download(JupyterHandler):
    """A file a kernel prepared for download: ``<folder>/<key>/<name>``, streamed as an
    attachment to an authenticated visitor (token or login cookie). The key is random per file;
    names and keys are checked, and the path must resolve inside the folder."""

    def initialize(self, folder: str | None) -> None:
        self.folder = Path(folder).resolve() if folder else None

    @tornado.web.authenticated
    async def get(self, key: str, name: str) -> None:
        if (
            self.folder is None
            or not _DOWNLOAD_KEY.fullmatch(key)
            or not _DOWNLOAD_NAME.fullmatch(name)
        ):
            raise tornado.web.HTTPError(404)
        path = (self.folder / key / name).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            raise tornado.web.HTTPError(404)
        kind = "application/zip" if name.endswith(".zip") else "application/octet-stream"
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Content-Length", str(path.stat().st_size))
        self.set_header("Cache-Control", "no-store")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


_SECRET_PARAMETER = re.compile(r"(?i)([?&](?:token|_xsrf)=)[^&#\s]*")


def scrub_uri(uri: str) -> str:
    """``uri`` with the values of its ``token`` and ``_xsrf`` parameters hidden.

    Examples
    --------
    >>> scrub_uri("/?token=abc123&exp=GSE1")
    '/?token=[secret]&exp=GSE1'
    >>> scrub_uri("/api/kernels/k1/channels?session_id=s&TOKEN=x")
    '/api/kernels/k1/channels?session_id=s&TOKEN=[secret]'
    """
    return _SECRET_PARAMETER.sub(r"\1[secret]", uri)


def log_request(handler) -> None:
    """Tornado's access log line, with the URL's secrets hidden (:func:`scrub_uri`): the app's
    address carries its token, and a log is read by more people than the page."""
    from tornado.log import access_log

    status = handler.get_status()
    if status < 400:
        log = access_log.info
    elif status < 500:
        log = access_log.warning
    else:
        log = access_log.error
    request = handler.request
    log(
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        scrub_uri(request.uri),
        request.remote_ip,
        1000.0 * request.request_time(),
    )


class SecretScrubber(logging.Filter):
    """A logging filter that hides ``token``/``_xsrf`` values in a record's message.

    Tornado writes its own lines too: a refused static file (Voila's "403 GET
    /voila/files/x?token=...: File not allowlisted") and uncaught errors name the request's URL,
    token included; :func:`hide_secrets_in_logs` puts this filter on those loggers.

    Examples
    --------
    >>> import logging
    >>> record = logging.LogRecord("tornado.general", 30, "", 0, "%d %s: %s", None, None)
    >>> record.args = (403, "GET /voila/files/a.py?token=abc (::1)", "File not allowlisted")
    >>> SecretScrubber().filter(record), record.getMessage()
    (True, '403 GET /voila/files/a.py?token=[secret] (::1): File not allowlisted')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error report
            return True
        clean = scrub_uri(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


#: Tornado's loggers that can write a request's URL (access lines are :func:`log_request`'s).
SCRUBBED_LOGGERS = ("tornado.access", "tornado.application", "tornado.general")


def hide_secrets_in_logs(*loggers: logging.Logger) -> None:
    """Put :class:`SecretScrubber` on tornado's loggers (and on ``loggers``), once each."""
    for logger in [*(logging.getLogger(n) for n in SCRUBBED_LOGGERS), *loggers]:
        if not any(isinstance(f, SecretScrubber) for f in logger.filters):
            logger.addFilter(SecretScrubber())


class RefineWidgetsVoila(Voila):
    """Voila's standalone app with the Host/Origin guard, the readiness probe, the env token,
    the bound on open pages."""

    max_pages = Integer(
        MAX_PAGES, config=True, help="Pages holding a kernel at once (0: no bound)."
    )
    follow_color_scheme = Bool(
        False,
        config=True,
        help="Pages without ?theme= follow the browser's prefers-color-scheme (light or dark).",
    )
    reclaim_after_seconds = Float(
        RECLAIM_AFTER_SECONDS,
        config=True,
        help="A kernel no page is connected to, idle this long, may be shut down for a new page.",
    )

    @default("config_file_paths")
    def _config_file_paths_default(self) -> list[str]:
        return jupyter_config_path()  # not the working folder: see the module's text

    def initialize(self, argv=None):
        super().initialize(argv)
        token = os.environ.pop(TOKEN_ENV, None)
        if token is not None:
            self.token = token
        self._nonce = os.environ.pop(NONCE_ENV, "")

    def init_handlers(self):
        ready = (url_path_join(self.server_url, READY_PATH), _Ready, {"nonce": self._nonce})
        download = (
            url_path_join(self.server_url, DOWNLOAD_PATH, r"([^/]+)/([^/]+)"),
            _Download,
            {"folder": os.environ.get(DOWNLOADS_ENV)},
        )
        ours = {TornadoVoilaHandler: _VoilaPage, RequestInfoSocketHandler: ReadySignal}
        handlers = [
            (rule[0], ours[rule[1]], *rule[2:]) if rule[1] in ours else rule
            for rule in super().init_handlers()
        ]
        return [ready, download, *handlers]

    def _track_connections(self) -> set[str]:
        """The kernels a page has connected to (its websocket), kept up to date by the kernel
        manager's ``notify_connect``: one of them with no connection left lost its page."""
        connected: set[str] = set()
        km = self.kernel_manager
        notify_connect = km.notify_connect

        def noted(kernel_id):
            connected.add(kernel_id)
            return notify_connect(kernel_id)

        km.notify_connect = noted
        return connected

    def listen(self):
        self.port_retries = 0  # a taken port is an error, never another port
        hosts = allowed_hosts(self.port)
        app = self.app
        find_handler = app.find_handler

        def guarded_find_handler(request, **kwargs):
            reason = refusal(request.host, request.headers.get("Origin"), hosts)
            if reason is not None:
                self.log.warning("refused %s %s: %s", request.method, request.path, reason)
                return app.get_handler_delegate(request, _Forbidden, {"reason": reason})
            return find_handler(request, **kwargs)

        app.find_handler = guarded_find_handler  # tornado routes every request through it
        app.settings["log_function"] = log_request  # the token never reaches the log
        app.settings["refinewidgets_max_pages"] = self.max_pages
        app.settings["refinewidgets_connected"] = self._track_connections()
        app.settings["refinewidgets_reclaim_after"] = self.reclaim_after_seconds
        app.settings["refinewidgets_follow_color_scheme"] = self.follow_color_scheme
        hide_secrets_in_logs(self.log)  # nor tornado's own lines (403 "File not allowlisted")
        super().listen()


main = RefineWidgetsVoila.launch_instance

if __name__ == "__main__":
    main()
