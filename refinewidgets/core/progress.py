"""Progress reporting injected into the core.

The core never imports a UI. It reports through a :class:`Progress`, which adapts whatever the
caller gives: ``None`` (silence), a callable ``f(done, total, message)``, or any object with
``update(n)`` and optionally ``reset(total=...)``, ``set_description(text)`` and ``close()``
(a ``tqdm`` bar, a widget adapter).

Cancellation is injected the same way: a progress object whose ``cancelled`` attribute is true
makes the next step raise :class:`~refinewidgets.errors.BuildCancelled`, so work stops between
steps and nothing half-made is kept.
"""

from __future__ import annotations

from typing import Any

from ..errors import BuildCancelled

__all__ = ["Progress", "as_progress"]


class Progress:
    """A step counter that forwards to the caller's progress object.

    Examples
    --------
    >>> seen = []
    >>> p = as_progress(lambda done, total, msg: seen.append((done, total, msg)))
    >>> p.start(2, "reading")
    >>> p.advance("merging")
    >>> seen[-1]
    (1, 2, 'merging')
    """

    def __init__(self, target: Any = None) -> None:
        self._target = target
        self.done = 0
        self.total = 0
        self.message = ""

    def start(self, total: int, message: str = "") -> None:
        """Begin (or restart) counting towards ``total`` steps."""
        self.done, self.total, self.message = 0, int(total), message
        t = self._target
        if t is None:
            return
        if callable(t) and not hasattr(t, "update"):
            t(0, self.total, message)
            return
        if hasattr(t, "reset"):
            t.reset(total=self.total)
        if message and hasattr(t, "set_description"):
            t.set_description(message)

    def advance(self, message: str | None = None, n: int = 1) -> None:
        """Mark ``n`` steps done; ``message`` says what comes next.

        Raises :class:`~refinewidgets.errors.BuildCancelled` when the caller's object says
        ``cancelled``.
        """
        if getattr(self._target, "cancelled", False):
            raise BuildCancelled(
                f"Cancelled after {self.done} of {self.total} steps; nothing was kept."
            )
        self.done += n
        if message is not None:
            self.message = message
        t = self._target
        if t is None:
            return
        if callable(t) and not hasattr(t, "update"):
            t(self.done, self.total, self.message)
            return
        if message is not None and hasattr(t, "set_description"):
            t.set_description(message)
        t.update(n)

    def close(self) -> None:
        """Tell the caller's object that the work ended."""
        if self._target is not None and hasattr(self._target, "close"):
            self._target.close()


def as_progress(target: Any = None) -> Progress:
    """Wrap ``target`` (None, a callable, a tqdm-like object or a Progress) as a Progress."""
    if isinstance(target, Progress):
        return target
    if target is not None and not (callable(target) or hasattr(target, "update")):
        raise TypeError(
            "progress must be None, a callable f(done, total, message) or an object with "
            f"update(n) (such as a tqdm bar); got {type(target).__name__}."
        )
    return Progress(target)
