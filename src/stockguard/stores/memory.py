"""The in-memory store: one process, a lock for atomicity, an undo log for rollback.

It backs unit tests and the simulator, and is the reference the contract suite
holds the other stores to.
"""

from __future__ import annotations

import functools
import heapq
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from stockguard.domain.counts import AppliedCount
from stockguard.domain.draws import Draw, Entry, standing
from stockguard.domain.events import Event, NewEvent
from stockguard.domain.model import (
    LIVE_OR_PAID,
    Counter,
    FulfilFrom,
    HeldLine,
    Holder,
    Item,
    Level,
    Listing,
    LiveLine,
    Movement,
    Order,
    OrderStatus,
    Shipment,
    Warehouse,
)
from stockguard.domain.screening import BuyerProfile, Override
from stockguard.stores.base import Changes, MovementFilter, PlaceRequest
from stockguard.stores.outbox import write_events

K = TypeVar("K")
T = TypeVar("T")
V = TypeVar("V")


class MemoryData:
    """Everything the store keeps, as plain dicts."""

    def __init__(self) -> None:
        self.warehouses: dict[str, Warehouse] = {}
        self.items: dict[str, Item] = {}
        self.listings: dict[str, Listing] = {}
        self.sold: dict[str, int] = defaultdict(int)
        self.levels: dict[str, dict[str, Level]] = {}
        self.orders: dict[str, Order] = {}
        # Units in live and paid orders per (holder, who, listing), e.g. (Holder.DEVICE, "phone-1", "maotai").
        self.units_of: dict[tuple[Holder, str, str], int] = defaultdict(int)
        self.buyers: dict[str, BuyerProfile] = {}
        self.overrides: dict[str, Override] = {}
        self.draws: dict[str, Draw] = {}
        self.entries: dict[str, dict[str, Entry]] = {}  # draw_id -> buyer_id -> entry (arrival order)
        self.entry_of_order: dict[str, tuple[str, str]] = {}  # order_id -> (draw_id, buyer_id)
        # (expires_at, order_id) of reserved orders; entries go stale when an
        # order changes and are skipped when popped.
        self.expiry_heap: list[tuple[datetime, str]] = []
        self.shipments: dict[str, Shipment] = {}
        self.ledger: list[Movement] = []
        self.events: list[Event] = []  # in the order they were written
        self.streams: dict[str, tuple[int, Mapping[str, Any]]] = {}  # stream -> (last seq, last data)
        self.published: set[int] = set()  # positions a relay's broker acknowledged
        self.leases: dict[str, tuple[str, datetime]] = {}  # name -> (holder, until)
        self.applied_counts: dict[tuple[str, str], AppliedCount] = {}
        self.period_units: dict[tuple[str, datetime], int] = defaultdict(int)  # (listing, period start)


