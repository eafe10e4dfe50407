"""The SQL store: SQLite (embedded default) now, PostgreSQL through the same code.

SQLite specifics: WAL mode so readers never wait for the writer, and every
write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's
single write lock up front. Check-then-write inside such a transaction cannot
race, whether the other writers are threads or processes.
``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a
crash of any process; only an operating-system crash or power loss may lose
the last commits (use ``synchronous=FULL`` through ``?synchronous=full`` for that).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from stockguard.domain.errors import Unavailable
from stockguard.stores.base import Changes, PlaceRequest, Transaction
from stockguard.stores.outbox import write_events
from stockguard.stores.sql import forks
from stockguard.stores.sql.engines import backend_for
from stockguard.stores.sql.lookups import OrderLookups
from stockguard.stores.sql.migrations import SchemaOutOfDate, pending_revision, upgrade_to_head
from stockguard.stores.sql.transaction import SQLITE, Decided, SqlTransaction, place_many
from stockguard.stores.sql.watch import ChangeWatch, PostgresNotifications, SqliteDataVersion
from stockguard.stores.sql.writer import Writer

T = TypeVar("T")


class SqlStore:
    """A Store on a SQL database named by a SQLAlchemy URL."""

    def __init__(self, url: str, *, upgrade: bool | None = None) -> None:
        """Open the store. ``upgrade``: apply pending migrations first (by default only for
        SQLite, the embedded store); otherwise a schema behind this version is refused
        with SchemaOutOfDate, and ``stockguard db upgrade`` brings it up to date."""
        self.url = url
        self._backend = backend_for(url)
        self.engine = self._backend.engine
        # A database that is down, full, locked too long, or a pool with no free
        # connection in time: the request answers Unavailable and changed nothing.
        self._errors: tuple[type[Exception], ...] = (
            OperationalError,
            PoolTimeout,
            self.engine.dialect.loaded_dbapi.OperationalError,
        )
        native_place = self._backend.dialect.native_place
        # What the works of the writer's current batch changed (only its thread touches it).
        self._batch_changes = Changes()
        self._writer = Writer(
            self.engine.raw_connection,
            self._errors,
            self._backend,
            decide_together=place_many if native_place else None,
            on_lost=self.engine.dispose,
            before_commit=self._write_batch_events,
        )
        self._writer.batch_started = self._start_batch
        self._lookups = (
            None
            if self._backend.dialect is SQLITE
            else OrderLookups(self.engine.raw_connection, on_lost=self.engine.dispose)
        )
        self._watch: ChangeWatch | None = None  # started by the first stock_version()
        self._watch_lock = threading.Lock()
        self._watch_forks = -1
        self._clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        if upgrade is None:
            upgrade = self._backend.dialect is SQLITE
        with self._translate_errors(), self.engine.execution_options(stockguard_write=True).begin() as conn:
            if upgrade:
                upgrade_to_head(conn)
            head = pending_revision(conn)
        if head is not None:
            self.engine.dispose()
            raise SchemaOutOfDate(
                f"the database schema is not at revision {head}: run `stockguard db upgrade --db URL`"
            )

    def atomic(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in a write transaction, batched with other threads' work (group commit)."""
        return self.submit(work).result()

    def submit(self, work: Callable[[Transaction], T], *, placing: PlaceRequest | None = None) -> Future[T]:
        dialect = self._backend.dialect

        def run(cursor: Any, decided: Decided | None) -> T:
            tx = SqlTransaction(cursor, writable=True, dialect=dialect, decided=decided)
            result = work(tx)
            self._batch_changes.add(tx.changes)  # kept: the work succeeded (a failed one is undone)
            return result

        return self._writer.submit(run, placing if dialect.native_place else None)

    def _start_batch(self) -> None:
        self._batch_changes = Changes()

    def _write_batch_events(self, cursor: Any) -> None:
        """The batch's change events, in its transaction, just before it commits."""
        tx = SqlTransaction(cursor, writable=True, dialect=self._backend.dialect)
        write_events(tx, self._clock(), self._batch_changes)

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def order_exists(self, order_id: str) -> Future[bool]:
        if self._lookups is not None:
            return self._lookups.exists(order_id)
        # SQLite: the file is local, a lookup takes microseconds on the caller's thread.
        future: Future[bool] = Future()
        try:
            with self.read(consistent=False) as tx:
                future.set_result(tx.order(order_id) is not None)
        except Exception as error:
            future.set_exception(error)
        return future

    def stock_version(self) -> Hashable | None:
        with self._watch_lock:
            if self._watch is None or self._watch_forks != forks.generation():
                # A forked child has the parent's watch but not its thread or connection:
                # it leaves them alone and watches for itself.
                self._watch = self._start_watch()
                self._watch_forks = forks.generation()
        heard = self._watch.version()
        return None if heard is None else (self._writer.changes, heard)

    def _start_watch(self) -> ChangeWatch:
        if self._backend.dialect is SQLITE:
            return SqliteDataVersion(self.engine, shared=self._backend.lock_path is not None)
        return PostgresNotifications(self.engine)

    @contextmanager
    def read(self, *, consistent: bool = True) -> Iterator[SqlTransaction]:
        reading = self._read_transaction() if consistent else self._read_statements()
        with reading as cursor:
            yield SqlTransaction(cursor, writable=False, dialect=self._backend.dialect)

    @contextmanager
    def _read_statements(self) -> Iterator[Any]:
        """A pooled driver connection in autocommit: each statement a transaction of its own."""
        with self._pooled() as raw:
            yield raw.cursor()

    @contextmanager
    def _read_transaction(self) -> Iterator[Any]:
        """A transaction on a pooled driver connection: committed on success, else rolled back."""
        with self._pooled() as raw:
            cursor = raw.cursor()
            cursor.execute(self._backend.begin_read)
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if self._backend.in_transaction(raw):
                    cursor.execute("ROLLBACK")
                raise

    @contextmanager
    def _pooled(self) -> Iterator[Any]:
        """A connection from the pool, which does not test it first (a round trip per read).

        Instead, a connection found dead is dropped together with the whole pool,
        as SQLAlchemy itself does on a disconnect: a server that went away took
        them all. The read that found it answers Unavailable; the next gets a new one.
        """
        with self._translate_errors():
            raw = self.engine.raw_connection()
            try:
                yield raw
            except BaseException:
                if self._backend.lost(raw):
                    raw.invalidate()
                    self.engine.dispose()
                raise
            finally:
                raw.close()

    def close(self) -> None:
        if self._lookups is not None:
            self._lookups.close()
        if self._watch is not None and self._watch_forks == forks.generation():
            self._watch.close()
        self._watch = None
        self._writer.close()
        self.engine.dispose()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """A database locked for too long, full or gone answers Unavailable; nothing was applied."""
        try:
            yield
        except self._errors as error:
            raise Unavailable(f"the database is unavailable: {getattr(error, 'orig', error)}") from error
