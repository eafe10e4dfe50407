"""Change events: what became of a listing's sellable stock, an order, an item's levels.

Every change is written as an event in the transaction that makes it (the
outbox), so an event exists exactly when its change was committed. Each event
belongs to one stream, named after what it tells of (``listing:maotai``,
``order:o-1``, ``item:bottle``), and carries that stream's sequence number:
1, 2, 3... in the order the changes were committed, with no gaps. A consumer
that keeps the last sequence it applied per stream drops repeats and can tell
a missed event by a gap.

An event carries the new values, not the difference: applying the latest event
of a stream gives the current state whatever came before.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stockguard.domain.model import Level, Listing, Order


class EventType(enum.StrEnum):
    LISTING_CHANGED = "listing.changed"  # sellable, sold or quota left of a listing changed
    ORDER_CHANGED = "order.changed"  # an order was placed or changed status
    LEVEL_CHANGED = "item.level_changed"  # an item's counters in one warehouse changed


class StreamKind(enum.StrEnum):
    LISTING = "listing"
    ORDER = "order"
    ITEM = "item"


def stream_of(kind: StreamKind, key: str) -> str:
    return f"{kind.value}:{key}"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be written: its stream gives it the next sequence number."""

    stream: str
    type: EventType
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A written event.

    ``position`` orders all events of one store (a later commit may hold a
    smaller one: only ``seq`` within a stream is gap-free and in commit order).
    """

    position: int
    stream: str
    seq: int
    type: EventType
    at: datetime
    data: Mapping[str, Any]

    def message(self) -> dict[str, Any]:
        """The documented wire format (README, "Change events")."""
        return {
            "type": self.type.value,
            "stream": self.stream,
            "seq": self.seq,
            "time": iso(self.at),
            "data": dict(self.data),
        }


def iso(moment: datetime) -> str:
    """One text form of a time for every store: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def listing_changed(listing: Listing, sellable: int, sold: int, quota_used: int) -> NewEvent:
    quota_left = None if listing.quota is None else max(0, listing.quota - quota_used)
    data = {
        "listing_id": listing.listing_id,
        "sellable": sellable,
        "sold": sold,
        "quota": listing.quota,
        "quota_left": quota_left,
    }
    return NewEvent(stream_of(StreamKind.LISTING, listing.listing_id), EventType.LISTING_CHANGED, data)


def order_changed(order: Order) -> NewEvent:
    data = {
        "order_id": order.order_id,
        "buyer_id": order.buyer_id,
        "status": order.status.value,
        "deduction": order.deduction.value,
        "lines": [{"listing_id": ln.listing_id, "quantity": ln.quantity} for ln in order.lines],
        "expires_at": None if order.expires_at is None else iso(order.expires_at),
    }
    return NewEvent(stream_of(StreamKind.ORDER, order.order_id), EventType.ORDER_CHANGED, data)


def level_changed(level: Level) -> NewEvent:
    data = {
        "sku": level.sku,
        "warehouse": level.warehouse,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "committed": level.committed,
        "safety": level.safety,
        "incoming": level.incoming,
        "presold": level.presold,
        "available": level.available,
    }
    return NewEvent(stream_of(StreamKind.ITEM, level.sku), EventType.LEVEL_CHANGED, data)
