"""The app's one state object: a :class:`~refinewidgets.core.selection.Selection` in a trait,
and the catalog it is over.

Views hold the same :class:`AppState`, observe its ``selection`` (and ``catalog``) and render
from it; a user action assigns a new Selection (``state.selection = state.selection.add(...)``),
never edits one, and no view keeps a copy of either. Assigning an equal Selection notifies
nobody, so a view that renders a control whose observer assigns the value it just showed ends
the round trip there (solara's state objects work the same way).

The catalog is the selection's own (a Selection is over one catalog): :attr:`AppState.catalog`
follows it, and changes only when a selection over another catalog is assigned (downloads
opened beside the catalog's sources, :meth:`AppState.use_catalog`). Views that list the
catalog (the experiment browser, the sample picker) observe ``catalog`` and list the new one.

:class:`Rendering` is the one way a view writes its own controls without reacting to them: its
control observers return early while ``with self.rendering:`` is on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import HasTraits, Instance, Tuple, Unicode, observe

from ..core.selection import Selection

__all__ = ["AppState", "Rendering"]


class Rendering:
    """A flag a view raises while it writes its own controls (a batch of updates).

    ``with flag:`` raises it (nested uses keep it raised until the outermost ends, an error
    included); ``bool(flag)`` says whether it is raised. A control's observer returns early
    while it is: the change is the view's rendering, not the user's.

    Examples
    --------
    >>> rendering = Rendering()
    >>> with rendering:
    ...     with rendering:
    ...         pass
    ...     inside = bool(rendering)
    >>> inside, bool(rendering)
    (True, False)
    """

    __slots__ = ("_depth",)

    def __init__(self) -> None:
        self._depth = 0

    def __bool__(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> Rendering:
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1


class AppState(HasTraits):
    """The selection being assembled, its options, and the catalog it is over.

    Parameters
    ----------
    catalog
        The :class:`~refinewidgets.Catalog` the app starts with.
    catalog_code
        The expression that opens ``catalog`` in code ("Show code").

    Examples
    --------
    >>> import refinewidgets as rw
    >>> state = AppState(rw.open_catalog())
    >>> state.selection = state.selection.add({"SRP091833": None})
    >>> state.selection.n_samples, state.catalog is state.selection.catalog
    (20, True)
    """

    selection = Instance(Selection, help="The selected samples and the build options.")
    catalog = AnyTrait(
        None,
        read_only=True,
        help="The catalog the selection is over (the selection's own; changes with use_catalog).",
    )
    catalog_code = Unicode(
        "rw.open_catalog()", help='The expression that opens the catalog ("Show code").'
    )
    undoable = Tuple(
        (),
        help="(before, after) of the last edit that can be undone: undo puts `before` back while "
        "the selection is still `after`.",
    )

    def __init__(self, catalog: Any, **kwargs: Any) -> None:
        super().__init__(selection=Selection(catalog), **kwargs)

    @observe("selection")
    def _follow_catalog(self, change) -> None:
        # registered before any view's observer: views see the new catalog with the selection
        if change["new"].catalog is not self.catalog:
            self.set_trait("catalog", change["new"].catalog)

    def edit(self, new: Selection) -> None:
        """Assign ``new`` and remember the selection before it, for :meth:`undo`."""
        before = self.selection
        if new != before:
            self.undoable = (before, new)  # first: views rendering the new selection see it
        self.selection = new

    def use_catalog(self, selection: Selection, code: str | None = None) -> None:
        """Switch to ``selection``, whose catalog has more sources (downloads just opened):
        its catalog becomes :attr:`catalog`, opened in code by ``code`` (None: unchanged). The
        last edit stays undoable (undoing puts back a selection over the same accessions)."""
        catalog = selection.catalog
        if self.can_undo:  # the selection before, over the new catalog (it holds the old one)
            self.undoable = (replace(self.undoable[0], catalog=catalog), selection)
        if code is not None:
            self.catalog_code = code
        if catalog is not self.catalog:
            self.set_trait("catalog", catalog)  # an equal selection would not say so
        self.selection = selection

    @property
    def can_undo(self) -> bool:
        """Whether the last undoable edit is still the current selection."""
        return bool(self.undoable) and self.undoable[1] == self.selection

    def undo(self) -> bool:
        """Put back the selection before the last undoable edit; False when there is none."""
        if not self.can_undo:
            return False
        before = self.undoable[0]
        self.undoable = ()
        self.selection = before
        return True
