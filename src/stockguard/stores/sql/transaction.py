"""One SQL transaction implementing the Store port's Transaction.

Statements are built once at import so SQLAlchemy's compiled cache serves
every call on the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from stockguard.domain.model import (
    LIVE_OR_PAID,
    Allocation,
    Component,
    Counter,
    Deduction,
    Item,
    Level,
    Listing,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
    Shipment,
    Warehouse,
)
from stockguard.stores.base import MovementFilter
from stockguard.stores.sql.tables import (
    items,
    levels,
    listings,
    movements,
    order_lines,
    orders,
    shipments,
    warehouses,
)

_LEVEL_COLUMNS = [levels.c[c.value] for c in Counter]
_SELECT_LEVELS = (
    select(levels)
    .where(levels.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(levels.c.sku, levels.c.warehouse)
)
_SELECT_LEVELS_LOCKED = _SELECT_LEVELS.with_for_update()
_APPLY_DELTAS = (
    update(levels)
    .where(levels.c.sku == bindparam("k_sku"), levels.c.warehouse == bindparam("k_warehouse"))
    .values({col: col + bindparam(f"d_{col.name}") for col in _LEVEL_COLUMNS})
)
_INSERT_MOVEMENTS = insert(movements)
_SELECT_ORDER = select(orders).where(orders.c.order_id == bindparam("order_id"))
_INSERT_ORDER = insert(orders)
_INSERT_LINES = insert(order_lines)
_UPDATE_ORDER = (
    update(orders)
    .where(orders.c.order_id == bindparam("k_order_id"))
    .values(
        status=bindparam("status"),
        updated_at=bindparam("updated_at"),
        expires_at=bindparam("expires_at"),
        allocations=bindparam("allocations"),
    )
)
_BUYER_UNITS = (
    select(func.coalesce(func.sum(order_lines.c.quantity), 0))
    .select_from(order_lines.join(orders, orders.c.order_id == order_lines.c.order_id))
    .where(
        order_lines.c.buyer_id == bindparam("buyer_id"),
        order_lines.c.listing_id == bindparam("listing_id"),
        orders.c.status.in_([s.value for s in LIVE_OR_PAID]),
    )
)
_SELECT_LISTING = select(listings).where(listings.c.listing_id == bindparam("listing_id"))
_SOLD = select(listings.c.sold).where(listings.c.listing_id == bindparam("listing_id"))
_ADD_SOLD = (
    update(listings)
    .where(listings.c.listing_id == bindparam("k_listing_id"))
    .values(sold=listings.c.sold + bindparam("delta"))
)
_DUE = (
    select(orders)
    .where(orders.c.status == OrderStatus.RESERVED.value, orders.c.expires_at <= bindparam("now"))
    .order_by(orders.c.expires_at)
    .limit(bindparam("limit"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_HAS_DUE = _DUE.with_only_columns(orders.c.order_id).limit(1)


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SqlTransaction:
    def __init__(self, conn: Connection, *, writable: bool) -> None:
        self._conn = conn
        self._writable = writable

    def _write(self) -> None:
        if not self._writable:
            raise RuntimeError("write attempted in a read-only transaction")

    def _upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> None:
        """Insert or replace one row, in the dialect's own single statement."""
        self._write()
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={k: v for k, v in values.items() if k not in keys}
        )
        self._conn.execute(stmt)

    # -- catalog
    def warehouses(self) -> dict[str, Warehouse]:
        rows = self._conn.execute(select(warehouses))
        return {r.name: Warehouse(r.name, r.priority) for r in rows}

    def put_warehouse(self, warehouse: Warehouse) -> None:
        self._upsert(warehouses, {"name": warehouse.name, "priority": warehouse.priority}, ["name"])

    def item(self, sku: str) -> Item | None:
        row = self._conn.execute(select(items).where(items.c.sku == sku)).first()
        return None if row is None else Item(row.sku, row.name, row.safety)

    def put_item(self, item: Item) -> None:
        self._upsert(items, {"sku": item.sku, "name": item.name, "safety": item.safety}, ["sku"])

    def listing(self, listing_id: str) -> Listing | None:
        row = self._conn.execute(_SELECT_LISTING, {"listing_id": listing_id}).first()
        return None if row is None else _listing(row)

    def put_listing(self, listing: Listing) -> None:
        self._write()
        values = {
            "listing_id": listing.listing_id,
            "title": listing.title,
            "components": json.dumps([[c.sku, c.quantity] for c in listing.components]),
            "deduction": listing.deduction.value,
            "hold_seconds": listing.hold_seconds,
            "per_buyer_limit": listing.per_buyer_limit,
            "quota": listing.quota,
        }
        exists = self._conn.execute(_SOLD, {"listing_id": listing.listing_id}).first() is not None
        if exists:
            self._conn.execute(
                update(listings).where(listings.c.listing_id == listing.listing_id).values(values)
            )
        else:
            self._conn.execute(insert(listings).values({**values, "sold": 0}))

    # -- stock
    def levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        # Rows come back (and, in PostgreSQL, are locked) in sku order, so two
        # orders for overlapping bundles never wait on each other in a cycle.
        stmt = _SELECT_LEVELS_LOCKED if self._writable else _SELECT_LEVELS
        found: dict[str, list[Level]] = {}
        for r in self._conn.execute(stmt, {"skus": sorted(skus)}):
            found.setdefault(r.sku, []).append(_level(r))
        return found

    def add_level(self, level: Level) -> None:
        self._write()
        zero = {c.value: 0 for c in Counter}
        self._conn.execute(insert(levels).values(sku=level.sku, warehouse=level.warehouse, **zero))

    def record(self, moves: list[Movement]) -> None:
        self._write()
        if not moves:
            return
        deltas: dict[tuple[str, str], dict[str, Any]] = {}
        for m in moves:
            row = deltas.get((m.sku, m.warehouse))
            if row is None:
                row = {"k_sku": m.sku, "k_warehouse": m.warehouse} | {f"d_{c.value}": 0 for c in Counter}
                deltas[(m.sku, m.warehouse)] = row
            row[f"d_{m.counter.value}"] += m.delta
        self._conn.execute(_APPLY_DELTAS, list(deltas.values()))
        self._conn.execute(
            _INSERT_MOVEMENTS,
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
        row = self._conn.execute(_SELECT_ORDER, {"order_id": order_id}).first()
        return None if row is None else _order(row)

    def insert_order(self, order: Order) -> None:
        self._write()
        self._conn.execute(
            _INSERT_ORDER,
            {
                "order_id": order.order_id,
                "buyer_id": order.buyer_id,
                "deduction": order.deduction.value,
                "status": order.status.value,
                "created_at": ts(order.created_at),
                "updated_at": ts(order.updated_at),
                "expires_at": None if order.expires_at is None else ts(order.expires_at),
                "lines": json.dumps([[ln.listing_id, ln.quantity] for ln in order.lines]),
                "allocations": _allocations_json(order.allocations),
            },
        )
        self._conn.execute(
            _INSERT_LINES,
            [
                {
                    "order_id": order.order_id,
                    "listing_id": ln.listing_id,
                    "buyer_id": order.buyer_id,
                    "quantity": ln.quantity,
                }
                for ln in order.lines
            ],
        )

    def update_order(self, order: Order) -> None:
        self._write()
        self._conn.execute(
            _UPDATE_ORDER,
            {
                "k_order_id": order.order_id,
                "status": order.status.value,
                "updated_at": ts(order.updated_at),
                "expires_at": None if order.expires_at is None else ts(order.expires_at),
                "allocations": _allocations_json(order.allocations),
            },
        )

    def buyer_units(self, buyer_id: str, listing_id: str) -> int:
        units: int = self._conn.execute(
            _BUYER_UNITS, {"buyer_id": buyer_id, "listing_id": listing_id}
        ).scalar_one()
        return units

    def sold(self, listing_id: str) -> int:
        units = self._conn.execute(_SOLD, {"listing_id": listing_id}).scalar()
        return int(units or 0)

    def add_sold(self, listing_id: str, delta: int) -> None:
        self._write()
        self._conn.execute(_ADD_SOLD, {"k_listing_id": listing_id, "delta": delta})

    def due_orders(self, now: datetime, limit: int) -> list[Order]:
        self._write()
        rows = self._conn.execute(_DUE_LOCKED, {"now": ts(now), "limit": limit})
        return [_order(r) for r in rows]

    def has_due(self, now: datetime) -> bool:
        return self._conn.execute(_HAS_DUE, {"now": ts(now)}).first() is not None

    # -- incoming shipments
    def shipment(self, shipment_id: str) -> Shipment | None:
        row = self._conn.execute(select(shipments).where(shipments.c.shipment_id == shipment_id)).first()
        return None if row is None else _shipment(row)

    def put_shipment(self, shipment: Shipment) -> None:
        values = {
            "shipment_id": shipment.shipment_id,
            "sku": shipment.sku,
            "warehouse": shipment.warehouse,
            "quantity": shipment.quantity,
            "expected_at": ts(shipment.expected_at),
            "received": shipment.received,
        }
        self._upsert(shipments, values, ["shipment_id"])

    # -- audit
    def movements(self, where: MovementFilter) -> list[Movement]:
        stmt = select(movements).order_by(movements.c.id).limit(where.limit)
        if where.order_id is not None:
            stmt = stmt.where(movements.c.order_id == where.order_id)
        if where.sku is not None:
            stmt = stmt.where(movements.c.sku == where.sku)
        return [
            Movement(
                r.sku,
                r.warehouse,
                Counter(r.counter),
                r.delta,
                Reason(r.reason),
                dt(r.at),
                r.order_id,
                r.reference,
            )
            for r in self._conn.execute(stmt)
        ]

    def ledger_totals(self) -> dict[tuple[str, str, Counter], int]:
        stmt = select(
            movements.c.sku, movements.c.warehouse, movements.c.counter, func.sum(movements.c.delta)
        ).group_by(movements.c.sku, movements.c.warehouse, movements.c.counter)
        return {
            (sku, wh, Counter(counter)): int(total) for sku, wh, counter, total in self._conn.execute(stmt)
        }

    def all_levels(self) -> list[Level]:
        return [
            _level(r) for r in self._conn.execute(select(levels).order_by(levels.c.sku, levels.c.warehouse))
        ]

    def all_orders(self) -> Iterator[Order]:
        for r in self._conn.execute(select(orders).order_by(orders.c.order_id)):
            yield _order(r)

    def all_listings(self) -> list[Listing]:
        return [_listing(r) for r in self._conn.execute(select(listings).order_by(listings.c.listing_id))]

    def pending_shipments(self) -> list[Shipment]:
        rows = self._conn.execute(select(shipments).where(shipments.c.received.is_(None)))
        return [_shipment(r) for r in rows]


def _allocations_json(allocations: tuple[Allocation, ...]) -> str:
    return json.dumps([[a.sku, a.warehouse, a.quantity] for a in allocations])


def _level(r: Any) -> Level:
    return Level(r.sku, r.warehouse, r.on_hand, r.reserved, r.committed, r.safety, r.incoming)


def _listing(r: Any) -> Listing:
    return Listing(
        r.listing_id,
        r.title,
        tuple(Component(sku, qty) for sku, qty in json.loads(r.components)),
        Deduction(r.deduction),
        r.hold_seconds,
        r.per_buyer_limit,
        r.quota,
    )


def _order(r: Any) -> Order:
    return Order(
        r.order_id,
        r.buyer_id,
        tuple(OrderLine(listing_id, qty) for listing_id, qty in json.loads(r.lines)),
        Deduction(r.deduction),
        OrderStatus(r.status),
        dt(r.created_at),
        dt(r.updated_at),
        None if r.expires_at is None else dt(r.expires_at),
        tuple(Allocation(sku, wh, qty) for sku, wh, qty in json.loads(r.allocations)),
    )


def _shipment(r: Any) -> Shipment:
    return Shipment(r.shipment_id, r.sku, r.warehouse, r.quantity, dt(r.expected_at), r.received)
