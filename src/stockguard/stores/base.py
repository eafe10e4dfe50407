"""The Store port: what the service layer needs from any backend.

A store runs units of work atomically: everything one unit writes commits
together or not at all, and units that touch the same stock are serialised (a
lock in memory; one writer per process with ``BEGIN IMMEDIATE`` in SQLite; row
locks taken in sku order in PostgreSQL). The service layer holds every rule;
a store only keeps and finds data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from stockguard.domain.counts import AppliedCount
from stockguard.domain.draws import Draw, Entry
from stockguard.domain.events import Event, NewEvent
from stockguard.domain.model import (
    Counter,
    HeldLine,
    Holder,
    Item,
    Level,
    Listing,
    LiveLine,
    Movement,
    Order,
    OrderLine,
    Shipment,
    Warehouse,
)
from stockguard.domain.quotas import period_start
from stockguard.domain.screening import NO_CONTEXT, BuyerContext, BuyerProfile, Override

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """A plain new order, as ``Transaction.place_at_once`` takes it."""

    order_id: str
    buyer_id: str
    lines: tuple[OrderLine, ...]
    now: datetime
    context: BuyerContext = (
        NO_CONTEXT  # a store's one-step placement leaves orders with context to the service
    )


@dataclass(frozen=True, slots=True)
class MovementFilter:
    order_id: str | None = None
    sku: str | None = None
    limit: int = 1000


@dataclass(slots=True)
class Changes:
    """What one unit of work changed, for the events written at its end (``stores.outbox``)."""

    levels: set[tuple[str, str]] = field(default_factory=set)  # (sku, warehouse)
    orders: dict[str, Order] = field(default_factory=dict)  # the order as last written
    listings: set[str] = field(default_factory=set)  # listings whose terms or sold units changed

    def __bool__(self) -> bool:
        return bool(self.levels or self.orders or self.listings)

    def add(self, other: Changes) -> None:
        self.levels |= other.levels
        self.orders.update(other.orders)
        self.listings |= other.listings


class Transaction(Protocol):
    """Reads and writes inside one atomic unit. Writes fail in a read-only transaction."""

    # -- catalog
    def warehouses(self) -> dict[str, Warehouse]: ...
    def put_warehouse(self, warehouse: Warehouse) -> None: ...
    def item(self, sku: str) -> Item | None: ...
    def put_item(self, item: Item) -> None: ...
    def listing(self, listing_id: str) -> Listing | None: ...
    def put_listing(self, listing: Listing) -> None: ...

    # -- stock
    def levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        """Copies of the levels of these items, keyed by sku (absent skus have none)."""
        ...

    def add_level(self, level: Level) -> None:
        """Create an all-zero level; counters then change only through ``record``."""
        ...

    def record(self, movements: list[Movement]) -> None:
        """Append movements to the ledger and apply them to the levels."""
        ...

    # -- orders
    def order(self, order_id: str) -> Order | None: ...
    def insert_order(self, order: Order) -> None: ...
    def update_order(self, order: Order) -> None: ...
    def place_at_once(self, request: PlaceRequest) -> Order | None:
        """The store's own one-step placement of a plain new order (same rules as the service),
        raising SoldOut or LimitExceeded; None leaves the decision to the service."""
        ...

    def units_held(self, holder: Holder, who: str, listing_id: str) -> int:
        """Units of the listing in placed, reserved, paid and shipped orders of this buyer
        (or from this device, or to this delivery address hash)."""
        ...

    def live_lines(self, listing_id: str) -> list[LiveLine]:
        """The lines for this listing of every order counting against its buyer's limit."""
        ...

    def sold(self, listing_id: str) -> int:
        """Units of the listing in orders holding or having taken stock."""
        ...

    def add_sold(self, listing_id: str, delta: int) -> None: ...
    def period_units(self, listing_id: str, start: datetime) -> int:
        """Units of the listing, in orders placed in the quota period starting at ``start``, that hold
        or have taken stock."""
        ...

    def add_period_units(self, listing_id: str, start: datetime, delta: int) -> None: ...
    def all_period_units(self) -> dict[tuple[str, datetime], int]:
        """Every listing's units per quota period (``check`` recounts them from the orders)."""
        ...

    def due_orders(self, now: datetime, limit: int) -> list[Order]:
        """Reserved orders whose hold ran out, oldest first, locked against other sweepers."""
        ...

    def has_due(self, now: datetime) -> bool: ...
    def next_expiry(self) -> datetime | None:
        """When the first live hold runs out (None: no hold is live)."""
        ...

    def held_units(self) -> dict[str, int]:
        """Units per listing in reserved orders: held, not paid yet (listings holding none left out)."""
        ...

    def held_lines(self, expiring_by: datetime, limit: int) -> list[HeldLine]:
        """Lines of reserved orders whose hold runs out by ``expiring_by``, soonest first."""
        ...

    # -- buyers
    def buyer(self, buyer_id: str) -> BuyerProfile | None: ...
    def put_buyer(self, profile: BuyerProfile) -> None: ...
    def override(self, buyer_id: str) -> Override | None: ...
    def put_override(self, buyer_id: str, override: Override | None) -> None:
        """Set an operator's verdict on a buyer, or (None) remove it."""
        ...

    # -- draws
    def draw(self, draw_id: str) -> Draw | None:
        """The draw; locked for writers, so entries and runs of one draw take turns."""
        ...

    def put_draw(self, draw: Draw) -> None: ...
    def entries(self, draw_id: str) -> list[Entry]:
        """Every entry of the draw, in the order they arrived."""
        ...

    def waiting(self, draw_id: str, limit: int) -> list[Entry]:
        """Drawn entries not yet given an order nor passed over, by rank (the waiting list's head)."""
        ...

    def entry(self, draw_id: str, buyer_id: str) -> Entry | None: ...
    def entry_sharing(self, draw_id: str, device_id: str | None, address_hash: str | None) -> Entry | None:
        """An entry of the draw from this device or to this address (None for both: none)."""
        ...

    def entry_count(self, draw_id: str) -> int: ...
    def put_entry(self, entry: Entry) -> None:
        """Insert the entry, or update the one of its draw and buyer."""
        ...

    def draw_standings(self) -> dict[tuple[str, str], int]:
        """Entries per (draw, standing) over every draw (``domain.draws.standing``)."""
        ...

    def entry_of_order(self, order_id: str) -> Entry | None:
        """The draw entry that won this order, if a draw placed it."""
        ...

    # -- counts from warehouse systems
    def applied_count(self, sku: str, warehouse: str) -> AppliedCount | None: ...
    def put_applied_count(self, sku: str, warehouse: str, count: AppliedCount) -> None: ...
    def on_hand_moved_since(self, sku: str, warehouse: str, since: datetime) -> int:
        """The sum of on_hand movements of the item in the warehouse recorded after ``since``."""
        ...

    # -- incoming shipments
    def shipment(self, shipment_id: str) -> Shipment | None: ...
    def put_shipment(self, shipment: Shipment) -> None: ...

    # -- change events (the outbox)
    @property
    def changes(self) -> Changes:
        """What this unit of work changed so far (filled by the writes above)."""
        ...

    def peek_levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        """Like ``levels``, without locking them (the latest committed values elsewhere)."""
        ...

    def listings_with(self, skus: Collection[str]) -> list[Listing]:
        """Every listing with one of these items among its components."""
        ...

    def lock_streams(self, streams: Collection[str]) -> dict[str, dict[str, Any]]:
        """Lock these event streams (in one fixed order) and answer the data of each one's last event."""
        ...

    def append_events(self, events: list[NewEvent], at: datetime) -> None:
        """Write events, each with the next sequence number of its stream."""
        ...

    def events_after(self, stream: str, seq: int, limit: int) -> list[Event]:
        """The stream's events after sequence ``seq``, oldest first."""
        ...

    def unpublished_events(self, limit: int) -> list[Event]:
        """Events no relay has had acknowledged by its broker, by position."""
        ...

    def mark_published(self, positions: Collection[int]) -> None: ...
    def prune_events(self, before: datetime, *, unpublished_too: bool) -> None:
        """Delete events written before ``before`` (published ones only, unless told)."""
        ...

    def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold the named lease until ``until`` if it is free, run out or already ``holder``'s."""
        ...

    def lease_exists(self, name: str) -> bool: ...

    # -- audit
    def movements(self, where: MovementFilter) -> list[Movement]: ...
    def ledger_totals(self) -> dict[tuple[str, str, Counter], int]: ...
    def all_levels(self) -> list[Level]: ...
    def all_orders(self) -> Iterator[Order]: ...
    def all_listings(self) -> list[Listing]: ...
    def pending_shipments(self) -> list[Shipment]: ...
    def incoming_orders(self) -> list[Order]:
        """Reserved and paid orders waiting for incoming stock (presale), oldest first."""
        ...


