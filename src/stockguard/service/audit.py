"""Audit use cases: the ledger, and `check`, which recomputes every counter from it."""

from __future__ import annotations

from collections import Counter as Tally
from datetime import datetime

from stockguard.domain.model import Counter, Drift, FulfilFrom, Movement, OrderStatus
from stockguard.domain.quotas import period_start
from stockguard.domain.validation import check_id
from stockguard.service.base import ServiceBase
from stockguard.stores.base import MovementFilter, Transaction


class AuditService(ServiceBase):
    def movements(
        self, *, order_id: str | None = None, sku: str | None = None, limit: int = 1000
    ) -> list[Movement]:
        """Ledger rows, oldest first, for one order or one item (or all)."""
        if order_id is not None:
            check_id(order_id, "order_id")
        if sku is not None:
            check_id(sku, "sku")
        with self.store.read() as tx:
            return tx.movements(MovementFilter(order_id=order_id, sku=sku, limit=limit))

    def check(self) -> list[Drift]:
        """Every difference between the stored counters and what the ledger and orders say.

        An empty list means: each level equals the sum of its movements, reserved
        and committed equal what live orders hold, incoming equals the shipments
        still in transit, and each listing's sold units equal its orders.
        """
        with self.store.read() as tx:
            return _ledger_drift(tx) + _order_drift(tx)


def _ledger_drift(tx: Transaction) -> list[Drift]:
    totals = tx.ledger_totals()
    drifts: list[Drift] = []
    seen: set[tuple[str, str, Counter]] = set()
    for level in tx.all_levels():
        for counter in Counter:
            key = (level.sku, level.warehouse, counter)
            seen.add(key)
            stored, expected = level.get(counter), totals.get(key, 0)
            if stored != expected:
                what = f"{counter.value} of {level.sku} in {level.warehouse} against the ledger"
                drifts.append(Drift(what, stored, expected))
    for key, total in totals.items():
        if key not in seen and total:
            sku, warehouse, counter = key
            drifts.append(
                Drift(f"{counter.value} of {sku} in {warehouse}: ledger rows without a level", 0, total)
            )
    return drifts


def _order_drift(tx: Transaction) -> list[Drift]:
    held: Tally[tuple[str, str, Counter]] = Tally()
    sold: Tally[str] = Tally()
    for order in tx.all_orders():
        if order.status is OrderStatus.RESERVED:
            counter = Counter.RESERVED
        elif order.status is OrderStatus.PAID:
            counter = Counter.COMMITTED
        else:
            counter = None
        if counter is not None and order.fulfil_from is FulfilFrom.INCOMING:
            counter = Counter.PRESOLD  # sold ahead of a shipment: not on hand yet
        if counter is not None:
            for a in order.allocations:
                held[(a.sku, a.warehouse, counter)] += a.quantity
        if order.holds_stock:
            for line in order.lines:
                sold[line.listing_id] += line.quantity
    for shipment in tx.pending_shipments():
        held[(shipment.sku, shipment.warehouse, Counter.INCOMING)] += shipment.quantity
    drifts: list[Drift] = []
    for level in tx.all_levels():
        for counter in (Counter.RESERVED, Counter.COMMITTED, Counter.INCOMING, Counter.PRESOLD):
            expected = held.pop((level.sku, level.warehouse, counter), 0)
            if level.get(counter) != expected:
                source = "shipments in transit" if counter is Counter.INCOMING else "orders"
                what = f"{counter.value} of {level.sku} in {level.warehouse} against {source}"
                drifts.append(Drift(what, level.get(counter), expected))
    for (sku, warehouse, counter), units in held.items():
        drifts.append(
            Drift(f"{counter.value} of {sku} in {warehouse}: held by orders but no level", 0, units)
        )
    drifts += _period_drifts(tx)
    for listing in tx.all_listings():
        stored = tx.sold(listing.listing_id)
        if stored != sold[listing.listing_id]:
            drifts.append(
                Drift(
                    f"sold of listing {listing.listing_id} against orders", stored, sold[listing.listing_id]
                )
            )
    return drifts


def _period_drifts(tx: Transaction) -> list[Drift]:
    """Units per quota period against the orders placed in each period that hold stock."""
    periods = {
        listing.listing_id: listing.quota_period for listing in tx.all_listings() if listing.quota_period
    }
    expected: Tally[tuple[str, datetime]] = Tally()
    for order in tx.all_orders():
        if order.holds_stock:
            for line in order.lines:
                period = periods.get(line.listing_id)
                if period is not None:
                    expected[(line.listing_id, period_start(period, order.created_at))] += line.quantity
    stored = tx.all_period_units()
    return [
        Drift(
            f"quota used by listing {listing_id} from {start.isoformat()} against orders",
            units,
            expected[key],
        )
        for key in sorted(stored.keys() | expected.keys())
        for listing_id, start in [key]
        if (units := stored.get(key, 0)) != expected[key]
    ]