class MemoryTransaction:
    def __init__(self, data: MemoryData, *, writable: bool) -> None:
        self._data = data
        self._writable = writable
        self._undo: list[Callable[[], object]] = []
        self.changes = Changes()

    @property
    def changed(self) -> bool:
        """Whether this transaction changed anything (every change leaves its undo)."""
        return bool(self._undo)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _write(self) -> None:
        if not self._writable:
            raise RuntimeError("write attempted in a read-only transaction")

    def _set(self, table: dict[K, V], key: K, value: V) -> None:
        self._write()
        if key in table:
            old = table[key]
            self._undo.append(lambda: table.__setitem__(key, old))
        else:
            self._undo.append(lambda: table.pop(key, None))
        table[key] = value

    # -- catalog
    def warehouses(self) -> dict[str, Warehouse]:
        return dict(self._data.warehouses)

    def put_warehouse(self, warehouse: Warehouse) -> None:
        self._set(self._data.warehouses, warehouse.name, warehouse)

    def item(self, sku: str) -> Item | None:
        return self._data.items.get(sku)

    def put_item(self, item: Item) -> None:
        self._set(self._data.items, item.sku, item)

    def listing(self, listing_id: str) -> Listing | None:
        return self._data.listings.get(listing_id)

    def put_listing(self, listing: Listing) -> None:
        self._set(self._data.listings, listing.listing_id, listing)
        self.changes.listings.add(listing.listing_id)

    # -- stock
    def levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        found: dict[str, list[Level]] = {}
        for sku in skus:
            by_warehouse = self._data.levels.get(sku)
            if by_warehouse:
                found[sku] = [self._copy(level) for level in by_warehouse.values()]
        return found

    def _copy(self, level: Level) -> Level:
        copy = level.copy()
        warehouse = self._data.warehouses.get(level.warehouse)
        if warehouse is not None:
            copy.priority = warehouse.priority
        return copy

    def add_level(self, level: Level) -> None:
        self._write()
        by_warehouse = self._data.levels.setdefault(level.sku, {})
        by_warehouse[level.warehouse] = Level(level.sku, level.warehouse)
        self._undo.append(lambda: by_warehouse.pop(level.warehouse, None))
        self.changes.levels.add((level.sku, level.warehouse))

    def record(self, movements: list[Movement]) -> None:
        self._write()
        ledger = self._data.ledger
        mark = len(ledger)
        self._undo.append(lambda: ledger.__delitem__(slice(mark, None)))
        for movement in movements:
            level = self._data.levels[movement.sku][movement.warehouse]
            level.apply(movement)
            undo = Movement(
                movement.sku,
                movement.warehouse,
                movement.counter,
                -movement.delta,
                movement.reason,
                movement.at,
            )
            self._undo.append(functools.partial(level.apply, undo))
            ledger.append(movement)
            self.changes.levels.add((movement.sku, movement.warehouse))

    # -- orders
    def order(self, order_id: str) -> Order | None:
        return self._data.orders.get(order_id)

    def insert_order(self, order: Order) -> None:
        self._save_order(order)

    def update_order(self, order: Order) -> None:
        self._save_order(order)

    def _save_order(self, order: Order) -> None:
        before = self._data.orders.get(order.order_id)
        self._set(self._data.orders, order.order_id, order)
        self.changes.orders[order.order_id] = order
        counted_before = before is not None and before.status in LIVE_OR_PAID
        counted_now = order.status in LIVE_OR_PAID
        if counted_before != counted_now:
            sign = 1 if counted_now else -1
            units = self._data.units_of
            holders = [(holder, who) for holder in Holder if (who := order.holder(holder)) is not None]
            for line in order.lines:
                for holder, who in holders:
                    key = (holder, who, line.listing_id)
                    self._set(units, key, units[key] + sign * line.quantity)
        if order.status is OrderStatus.RESERVED and order.expires_at is not None:
            # A stale heap entry is harmless, so this push needs no undo.
            heapq.heappush(self._data.expiry_heap, (order.expires_at, order.order_id))

    def place_at_once(self, request: PlaceRequest) -> Order | None:
        return None  # the service's own code is the fastest path in memory

    def units_held(self, holder: Holder, who: str, listing_id: str) -> int:
        return self._data.units_of.get((holder, who, listing_id), 0)

    # -- buyers
    def buyer(self, buyer_id: str) -> BuyerProfile | None:
        return self._data.buyers.get(buyer_id)

    def put_buyer(self, profile: BuyerProfile) -> None:
        self._set(self._data.buyers, profile.buyer_id, profile)

    def override(self, buyer_id: str) -> Override | None:
        return self._data.overrides.get(buyer_id)

    def put_override(self, buyer_id: str, override: Override | None) -> None:
        if override is not None:
            self._set(self._data.overrides, buyer_id, override)
        elif buyer_id in self._data.overrides:
            self._write()
            removed = self._data.overrides.pop(buyer_id)
            self._undo.append(lambda: self._data.overrides.__setitem__(buyer_id, removed))

    # -- draws
    def draw(self, draw_id: str) -> Draw | None:
        return self._data.draws.get(draw_id)

    def put_draw(self, draw: Draw) -> None:
        self._set(self._data.draws, draw.draw_id, draw)

    def entries(self, draw_id: str) -> list[Entry]:
        return list(self._data.entries.get(draw_id, {}).values())

    def waiting(self, draw_id: str, limit: int) -> list[Entry]:
        found = [
            e
            for e in self.entries(draw_id)
            if e.rank is not None and e.order_id is None and e.passed_over is None
        ]
        return sorted(found, key=lambda e: e.rank or 0)[:limit]

    def entry(self, draw_id: str, buyer_id: str) -> Entry | None:
        return self._data.entries.get(draw_id, {}).get(buyer_id)

    def entry_sharing(self, draw_id: str, device_id: str | None, address_hash: str | None) -> Entry | None:
        for entry in self._data.entries.get(draw_id, {}).values():
            if (device_id is not None and entry.device_id == device_id) or (
                address_hash is not None and entry.address_hash == address_hash
            ):
                return entry
        return None

    def entry_count(self, draw_id: str) -> int:
        return len(self._data.entries.get(draw_id, {}))

    def put_entry(self, entry: Entry) -> None:
        if entry.draw_id not in self._data.entries:
            self._set(self._data.entries, entry.draw_id, {})
        self._set(self._data.entries[entry.draw_id], entry.buyer_id, entry)
        if entry.order_id is not None:
            self._set(self._data.entry_of_order, entry.order_id, (entry.draw_id, entry.buyer_id))

    def draw_standings(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for draw_id, entries in self._data.entries.items():
            for entry in entries.values():
                order = None if entry.order_id is None else self._data.orders.get(entry.order_id)
                counts[(draw_id, standing(entry, None if order is None else order.status.value))] += 1
        return dict(counts)

    def entry_of_order(self, order_id: str) -> Entry | None:
        found = self._data.entry_of_order.get(order_id)
        return None if found is None else self.entry(*found)

    def live_lines(self, listing_id: str) -> list[LiveLine]:
        return [
            LiveLine(order.order_id, order.buyer_id, line.quantity)
            for order in self._data.orders.values()
            if order.status in LIVE_OR_PAID
            for line in order.lines
            if line.listing_id == listing_id
        ]

    def sold(self, listing_id: str) -> int:
        return self._data.sold.get(listing_id, 0)

    def add_sold(self, listing_id: str, delta: int) -> None:
        self._set(self._data.sold, listing_id, self._data.sold[listing_id] + delta)
        self.changes.listings.add(listing_id)

    def period_units(self, listing_id: str, start: datetime) -> int:
        return self._data.period_units.get((listing_id, start), 0)

    def add_period_units(self, listing_id: str, start: datetime, delta: int) -> None:
        key = (listing_id, start)
        self._set(self._data.period_units, key, self._data.period_units[key] + delta)
        self.changes.listings.add(listing_id)

    def all_period_units(self) -> dict[tuple[str, datetime], int]:
        return {key: units for key, units in self._data.period_units.items() if units}

    def _drop_stale(self) -> None:
        """Pop heap entries of orders that changed since they were pushed."""
        heap, orders = self._data.expiry_heap, self._data.orders
        while heap:
            expires_at, order_id = heap[0]
            order = orders.get(order_id)
            if order is not None and order.status is OrderStatus.RESERVED and order.expires_at == expires_at:
                return
            heapq.heappop(heap)

    def due_orders(self, now: datetime, limit: int) -> list[Order]:
        self._write()
        heap = self._data.expiry_heap
        due: list[Order] = []
        self._drop_stale()
        while heap and heap[0][0] <= now and len(due) < limit:
            entry = heapq.heappop(heap)
            self._undo.append(functools.partial(heapq.heappush, heap, entry))
            due.append(self._data.orders[entry[1]])
            self._drop_stale()
        return due

    def has_due(self, now: datetime) -> bool:
        self._drop_stale()
        heap = self._data.expiry_heap
        return bool(heap) and heap[0][0] <= now

    def next_expiry(self) -> datetime | None:
        self._drop_stale()
        heap = self._data.expiry_heap
        return heap[0][0] if heap else None

    def held_units(self) -> dict[str, int]:
        units: dict[str, int] = defaultdict(int)
        for order in self._data.orders.values():
            if order.status is OrderStatus.RESERVED:
                for line in order.lines:
                    units[line.listing_id] += line.quantity
        return dict(units)

    def held_lines(self, expiring_by: datetime, limit: int) -> list[HeldLine]:
        due = sorted(
            (order.expires_at, order.order_id)
            for order in self._data.orders.values()
            if order.status is OrderStatus.RESERVED
            and order.expires_at is not None
            and order.expires_at <= expiring_by
        )
        lines = [
            HeldLine(order_id, line.listing_id, line.quantity, expires_at)
            for expires_at, order_id in due
            for line in self._data.orders[order_id].lines
        ]
        return lines[:limit]

    # -- incoming shipments
    def shipment(self, shipment_id: str) -> Shipment | None:
        return self._data.shipments.get(shipment_id)

    def put_shipment(self, shipment: Shipment) -> None:
        self._set(self._data.shipments, shipment.shipment_id, shipment)

    # -- audit
    def movements(self, where: MovementFilter) -> list[Movement]:
        found = [
            m
            for m in self._data.ledger
            if (where.order_id is None or m.order_id == where.order_id)
            and (where.sku is None or m.sku == where.sku)
        ]
        return found[: where.limit]

    def ledger_totals(self) -> dict[tuple[str, str, Counter], int]:
        totals: dict[tuple[str, str, Counter], int] = defaultdict(int)
        for m in self._data.ledger:
            totals[(m.sku, m.warehouse, m.counter)] += m.delta
        return dict(totals)

    def all_levels(self) -> list[Level]:
        return [self._copy(level) for levels in self._data.levels.values() for level in levels.values()]

    # -- counts from warehouse systems
    def applied_count(self, sku: str, warehouse: str) -> AppliedCount | None:
        return self._data.applied_counts.get((sku, warehouse))

    def put_applied_count(self, sku: str, warehouse: str, count: AppliedCount) -> None:
        self._set(self._data.applied_counts, (sku, warehouse), count)

    def on_hand_moved_since(self, sku: str, warehouse: str, since: datetime) -> int:
        return sum(
            m.delta
            for m in self._data.ledger
            if m.counter is Counter.ON_HAND and m.sku == sku and m.warehouse == warehouse and m.at > since
        )

    # -- change events
    def peek_levels(self, skus: Collection[str]) -> dict[str, list[Level]]:
        return self.levels(skus)

    def listings_with(self, skus: Collection[str]) -> list[Listing]:
        wanted = set(skus)
        return [
            listing
            for listing in self._data.listings.values()
            if any(c.sku in wanted for c in listing.components)
        ]

    def lock_streams(self, streams: Collection[str]) -> dict[str, dict[str, Any]]:
        known = self._data.streams
        return {stream: dict(known[stream][1]) for stream in streams if stream in known}

    def append_events(self, events: list[NewEvent], at: datetime) -> None:
        self._write()
        written = self._data.events
        mark = len(written)
        self._undo.append(lambda: written.__delitem__(slice(mark, None)))
        for event in events:
            seq = self._data.streams.get(event.stream, (0, {}))[0] + 1
            self._set(self._data.streams, event.stream, (seq, event.data))
            position = written[-1].position + 1 if written else 1
            written.append(Event(position, event.stream, seq, event.type, at, event.data))

    def events_after(self, stream: str, seq: int, limit: int) -> list[Event]:
        found = [e for e in self._data.events if e.stream == stream and e.seq > seq]
        return found[:limit]

    def unpublished_events(self, limit: int) -> list[Event]:
        published = self._data.published
        return [e for e in self._data.events if e.position not in published][:limit]

    def mark_published(self, positions: Collection[int]) -> None:
        self._write()
        fresh = set(positions) - self._data.published
        self._data.published |= fresh
        self._undo.append(lambda: self._data.published.difference_update(fresh))

    def prune_events(self, before: datetime, *, unpublished_too: bool) -> None:
        self._write()
        kept = self._data.events[:]
        self._undo.append(lambda: self._data.events.__setitem__(slice(None), kept))
        published = self._data.published
        self._data.events[:] = [
            e for e in kept if e.at >= before or not (unpublished_too or e.position in published)
        ]

    def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        current = self._data.leases.get(name)
        if current is not None and current[0] != holder and current[1] >= now:
            return False
        self._set(self._data.leases, name, (holder, until))
        return True

    def lease_exists(self, name: str) -> bool:
        return name in self._data.leases

    def all_orders(self) -> Iterator[Order]:
        return iter(list(self._data.orders.values()))

    def all_listings(self) -> list[Listing]:
        return list(self._data.listings.values())

    def pending_shipments(self) -> list[Shipment]:
        return [s for s in self._data.shipments.values() if not s.arrived]

    def incoming_orders(self) -> list[Order]:
        waiting = [
            o
            for o in self._data.orders.values()
            if o.fulfil_from is FulfilFrom.INCOMING and o.status in (OrderStatus.RESERVED, OrderStatus.PAID)
        ]
        return sorted(waiting, key=lambda o: (o.created_at, o.order_id))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryStore:
    """All data in this process, guarded by one lock."""

    def __init__(self) -> None:
        self._data = MemoryData()
        self._lock = threading.Lock()
        self._commits = 0
        self._clock: Callable[[], datetime] = _utc_now

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def atomic(self, work: Callable[[MemoryTransaction], T]) -> T:
        with self._lock:
            tx = MemoryTransaction(self._data, writable=True)
            try:
                result = work(tx)
                write_events(tx, self._clock())
            except BaseException:
                tx.rollback()
                raise
            if tx.changed:  # a sweep that found nothing due leaves sold-out proofs standing
                self._commits += 1
            return result

    def order_exists(self, order_id: str) -> Future[bool]:
        future: Future[bool] = Future()
        with self._lock:
            future.set_result(order_id in self._data.orders)
        return future

    def stock_version(self) -> Hashable:
        """Every committed unit of work that changed something: one process sees all of them at once."""
        return self._commits

    def submit(
        self, work: Callable[[MemoryTransaction], T], *, placing: PlaceRequest | None = None
    ) -> Future[T]:
        """Runs at once (the lock is the only wait there is) and hands back the settled future."""
        future: Future[T] = Future()
        try:
            future.set_result(self.atomic(work))
        except Exception as error:
            future.set_exception(error)
        return future

    @contextmanager
    def read(self, *, consistent: bool = True) -> Iterator[MemoryTransaction]:
        with self._lock:  # one process: reads under the lock are always consistent
            yield MemoryTransaction(self._data, writable=False)

    def close(self) -> None:
        """Nothing to release."""
