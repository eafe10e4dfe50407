"""Selling stock that is still on its way: presale against incoming shipments.

A listing may sell, once its stock on hand is gone, a share of the units of
the shipments expected to arrive before a cut-off. Such an order holds
*presold* units (a counter of its own, never on hand: the no-oversell promise
``reserved + committed <= on_hand - safety`` is untouched) and says when its
goods are expected. When a shipment arrives, the oldest presale orders of its
item and warehouse move onto the stock that arrived, as holds (reserved) or
paid units (committed). Orders a late or short shipment leaves without cover
are reported.

    capacity(level) = floor(share% x units of pending shipments expected by the cut-off)
    presold(level) <= capacity(level)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from stockguard.domain.errors import SoldOut
from stockguard.domain.model import Allocation, Level, Order, Presale, Shipment


def eligible(shipments: Iterable[Shipment], presale: Presale) -> list[Shipment]:
    """Pending shipments a presale may sell from, earliest expected first."""
    kept = [s for s in shipments if not s.arrived and s.expected_at <= presale.arrives_by]
    return sorted(kept, key=lambda s: (s.expected_at, s.shipment_id))


def capacity(shipments: Sequence[Shipment], share_percent: int) -> int:
    return sum(s.quantity for s in shipments) * share_percent // 100


def expected_by(shipments: Sequence[Shipment], share_percent: int, units: int) -> datetime | None:
    """When the ``units``-th presold unit is expected: the arrival of the first shipments whose
    share covers that many (None: they do not)."""
    total = 0
    for shipment in shipments:
        total += shipment.quantity
        if total * share_percent // 100 >= units:
            return shipment.expected_at
    return None


@dataclass(frozen=True, slots=True)
class IncomingAllocation:
    allocations: tuple[Allocation, ...]
    expected_at: datetime  # when the last of its units is expected


def allocate_incoming(
    need: Mapping[str, int],
    levels: Mapping[str, Sequence[Level]],
    shipments: Mapping[tuple[str, str], Sequence[Shipment]],
    share_percent: int,
) -> IncomingAllocation:
    """Take the needed units from what each level may still presell, by warehouse priority.

    ``shipments``: the eligible shipments per (sku, warehouse). Raises SoldOut when
    the incoming stock cannot cover the order; then nothing is taken.
    """
    allocations: list[Allocation] = []
    latest: datetime | None = None
    for sku in sorted(need):
        wanted = need[sku]
        for level in sorted(levels.get(sku, ()), key=lambda lv: (lv.priority, lv.warehouse)):
            due = shipments.get((sku, level.warehouse), ())
            take = min(wanted, capacity(due, share_percent) - level.presold)
            if take <= 0:
                continue
            allocations.append(Allocation(sku, level.warehouse, take))
            arrival = expected_by(due, share_percent, level.presold + take)
            assert arrival is not None  # take is within the capacity
            latest = arrival if latest is None else max(latest, arrival)
            wanted -= take
            if wanted == 0:
                break
        if wanted:
            raise SoldOut(f"not enough stock of {sku!r}, on hand or on its way: {need[sku]} needed")
    assert latest is not None  # need is never empty
    return IncomingAllocation(tuple(allocations), latest)


def uncovered(orders: Sequence[Order], level: Level, room: int) -> list[Order]:
    """The youngest presale orders of a level whose units pass what its incoming stock still
    covers (``room``): the ones a late or short shipment leaves waiting without cover."""
    over = level.presold - room
    left_out: list[Order] = []
    for order in sorted(orders, key=lambda o: (o.created_at, o.order_id), reverse=True):
        if over <= 0:
            break
        units = sum(
            a.quantity for a in order.allocations if (a.sku, a.warehouse) == (level.sku, level.warehouse)
        )
        left_out.append(order)
        over -= units
    return left_out
