"""A TCP proxy in front of PostgreSQL that cuts one connection at a chosen statement.

It forwards bytes both ways untouched until it is armed. Armed, it watches
what each client sends: the first connection that sends ``at`` (after
``after``, when given, on the same connection) is cut there, in one of two ways:

- ``deliver=True``: the statement reaches the server, which runs it and answers;
  the answer is thrown away and both sides are closed. The client saw its
  COMMIT go out and never heard back, though the server committed.
- ``deliver=False``: both sides are closed before the statement leaves. The
  server sees its client go mid-transaction and rolls back.

``refuse_new`` closes every new connection at once, as a server that is down.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

POSTGRES = ("127.0.0.1", 5432)
# ReadyForQuery: the server's last message of every answer.
_READY = b"Z\x00\x00\x00\x05"


@dataclass
class _Cut:
    at: bytes
    after: bytes | None
    deliver: bool
    refuse_after: bool  # refuse new connections from the moment of the cut


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.primed = False  # ``after`` was seen on this connection
        self.swallowing = False  # cut with delivery: the server's answer is being thrown away
        self.closed = threading.Event()

    def close(self) -> None:
        for side in (self.client, self.server):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()
        self.closed.set()


class CuttingProxy:
    def __init__(self, target: tuple[str, int] = POSTGRES) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: _Cut | None = None
        self.cuts = 0
        self.cut_done = threading.Event()
        self.refuse_new = False
        self._open = True
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` (on the target's host and port) through this proxy."""
        host, port = self._target
        return database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1)

    def arm(
        self, at: bytes, *, deliver: bool, after: bytes | None = None, refuse_after: bool = False
    ) -> None:
        with self._lock:
            self._armed = _Cut(at, after, deliver, refuse_after)
            self.cut_done.clear()

    def close(self) -> None:
        self._open = False
        self._listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse_new:
                client.close()
                continue
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        """Client to server, watching for the armed statement."""
        while (chunk := _receive(link.client)) is not None:
            cut = self._claim(link, chunk)
            if cut is None:
                if not _send(link.server, chunk):
                    break
                continue
            if cut.refuse_after:
                self.refuse_new = True
            if cut.deliver:
                link.swallowing = True
                _send(link.server, chunk)
                return  # the downstream thread closes both once the answer is in
            link.close()
            self._cut_made()
            return
        link.close()

    def _downstream(self, link: _Link) -> None:
        """Server to client; after a delivered cut, the answer is read and thrown away."""
        while (chunk := _receive(link.server)) is not None:
            if link.swallowing:
                if _READY in chunk:
                    link.close()
                    self._cut_made()
                    return
                continue
            if not _send(link.client, chunk):
                break
        link.close()

    def _claim(self, link: _Link, chunk: bytes) -> _Cut | None:
        with self._lock:
            cut = self._armed
            if cut is None:
                return None
            if cut.after is not None and not link.primed:
                link.primed = cut.after in chunk
                return None
            if cut.at not in chunk:
                return None
            self._armed = None
            return cut

    def _cut_made(self) -> None:
        with self._lock:
            self.cuts += 1
        self.cut_done.set()


def _receive(side: socket.socket) -> bytes | None:
    try:
        chunk = side.recv(65536)
    except OSError:
        return None
    return chunk or None


def _send(side: socket.socket, chunk: bytes) -> bool:
    try:
        side.sendall(chunk)
    except OSError:
        return False
    return True
