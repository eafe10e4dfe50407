"""What differs per database: the engine, how transactions begin, and the lock file.

Both databases run with driver-level autocommit, and stockguard begins and
commits every transaction itself with plain SQL, so one writer and one
transaction class serve both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from stockguard.stores.sql.transaction import POSTGRESQL, SQLITE, Dialect

BUSY_TIMEOUT_MS = 60_000
# Deadlock detected, serialization failure, and a unique key inserted by a
# concurrent transaction (a racing replay of the same order id).
_RETRYABLE = frozenset({"40P01", "40001", "23505"})

log = logging.getLogger("stockguard.store")

# libpq settings for every PostgreSQL connection an operator's URL does not set: a server or a
# network that goes silent is noticed within seconds instead of after the kernel's default of
# many minutes. Connecting gives up after 10 s (psycopg's default: 130). Keepalives find a dead
# peer in about idle + interval * count = 11 s (a stock listener, which only reads, learns it
# stopped hearing); unacknowledged writes give up after 10 s (a writer waiting on a dead
# connection fails, and its commit can be asked about).
_POSTGRES_LIVENESS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
# libpq's smallest connect timeout that it keeps (a smaller one is raised to 2 s).
_MIN_CONNECT_TIMEOUT = 2
# How long the fate of a commit cut off on its way is asked for before its callers hear
# OutcomeUnknown: longer than a database takes to restart, shorter than an HTTP client's
# patience. A PostgreSQL URL may set it (``?in_doubt_seconds=30``) where failovers take longer.
IN_DOUBT_SECONDS = 10.0
_MAX_IN_DOUBT_SECONDS = 600.0
# Settings of a PostgreSQL URL that the store reads and libpq does not know.
STORE_SETTINGS = frozenset({"in_doubt_seconds"})
# One try at asking connects for at most this long (then tries again, if time is left).
ASK_CONNECT_SECONDS = 5

# A server session: PostgreSQL's backend pid and its start time.
Session = tuple[int, Any]
# Where a pooled connection keeps its session (its record's ``info``), asked once when it connects.
_SESSION = "stockguard_session"


def _sqlstate(error: BaseException) -> str | None:
    driver_error = getattr(error, "orig", error)
    state = getattr(driver_error, "sqlstate", None)
    return state if isinstance(state, str) else None


@dataclass(frozen=True, slots=True)
class Backend:
    engine: Engine
    dialect: Dialect
    begin_write: str
    begin_read: str
    lock_path: Path | None  # writers of several processes queue on this file (SQLite)
    # What the engine adds to the URL's settings (not part of the backend's identity).
    connect_args: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    in_doubt_seconds: float = IN_DOUBT_SECONDS

    def retryable(self, error: BaseException) -> bool:
        """A conflict that running the same work again resolves (PostgreSQL's SQLSTATEs)."""
        return self.dialect is POSTGRESQL and _sqlstate(error) in _RETRYABLE

    def in_transaction(self, raw: Any) -> bool:
        driver = raw.driver_connection
        if self.dialect is SQLITE:
            return bool(driver.in_transaction)
        return bool(driver.info.transaction_status != 0)  # psycopg: 0 is IDLE

    def lost(self, raw: Any) -> bool:
        """The driver knows the connection is gone (psycopg: ``broken`` or ``closed``)."""
        driver = raw.driver_connection
        return bool(getattr(driver, "broken", False) or getattr(driver, "closed", False))

    def transaction_id(self, cursor: Any) -> str | None:
        """The id of the open transaction, asked just before its COMMIT is sent, or None where
        its outcome can never be in doubt.

        A COMMIT whose answer is cut off (the server or the network went away) may or may
        not have been applied. PostgreSQL keeps every transaction's fate by id, so the
        writer asks it afterwards (``commit_status``). None too for a PostgreSQL transaction
        that wrote nothing (it has no id: nothing of it can stay). SQLite commits in this
        process: an error is a clear failure and the answer cannot be lost on the way.
        """
        if self.dialect is SQLITE:
            return None
        cursor.execute("SELECT pg_current_xact_id_if_assigned()::text")
        row = cursor.fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def connect_for_asking(self, seconds_left: float) -> Any:
        """A driver connection outside the pool, in autocommit, whose connecting gives up after
        about ``seconds_left`` (at most ``ASK_CONNECT_SECONDS``, so a closing store is not kept
        waiting): for asking about a commit in doubt while the server may be away."""
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        cparams = {**cparams, **self.connect_args}
        if self.dialect is POSTGRESQL:
            cparams["connect_timeout"] = max(
                _MIN_CONNECT_TIMEOUT, math.ceil(min(seconds_left, ASK_CONNECT_SECONDS))
            )
        connection = self.engine.dialect.connect(*cargs, **cparams)
        connection.autocommit = True
        return connection

    @staticmethod
    def session(raw: Any) -> Session | None:
        """The server session a pooled connection is (PostgreSQL: its backend's pid and start,
        which together never name another session), or None where it cannot be told (SQLite
        has none; a PostgreSQL role may be unable to read its own session's start)."""
        session: Session | None = raw.info.get(_SESSION)
        return session

    def end_session(self, cursor: Any, session: Session) -> bool:
        """Whether a session whose client is gone has ended; if not, ask it to end (the next
        question tells).

        A server learns that its client went only when it next writes to it, so a session cut
        off mid-statement may still run that statement, or sit in its transaction holding its
        locks. Once it has ended, the fate of its transaction is final: committed if its COMMIT
        was through, rolled back otherwise. The server lets a role end its own sessions.
        """
        pid, started = session
        cursor.execute(
            "SELECT backend_start, CASE WHEN backend_start = %s THEN pg_terminate_backend(pid) END "
            "FROM pg_stat_activity WHERE pid = %s",
            (started, pid),
        )
        row = cursor.fetchone()
        if row is None:
            return True  # no process has that pid: ended
        running_since = row[0]
        # Another session under a reused pid means ours ended; a start this role may not read
        # proves nothing (asked again, and in the end its callers hear OutcomeUnknown).
        return running_since is not None and running_since != started

    def commit_status(self, cursor: Any, transaction_id: str) -> str | None:
        """What became of a transaction: committed, aborted, in progress; None if unknown."""
        cursor.execute("SELECT pg_xact_status(CAST(%s AS xid8))", (transaction_id,))
        row = cursor.fetchone()
        return None if row is None else row[0]


def backend_for(url: str) -> Backend:
    parsed = make_url(url)
    name = parsed.get_backend_name()
    if name == "sqlite":
        return _sqlite(parsed)
    if name == "postgresql":
        return _postgresql(parsed)
    raise ValueError(f"unsupported database {name!r}: use sqlite:///path.db or postgresql://...")


def _begin_by_hand(engine: Engine, write_begin: str) -> None:
    """Transactions SQLAlchemy manages (migrations, maintenance) are begun explicitly too."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        writing = conn.get_execution_options().get("stockguard_write", False)
        conn.exec_driver_sql(write_begin if writing else "BEGIN")


def _sqlite(parsed: URL) -> Backend:
    synchronous = str(parsed.query.get("synchronous", "normal")).upper()
    if synchronous not in {"NORMAL", "FULL"}:
        raise ValueError("synchronous must be normal or full")
    database = parsed.database
    in_memory = not database or database == ":memory:"
    if not in_memory:
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.difference_update_query(["synchronous"]),
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=64,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: transactions are begun by hand
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    # BEGIN IMMEDIATE takes the database's one write lock up front, so
    # check-then-write inside the transaction cannot race.
    _begin_by_hand(engine, "BEGIN IMMEDIATE")
    lock_path = None if in_memory else Path(str(database) + ".writer-lock")
    return Backend(engine, SQLITE, "BEGIN IMMEDIATE", "BEGIN", lock_path)


def _session_of(dbapi_connection: Any) -> Session | None:
    """Asked once per new connection; None if it cannot be told, which leaves a joint decision
    cut off on it OutcomeUnknown instead of run again (and the connection serves on)."""
    try:
        row = dbapi_connection.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
    except Exception:
        log.warning("cannot tell a database connection's server session", exc_info=True)
        return None
    return None if row is None or row[1] is None else (row[0], row[1])


def _in_doubt_seconds(parsed: URL) -> float:
    given = parsed.query.get("in_doubt_seconds")
    if given is None:
        return IN_DOUBT_SECONDS
    try:
        seconds = float(str(given))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= _MAX_IN_DOUBT_SECONDS:
        raise ValueError(
            f"in_doubt_seconds must be a number of seconds above 0 and at most {_MAX_IN_DOUBT_SECONDS:g}"
        )
    return seconds


def _postgresql(parsed: URL) -> Backend:
    in_doubt_seconds = _in_doubt_seconds(parsed)
    parsed = parsed.difference_update_query(STORE_SETTINGS)  # stockguard's, not libpq's
    connect_args = {key: value for key, value in _POSTGRES_LIVENESS.items() if key not in parsed.query}
    engine = create_engine(
        parsed.set(drivername="postgresql+psycopg"),
        connect_args=connect_args,
        pool_size=8,
        max_overflow=32,
        # No test query before each checkout: a dead connection is dropped when found (SqlStore._pooled).
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.autocommit = True  # transactions are begun by hand
        record.info[_SESSION] = _session_of(dbapi_connection)

    # READ COMMITTED with row locks taken in sku order (FOR UPDATE) for
    # writers; a consistent snapshot for readers that read several tables.
    _begin_by_hand(engine, "BEGIN")
    return Backend(
        engine,
        POSTGRESQL,
        "BEGIN",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        None,
        connect_args,
        in_doubt_seconds,
    )
