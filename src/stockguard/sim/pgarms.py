"""The arms of the PostgreSQL bench: two plain ways to sell a hot row, and stockguard.

The plain arms are what a shop writes by hand with psycopg 3, one connection
per client: (a) lock the row with ``SELECT ... FOR UPDATE``, check, ``UPDATE``;
(b) one conditional ``UPDATE ... WHERE available >= n``. Each writes its order
row in the same transaction and commits durably. Stockguard is called the way
a service process calls it: many threads on one ``connect(url)``.

What was sold is read back from the database after each arm, never taken from
what the clients were told.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from stockguard import Deduction, SoldOut, Stockguard, connect
from stockguard.domain.model import HOLDING_STATUSES
from stockguard.stores.sql.engines import STORE_SETTINGS
from stockguard.stores.sql.store import SqlStore

Connection = psycopg.Connection[tuple[Any, ...]]

LONG_HOLD_SECONDS = 86_400  # no hold may expire while it is being measured

PLAIN_TABLES = (
    "CREATE TABLE stock (sku text PRIMARY KEY, available bigint NOT NULL)",
    "CREATE TABLE stock_orders (order_id text PRIMARY KEY, buyer_id text NOT NULL, sku text NOT NULL, "
    "quantity bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
)
_LOCK_ROW = "SELECT available FROM stock WHERE sku = %s FOR UPDATE"
_DECREMENT = "UPDATE stock SET available = available - %s WHERE sku = %s"
_CONDITIONAL_DECREMENT = "UPDATE stock SET available = available - %s WHERE sku = %s AND available >= %s"
_INSERT_ORDER = "INSERT INTO stock_orders (order_id, buyer_id, sku, quantity) VALUES (%s, %s, %s, %s)"
_HOLDING = tuple(sorted(status.value for status in HOLDING_STATUSES))


class NotDurable(RuntimeError):
    """The server would acknowledge commits before they are on disk."""


def conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (``postgresql+psycopg://`` included).

    Built from the parsed parts rather than passed on as a URI: SQLAlchemy writes a space in
    a query value (``options=-ca=b -cc=d``) as ``+``, which libpq would not read back as one.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url}")
    params: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
    for key, value in parsed.query.items():
        if key in STORE_SETTINGS:
            continue  # read by stockguard's store, unknown to libpq
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **params)


def schema_url(url: str, schema: str) -> str:
    """``url`` with every connection's search_path set to ``schema`` (beside any options it has)."""
    parsed = make_url(url)
    options = str(parsed.query.get("options", ""))
    options = f"{options} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def check_durable(cursor: Any) -> None:
    """Refuse to measure commits that are acknowledged before they are flushed to disk."""
    for setting in ("synchronous_commit", "fsync"):
        cursor.execute(f"SHOW {setting}")
        value = str(cursor.fetchone()[0])
        if value != "on":
            raise NotDurable(f"{setting} is {value!r}: the bench measures durable commits only (must be on)")


def open_connection(url: str) -> Connection:
    connection = psycopg.connect(conninfo(url))
    check_durable(connection.cursor())
    connection.rollback()  # SHOW began a transaction
    return connection


# -- arms (a) and (b): plain psycopg


def create_plain_tables(connection: Connection, skus: Sequence[str], units: int) -> None:
    with connection.transaction():
        for statement in PLAIN_TABLES:
            connection.execute(statement)
        for sku in skus:
            connection.execute("INSERT INTO stock (sku, available) VALUES (%s, %s)", (sku, units))


class _PlainClient(abc.ABC):
    """A client of the plain arms: one transaction per attempt, committed when it took a unit."""

    def __init__(self, connection: Connection, sku: str, prefix: str) -> None:
        self._connection = connection
        self._cursor = connection.cursor()
        self._sku = sku
        self._prefix = prefix

    def attempt(self, index: int) -> bool:
        try:
            took = self._take()
            if not took:
                self._connection.rollback()
                return False
            order = (f"{self._prefix}-{index}", f"buyer-{index}", self._sku, 1)
            self._cursor.execute(_INSERT_ORDER, order)
            self._connection.commit()
        except BaseException:
            _rollback(self._connection)
            raise
        return True

    @abc.abstractmethod
    def _take(self) -> bool:
        """Take one unit in the open transaction; False when none is left."""


class ForUpdateClient(_PlainClient):
    """(a) ``SELECT ... FOR UPDATE``, check, ``UPDATE``, insert the order, commit."""

    def _take(self) -> bool:
        self._cursor.execute(_LOCK_ROW, (self._sku,))
        row = self._cursor.fetchone()
        if row is None or row[0] < 1:
            return False
        self._cursor.execute(_DECREMENT, (1, self._sku))
        return True


