"""Visible messages: the status area every part owns, and the guard around every callback.

ipywidgets swallows exceptions raised in callbacks (they go to a log the user rarely sees) and
Voila hides tracebacks, so every action of the app runs through :func:`guarded`: a failure
becomes an error message in the part's :class:`StatusArea`, which the builder mirrors into its
status line.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as w
from traitlets import Int, Unicode, observe

from ..errors import RefineWidgetsError

__all__ = ["StatusArea", "describe", "guarded"]

log = logging.getLogger("refinewidgets.widgets")
F = TypeVar("F", bound=Callable[..., Any])
KINDS = ("", "info", "success", "warning", "error")
#: Each kind's colour on a light page; ``THEME_CSS`` sets lighter ones on a dark page.
_COLORS = {"info": "#1f4e79", "success": "#1e6b2e", "warning": "#8a5a00", "error": "#a4161a"}
#: The app's style sheet (the builder puts it on the page): message colours that read on light
#: and dark themes (JupyterLab and Voila mark a dark theme with ``data-jp-theme-light="false"``
#: on ``body``; contrast at least 4.5:1 on either), and tab labels in the theme's main text
#: colour (the themes' grey inactive labels are below 4.5:1). Coloured buttons get darker fills:
#: the themes' own (white on #388e3c for "success", 4.11:1; on #f57c00 for "warning", 2.9:1)
#: are below 4.5:1; these are 5.7:1 or more with white text, on light and dark pages.
THEME_CSS = """<style>
.rw-builder { --rw-info: #1f4e79; --rw-success: #1e6b2e; --rw-warning: #8a5a00;
  --rw-error: #a4161a; --rw-muted: #555555; }
body[data-jp-theme-light="false"] .rw-builder { --rw-info: #9ccaff; --rw-success: #8fdc9c;
  --rw-warning: #f2c46d; --rw-error: #ff9b9b; --rw-muted: #c4c4c4; }
.rw-builder .lm-TabBar .lm-TabBar-tab { color: var(--jp-ui-font-color1, inherit) !important; }
body[data-jp-theme-light="false"] .rw-builder .rw-in-dataset { color: var(--rw-success) !important; }
.rw-builder .jupyter-button.mod-success { background-color: #1e6b2e; color: #ffffff; }
.rw-builder .jupyter-button.mod-primary { background-color: #1565c0; color: #ffffff; }
.rw-builder .jupyter-button.mod-warning { background-color: #8a5a00; color: #ffffff; }
.rw-builder .jupyter-button.mod-danger { background-color: #a4161a; color: #ffffff; }
.rw-builder .jupyter-button.mod-info { background-color: #1f4e79; color: #ffffff; }
.rw-builder .widget-tab > .widget-tab-contents, .rw-builder .widget-accordion { min-width: 0; }
</style>"""


def catalog_or_demo(catalog):
    """``catalog``, or the bundled demo catalog when it is None (every part's default)."""
    if catalog is None:
        from ..io.catalog_open import open_catalog

        catalog = open_catalog()
    return catalog


def describe(exc: BaseException) -> str:
    """A message a person can act on: ours as they are, others with their type."""
    if isinstance(exc, RefineWidgetsError):
        return str(exc)
    return f"Unexpected {type(exc).__name__}: {exc}. This is probably a bug in refinewidgets; please report it."


#: The API's words in the core's messages, and the app's control that does the same.
CONTROL_NAMES = [
    (
        "pseudobulk='sample' (or 'sample_cell_type')",
        'Pseudobulk "Per library" (or "Per library and cell type")',
    ),
    ("pseudobulk='sample'", 'Pseudobulk "Per library"'),
    ("quantile_normalize=False", 'unticking "Quantile normalize"'),
    ("counts_normalization='LOG1P_CPM'", 'Counts normalization "log1p CPM"'),
    ("scale_by='NONE'", 'Transformation "None"'),
    ('aggregate_by="EXPERIMENT" or "SPECIES"', 'Aggregate by "Experiment" or "Species"'),
    ("aggregate_by='EXPERIMENT' or 'SPECIES'", 'Aggregate by "Experiment" or "Species"'),
    ("aggregate_by='EXPERIMENT'", 'Aggregate by "Experiment"'),
    ('join="outer"', 'Genes "Every gene (outer)"'),
    ("join='outer'", 'Genes "Every gene (outer)"'),
    ("with cell_filter", 'with the "Keep cells" lists'),
    (
        "open the source that holds it with rw.open_catalog(...)",
        "start the app on the source that holds it (refinewidgets app PATH)",
    ),
]


def in_app_words(text: str) -> str:
    """A core message with the API's arguments replaced by the app's controls.

    Examples
    --------
    >>> in_app_words("Use pseudobulk='sample', or quantile_normalize=False.")
    'Use Pseudobulk "Per library", or unticking "Quantile normalize".'
    """
    for api, control in CONTROL_NAMES:
        text = text.replace(api, control)
    return text


class StatusArea(w.HTML):
    """A one-line message area: ``show(text, kind)``; an error also gets the class ``rw-error``.

    Examples
    --------
    >>> s = StatusArea("rw-example-status")
    >>> s.show("Nothing selected.", "error")
    >>> s.kind, s.text, "rw-error" in s._dom_classes
    ('error', 'Nothing selected.', True)
    """

    text = Unicode("", help="The message shown, as plain text ('' when nothing is shown).")
    kind = Unicode("", help="'' (nothing shown), 'info', 'success', 'warning' or 'error'.")
    serial = Int(0, help="Counts the messages shown; observe it to see a message repeated.")

    def __init__(self, css_class: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("rw-message")
        self.add_class(css_class)

    def show(self, text: str, kind: str = "info") -> None:
        """Show ``text`` as a message of ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.text = kind, str(text)
        self.serial += 1

    def clear(self) -> None:
        """Show nothing."""
        self.kind, self.text = "", ""

    @observe("text", "kind")
    def _render(self, change=None) -> None:
        if self.kind == "error":
            self.add_class("rw-error")
        else:
            self.remove_class("rw-error")
        if not self.text:
            self.value = ""
            return
        prefix = "Error: " if self.kind == "error" else ""
        color = f"var(--rw-{self.kind},{_COLORS[self.kind]})" if self.kind in _COLORS else "inherit"
        self.value = (
            f'<div style="color:{color};white-space:pre-wrap">'
            f"{html.escape(prefix + self.text)}</div>"
        )


def guarded(method: F) -> F:
    """Run a widget method so that an exception becomes an error message in ``self.status``.

    The method's return value is returned; on failure None is returned and the traceback
    is logged (logger ``refinewidgets.widgets``).
    """

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            log.debug("%s failed", method.__qualname__, exc_info=True)
            self.status.show(describe(exc), "error")
            return None

    return wrapper  # type: ignore[return-value]
