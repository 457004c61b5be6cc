"""Adapter from the core's progress protocol to a progress bar and a label.

The core reports through any object with ``update(n)``, ``reset(total=...)``,
``set_description(text)`` and ``close()`` (see :mod:`refinewidgets.core.progress`).
:class:`WidgetProgress` is such an object; its ``widget`` is what the app shows. It is not a
widget itself, because ``Widget.close()`` would destroy the bar when the core says "done".
"""

from __future__ import annotations

import ipywidgets as w

__all__ = ["WidgetProgress"]


class WidgetProgress:
    """Feed an ``IntProgress`` (class ``rw-progress``) and a label (``rw-progress-label``).

    Examples
    --------
    >>> p = WidgetProgress()
    >>> p.reset(total=4); p.set_description("reading"); p.update(1)
    >>> p.bar.value, p.bar.max, p.label.value
    (1, 4, 'reading')
    >>> p.close(); p.bar.bar_style
    'success'
    """

    #: Set by the Cancel button: the core's next step raises BuildCancelled.
    cancelled = False
    #: When True, the core's ``close()`` does not mean done: the caller still shows the
    #: results, then calls :meth:`finish` (the app's bar says "done" only once they are shown).
    hold_done = False

    def __init__(self) -> None:
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="320px"))
        self.bar.add_class("rw-progress")
        self.label = w.Label("")
        self.label.add_class("rw-progress-label")
        self.widget = w.HBox([self.bar, self.label], layout=w.Layout(flex_flow="row wrap"))

    def reset(self, total: int | None = None) -> None:
        """Start again at 0 (towards ``total`` steps when given)."""
        if total is not None:
            self.bar.max = max(1, int(total))
        self.bar.value = 0
        self.bar.bar_style = "info"

    def update(self, n: int = 1) -> None:
        """``n`` more steps done."""
        self.bar.value = min(self.bar.max, self.bar.value + int(n))

    def set_description(self, text: str) -> None:
        """Say what happens now."""
        self.label.value = str(text)

    def close(self) -> None:
        """The work ended: fill the bar (with ``hold_done``, say the results come next)."""
        if self.hold_done:
            self.bar.value = max(0, self.bar.max - 1)
            self.label.value = "showing the results..."
            return
        self.finish()

    def finish(self, text: str | None = None) -> None:
        """Everything is done (and shown): fill the bar, green; ``text`` says so."""
        self.bar.value = self.bar.max
        self.bar.bar_style = "success"
        if text is not None:
            self.label.value = str(text)

    def fail(self, text: str = "failed") -> None:
        """The work failed: mark the bar red and say so."""
        self.bar.bar_style = "danger"
        self.label.value = str(text)
