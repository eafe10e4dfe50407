"""Hearing of other processes' changes: the outside part of ``Store.stock_version``.

SQLite counts every commit to the file in ``PRAGMA data_version``, which a
connection of its own reads in microseconds without touching a table.
PostgreSQL has triggers (migration 0004) that ``NOTIFY stockguard_stock``
whenever a commit may make stock sellable again (a level's free units grow, a
listing changes other than by a sale); a thread of each store listens and
counts what it hears. While it is not listening (not yet, or its connection
dropped) it answers None, and every change it may have missed counts as one.
Another process's change reaches this count a moment after its commit, the
time a notification takes to arrive (well under a millisecond here). A
listener only ever reads: the TCP keepalives every PostgreSQL connection of
the store has (``engines``) find a server that vanished without a word (a
failover, a dropped NAT entry) within about 11 s; until then the count cannot
tell.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Hashable
from typing import Any, Protocol

from sqlalchemy import Engine

log = logging.getLogger("stockguard.store")

CHANNEL = "stockguard_stock"
# How long the listener waits between looks at whether it should stop.
POLL_SECONDS = 0.5
RECONNECT_SECONDS = 0.5


class ChangeWatch(Protocol):
    def version(self) -> Hashable | None: ...
    def close(self) -> None: ...


class SqliteDataVersion:
    """``PRAGMA data_version`` on a connection kept for it."""

    def __init__(self, engine: Engine, *, shared: bool) -> None:
        # A database in memory belongs to this process alone: its writer's own count says it all.
        self._connection: Any = _own_connection(engine) if shared else None
        self._lock = threading.Lock()

    def version(self) -> Hashable | None:
        if self._connection is None:
            return 0
        with self._lock:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        if self._connection is not None:
            with self._lock:
                self._connection.close()
            self._connection = None


class PostgresNotifications:
    """Counts ``stockguard_stock`` notifications on a connection of its own, from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._heard = 0
        self._listening = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="stockguard-watch", daemon=True)
        self._thread.start()  # until it listens, version() answers None: never wrong, only slower

    def version(self) -> Hashable | None:
        return self._heard if self._listening else None

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=POLL_SECONDS * 4)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                connection = _own_connection(self._engine)
            except Exception as error:
                log.warning("stock watch cannot connect, trying again: %s", error)
                self._stopping.wait(RECONNECT_SECONDS)
                continue
            try:
                connection.execute(f"LISTEN {CHANNEL}")
                self._heard += 1  # whatever happened while nobody listened
                self._listening = True
                while not self._stopping.is_set():
                    for _ in connection.notifies(timeout=POLL_SECONDS):
                        self._heard += 1
            except Exception as error:
                log.warning("stock watch lost its connection, listening again: %s", error)
            finally:
                self._listening = False
                self._heard += 1
                with contextlib.suppress(Exception):
                    connection.close()


def _own_connection(engine: Engine) -> Any:
    """A driver connection made like the pool's, but kept out of the pool."""
    pooled = engine.raw_connection()
    pooled.detach()
    return pooled.dbapi_connection
