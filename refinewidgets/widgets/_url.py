"""Writing the app's state into the page's URL (the browser's address bar).

The kernel cannot change the page's address itself, and plain ipywidgets have no front-end code
of ours. :class:`UrlWriter` is an ``HTML`` widget holding a hidden image whose ``onerror``
handler calls ``history.replaceState`` with the query stored in a ``data-`` attribute: every
time the query changes, the browser re-renders the HTML and the handler runs once. The query is
made by :func:`refinewidgets.core.url_state.replace_query` (URL-encoded, then HTML-escaped into
the attribute), so no value from data reaches the script as code. Only the web app uses it; in
JupyterLab the address is the notebook's and is left alone.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from traitlets import Unicode, observe

__all__ = ["UrlWriter"]

_SCRIPT = (
    "var q=this.getAttribute('data-rw-query');"
    "var u=window.location.pathname+(q?'?'+q:'')+window.location.hash;"
    "if(u!==window.location.pathname+window.location.search+window.location.hash)"
    "{window.history.replaceState(window.history.state,'',u);}"
)


class UrlWriter(w.HTML):
    """Put ``query`` into the page's address (``?query``), replacing the query there.

    Examples
    --------
    >>> writer = UrlWriter()
    >>> writer.query = "exp=GSE1&token=a"
    >>> 'data-rw-query="exp=GSE1&amp;token=a"' in writer.value
    True
    """

    query = Unicode("", help="The URL query the page should show (without '?').")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("rw-url-writer")
        self.layout.display = "none"

    @observe("query")
    def _render(self, change=None) -> None:
        self.value = (
            f'<img alt="" src="data:," style="display:none" '
            f'data-rw-query="{html.escape(self.query, quote=True)}" onerror="{_SCRIPT}">'
        )
