"""The app's one state object: a :class:`~refinewidgets.core.selection.Selection` in a trait.

Views hold the same :class:`AppState`, observe its ``selection`` and render from it; a user
action assigns a new Selection (``state.selection = state.selection.add(...)``), never edits
one. Assigning an equal Selection notifies nobody, so a view that renders a control whose
observer assigns the value it just showed ends the round trip there (solara's state objects
work the same way).
"""

from __future__ import annotations

from typing import Any

from traitlets import HasTraits, Instance, Tuple

from ..core.selection import Selection

__all__ = ["AppState"]


class AppState(HasTraits):
    """The selection being assembled and its options.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> state = AppState(rw.open_catalog())
    >>> state.selection = state.selection.add({"SRP091833": None})
    >>> state.selection.n_samples
    20
    """

    selection = Instance(Selection, help="The selected samples and the build options.")
    undoable = Tuple(
        (),
        help="(before, after) of the last edit that can be undone: undo puts `before` back while "
        "the selection is still `after`.",
    )

    def __init__(self, catalog: Any, **kwargs: Any) -> None:
        super().__init__(selection=Selection(catalog), **kwargs)
        self.catalog = catalog

    def edit(self, new: Selection) -> None:
        """Assign ``new`` and remember the selection before it, for :meth:`undo`."""
        before = self.selection
        if new != before:
            self.undoable = (before, new)  # first: views rendering the new selection see it
        self.selection = new

    def use_catalog(self, selection: Selection) -> None:
        """Switch to ``selection``, whose catalog has more sources (downloads just opened):
        its catalog becomes :attr:`catalog`. The last edit stays undoable (undoing puts back
        a selection over the same accessions)."""
        self.catalog = selection.catalog
        if self.can_undo:
            self.undoable = (self.undoable[0], selection)
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
