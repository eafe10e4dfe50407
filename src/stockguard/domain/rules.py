"""The rules of deduction as pure functions: sellable, allocation, transitions, movements."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from stockguard.domain.errors import InvalidTransition, SoldOut
from stockguard.domain.model import (
    Allocation,
    Counter,
    FulfilFrom,
    Level,
    Listing,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
    WarehouseChoice,
)


class Action(enum.StrEnum):
    PAY = "pay"
    CANCEL = "cancel"
    SHIP = "ship"
    EXPIRE = "expire"


# For each action: the statuses it may start from. Reaching the target status
# again (paying a paid order) is an idempotent replay, handled by the caller.
_ALLOWED_FROM: dict[Action, frozenset[OrderStatus]] = {
    Action.PAY: frozenset({OrderStatus.PLACED, OrderStatus.RESERVED, OrderStatus.EXPIRED}),
    # Cancelling an expired order stops a later payment from taking stock again.
    Action.CANCEL: frozenset(
        {OrderStatus.PLACED, OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.EXPIRED}
    ),
    Action.SHIP: frozenset({OrderStatus.PAID}),
    Action.EXPIRE: frozenset({OrderStatus.RESERVED}),
}
TARGET: dict[Action, OrderStatus] = {
    Action.PAY: OrderStatus.PAID,
    Action.CANCEL: OrderStatus.CANCELLED,
    Action.SHIP: OrderStatus.SHIPPED,
    Action.EXPIRE: OrderStatus.EXPIRED,
}
# Statuses whose replay of an action answers the order as it is.
_ALREADY_DONE: dict[Action, frozenset[OrderStatus]] = {
    Action.PAY: frozenset({OrderStatus.PAID, OrderStatus.SHIPPED}),
    Action.CANCEL: frozenset({OrderStatus.CANCELLED}),
    Action.SHIP: frozenset({OrderStatus.SHIPPED}),
    Action.EXPIRE: frozenset({OrderStatus.EXPIRED}),
}


def is_replay(order: Order, action: Action) -> bool:
    """True when the order already went through ``action``: answer it unchanged."""
    return order.status in _ALREADY_DONE[action]


def check_transition(order: Order, action: Action) -> None:
    """Raise :class:`InvalidTransition` unless ``action`` may start from the order's status."""
    if order.status not in _ALLOWED_FROM[action]:
        raise InvalidTransition(f"cannot {action.value} order {order.order_id!r}: it is {order.status.value}")


def is_due(order: Order, now: datetime) -> bool:
    """A reserved order whose hold has run out (whether or not a sweeper saw it yet)."""
    return order.status is OrderStatus.RESERVED and order.expires_at is not None and order.expires_at <= now


def required_units(lines: Sequence[OrderLine], listings: Mapping[str, Listing]) -> dict[str, int]:
    """Units of each item the order's lines need, bundles expanded."""
    need: dict[str, int] = {}
    for line in lines:
        for component in listings[line.listing_id].components:
            need[component.sku] = need.get(component.sku, 0) + component.quantity * line.quantity
    return need


def item_available(levels: Iterable[Level]) -> int:
    """Units of one item that may still be sold, over all its warehouses.

    A shortage in any warehouse stops new sales of the item until it is mended.
    """
    total = 0
    for level in levels:
        if level.short:
            return 0
        total += max(0, level.available)
    return total


def sellable(listing: Listing, levels: Mapping[str, Sequence[Level]], sold: int) -> int:
    """``min over components of floor(available / quantity)``, capped by the quota left.

    ``sold``: the units counting against the quota (this period's, for a quota that starts again)."""
    result = min(
        item_available(levels.get(component.sku, ())) // component.quantity
        for component in listing.components
    )
    if listing.quota is not None:
        result = min(result, listing.quota - sold)
    return max(result, 0)


