"""The refine.bio account form: an e-mail address and a token, got in the app.

refine.bio processes a dataset only for an activated API token (activating it accepts
refine.bio's terms of use and privacy policy) and an e-mail address. :class:`RefineBioAccount`
asks for both: an e-mail field, the box "I accept refine.bio's terms of use and privacy policy"
(with both links), and "Get a token". Nothing is accepted unless the user ticks the box; then
the client's own token flow runs in a thread (:meth:`RefineBio.create_token
<refinewidgets.io.remote.refinebio.RefineBio.create_token>` with ``accept_terms=True``), and the
token and the e-mail address are saved in the client's configuration file
(``$REFINEBIO_CONFIG_FILE``, default ``~/.refinebio.yaml``, pyrefinebio's), where every later
fetch reads them. The outcome is a message in the form's status area.
"""

from __future__ import annotations

import html
import os
import re
import threading
from typing import Any

import ipywidgets as w
from traitlets import Bool

from ._status import StatusArea, describe, guarded

__all__ = ["RefineBioAccount", "configured_email"]

_EMAIL = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+")


def configured_email() -> str:
    """The e-mail address the refine.bio client would use ('' when none is set)."""
    from ..io.remote.errors import RemoteError
    from ..io.remote.refinebio import RefineBio

    try:
        return RefineBio().email()
    except RemoteError:
        return ""


def _token_source() -> str:
    """Where the client's token comes from: '$REFINEBIO_TOKEN', the config file, or ''."""
    from ..io.remote.errors import RemoteError
    from ..io.remote.refinebio import TOKEN_ENV, RefineBio, config_path

    try:
        if not RefineBio().token(required=False):
            return ""
    except RemoteError:
        return ""
    return f"${TOKEN_ENV}" if os.environ.get(TOKEN_ENV) else str(config_path())


class RefineBioAccount(w.VBox):
    """Get a refine.bio token (accepting its terms only when the user ticks the box) and save
    the e-mail address refine.bio needs.

    Examples
    --------
    Needs refine.bio (or the test server of :mod:`refinewidgets.testing.fake_services`)::

        account = RefineBioAccount()
        account.email.value = "you@example.org"
        account.accept.value = True      # the user's own tick: "I accept refine.bio's terms ..."
        account.get_button.click(); account.wait()
    """

    busy = Bool(False, help="Whether the token is being created.")
    has_token = Bool(False, help="Whether the refine.bio client has a token to use.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from ..io.remote.refinebio import PRIVACY_URL, TERMS_URL

        self._thread: threading.Thread | None = None
        self.intro = w.HTML()
        self.intro.add_class("rw-account-intro")
        self.email = w.Text(
            value=configured_email(),
            placeholder="you@example.org",
            description="E-mail",
            layout=w.Layout(width="360px"),
            style={"description_width": "60px"},
        )
        self.email.add_class("rw-account-email")
        self.accept = w.Checkbox(
            value=False,
            description="I accept refine.bio's terms of use and privacy policy",
            indent=False,
            layout=w.Layout(width="auto"),
        )
        self.accept.add_class("rw-account-accept")
        self.accept.observe(self._update_button, names="value")
        self.links = w.HTML(
            f'(<a href="{html.escape(TERMS_URL)}" target="_blank" rel="noopener noreferrer">'
            f'terms of use</a>, <a href="{html.escape(PRIVACY_URL)}" target="_blank" '
            'rel="noopener noreferrer">privacy policy</a>)'
        )
        self.links.add_class("rw-account-links")
        self.get_button = w.Button(
            description="Get a token",
            icon="key",
            disabled=True,
            layout=w.Layout(width="160px"),
            tooltip="Create a refine.bio API token and activate it (tick the box first)",
        )
        self.get_button.add_class("rw-account-get-token")
        self.get_button.on_click(lambda _: self.get_token())
        self.status = StatusArea("rw-account-status")
        self.children = [
            self.intro,
            self.email,
            w.HBox([self.accept, self.links], layout=w.Layout(flex_flow="row wrap")),
            self.get_button,
            self.status,
        ]
        self.add_class("rw-account")
        self.refresh()

    def refresh(self) -> None:
        """Say whether a token is set and where it comes from."""
        source = _token_source()
        self.has_token = bool(source)
        self.intro.value = (
            f"A refine.bio token is set (from <code>{html.escape(source)}</code>). Getting "
            "another one replaces it in the configuration file."
            if source
            else "refine.bio needs an API token and an e-mail address to prepare the downloads "
            "of the experiments you add. No token is set yet: get one here."
        )

    def _update_button(self, change=None) -> None:
        self.get_button.disabled = self.busy or not self.accept.value

    def wait(self, timeout: float | None = 60) -> None:
        """Wait for the token being created (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @guarded
    def get_token(self) -> None:
        """Create and activate a token, and save it with the e-mail address; only once the
        user ticked "I accept refine.bio's terms of use and privacy policy"."""
        if self.accept.value is not True:
            self.status.show(
                "Tick \u201cI accept refine.bio's terms of use and privacy policy\u201d first: "
                "getting a token accepts them, and nothing is sent to refine.bio without it.",
                "warning",
            )
            return
        email = self.email.value.strip()
        if email and not _EMAIL.fullmatch(email):
            self.status.show(
                f"{email[:80]!r} is not an e-mail address (such as you@example.org): refine.bio "
                "writes to it when a dataset is ready.",
                "error",
            )
            return
        if not email and not configured_email():
            self.status.show(
                "Give your e-mail address too: refine.bio needs one to process the datasets "
                "(it writes to it when one is ready).",
                "warning",
            )
            return
        if self.busy:
            return
        self.busy = True
        self._update_button()
        self.status.show("Getting a token from refine.bio...", "info")
        self._thread = threading.Thread(
            target=self._create, args=(email,), name="refinewidgets-token", daemon=True
        )
        self._thread.start()

    def _create(self, email: str) -> None:
        from ..io.remote.refinebio import (
            EMAIL_ENV,
            TOKEN_ENV,
            RefineBio,
            config_path,
            save_email,
        )
        from .remote_fetch import remote_words

        try:
            RefineBio().create_token(accept_terms=True, save=True)
            if email:
                save_email(email)
        except Exception as exc:
            self.status.show(f"Getting a token failed: {remote_words(describe(exc))}", "error")
            return
        finally:
            self.busy = False
            self._update_button()
        self.refresh()
        shadowed = [
            f"${name}"
            for name, value in ((TOKEN_ENV, True), (EMAIL_ENV, bool(email)))
            if value and os.environ.get(name)
        ]
        note = (
            f" But {' and '.join(shadowed)} {'is' if len(shadowed) == 1 else 'are'} set in the "
            "app's environment and used before the file: unset them to use what was saved."
            if shadowed
            else ""
        )
        saved = "with your e-mail address " if email else ""
        self.status.show(
            "You accepted refine.bio's terms of use and privacy policy: the token is created, "
            f"activated and saved {saved}in {config_path()}. Build now fetches from "
            f"refine.bio.{note}",
            "warning" if shadowed else "success",
        )
