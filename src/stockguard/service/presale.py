"""Presale in the service: where an order's units come from, moving presold units onto stock
that arrived, and reporting late or short shipments (the rules are in ``domain.presale``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from stockguard.domain import presale as rule
from stockguard.domain import rules
from stockguard.domain.errors import SoldOut
from stockguard.domain.model import (
    Allocation,
    FulfilFrom,
    Level,
    Listing,
    Order,
    Presale,
    Shipment,
)
from stockguard.stores.base import Transaction


@dataclass(frozen=True, slots=True)
class Sourced:
    """Where an order's units were found."""

    allocations: tuple[Allocation, ...]
    source: FulfilFrom = FulfilFrom.STOCK
    expected_at: datetime | None = None  # presale: when the last of its units is expected


def allocate(
    tx: Transaction,
    need: Mapping[str, int],
    levels: Mapping[str, Sequence[Level]],
    listings: Mapping[str, Listing],
    order: Order,
) -> Sourced:
    """Units on hand if there are enough (from the warehouses the order named, else as its
    listings choose); else, when every listing sells ahead, units of incoming shipments."""
    choice = rules.warehouse_choice(listings.values())
    try:
        return Sourced(rules.allocate(need, levels, choice, order.context.warehouses))
    except SoldOut:
        terms = _terms(listings.values())
        if terms is None or order.context.warehouses:
            raise
    due = _eligible(tx.pending_shipments(), need, terms)
    incoming = rule.allocate_incoming(need, levels, due, terms.share_percent)
    return Sourced(incoming.allocations, FulfilFrom.INCOMING, incoming.expected_at)


def _terms(listings: Iterable[Listing]) -> Presale | None:
    """The strictest presale terms of an order's listings (None unless every one sells ahead)."""
    terms = [listing.presale for listing in listings]
    if not terms or any(t is None for t in terms):
        return None
    known = [t for t in terms if t is not None]
    return Presale(min(t.arrives_by for t in known), min(t.share_percent for t in known))


def _eligible(
    shipments: Iterable[Shipment], need: Mapping[str, int], terms: Presale
) -> dict[tuple[str, str], list[Shipment]]:
    by_level: dict[tuple[str, str], list[Shipment]] = {}
    for shipment in rule.eligible((s for s in shipments if s.sku in need), terms):
        by_level.setdefault((shipment.sku, shipment.warehouse), []).append(shipment)
    return by_level


def presale_left(
    tx: Transaction, listing: Listing, levels: Mapping[str, Sequence[Level]], quota_used: int
) -> int | None:
    """Units the listing may still sell ahead of incoming shipments (None: it does not sell ahead)."""
    terms = listing.presale
    if terms is None:
        return None
    due = rule.eligible(tx.pending_shipments(), terms)
    units = []
    for component in listing.components:
        room = 0
        for level in levels.get(component.sku, ()):
            mine = [s for s in due if (s.sku, s.warehouse) == (level.sku, level.warehouse)]
            room += max(0, rule.capacity(mine, terms.share_percent) - level.presold)
        units.append(room // component.quantity)
    left = min(units)
    return left if listing.quota is None else max(0, min(left, listing.quota - quota_used))


# -- arrivals


@dataclass(frozen=True, slots=True)
class ArrivalReport:
    shipment: Shipment
    moved: tuple[str, ...]  # presale orders now held on the stock that arrived, oldest first
    waiting: tuple[str, ...]  # presale orders of this item and warehouse still waiting
    uncovered: tuple[str, ...]  # of those, the ones no pending shipment covers any more


def move_presold(tx: Transaction, shipment: Shipment, now: datetime) -> ArrivalReport:
    """Move the oldest presale orders of the shipment's item and warehouse onto available stock.

    Oldest first, and an order moves whole or not at all: every one of its presold units
    needs an available unit at its level. The first order that does not fit here stops the
    moves (no younger order jumps the queue); a bundle that waits for another item's stock
    lets the next one go.
    """
    key = (shipment.sku, shipment.warehouse)
    orders = [o for o in tx.incoming_orders() if any((a.sku, a.warehouse) == key for a in o.allocations)]
    levels = {(lv.sku, lv.warehouse): lv for lvs in tx.levels(_skus(orders)).values() for lv in lvs}
    moved: list[str] = []
    for order in orders:
        fits = {
            key_of(a): key_of(a) in levels and levels[key_of(a)].available >= a.quantity
            for a in order.allocations
        }
        if not fits[key]:
            break  # first come, first served: no younger order jumps the queue at this level
        if not all(fits.values()):
            continue  # a bundle waiting for another item's shipment too
        moves = rules.arrival_movements(order, now)
        tx.record(moves)
        for move in moves:
            levels[(move.sku, move.warehouse)].apply(move)
        tx.update_order(replace(order, fulfil_from=FulfilFrom.STOCK, expected_at=None, updated_at=now))
        moved.append(order.order_id)
    waiting = [o for o in orders if o.order_id not in moved]
    level = levels.get(key)
    left_out = [] if level is None else _uncovered(tx, waiting, level)
    return ArrivalReport(shipment, tuple(moved), tuple(o.order_id for o in waiting), tuple(left_out))


def key_of(allocation: Allocation) -> tuple[str, str]:
    return allocation.sku, allocation.warehouse


def _skus(orders: Iterable[Order]) -> set[str]:
    return {a.sku for order in orders for a in order.allocations}


def _uncovered(tx: Transaction, waiting: Sequence[Order], level: Level) -> list[str]:
    pending = [s for s in tx.pending_shipments() if (s.sku, s.warehouse) == (level.sku, level.warehouse)]
    room = sum(s.quantity for s in pending)
    return [o.order_id for o in rule.uncovered(waiting, level, room)]


# -- late and short shipments


@dataclass(frozen=True, slots=True)
class ShipmentIssue:
    """Presale orders put at risk: by a shipment past its expected date, or by too little on its way."""

    sku: str
    warehouse: str
    kind: str  # "late" or "short"
    orders: tuple[str, ...]
    shipment: Shipment | None = None  # the late shipment
    short_by: int = 0  # presold units no pending shipment covers


def shipment_issues(tx: Transaction, now: datetime) -> list[ShipmentIssue]:
    waiting = tx.incoming_orders()
    pending = tx.pending_shipments()
    issues: list[ShipmentIssue] = []
    for shipment in sorted(pending, key=lambda s: (s.expected_at, s.shipment_id)):
        if shipment.expected_at < now:
            key = (shipment.sku, shipment.warehouse)
            affected = tuple(o.order_id for o in waiting if any(key_of(a) == key for a in o.allocations))
            issues.append(ShipmentIssue(shipment.sku, shipment.warehouse, "late", affected, shipment))
    for sku, levels in sorted(tx.levels(_skus(waiting)).items()):
        for level in levels:
            room = sum(s.quantity for s in pending if (s.sku, s.warehouse) == (sku, level.warehouse))
            if level.presold > room:
                mine = [o for o in waiting if any(key_of(a) == (sku, level.warehouse) for a in o.allocations)]
                left_out = tuple(o.order_id for o in rule.uncovered(mine, level, room))
                issues.append(
                    ShipmentIssue(sku, level.warehouse, "short", left_out, short_by=level.presold - room)
                )
    return issues
