"""The dataset in the web app's address: a link that restores it, kept in step with it.

:class:`PageLink` is the part of :class:`~refinewidgets.widgets.builder.DatasetBuilder` that
deals with the page's address (a mixin of the builder, kept apart to keep each module short):
:meth:`~PageLink.link_to_page` restores the dataset the page's query encodes
(:mod:`refinewidgets.core.url_state`), experiments still to fetch included, and from then on
writes the current dataset into the address (:class:`~refinewidgets.widgets._url.UrlWriter`);
:meth:`~PageLink.restore_query` restores a link's dataset. A dataset too large for a link
leaves the address without it and says so.
"""

from __future__ import annotations

from ..core.selection import Selection
from ..core.url_state import MAX_QUERY_LENGTH, Link, link_from_query, replace_query
from ._status import describe, in_app_words
from ._url import UrlWriter

__all__ = ["PageLink"]


class PageLink:
    """The builder's link to its dataset in the page's address (see the module's docstring)."""

    def link_to_page(self, query: str) -> None:
        """Show the dataset in the page's address from now on, after restoring the one the
        page's query (``"token=...&exp=GSE1"``) encodes (see ``page_query``)."""
        self._page_query = query or ""
        if self.url_writer is None:
            self.url_writer = UrlWriter()
            self.children = [*self.children, self.url_writer]
        self.restore_query(self._page_query)
        self._write_link()  # also when the restored selection is the one shown (no change)

    def restore_query(self, query: str) -> bool:
        """Restore the dataset a URL query encodes (the web app's link), experiments still to
        fetch included; False, with a message in the status line, when the link cannot be used
        (nothing is changed then)."""
        try:
            link = link_from_query(query)
            if link is None:
                return False
            selection = (
                Selection.from_dataset(link.dataset, self.catalog)  # the catalog's checks
                if link.data
                else Selection(self.catalog).restore_options(link.options)
            ).restore_pending(link.pending)
        except Exception as exc:
            self.status.show(
                f"The link's dataset was not restored: {in_app_words(describe(exc))}", "error"
            )
            return False
        self.state.selection = selection
        self.describe_pending()  # titles and sample counts, once the services answer
        pending = selection.pending
        to_fetch = (
            f", and {len(pending)} experiment(s) to fetch from "
            + " and ".join(dict.fromkeys(p.service_name for p in pending))
            + f" ({', '.join(p.label for p in pending)})"
            if pending
            else ""
        )
        self.status.show(
            f"Dataset restored from the link: {len(selection)} experiment(s), "
            f"{selection.n_samples:,} samples{to_fetch}.{self._adapted_note(link.options)} "
            "Build it on the My dataset tab.",
            "info",
        )
        return True

    def _adapted_note(self, options) -> str:
        """What the restored selection changed of ``options`` for the build to accept it."""
        if (
            options["quantile_normalize"]
            and not self.state.selection.option_values["quantile_normalize"]
        ):
            return (
                ' "Quantile normalize" is off: the dataset has single cells, which are never '
                "quantile-normalized."
            )
        return ""

    def _write_link(self) -> None:
        selection = self.state.selection
        link = Link(selection.data, selection.pending, selection.option_values)
        query = replace_query(self._page_query, link)
        too_long = len(query) > MAX_QUERY_LENGTH
        if too_long and self.link_query and self.url_writer is not None:
            self.status.show(
                "The dataset is now too large to keep in the page's address (a reload starts "
                'empty): "Show code" on the My dataset tab gives the code that rebuilds it.',
                "info",
            )
        self.link_query = "" if too_long else query
        if self.url_writer is not None:
            self.url_writer.query = self.link_query or replace_query(self._page_query, None)
