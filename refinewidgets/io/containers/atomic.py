"""Atomic output: files written to a temporary file beside the target, then renamed into place.

An interrupted write (an error, Ctrl-C, a signal that ends the process) leaves nothing behind;
temporary files a killed process left are cleaned when their process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ...errors import (
    OutputError,
    OutputExistsError,
    PathNotFoundError,
    RefineWidgetsError,
)

__all__ = [
    "PARTIAL_NAME",
    "process_alive",
    "atomic_output",
    "check_output",
    "clean_stale_partials",
]


#: The name of a temporary file or folder: ``.<name>.<pid>.<random>.partial``.
PARTIAL_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.partial$")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (or cannot be checked: then it is kept alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or one that cannot be checked
    return True


def clean_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that a killed writer left in ``folder``; returns them.

    Our temporary files are named ``.<target>.<pid>.<random>.partial``; one whose process no
    longer runs can never be completed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = PARTIAL_NAME.match(entry.name)
        if (
            match
            and not process_alive(int(match.group(1)))
            and entry.is_file(follow_symlinks=False)
        ):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(
        f"{path} exists; choose another name or pass overwrite=True to replace it."
    )


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output path before any work is done: a folder, an existing file (unless
    ``overwrite``), a missing or unwritable folder. Returns the path.

    `atomic_output` runs the same checks; call this first when the work before writing is long
    (a build), so a bad name fails at once.

    Examples
    --------
    >>> check_output("/no/such/folder/out.zip")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.PathNotFoundError: The folder /no/such/folder does not exist; create it first.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(
            f"{path} is a folder; give a file name such as {path / 'dataset.zip'}."
        )
    if os.path.lexists(path) and not overwrite:
        raise _exists_error(path)
    parent = path.parent
    if not parent.exists():
        raise PathNotFoundError(f"The folder {parent} does not exist; create it first.")
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder: choose a folder to write into.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write in {parent} (permission denied): choose a folder you can write to."
        )
    return path


#: Temporary files being written now, removed if a signal ends the process (see
#: :func:`_signals_remove_partials`).
_WRITING: set[Path] = set()
_WRITING_LOCK = threading.RLock()  # re-entrant: the handler may run inside it
#: Signals whose default action ends the process without running ``finally`` blocks.
_ENDING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _remove_partials_and_end(signum: int, frame) -> None:
    """Remove the temporary files being written, then end the process by the same signal (its
    default action: the exit status still says "terminated by SIGTERM")."""
    with _WRITING_LOCK:
        for tmp in list(_WRITING):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _WRITING.clear()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _signals_remove_partials(tmp: Path) -> Iterator[None]:
    """While ``tmp`` is written, SIGTERM and SIGHUP remove it before the process ends.

    Only signals left at their default action are handled (a server's or the user's own
    handler is kept), and only from the main thread, where Python runs signal handlers; a
    write in another thread is still covered when the main thread installed the handler, and
    the next write to the folder removes what a killed writer left (:func:`clean_stale_partials`).
    """
    installed = []
    with _WRITING_LOCK:
        _WRITING.add(tmp)
        if threading.current_thread() is threading.main_thread():
            for signum in _ENDING_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    signal.signal(signum, _remove_partials_and_end)
                    installed.append(signum)
    try:
        yield
    finally:
        with _WRITING_LOCK:
            _WRITING.discard(tmp)
            for signum in installed:
                if signal.getsignal(signum) is _remove_partials_and_end:
                    signal.signal(signum, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Without ``overwrite`` the file is claimed atomically (a hard link, which fails if the name
    exists), so of two writers racing for one name exactly one succeeds and the other gets
    OutputExistsError. The temporary file is removed on every exit path, SIGTERM and SIGHUP
    included (the process then ends by that signal, as it would have), and those of writers
    killed otherwise (SIGKILL, a crash) are cleaned up by the next write to the folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = check_output(path, overwrite=overwrite)  # early; the claim below is the real check
    clean_stale_partials(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent
        )
    except OSError as exc:
        raise OutputError(
            f"Cannot write in {path.parent} ({exc.strerror or exc}): choose a folder you can "
            "write to."
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    signals = _signals_remove_partials(tmp)
    signals.__enter__()
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        if overwrite:
            os.replace(tmp, path)
        else:
            _claim(tmp, path)
    except OSError as exc:
        if isinstance(exc, RefineWidgetsError):
            raise
        raise OutputError(
            f"Could not write {path} ({exc.strerror or exc}); nothing was written. Check that "
            "the disk has room and the folder is writable."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        signals.__exit__(None, None, None)


def _claim(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:
        pass  # a file system without hard links: claim the name, then replace it
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        raise _exists_error(path) from None
    os.replace(tmp, path)
