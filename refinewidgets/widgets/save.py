"""Saving a result: to a path in the kernel's file system, or as a download for the browser.

"Save" and "Download" write the chosen format: the standard refine.bio zip
(:meth:`~refinewidgets.Result.write_zip`) or one group as AnnData ``.h5ad``
(:meth:`~refinewidgets.Result.write_h5ad`, for scanpy users), atomically and never over an existing file unless "Overwrite" is ticked.
Given an ``output_dir`` (the web app always gives one), the panel takes a file *name* only and
writes inside that folder, never elsewhere (:func:`resolve_save_name`); without one, any path
the kernel can write is accepted, as a notebook user expects.
In the app (``refinewidgets app``), "Download" writes the file into the folder the app's server
serves (:data:`DOWNLOADS_ENV`) and links to it: a real file, of any size. Elsewhere (a notebook,
Binder) the link's ``href`` is a ``data:`` URI holding the file, which needs no file server;
files above :data:`DOWNLOAD_LIMIT` bytes are then refused with a message.
"""

from __future__ import annotations

import base64
import errno
import html
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as w
from traitlets import Bool, Instance, Unicode, observe

from ..core.result import Result
from ..errors import OutputExistsError, RefineWidgetsError, SaveNameError
from ._status import StatusArea, guarded

__all__ = ["DOWNLOADS_ENV", "DOWNLOAD_LIMIT", "SaveNameError", "SavePanel", "resolve_save_name"]

#: The largest file offered as a data-URI download (it travels inside the page).
DOWNLOAD_LIMIT = 200 * 2**20
#: Set by ``refinewidgets app``: the folder where downloads are prepared, served by the app's
#: own server at ``/refinewidgets/download/<key>/<name>`` (a real file, no size limit).
DOWNLOADS_ENV = "REFINEWIDGETS_DOWNLOADS"
#: The download link looks like the panel's primary button (white on blue: 5.7:1 in any theme).
LINK_STYLE = (
    "display:inline-block;padding:4px 14px;margin:2px 8px 2px 0;border-radius:2px;"
    "background:#1565c0;color:#ffffff;text-decoration:none;"
    "font-weight:bold;line-height:20px"
)
#: Results with at most this many values get their download link prepared on their own.
AUTO_DOWNLOAD_VALUES = 5_000_000


def resolve_save_name(name: str, output_dir: str | os.PathLike) -> Path:
    """The path ``name`` stands for inside ``output_dir``, or :class:`SaveNameError`.

    ``name`` must be a plain file name: no ``/`` or ``\\``, not starting with ``.`` (so no
    ``..`` and no hidden files). The result, symlinks resolved, must still be directly inside the
    (resolved) folder: an existing symlink pointing elsewhere is refused.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> resolve_save_name("mine.zip", folder).name
    'mine.zip'
    >>> try:
    ...     resolve_save_name("../x.zip", folder)
    ... except SaveNameError as exc:
    ...     print(str(exc).split(":")[0])
    '../x.zip' is not a file name
    """
    folder = Path(output_dir).resolve()
    name = name.strip()
    if not name:
        raise SaveNameError("give a file name to save to, such as dataset.zip")
    if "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise SaveNameError(
            f"{name!r} is not a file name: use a name such as dataset.zip, without '/', '\\' "
            f"or a leading '.'; files are saved in {folder}"
        )
    target = (folder / name).resolve()
    if target.parent != folder:
        raise SaveNameError(
            f"{name!r} leads outside {folder} (a symbolic link?): choose another name"
        )
    return target