def allocate(
    need: Mapping[str, int],
    levels: Mapping[str, Sequence[Level]],
    choice: WarehouseChoice = WarehouseChoice.PRIORITY,
    named: Sequence[str] = (),
) -> tuple[Allocation, ...]:
    """Take the needed units from warehouses in the order ``choice`` says, splitting if needed;
    when the order ``named`` warehouses, only from those, in the order named.

    Raises :class:`SoldOut` when any item lacks the units; then nothing is taken.
    """
    allocations: list[Allocation] = []
    for sku in sorted(need):
        wanted = need[sku]
        item_levels = levels.get(sku, ())
        if item_available(item_levels) < wanted:
            raise SoldOut.item(sku, wanted)
        ordered = _in_order(item_levels, choice, named)
        if sum(max(0, level.available) for level in ordered) < wanted:
            raise SoldOut.item_in(sku, wanted, named)
        for level in ordered:
            take = min(wanted, level.available)
            if take > 0:
                allocations.append(Allocation(sku, level.warehouse, take))
                wanted -= take
            if wanted == 0:
                break
    return tuple(allocations)


def _in_order(levels: Sequence[Level], choice: WarehouseChoice, named: Sequence[str]) -> list[Level]:
    if named:
        by_name = {level.warehouse: level for level in levels}
        return [by_name[name] for name in named if name in by_name]
    if choice is WarehouseChoice.MOST_AVAILABLE:
        return sorted(levels, key=lambda lv: (-lv.available, lv.priority, lv.warehouse))
    return sorted(levels, key=lambda lv: (lv.priority, lv.warehouse))


def warehouse_choice(listings: Iterable[Listing]) -> WarehouseChoice:
    """An order's lines allocate by the most available warehouse only if every listing asks for it."""
    choices = {listing.warehouse_choice for listing in listings}
    return (
        WarehouseChoice.MOST_AVAILABLE
        if choices == {WarehouseChoice.MOST_AVAILABLE}
        else WarehouseChoice.PRIORITY
    )


def _movements(
    allocations: Iterable[Allocation],
    changes: Sequence[tuple[Counter, int]],
    reason: Reason,
    order_id: str,
    at: datetime,
) -> list[Movement]:
    return [
        Movement(a.sku, a.warehouse, counter, sign * a.quantity, reason, at, order_id=order_id)
        for a in allocations
        for counter, sign in changes
    ]


def hold_movements(
    allocations: Iterable[Allocation], order_id: str, at: datetime, source: FulfilFrom = FulfilFrom.STOCK
) -> list[Movement]:
    counter = Counter.PRESOLD if source is FulfilFrom.INCOMING else Counter.RESERVED
    return _movements(allocations, [(counter, 1)], Reason.HOLD, order_id, at)


def take_movements(
    allocations: Iterable[Allocation], order_id: str, at: datetime, source: FulfilFrom = FulfilFrom.STOCK
) -> list[Movement]:
    """Stock taken and paid for in one step (`payment` deduction, or paying after expiry)."""
    counter = Counter.PRESOLD if source is FulfilFrom.INCOMING else Counter.COMMITTED
    return _movements(allocations, [(counter, 1)], Reason.COMMIT, order_id, at)


def commit_movements(order: Order, at: datetime) -> list[Movement]:
    """Paying a held order: its units become committed (presold units stay presold until they arrive)."""
    if order.fulfil_from is FulfilFrom.INCOMING:
        return []
    changes = [(Counter.RESERVED, -1), (Counter.COMMITTED, 1)]
    return _movements(order.allocations, changes, Reason.COMMIT, order.order_id, at)


def return_movements(order: Order, reason: Reason, at: datetime) -> list[Movement]:
    """Give back what an order holds (reserved, presold) or has taken (committed, not shipped)."""
    if order.status not in (OrderStatus.RESERVED, OrderStatus.PAID):
        return []
    counter = Counter.COMMITTED if order.status is OrderStatus.PAID else Counter.RESERVED
    if order.fulfil_from is FulfilFrom.INCOMING:
        counter = Counter.PRESOLD
    return _movements(order.allocations, [(counter, -1)], reason, order.order_id, at)


def arrival_movements(order: Order, at: datetime) -> list[Movement]:
    """A presale order moves onto stock that arrived: presold down, reserved (or committed) up."""
    counter = Counter.COMMITTED if order.status is OrderStatus.PAID else Counter.RESERVED
    changes = [(Counter.PRESOLD, -1), (counter, 1)]
    return _movements(order.allocations, changes, Reason.ARRIVAL, order.order_id, at)


def ship_movements(order: Order, at: datetime) -> list[Movement]:
    changes = [(Counter.COMMITTED, -1), (Counter.ON_HAND, -1)]
    return _movements(order.allocations, changes, Reason.SHIP, order.order_id, at)
