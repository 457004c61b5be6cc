"""Deadlines on whole HTTP requests: a reply trickling a byte a second is cut.

A :class:`Watch` is a timer around one request (its status line and headers included): the
connections urllib3 makes while it runs register their sockets with it, and when the deadline
passes the sockets are shut down, so a blocked read returns at once. :class:`WatchedAdapter` is
the ``requests`` adapter whose pools make such connections.
"""

from __future__ import annotations

import socket
import threading

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Watch", "WatchedAdapter"]


_WATCH = threading.local()  # the Watch of the request this thread is sending, if any


class Watch:
    """An overall deadline for the part of a request ``requests`` reads itself (the status line
    and headers): when it passes, the sockets in use are shut down, so a server trickling its
    headers cannot hold the request past it."""

    def __init__(self, seconds: float) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def watch(self, sock) -> None:
        with self._lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> Watch:
        _WATCH.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _WATCH.current = None


def _shut(sock) -> None:
    try:  # the plain socket's shutdown (an SSL socket's own would tear its state down under
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the reading thread)
    except OSError:
        pass


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args, **kwargs):
        watch = getattr(_WATCH, "current", None)
        if watch is not None and self.sock is not None:
            watch.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    getresponse = _WatchedHTTPConnection.getresponse


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """``requests``' adapter whose connections a :class:`_Watch` can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedPool,
            "https": _WatchedHTTPSPool,
        }