def quota_used(tx: Transaction, listing: Listing, now: datetime) -> int:
    """The units counting against the listing's quota now: all it sold, or this period's."""
    if listing.quota_period is None:
        return tx.sold(listing.listing_id)
    return tx.period_units(listing.listing_id, period_start(listing.quota_period, now))


class Store(Protocol):
    def atomic(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in one write transaction and return its result once committed.

        When ``work`` raises, nothing it wrote is kept and the error reaches the caller.
        """
        ...

    def submit(self, work: Callable[[Transaction], T], *, placing: PlaceRequest | None = None) -> Future[T]:
        """Queue ``work`` like ``atomic``; the future resolves once it committed (or failed).

        ``placing`` says that ``work`` begins with ``tx.place_at_once(placing)``: a store
        may then decide that step for many queued works in one go before it runs them.
        """
        ...

    def read(self, *, consistent: bool = True) -> AbstractContextManager[Transaction]:
        """A read-only view: one snapshot for all its reads, or, with ``consistent=False``,
        each read of the latest committed state on its own (cheaper for a single lookup)."""
        ...

    def order_exists(self, order_id: str) -> Future[bool]:
        """Whether an order has this id, without blocking the caller on a network round trip
        (a store across the network answers many such lookups at once from a thread of its own)."""
        ...

    def stock_version(self) -> Hashable | None:
        """A token that changes whenever stock may have become sellable again.

        Work of this process changes it before its caller gets an answer; work
        of other processes as soon as this store hears of it. None: the store
        cannot tell now (every read must then look at the stock itself).
        """
        ...

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        """Stamp change events with this clock's time (the service's own) instead of the system's."""
        ...

    def close(self) -> None: ...