class ConditionalClient(_PlainClient):
    """(b) One ``UPDATE ... WHERE available >= 1``; when it changed the row, insert the order; commit."""

    def _take(self) -> bool:
        self._cursor.execute(_CONDITIONAL_DECREMENT, (1, self._sku, 1))
        return bool(self._cursor.rowcount == 1)


def _rollback(connection: Connection) -> None:
    if not connection.closed:
        connection.rollback()


@dataclass(frozen=True, slots=True)
class Audit:
    """What the database says after an arm."""

    stocked: int  # units put on sale
    sold: int  # units the database says are sold (or held)
    left: int  # units the database says are still on sale
    consistent: bool  # every record of the sale agrees with every other

    @property
    def oversold(self) -> int:
        return max(0, self.sold - self.stocked, -self.left)


def audit_plain(connection: Connection, sku: str, units: int) -> Audit:
    """Order rows and the stock row of ``sku``."""
    with connection.transaction():
        ordered = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM stock_orders WHERE sku = %s", (sku,)
        ).fetchone()
        stock = connection.execute("SELECT available FROM stock WHERE sku = %s", (sku,)).fetchone()
    assert ordered is not None
    assert stock is not None
    rows, sold = int(ordered[0]), int(ordered[1])
    left = int(stock[0])
    return Audit(units, sold, left, consistent=rows == sold and sold + left == units)


# -- arm (c): stockguard


def stock_hot_listing(guard: Stockguard, listing_id: str, units: int) -> None:
    """One item, ``units`` of it, one ``reserve`` listing of one unit with a hold that outlasts the bench."""
    guard.put_item(listing_id, "Hot item")
    guard.receive(listing_id, units)
    guard.put_listing(listing_id, "Hot listing", [(listing_id, 1)], Deduction.RESERVE, LONG_HOLD_SECONDS)


def check_store_durable(guard: Stockguard) -> None:
    """The same check on a connection of the store's own pool (its connect hooks included)."""
    if not isinstance(guard.store, SqlStore):
        raise ValueError("the PostgreSQL bench needs a SQL store")
    raw = guard.store.engine.raw_connection()
    try:
        check_durable(raw.cursor())
    finally:
        raw.close()


class GuardClient:
    """(c) One call of ``Stockguard.place_order`` per buyer: one unit, the buyer's own order id."""

    def __init__(self, guard: Stockguard, listing_id: str, prefix: str) -> None:
        self._guard = guard
        self._line = [(listing_id, 1)]
        self._prefix = prefix

    def attempt(self, index: int) -> bool:
        try:
            self._guard.place_order(f"{self._prefix}-{index}", f"buyer-{index}", self._line)
        except SoldOut:
            return False
        return True


@dataclass(frozen=True, slots=True)
class GuardClients:
    """Opens one stockguard facade in a worker process, and ``threads`` clients sharing it."""

    url: str
    listing_id: str
    prefix: str
    threads: int

    @contextmanager
    def open(self) -> Iterator[Sequence[GuardClient]]:
        guard = connect(self.url)
        try:
            guard.get_listing(self.listing_id)  # one pooled connection opened before the start
            yield [GuardClient(guard, self.listing_id, self.prefix) for _ in range(self.threads)]
        finally:
            guard.store.close()


def audit_guard(connection: Connection, listing_id: str, sku: str, units: int) -> Audit:
    """Stockguard's own tables: the orders holding stock, the level's counters, the listing's sold."""
    with connection.transaction():
        ordered = connection.execute(
            "SELECT COALESCE(SUM(ol.quantity), 0) FROM order_lines ol "
            "JOIN orders o ON o.order_id = ol.order_id WHERE ol.listing_id = %s AND o.status = ANY(%s)",
            (listing_id, list(_HOLDING)),
        ).fetchone()
        level = connection.execute(
            "SELECT COALESCE(SUM(on_hand), 0), COALESCE(SUM(reserved), 0), COALESCE(SUM(committed), 0) "
            "FROM levels WHERE sku = %s",
            (sku,),
        ).fetchone()
        listed = connection.execute(
            "SELECT sold FROM listings WHERE listing_id = %s", (listing_id,)
        ).fetchone()
    assert ordered is not None
    assert level is not None
    assert listed is not None
    in_orders = int(ordered[0])
    on_hand, reserved, committed = (int(x) for x in level)
    taken = reserved + committed
    sold = max(in_orders, taken)
    consistent = in_orders == taken == int(listed[0]) and on_hand == units
    return Audit(units, sold, on_hand - taken, consistent)
