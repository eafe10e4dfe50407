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

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from stockguard.domain.errors import Unavailable
from stockguard.stores.base import Transaction
from stockguard.stores.sql.migrations import upgrade_to_head
from stockguard.stores.sql.transaction import SqlTransaction
from stockguard.stores.sql.writer import Writer

BUSY_TIMEOUT_MS = 60_000
T = TypeVar("T")


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    synchronous = str(parsed.query.get("synchronous", "normal")).upper()
    if synchronous not in {"NORMAL", "FULL"}:
        raise ValueError("synchronous must be normal or full")
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.difference_update_query(["synchronous"]),
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=64,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun by hand below, not by the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("stockguard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SqlStore:
    """A Store on a SQL database named by a SQLAlchemy URL."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        if make_url(url).get_backend_name() != "sqlite":
            raise ValueError(f"unsupported database {make_url(url).get_backend_name()!r}")
        self.engine = _sqlite_engine(url)
        self._errors: tuple[type[Exception], ...] = (
            OperationalError,
            self.engine.dialect.loaded_dbapi.OperationalError,
        )
        database = make_url(url).database
        lock_path = None if not database or database == ":memory:" else Path(database + ".writer-lock")
        self._writer = Writer(self.engine.raw_connection, self._errors, lock_path)
        if upgrade:
            with (
                self._translate_errors(),
                self.engine.execution_options(stockguard_write=True).begin() as conn,
            ):
                upgrade_to_head(conn)

    def atomic(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in a write transaction, batched with other threads' work (group commit)."""
        return self.submit(work).result()

    def submit(self, work: Callable[[Transaction], T]) -> Future[T]:
        return self._writer.submit(lambda cursor: work(SqlTransaction(cursor, writable=True)))

    @contextmanager
    def read(self) -> Iterator[SqlTransaction]:
        with self._read_transaction() as cursor:
            yield SqlTransaction(cursor, writable=False)

    @contextmanager
    def _read_transaction(self) -> Iterator[Any]:
        """A transaction on a pooled driver connection: committed on success, else rolled back."""
        with self._translate_errors():
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("BEGIN")
                try:
                    yield cursor
                    cursor.execute("COMMIT")
                except BaseException:
                    if raw.driver_connection.in_transaction:  # type: ignore[union-attr]
                        cursor.execute("ROLLBACK")
                    raise
            finally:
                raw.close()

    def close(self) -> None:
        self._writer.close()
        self.engine.dispose()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """A database locked for too long, full or gone answers Unavailable; nothing was applied."""
        try:
            yield
        except self._errors as error:
            raise Unavailable(f"the database is unavailable: {getattr(error, 'orig', error)}") from error
