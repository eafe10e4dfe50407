"""One SQL transaction implementing the Store port's Transaction.

The schema and migrations are SQLAlchemy's (``tables.py``), and so are the
engine, URL handling and connection pool; the statements themselves are short
hand-written SQL run on the pooled driver connection. Measured on one hot
listing, going through SQLAlchemy's Connection cost about 60 µs per statement
against under 10 µs on the driver cursor, and a hold is about ten statements:
this is the difference between ~1,300 and several thousand holds a second.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from stockguard.domain.counts import AppliedCount
from stockguard.domain.errors import LimitExceeded, SoldOut
from stockguard.domain.events import StreamKind, stream_of
from stockguard.domain.model import (
    LIVE_OR_PAID,
    Allocation,
    Component,
    Counter,
    Deduction,
    FulfilFrom,
    Holder,
    Item,
    Level,
    Listing,
    LiveLine,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Presale,
    QuotaPeriod,
    Reason,
    Shipment,
    Warehouse,
    WarehouseChoice,
)
from stockguard.domain.screening import NO_CONTEXT, BuyerContext, Screening
from stockguard.stores.base import Changes, MovementFilter, PlaceRequest
from stockguard.stores.sql.buyers_draws import BuyersAndDraws, dt, ts
from stockguard.stores.sql.events import EventsOutbox
from stockguard.stores.sql.holds import HoldReads


class OneStatement(Protocol):
    """The part of a DB-API cursor one statement with one row of answer needs: what the writer's
    joint decision (``place_many``) runs on its own connection's plain cursor."""

    def execute(self, sql: str, params: Mapping[str, Any] = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...


class Cursor(OneStatement, Protocol):
    """The part of a DB-API cursor the transaction uses (named ``:param`` style)."""

    def executemany(self, sql: str, params: list[dict[str, Any]], /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def mark_written(self) -> None:
        """A write ran (the writer's cursors count them; a read-only transaction never writes)."""
        ...


_COUNTERS = [c.value for c in Counter]
_LEVEL_COLUMNS = "l.sku, l.warehouse, " + ", ".join(f"l.{c}" for c in _COUNTERS) + ", w.priority"
_ORDER_COLUMNS = (
    "order_id, buyer_id, deduction, status, created_at, updated_at, expires_at, lines, allocations, "
    "device_id, ip, address_hash, warehouses, fulfil_from, expected_at"
)
_LISTING_COLUMNS = (
    "listing_id, title, components, deduction, hold_seconds, per_buyer_limit, quota, "
    "screening, per_device_limit, per_address_limit, quota_period, warehouse_choice, presale"
)
_APPLY_DELTAS = (
    "UPDATE levels SET "
    + ", ".join(f"{c} = {c} + :{c}" for c in _COUNTERS)
    + " WHERE sku = :sku AND warehouse = :warehouse"
)
_INSERT_MOVEMENT = (
    "INSERT INTO movements (at, sku, warehouse, counter, delta, reason, order_id, reference) "
    "VALUES (:at, :sku, :warehouse, :counter, :delta, :reason, :order_id, :reference)"
)
_INSERT_ORDER = (
    f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (:order_id, :buyer_id, :deduction, :status, "
    ":created_at, :updated_at, :expires_at, :lines, :allocations, :device_id, :ip, :address_hash, "
    ":warehouses, :fulfil_from, :expected_at)"
)
_LIVE = ", ".join(f"'{s.value}'" for s in sorted(LIVE_OR_PAID))
# Units held per listing by a buyer, a device or an address (``Holder``): one indexed query each.
_UNITS = "SELECT COALESCE(SUM(ol.quantity), 0) FROM order_lines ol JOIN orders o ON o.order_id = ol.order_id"
_UNITS_HELD = {
    holder: f"{_UNITS} WHERE ol.{column} = :who AND ol.listing_id = :listing_id AND o.status IN ({_LIVE})"
    for holder, column in (
        (Holder.BUYER, "buyer_id"),
        (Holder.DEVICE, "device_id"),
        (Holder.ADDRESS, "address_hash"),
    )
}
_LIVE_LINES = (
    "SELECT ol.order_id, ol.buyer_id, ol.quantity "
    "FROM order_lines ol JOIN orders o ON o.order_id = ol.order_id "
    f"WHERE ol.listing_id = :listing_id AND o.status IN ({_LIVE}) ORDER BY ol.order_id"
)
_DUE = (
    f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = 'reserved' AND expires_at <= :now "
    "ORDER BY expires_at LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the databases for these statements."""

    name: str
    lock_rows: bool  # take row locks (FOR UPDATE) in write transactions
    native_place: bool  # has the stockguard_place function (migration 0002)
    sql: Callable[[str], str]  # from the ``:name`` parameter style to the driver's


def _pyformat(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


_NAMED = re.compile(r"(?<!:):(\w+)")
SQLITE = Dialect(
    "sqlite", lock_rows=False, native_place=False, sql=lambda sql: sql
)  # sqlite3 takes :name as is
POSTGRESQL = Dialect(
    "postgresql", lock_rows=True, native_place=True, sql=functools.lru_cache(maxsize=512)(_pyformat)
)


# What stockguard_place answered for one order (see migration 0002).
Decided = dict[str, Any]


def place_many(cursor: OneStatement, requests: list[PlaceRequest]) -> list[Decided]:
    """Decide many plain new orders in one statement (PostgreSQL: migration 0003).

    One round trip and no savepoint per order: ``stockguard_place`` answers a
    refusal without raising, so nothing needs undoing between orders. The
    answers come in the order of ``requests``; the orders are decided in that order.
    """
    orders = [[r.order_id, r.buyer_id, _line_pairs(r.lines), ts(r.now)] for r in requests]
    cursor.execute(
        POSTGRESQL.sql("SELECT stockguard_place_many(CAST(:orders AS jsonb))"),
        {"orders": json.dumps(orders, separators=(",", ":"))},
    )
    decided: list[Decided] = cursor.fetchone()[0]
    return decided


class SqlTransaction(BuyersAndDraws, EventsOutbox, HoldReads):
    def __init__(
        self, cursor: Cursor, *, writable: bool, dialect: Dialect = SQLITE, decided: Decided | None = None
    ) -> None:
        """``decided``: what ``place_many`` already answered for this work's placement."""
        self._cur = cursor
        self._writable = writable
        self._sql = dialect.sql
        self._native_place = dialect.native_place and writable
        self._decided = decided
        # PostgreSQL locks the rows a writer reads; SQLite's BEGIN IMMEDIATE
        # already holds the whole database.
        locks = dialect.lock_rows and writable
        self._for_update = " FOR UPDATE" if locks else ""
        self._lock_levels = " FOR UPDATE OF l" if locks else ""  # not the joined warehouse rows
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if locks else ""
        self._stream_order = ' COLLATE "C"' if dialect.lock_rows else ""
        self.changes = Changes()

    def _execute(self, sql: str, params: Mapping[str, Any]) -> None:
        self._cur.execute(self._sql(sql), params)

    def _execute_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        self._require_writable()  # only ever writes
        self._cur.executemany(self._sql(sql), params)
        self._cur.mark_written()

    def _require_writable(self) -> None:
        if not self._writable:
            raise RuntimeError("write attempted in a read-only transaction")

    def _write(self, sql: str, params: Mapping[str, Any]) -> None:
        self._require_writable()
        self._execute(sql, params)
        self._cur.mark_written()

    def _write_returning(self, sql: str, params: Mapping[str, Any]) -> Any:
        """A write that answers a row (``RETURNING``), or None."""
        self._write(sql, params)
        return self._cur.fetchone()

    def _write_returning_all(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """A write that answers rows (``RETURNING``)."""
        self._write(sql, params)
        return self._cur.fetchall()

    def _one(self, sql: str, params: Mapping[str, Any]) -> Any:
        self._execute(sql, params)
        return self._cur.fetchone()

    def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        self._execute(sql, params or {})
        return self._cur.fetchall()

    # -- catalog
    def warehouses(self) -> dict[str, Warehouse]:
        return {
            name: Warehouse(name, priority)
            for name, priority in self._all("SELECT name, priority FROM warehouses")
        }

    def put_warehouse(self, warehouse: Warehouse) -> None:
        self._write(
            "INSERT INTO warehouses (name, priority) VALUES (:name, :priority) "
            "ON CONFLICT (name) DO UPDATE SET priority = excluded.priority",
            {"name": warehouse.name, "priority": warehouse.priority},
        )

    def item(self, sku: str) -> Item | None:
        row = self._one("SELECT sku, name, safety FROM items WHERE sku = :sku", {"sku": sku})
        return None if row is None else Item(*row)

    def put_item(self, item: Item) -> None:
        self._write(
            "INSERT INTO items (sku, name, safety) VALUES (:sku, :name, :safety) "
            "ON CONFLICT (sku) DO UPDATE SET name = excluded.name, safety = excluded.safety",
            {"sku": item.sku, "name": item.name, "safety": item.safety},
        )

    def listing(self, listing_id: str) -> Listing | None:
        row = self._one(f"SELECT {_LISTING_COLUMNS} FROM listings WHERE listing_id = :id", {"id": listing_id})
        return None if row is None else _listing(tuple(row))

    def put_listing(self, listing: Listing) -> None:
        self._write(
            f"INSERT INTO listings ({_LISTING_COLUMNS}, sold) VALUES (:listing_id, :title, :components, "
            ":deduction, :hold_seconds, :per_buyer_limit, :quota, :screening, :per_device_limit, "
            ":per_address_limit, :quota_period, :warehouse_choice, :presale, 0) "
            "ON CONFLICT (listing_id) DO UPDATE SET "
            "title = excluded.title, components = excluded.components, deduction = excluded.deduction, "
            "hold_seconds = excluded.hold_seconds, per_buyer_limit = excluded.per_buyer_limit, "
            "quota = excluded.quota, screening = excluded.screening, "
            "per_device_limit = excluded.per_device_limit, per_address_limit = excluded.per_address_limit, "
            "quota_period = excluded.quota_period, warehouse_choice = excluded.warehouse_choice, "
            "presale = excluded.presale",
            {
                "listing_id": listing.listing_id,
                "title": listing.title,
                "components": json.dumps([[c.sku, c.quantity] for c in listing.components]),
                "deduction": listing.deduction.value,
                "hold_seconds": listing.hold_seconds,
                "per_buyer_limit": listing.per_buyer_limit,
                "quota": listing.quota,
                "screening": None if listing.screening is None else json.dumps(asdict(listing.screening)),
                "per_device_limit": listing.per_device_limit,
                "per_address_limit": listing.per_address_limit,
                "quota_period": None if listing.quota_period is None else listing.quota_period.value,
                # NULL for the default keeps PostgreSQL's one-step placement on such listings.
                "warehouse_choice": None
                if listing.warehouse_choice is WarehouseChoice.PRIORITY
                else listing.warehouse_choice.value,
                "presale": _presale_json(listing.presale),
            },
        )
        self._write("DELETE FROM listing_components WHERE listing_id = :id", {"id": listing.listing_id})
        self._execute_many(
            "INSERT INTO listing_components (sku, listing_id) VALUES (:sku, :listing_id)",
            [{"sku": c.sku, "listing_id": listing.listing_id} for c in listing.components],
        )
        self._ensure_stream(stream_of(StreamKind.LISTING, listing.listing_id))
        self.changes.listings.add(listing.listing_id)

    # -- stock
    def levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        # Always read (and, in PostgreSQL, locked) in sku order, so two orders
        # for overlapping bundles never wait on each other in a cycle.
        return self._levels(skus, self._lock_levels)

    def peek_levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        return self._levels(skus, "")

    def _levels(self, skus: Collection[str], lock: str) -> dict[str, list[Level]]:
        ordered = sorted(skus)
        if not ordered:
            return {}
        names = {f"s{i}": sku for i, sku in enumerate(ordered)}
        placeholders = ", ".join(":" + name for name in names)
        rows = self._all(
            f"SELECT {_LEVEL_COLUMNS} FROM levels l LEFT JOIN warehouses w ON w.name = l.warehouse "
            f"WHERE l.sku IN ({placeholders}) ORDER BY l.sku, l.warehouse{lock}",
            names,
        )
        found: dict[str, list[Level]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(_level(row))
        return found

    def add_level(self, level: Level) -> None:
        self._write(
            f"INSERT INTO levels (sku, warehouse, {', '.join(_COUNTERS)}) "
            f"VALUES (:sku, :warehouse, {', '.join('0' for _ in _COUNTERS)})",
            {"sku": level.sku, "warehouse": level.warehouse},
        )
        self._ensure_stream(stream_of(StreamKind.ITEM, level.sku))
        self.changes.levels.add((level.sku, level.warehouse))

    def record(self, moves: list[Movement]) -> None:
        self._require_writable()
        if not moves:
            return
        deltas: dict[tuple[str, str], dict[str, Any]] = {}
        for m in moves:
            row = deltas.get((m.sku, m.warehouse))
            if row is None:
                row = dict.fromkeys(_COUNTERS, 0)
                row["sku"], row["warehouse"] = m.sku, m.warehouse
                deltas[(m.sku, m.warehouse)] = row
            row[m.counter.value] += m.delta
        self.changes.levels.update(deltas)
        self._execute_many(_APPLY_DELTAS, list(deltas.values()))
        self._execute_many(
            _INSERT_MOVEMENT,
            [
                {
                    "at": ts(m.at),
                    "sku": m.sku,
                    "warehouse": m.warehouse,
                    "counter": m.counter.value,
                    "delta": m.delta,
                    "reason": m.reason.value,
                    "order_id": m.order_id,
                    "reference": m.reference,
                }
                for m in moves
            ],
        )

    # -- orders
    def order(self, order_id: str) -> Order | None:
        # Locked for writers: two payments of one order never both see it unpaid.
        row = self._one(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = :id{self._for_update}", {"id": order_id}
        )
        return None if row is None else _order(row)

    def insert_order(self, order: Order) -> None:
        self._write(_INSERT_ORDER, _order_params(order))
        self.changes.orders[order.order_id] = order
        self._execute_many(
            "INSERT INTO order_lines (order_id, listing_id, buyer_id, quantity, device_id, address_hash) "
            "VALUES (:order_id, :listing_id, :buyer_id, :quantity, :device_id, :address_hash)",
            [
                {
                    "order_id": order.order_id,
                    "listing_id": ln.listing_id,
                    "buyer_id": order.buyer_id,
                    "quantity": ln.quantity,
                    "device_id": order.context.device_id,
                    "address_hash": order.context.address_hash,
                }
                for ln in order.lines
            ],
        )

    def update_order(self, order: Order) -> None:
        self._write(
            "UPDATE orders SET status = :status, updated_at = :updated_at, expires_at = :expires_at, "
            "allocations = :allocations, fulfil_from = :fulfil_from, expected_at = :expected_at "
            "WHERE order_id = :order_id",
            _order_params(order),
        )
        self.changes.orders[order.order_id] = order

    def place_at_once(self, request: PlaceRequest) -> Order | None:
        decided, self._decided = self._decided, None
        if request.context is not NO_CONTEXT:
            return None  # the one-step function keeps no device, IP or address
        if decided is None:
            if not self._native_place:
                return None
            # One round trip: see migration 0002 (stockguard_place).
            decided = self._one(
                "SELECT stockguard_place(:order_id, :buyer_id, CAST(:lines AS jsonb), :now)",
                {
                    "order_id": request.order_id,
                    "buyer_id": request.buyer_id,
                    "lines": _lines_json(request.lines),
                    "now": ts(request.now),
                },
            )[0]
        return _placed(request, decided)

    def units_held(self, holder: Holder, who: str, listing_id: str) -> int:
        return int(self._one(_UNITS_HELD[holder], {"who": who, "listing_id": listing_id})[0])

    def live_lines(self, listing_id: str) -> list[LiveLine]:
        return [LiveLine(r[0], r[1], int(r[2])) for r in self._all(_LIVE_LINES, {"listing_id": listing_id})]

    def sold(self, listing_id: str) -> int:
        row = self._one("SELECT sold FROM listings WHERE listing_id = :id", {"id": listing_id})
        return 0 if row is None else int(row[0])

    def add_sold(self, listing_id: str, delta: int) -> None:
        self._write(
            "UPDATE listings SET sold = sold + :delta WHERE listing_id = :id",
            {"id": listing_id, "delta": delta},
        )
        self.changes.listings.add(listing_id)

    def period_units(self, listing_id: str, start: datetime) -> int:
        row = self._one(
            "SELECT units FROM quota_usage WHERE listing_id = :id AND period_start = :start",
            {"id": listing_id, "start": ts(start)},
        )
        return 0 if row is None else int(row[0])

    def add_period_units(self, listing_id: str, start: datetime, delta: int) -> None:
        self._write(
            "INSERT INTO quota_usage (listing_id, period_start, units) VALUES (:id, :start, :delta) "
            "ON CONFLICT (listing_id, period_start) DO UPDATE SET units = quota_usage.units + excluded.units",
            {"id": listing_id, "start": ts(start), "delta": delta},
        )
        self.changes.listings.add(listing_id)

    def all_period_units(self) -> dict[tuple[str, datetime], int]:
        rows = self._all("SELECT listing_id, period_start, units FROM quota_usage WHERE units <> 0")
        return {(listing_id, dt(start)): int(units) for listing_id, start, units in rows}

    def due_orders(self, now: datetime, limit: int) -> list[Order]:
        self._require_writable()
        return [_order(r) for r in self._all(_DUE + self._skip_locked, {"now": ts(now), "limit": limit})]

    def has_due(self, now: datetime) -> bool:
        return self._one(_DUE, {"now": ts(now), "limit": 1}) is not None

    def next_expiry(self) -> datetime | None:
        row = self._one("SELECT MIN(expires_at) FROM orders WHERE status = 'reserved'", {})
        return None if row is None or row[0] is None else dt(row[0])

    # -- counts from warehouse systems
    def applied_count(self, sku: str, warehouse: str) -> AppliedCount | None:
        row = self._one(
            "SELECT sequence, as_of, counted, applied_at FROM applied_counts "
            "WHERE sku = :sku AND warehouse = :warehouse",
            {"sku": sku, "warehouse": warehouse},
        )
        return None if row is None else AppliedCount(int(row[0]), dt(row[1]), int(row[2]), dt(row[3]))

    def put_applied_count(self, sku: str, warehouse: str, count: AppliedCount) -> None:
        self._write(
            "INSERT INTO applied_counts (sku, warehouse, sequence, as_of, counted, applied_at) "
            "VALUES (:sku, :warehouse, :sequence, :as_of, :counted, :applied_at) "
            "ON CONFLICT (sku, warehouse) DO UPDATE SET sequence = excluded.sequence, "
            "as_of = excluded.as_of, counted = excluded.counted, applied_at = excluded.applied_at",
            {
                "sku": sku,
                "warehouse": warehouse,
                "sequence": count.sequence,
                "as_of": ts(count.as_of),
                "counted": count.counted,
                "applied_at": ts(count.applied_at),
            },
        )

    def on_hand_moved_since(self, sku: str, warehouse: str, since: datetime) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(delta), 0) FROM movements WHERE sku = :sku AND warehouse = :warehouse "
            "AND counter = 'on_hand' AND at > :since",
            {"sku": sku, "warehouse": warehouse, "since": ts(since)},
        )
        return int(row[0])

    # -- incoming shipments
    def shipment(self, shipment_id: str) -> Shipment | None:
        row = self._one(
            "SELECT shipment_id, sku, warehouse, quantity, expected_at, received FROM shipments "
            "WHERE shipment_id = :id",
            {"id": shipment_id},
        )
        return None if row is None else _shipment(row)

    def put_shipment(self, shipment: Shipment) -> None:
        self._write(
            "INSERT INTO shipments (shipment_id, sku, warehouse, quantity, expected_at, received) "
            "VALUES (:shipment_id, :sku, :warehouse, :quantity, :expected_at, :received) "
            "ON CONFLICT (shipment_id) DO UPDATE SET received = excluded.received",
            {
                "shipment_id": shipment.shipment_id,
                "sku": shipment.sku,
                "warehouse": shipment.warehouse,
                "quantity": shipment.quantity,
                "expected_at": ts(shipment.expected_at),
                "received": shipment.received,
            },
        )

    # -- audit
    def movements(self, where: MovementFilter) -> list[Movement]:
        conditions = ["1 = 1"]
        if where.order_id is not None:
            conditions.append("order_id = :order_id")
        if where.sku is not None:
            conditions.append("sku = :sku")
        rows = self._all(
            "SELECT sku, warehouse, counter, delta, reason, at, order_id, reference FROM movements "
            f"WHERE {' AND '.join(conditions)} ORDER BY id LIMIT :limit",
            {"order_id": where.order_id, "sku": where.sku, "limit": where.limit},
        )
        return [
            Movement(sku, wh, Counter(counter), delta, Reason(reason), dt(at), order_id, reference)
            for sku, wh, counter, delta, reason, at, order_id, reference in rows
        ]

    def ledger_totals(self) -> dict[tuple[str, str, Counter], int]:
        rows = self._all(
            "SELECT sku, warehouse, counter, SUM(delta) FROM movements GROUP BY sku, warehouse, counter"
        )
        return {(sku, wh, Counter(counter)): int(total) for sku, wh, counter, total in rows}

    def all_levels(self) -> list[Level]:
        rows = self._all(
            f"SELECT {_LEVEL_COLUMNS} FROM levels l LEFT JOIN warehouses w ON w.name = l.warehouse "
            "ORDER BY l.sku, l.warehouse"
        )
        return [_level(r) for r in rows]

    def all_orders(self) -> Iterator[Order]:
        return iter([_order(r) for r in self._all(f"SELECT {_ORDER_COLUMNS} FROM orders ORDER BY order_id")])

    def listings_with(self, skus: Collection[str]) -> list[Listing]:
        if not skus:
            return []
        names = {f"s{i}": sku for i, sku in enumerate(sorted(skus))}
        rows = self._all(
            f"SELECT {_LISTING_COLUMNS} FROM listings WHERE listing_id IN (SELECT listing_id "
            f"FROM listing_components WHERE sku IN ({', '.join(':' + n for n in names)}))",
            names,
        )
        return [_listing(r) for r in rows]

    def all_listings(self) -> list[Listing]:
        return [
            _listing(r) for r in self._all(f"SELECT {_LISTING_COLUMNS} FROM listings ORDER BY listing_id")
        ]

    def incoming_orders(self) -> list[Order]:
        rows = self._all(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE fulfil_from = 'incoming' "
            "AND status IN ('reserved', 'paid') ORDER BY created_at, order_id"
        )
        return [_order(r) for r in rows]

    def pending_shipments(self) -> list[Shipment]:
        rows = self._all(
            "SELECT shipment_id, sku, warehouse, quantity, expected_at, received FROM shipments "
            "WHERE received IS NULL"
        )
        return [_shipment(r) for r in rows]


def _order_params(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "buyer_id": order.buyer_id,
        "deduction": order.deduction.value,
        "status": order.status.value,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at),
        "expires_at": None if order.expires_at is None else ts(order.expires_at),
        "lines": _lines_json(order.lines),
        "allocations": _allocations_json(order.allocations),
        "device_id": order.context.device_id,
        "ip": order.context.ip,
        "address_hash": order.context.address_hash,
        "warehouses": json.dumps(order.context.warehouses) if order.context.warehouses else None,
        # NULL for stock, as PostgreSQL's one-step placement writes it.
        "fulfil_from": None if order.fulfil_from is FulfilFrom.STOCK else order.fulfil_from.value,
        "expected_at": None if order.expected_at is None else ts(order.expected_at),
    }


def _level(r: Any) -> Level:
    sku, warehouse, on_hand, reserved, committed, safety, incoming, presold, priority = r
    return Level(
        sku,
        warehouse,
        on_hand,
        reserved,
        committed,
        safety,
        incoming,
        presold,
        100 if priority is None else priority,
    )


def _placed(request: PlaceRequest, decided: Decided) -> Order | None:
    """The order stockguard_place created, its refusal raised, or None: the service decides."""
    outcome = decided["outcome"]
    if outcome == "fallback":
        return None
    if outcome == "limit_exceeded":
        raise LimitExceeded.buyer(request.buyer_id, decided["listing"], decided["used"], decided["limit"])
    if outcome == "quota":
        raise SoldOut.quota(decided["listing"], decided["quota"])
    if outcome == "sold_out":
        raise SoldOut.item(decided["sku"], decided["wanted"])
    now = request.now
    if outcome == "placed":  # `payment`: nothing is held until payment
        return Order(
            request.order_id, request.buyer_id, request.lines, Deduction.PAYMENT, OrderStatus.PLACED, now, now
        )
    expires_at = decided["expires_at"]
    return Order(
        request.order_id,
        request.buyer_id,
        request.lines,
        Deduction.ORDER if expires_at is None else Deduction.RESERVE,
        OrderStatus.RESERVED,
        now,
        now,
        None if expires_at is None else dt(expires_at),
        tuple(Allocation(sku, warehouse, units) for sku, warehouse, units in decided["allocations"]),
    )


# A flash sale repeats the same few lines, allocations and listing rows
# thousands of times: encode and decode each distinct one once.
def _line_pairs(lines: tuple[OrderLine, ...]) -> list[list[str | int]]:
    return [[ln.listing_id, ln.quantity] for ln in lines]


@functools.lru_cache(maxsize=4096)
def _lines_json(lines: tuple[OrderLine, ...]) -> str:
    return json.dumps(_line_pairs(lines))


@functools.lru_cache(maxsize=4096)
def _allocations_json(allocations: tuple[Allocation, ...]) -> str:
    return json.dumps([[a.sku, a.warehouse, a.quantity] for a in allocations])


@functools.lru_cache(maxsize=1024)
def _listing(r: tuple[Any, ...]) -> Listing:
    listing_id, title, components, deduction, hold_seconds, per_buyer_limit, quota = r[:7]
    screening, per_device_limit, per_address_limit, quota_period, warehouse_choice, presale = r[7:]
    return Listing(
        listing_id,
        title,
        tuple(Component(sku, qty) for sku, qty in json.loads(components)),
        Deduction(deduction),
        hold_seconds,
        per_buyer_limit,
        quota,
        None if screening is None else Screening(**json.loads(screening)),
        per_device_limit,
        per_address_limit,
        None if quota_period is None else QuotaPeriod(quota_period),
        WarehouseChoice(warehouse_choice or WarehouseChoice.PRIORITY.value),
        _presale(presale),
    )


def _presale_json(presale: Presale | None) -> str | None:
    if presale is None:
        return None
    return json.dumps({"arrives_by": ts(presale.arrives_by), "share_percent": presale.share_percent})


def _presale(text: str | None) -> Presale | None:
    if text is None:
        return None
    terms = json.loads(text)
    return Presale(dt(terms["arrives_by"]), int(terms["share_percent"]))


def _order(r: Any) -> Order:
    order_id, buyer_id, deduction, status, created_at, updated_at, expires_at, lines, allocations = r[:9]
    device_id, ip, address_hash, warehouses, fulfil_from, expected_at = r[9:]
    named = () if warehouses is None else tuple(json.loads(warehouses))
    known = (device_id, ip, address_hash, named) != (None, None, None, ())
    context = BuyerContext(device_id, ip, address_hash, named) if known else NO_CONTEXT
    return Order(
        order_id,
        buyer_id,
        tuple(OrderLine(listing_id, qty) for listing_id, qty in json.loads(lines)),
        Deduction(deduction),
        OrderStatus(status),
        dt(created_at),
        dt(updated_at),
        None if expires_at is None else dt(expires_at),
        tuple(Allocation(sku, wh, qty) for sku, wh, qty in json.loads(allocations)),
        context,
        FulfilFrom(fulfil_from or FulfilFrom.STOCK.value),
        None if expected_at is None else dt(expected_at),
    )


def _shipment(r: Any) -> Shipment:
    shipment_id, sku, warehouse, quantity, expected_at, received = r
    return Shipment(shipment_id, sku, warehouse, quantity, dt(expected_at), received)