class SavePanel(w.VBox):
    """Save a :class:`~refinewidgets.Result` to a path, or download it.

    Parameters
    ----------
    output_dir
        None (any path the kernel can write, relative to its working folder), or a folder: then
        only a file name is accepted and the file is written inside that folder
        (:func:`resolve_save_name`); a refused name is an error message in the panel.

    Examples
    --------
    >>> import os, tempfile, refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> panel = SavePanel()
    >>> panel.result = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), cat)
    >>> panel.path.value = os.path.join(tempfile.mkdtemp(), "d.zip")
    >>> panel.save_button.click(); panel.status.kind
    'success'
    >>> panel.prepare_download()
    >>> panel.download.value.startswith('<a download="d.zip" href="data:application/zip;base64,')
    True
    """

    result = Instance(Result, allow_none=True, help="The result to save.")
    saved_path = Unicode(None, allow_none=True, help="The file written last, or None.")
    stale = Bool(False, help="The result no longer matches the dataset (saving is off).")

    def __init__(self, *, output_dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_dir = None if output_dir is None else Path(output_dir).resolve()
        self._served: Path | None = None
        self.status = StatusArea("rw-save-status")
        self.path = w.Text(
            value="dataset.zip",
            description="Save to" if self.output_dir is None else "File name",
            layout=w.Layout(width="480px"),
        )
        self.path.add_class("rw-save-path")
        self.folder = w.HTML(
            ""
            if self.output_dir is None
            else f"Saved in <code>{html.escape(str(self.output_dir))}</code>"
        )
        self.folder.add_class("rw-save-folder")
        self.format = w.Dropdown(
            options=[("refine.bio zip (every group)", "zip")], value="zip", description="Format"
        )
        self.format.add_class("rw-save-format")
        self.format.observe(self._on_format, names="value")
        self.overwrite = w.Checkbox(
            value=False, description="Overwrite an existing file", indent=False
        )
        self.overwrite.add_class("rw-save-overwrite")
        self.save_button = w.Button(description="Save", icon="save")
        self.save_button.add_class("rw-save")
        self.save_button.on_click(lambda _: self.save())
        self.prepare_button = w.Button(
            description="Prepare download", icon="download", layout=w.Layout(width="200px")
        )
        self.prepare_button.add_class("rw-prepare-download")
        self.prepare_button.on_click(lambda _: self.prepare_download())
        self.download = w.HTML()
        self.download.add_class("rw-download")
        # a ready link takes the button's place; it comes back when the link goes
        self.download.observe(self._link_changed, names="value")
        self.children = [
            w.HTML("<b>Download or save</b>"),
            w.HBox([self.download, self.prepare_button], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.path, self.format], layout=w.Layout(flex_flow="row wrap")),
            self.folder,
            self.overwrite,
            self.save_button,
            self.status,
        ]
        self._result_changed(None)

    def _link_changed(self, change=None) -> None:
        self.prepare_button.layout.display = "none" if self.download.value else None

    @observe("stale")
    def _stale_changed(self, change) -> None:
        for button in (self.save_button, self.prepare_button):
            button.disabled = self.result is None or self.stale
        if self.stale:
            self.download.value = ""
            self.status.show(
                "The dataset changed since this result was built: build again to save it.", "info"
            )
        else:
            self.status.clear()
            if self.result is not None:
                self._result_changed(None)  # current again: the download link comes back

    @observe("result")
    def _result_changed(self, change) -> None:
        res = self.result
        self.download.value = ""
        options = [("refine.bio zip (every group)", "zip")]
        if res is not None:
            options += [(f"AnnData (.h5ad) of {key}", f"h5ad:{key}") for key in res]
        self.format.options = options
        self.format.value = "zip"
        for button in (self.save_button, self.prepare_button):
            button.disabled = res is None or self.stale
        self._auto_download()

    def _auto_download(self) -> None:
        res = self.result
        if (
            res is not None
            and not self.stale
            and sum(a.n_obs * a.n_vars for a in res.values()) <= AUTO_DOWNLOAD_VALUES
        ):
            self.prepare_download()

    def _on_format(self, change) -> None:
        new = change["new"] or "zip"
        suffix = ".zip" if new == "zip" else ".h5ad"
        current = Path(self.path.value or "dataset.zip")
        stem = current.stem if current.suffix in (".zip", ".h5ad") else current.name
        if new != "zip" and stem == "dataset":
            stem = new.split(":", 1)[1]
        elif new == "zip" and self.result is not None and stem in self.result:
            stem = "dataset"
        self.path.value = str(current.with_name(stem + suffix))
        self.download.value = ""  # the link was of the other format
        self._auto_download()

    def _nothing(self, what: str) -> str:
        if self.stale:
            return (
                f"Nothing to {what}: the dataset changed since this result was built; build again."
            )
        return f"Nothing to {what} yet: build a dataset first."

    @guarded
    def save(self) -> Path | None:
        """Write the chosen format to the path; never over an existing file unless "Overwrite"."""
        if self.result is None or self.stale:
            self.status.show(self._nothing("save"), "info")
            return None
        if self.output_dir is None:
            path = Path(self.path.value.strip() or "dataset.zip").expanduser()
        else:
            try:
                path = resolve_save_name(self.path.value, self.output_dir)
            except SaveNameError as exc:
                self.status.show(f"Not saved: {exc}.", "error")
                return None
        try:
            if self.format.value == "zip":
                written = Path(self.result.write_zip(path, overwrite=self.overwrite.value))
            else:
                key = self.format.value.split(":", 1)[1]
                written = self.result.write_h5ad(path, group=key, overwrite=self.overwrite.value)
                written = Path(written[key])
        except OutputExistsError:
            self.status.show(
                f'{path} exists: choose another name, or tick "Overwrite" to replace it.', "error"
            )
            return None
        except RefineWidgetsError as exc:  # e.g. the folder of the path does not exist
            self.status.show(f"Not saved: {exc}", "error")
            return None
        except OSError as exc:  # read-only or full disk, permission denied, a folder of that name
            reason = (exc.strerror or str(exc)).rstrip(".")
            if exc.errno == errno.EISDIR:
                reason = "a folder has that name"
            self.status.show(f"Not saved: cannot write {path}: {reason}.", "error")
            return None
        self.saved_path = str(written)
        size = written.stat().st_size
        self.status.show(f"Saved {written.resolve()} ({size / 2**20:,.1f} MB).", "success")
        return written

    @guarded
    def prepare_download(self) -> None:
        """Put a download link of the chosen format in :attr:`download` (or say why not)."""
        if self.result is None or self.stale:
            self.status.show(self._nothing("download"), "info")
            return
        fmt = self.format.value or "zip"
        suffix = ".zip" if fmt == "zip" else ".h5ad"
        default = "dataset.zip" if fmt == "zip" else fmt.split(":", 1)[1] + suffix
        name = Path(self.path.value.strip() or default).name
        name = name if name.endswith(suffix) else default
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", name):
            name = default  # group keys are checked names (core/names.py)
        served = os.environ.get(DOWNLOADS_ENV)
        if served and Path(served).is_dir():
            self._serve_download(Path(served), name, fmt)
            return
        mime = "application/zip" if fmt == "zip" else "application/x-hdf5"
        with tempfile.TemporaryDirectory(prefix="refinewidgets-") as folder:
            target = Path(folder) / name
            self._write(target, fmt)
            size = target.stat().st_size
            if size > DOWNLOAD_LIMIT:
                self.download.value = ""
                self.status.show(
                    f"The {name} file is {size / 2**20:,.0f} MB, too big for a browser download "
                    f"(limit {DOWNLOAD_LIMIT / 2**20:,.0f} MB): save it to a path instead.",
                    "warning",
                )
                return
            data = base64.b64encode(target.read_bytes()).decode("ascii")
        self._link(f"data:{mime};base64,{data}", name, size)

    def _write(self, target: Path, fmt: str) -> None:
        """Write the result in ``fmt`` (``zip`` or ``h5ad:<group>``) to a new ``target``."""
        if fmt == "zip":
            self.result.write_zip(target)
        else:
            self.result.write_h5ad(target, group=fmt.split(":", 1)[1])

    def _serve_download(self, folder: Path, name: str, fmt: str) -> None:
        """Write the file where the app's server serves it; the link fetches a real file."""
        if self._served is not None:
            shutil.rmtree(self._served, ignore_errors=True)  # one prepared download at a time
        key = secrets.token_urlsafe(24)
        self._served = folder / key
        self._served.mkdir()
        target = self._served / name
        self._write(target, fmt)
        self._link(f"/refinewidgets/download/{key}/{name}", name, target.stat().st_size)

    def _link(self, href: str, name: str, size: int) -> None:
        self.download.value = (
            f'<a download="{html.escape(name)}" href="{html.escape(href)}" '
            f'class="rw-download-link" style="{LINK_STYLE}">Download {html.escape(name)} '
            f"({size / 2**20:,.1f} MB)</a>"
        )
