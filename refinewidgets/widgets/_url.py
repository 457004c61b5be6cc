"""Writing the app's state into the page's URL (the browser's address bar).

The kernel cannot change the page's address itself. :class:`UrlWriter` is an anywidget
(the documented way to give an ipywidget its own front-end code): a few lines of JavaScript
that call ``history.replaceState`` with the widget's ``query`` whenever it changes. The query is
made by :func:`refinewidgets.core.url_state.replace_query` (URL-encoded) and reaches the script
as a string value of the model, never as code. Only the web app uses it; in JupyterLab the
address is the notebook's and is left alone.
"""

from __future__ import annotations

from typing import Any

import anywidget
from traitlets import Unicode

__all__ = ["UrlWriter"]

_ESM = """
function show(model) {
  const query = model.get("query");
  const url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
  if (url !== window.location.pathname + window.location.search + window.location.hash) {
    window.history.replaceState(window.history.state, "", url);
  }
}
function render({ model, el }) {
  el.style.display = "none";
  show(model);
  const changed = () => show(model);
  model.on("change:query", changed);
  return () => model.off("change:query", changed);
}
export default { render };
"""


class UrlWriter(anywidget.AnyWidget):
    """Put ``query`` into the page's address (``?query``), replacing the query there.

    Examples
    --------
    >>> writer = UrlWriter()
    >>> writer.query = "exp=GSE1&token=a"
    >>> writer.query
    'exp=GSE1&token=a'
    """

    _esm = _ESM
    query = Unicode("", help="The URL query the page should show (without '?').").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("rw-url-writer")
        self.layout.display = "none"
