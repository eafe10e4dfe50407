"""A TCP proxy in front of PostgreSQL that cuts one connection at a chosen statement.

It forwards bytes both ways untouched until it is armed. Armed, it watches
the statements each client runs: the first connection that runs one holding
``at`` (after one holding ``after``, when given, on the same connection) is cut
there, in one of two ways:

- ``deliver=True``: the statement reaches the server, which runs it and answers;
  the answer is thrown away and both sides are closed. The client saw its
  COMMIT go out and never heard back, though the server committed. With
  ``await_answer=False`` both sides are closed as soon as the statement has
  left: a server busy with it (waiting on a lock, say) only learns its client
  went when it answers.
- ``deliver=False``: both sides are closed before the statement leaves. The
  server sees its client go mid-transaction and rolls back.

``refuse_new`` closes every new connection at once, as a server that is down;
``silence_new`` takes new connections and never answers them, as a network
that drops every packet.

Statements are read from the wire protocol, not matched as bytes: a driver
that prepares a statement it runs often (psycopg does from the fifth run)
sends its text once and afterwards only its name, which the proxy remembers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy.engine import make_url

POSTGRES = ("127.0.0.1", 5432)
# ReadyForQuery: the server's last message of every answer.
_READY = b"Z\x00\x00\x00\x05"
# Codes of the untyped requests a client may send before its startup message.
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


@dataclass
class _Cut:
    at: bytes
    after: bytes | None
    deliver: bool
    refuse_after: bool  # refuse new connections from the moment of the cut
    silence_after: bool  # leave new connections unanswered from the moment of the cut
    await_answer: bool  # with delivery: close once the server answered (else at once)


@dataclass
class _Statements:
    """Reads the statements a client runs out of the bytes it sends (the frontend protocol)."""

    starting: bool = True  # before the startup message, messages carry no type byte
    pending: bytearray = field(default_factory=bytearray)
    prepared: dict[bytes, bytes] = field(default_factory=dict)  # statement name -> its text

    def feed(self, chunk: bytes) -> list[bytes]:
        """The texts of the statements whose messages ``chunk`` completes, in order."""
        self.pending += chunk
        run: list[bytes] = []
        while True:
            header = 4 if self.starting else 5
            if len(self.pending) < header:
                return run
            (length,) = struct.unpack_from("!i", self.pending, header - 4)
            end = header - 4 + length
            if len(self.pending) < end:
                return run
            kind, body = self.pending[:1], bytes(self.pending[header:end])
            del self.pending[:end]
            if self.starting:
                code = struct.unpack_from("!i", body)[0] if len(body) >= 4 else 0
                self.starting = code in (_SSL_REQUEST, _GSSENC_REQUEST)
                continue
            if kind == b"Q":  # a simple query
                run.append(body.split(b"\0", 1)[0])
            elif kind == b"P":  # Parse: name, text
                name, text, _ = body.split(b"\0", 2)
                self.prepared[name] = text
            elif kind == b"B":  # Bind: portal, statement name -- one run of that statement
                _portal, name, _ = body.split(b"\0", 2)
                run.append(self.prepared.get(name, b""))


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.statements = _Statements()
        self.primed_for: _Cut | None = None  # the cut whose ``after`` was seen on this connection
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
        self.silence_new = False
        self._silenced: list[socket.socket] = []
        self._open = True
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` (on the target's host and port) through this proxy, in plain text
        (the proxy reads the statements)."""
        host, port = self._target
        through = make_url(database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1))
        return through.update_query_dict({"sslmode": "disable"}).render_as_string(hide_password=False)

    def arm(
        self,
        at: bytes,
        *,
        deliver: bool,
        after: bytes | None = None,
        refuse_after: bool = False,
        silence_after: bool = False,
        await_answer: bool = True,
    ) -> None:
        with self._lock:
            self._armed = _Cut(at, after, deliver, refuse_after, silence_after, await_answer)
            self.cut_done.clear()

    def close(self) -> None:
        self._open = False
        self._listener.close()
        for client in self._silenced:
            client.close()

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
            if self.silence_new:
                self._silenced.append(client)  # kept open, never read from nor answered
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
            if cut.silence_after:
                self.silence_new = True
            if cut.deliver and cut.await_answer:
                link.swallowing = True
                _send(link.server, chunk)
                return  # the downstream thread closes both once the answer is in
            if cut.deliver:
                _send(link.server, chunk)
            self._cut_made()
            link.close()
            return
        link.close()

    def _downstream(self, link: _Link) -> None:
        """Server to client; after a delivered cut, the answer is read and thrown away."""
        tail = b""  # the end of the chunk before, for a message split across two reads
        while (chunk := _receive(link.server)) is not None:
            if link.swallowing:
                if _READY in tail + chunk:
                    self._cut_made()
                    link.close()
                    return
                tail = (tail + chunk)[-len(_READY) :]
                continue
            if not _send(link.client, chunk):
                break
        link.close()

    def _claim(self, link: _Link, chunk: bytes) -> _Cut | None:
        """The armed cut, when ``chunk`` runs its statement on this connection."""
        statements = link.statements.feed(chunk)
        with self._lock:
            cut = self._armed
            if cut is None:
                return None
            for text in statements:
                if cut.after is not None and link.primed_for is not cut:
                    if cut.after in text:
                        link.primed_for = cut
                elif cut.at in text:
                    self._armed = None
                    return cut
            return None

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
