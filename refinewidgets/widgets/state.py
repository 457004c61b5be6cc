"""The app's one state object: a :class:`~refinewidgets.core.selection.Selection` in a trait.

Views hold the same :class:`AppState`, observe its ``selection`` and render from it; a user
action assigns a new Selection (``state.selection = state.selection.add(...)``), never edits
one. Assigning an equal Selection notifies nobody, so a view that renders a control whose
observer assigns the value it just showed ends the round trip there (solara's state objects
work the same way).
"""

from __future__ import annotations

from typing import Any

from traitlets import HasTraits, Instance

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

    def __init__(self, catalog: Any, **kwargs: Any) -> None:
        super().__init__(selection=Selection(catalog), **kwargs)
        self.catalog = catalog
