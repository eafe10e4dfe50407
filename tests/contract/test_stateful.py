"""Random trading days against every store, with the promises of DOMAIN.md checked after every step.

Hypothesis drives receipts, stock counts, listings (single items and bundles,
all three strategies), placements, replays, payments, cancellations,
shipments, incoming shipments, the clock and the sweeper. The machine keeps a
model of every order and of what each answer must be; after every step it
reads the store directly (a read through the facade would sweep expired holds)
and checks: no oversell, ``check()`` empty, order statuses, each hold ended
exactly once, per-buyer limits and quotas, shortages, incoming and on-hand.

"Logical" below means: as if every hold whose time is up had been swept. A
store may keep a due hold until something sweeps it, but no answer may depend
on whether that happened.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import STORE_KINDS, FakeClock, StoreKind
from stockguard import (
    Allocation,
    Counter,
    Deduction,
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    Level,
    LimitExceeded,
    Movement,
    Order,
    OrderConflict,
    OrderStatus,
    Reason,
    SoldOut,
    Stockguard,
    open_store,
)

ITEMS = {"bottle": 0, "glass": 1}  # sku -> safety stock
WAREHOUSES = {"north": 1, "south": 2}  # name -> priority
BUYERS = ("ann", "bob", "cat")
LISTING_IDS = ("l0", "l1", "l2", "l3")
HOLD_SECONDS = (60, 300, 900)

LIVE_OR_PAID = {OrderStatus.PLACED, OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED}
HOLDING = {OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED}
ENDS = {Reason.COMMIT, Reason.CANCEL, Reason.EXPIRE}

Key = tuple[str, str]  # (sku, warehouse)
T = TypeVar("T")
REFUSALS = (InvalidInput, LimitExceeded, SoldOut, HoldExpired)


def _attempt(call: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """The answer, or the refusal, of one call."""
    try:
        return call(), None
    except REFUSALS as refused:
        return None, refused


@dataclass(frozen=True)
class ModelListing:
    listing_id: str
    components: tuple[tuple[str, int], ...]
    deduction: Deduction
    hold_seconds: int
    limit: int | None
    quota: int | None


@dataclass
class ModelOrder:
    order_id: str
    buyer: str
    lines: tuple[tuple[str, int], ...]
    deduction: Deduction
    status: OrderStatus  # logical: a reserved order is expired once its time is up
    expires_at: datetime | None
    placement_allocations: tuple[Allocation, ...]  # what the placement held (none under `payment`)
    hold_end: Reason | None = None  # how that hold ended: COMMIT, CANCEL or EXPIRE


def _free(levels: list[Level]) -> int:
    """Units of one item that may still be sold: nothing while any of its levels is short."""
    if any(_short(lv) for lv in levels):
        return 0
    return sum(max(_available(lv), 0) for lv in levels)


def _short(lv: Level) -> bool:
    """More is promised than the level may give (DOMAIN.md promise 1).

    A level that promises nothing is never short, even below its safety stock:
    an empty warehouse (say, one a shipment was just announced to) is no shortage.
    """
    return _promised(lv) > 0 and _available(lv) < 0


def _available(lv: Level) -> int:
    return lv.on_hand - lv.reserved - lv.committed - lv.safety


def _promised(lv: Level) -> int:
    return lv.reserved + lv.committed


class TradingDay(RuleBasedStateMachine):
    kind: ClassVar[StoreKind]  # set by trading_on(), one subclass per store kind

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="stockguard-stateful-"))
        self.store = open_store(self.kind.url(self.directory))
        self.clock = FakeClock()
        self.sg = Stockguard(self.store, clock=self.clock.now)
        self.listings: dict[str, ModelListing] = {}
        self.orders: dict[str, ModelOrder] = {}
        self.on_hand: dict[Key, int] = defaultdict(int)
        self.in_transit: dict[str, tuple[str, str, int]] = {}  # shipment id -> (sku, warehouse, units)
        self.arrived: set[str] = set()
        self.serial = 0
        self.counted = False  # whether the last step was a stock count
        self.before: dict[Key, Level] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- reading the store without side effects

    def _stored(self) -> tuple[list[Level], dict[str, Order]]:
        with self.store.read() as tx:
            return tx.all_levels(), {o.order_id: o for o in tx.all_orders()}

    def _logical_levels(self) -> dict[Key, Level]:
        """Stored levels with every due hold given back."""
        levels, orders = self._stored()
        result = {(lv.sku, lv.warehouse): replace(lv) for lv in levels}
        now = self.clock.now()
        for order in orders.values():
            if (
                order.status is OrderStatus.RESERVED
                and order.expires_at is not None
                and order.expires_at <= now
            ):
                for a in order.allocations:
                    result[(a.sku, a.warehouse)].reserved -= a.quantity
        return result

    def _ledger(self) -> dict[str | None, list[Movement]]:
        rows: dict[str | None, list[Movement]] = defaultdict(list)
        for m in self.sg.movements(limit=10_000_000):
            rows[m.order_id].append(m)
        return rows

    # -- what the model says

    def _units(self, buyer: str, listing_id: str, *, skip: str = "") -> int:
        return sum(
            q
            for o in self.orders.values()
            if o.buyer == buyer and o.status in LIVE_OR_PAID and o.order_id != skip
            for lid, q in o.lines
            if lid == listing_id
        )

    def _sold(self, listing_id: str) -> int:
        return sum(
            q for o in self.orders.values() if o.status in HOLDING for lid, q in o.lines if lid == listing_id
        )

    def _need(self, lines: tuple[tuple[str, int], ...]) -> dict[str, int]:
        need: dict[str, int] = defaultdict(int)
        for listing_id, quantity in lines:
            for sku, per_unit in self.listings[listing_id].components:
                need[sku] += per_unit * quantity
        return dict(need)

    def _refusals(
        self, buyer: str, lines: tuple[tuple[str, int], ...], *, limits: bool, skip: str = ""
    ) -> set[type[Exception]]:
        """Every reason the order may not take stock now; any one of them may be the answer."""
        reasons: set[type[Exception]] = set()
        if len({self.listings[lid].deduction for lid, _ in lines}) > 1:
            reasons.add(InvalidInput)
        for listing_id, quantity in lines:
            listing = self.listings[listing_id]
            limit = listing.limit if limits else None
            if limit is not None and self._units(buyer, listing_id, skip=skip) + quantity > limit:
                reasons.add(LimitExceeded)
            if listing.quota is not None and self._sold(listing_id) + quantity > listing.quota:
                reasons.add(SoldOut)
        logical = self._logical_levels()
        for sku, units in self._need(lines).items():
            if _free([lv for (s, _), lv in logical.items() if s == sku]) < units:
                reasons.add(SoldOut)
        return reasons

    def _ledger_rows(self, order_id: str) -> list[Movement]:
        return self.sg.movements(order_id=order_id)

    def _order_ids(self) -> list[str]:
        return sorted(self.orders)

    # -- setup

    @initialize(
        receipts=st.lists(
            st.tuples(st.sampled_from(sorted(ITEMS)), st.sampled_from(sorted(WAREHOUSES)), st.integers(1, 6)),
            max_size=4,
        )
    )
    def open_the_shop(self, receipts: list[tuple[str, str, int]]) -> None:
        for name, priority in WAREHOUSES.items():
            self.sg.put_warehouse(name, priority)
        for sku, safety in ITEMS.items():
            self.sg.put_item(sku, sku.title(), safety=safety)
        for sku, warehouse, units in receipts:
            self.receive(sku, warehouse, units)

    # -- stock

    @rule(
        sku=st.sampled_from(sorted(ITEMS)),
        warehouse=st.sampled_from(sorted(WAREHOUSES)),
        units=st.integers(1, 6),
    )
    def receive(self, sku: str, warehouse: str, units: int) -> None:
        self.counted = False
        self.sg.receive(sku, units, warehouse)
        self.on_hand[(sku, warehouse)] += units

    @rule(
        sku=st.sampled_from(sorted(ITEMS)),
        warehouse=st.sampled_from(sorted(WAREHOUSES)),
        counted=st.integers(0, 8),
    )
    def count(self, sku: str, warehouse: str, counted: int) -> None:
        self.counted = True
        result = self.sg.count(sku, counted, "stocktake", warehouse)
        self.on_hand[(sku, warehouse)] = counted
        (after,) = [lv for lv in result.stock.levels if lv.warehouse == warehouse]
        assert after.on_hand == counted
        assert result.short_by == (-_available(after) if _short(after) else 0)

    @rule(
        sku=st.sampled_from(sorted(ITEMS)),
        warehouse=st.sampled_from(sorted(WAREHOUSES)),
        units=st.integers(1, 5),
    )
    def expect_shipment(self, sku: str, warehouse: str, units: int) -> None:
        self.counted = False
        self.serial += 1
        shipment_id = f"s{self.serial}"
        self.sg.expect(shipment_id, sku, units, self.clock.now() + timedelta(days=1), warehouse)
        self.in_transit[shipment_id] = (sku, warehouse, units)

    @precondition(lambda self: bool(self.in_transit) or bool(self.arrived))
    @rule(data=st.data(), received=st.none() | st.integers(0, 6))
    def arrive(self, data: st.DataObject, received: int | None) -> None:
        self.counted = False
        shipment_id = data.draw(st.sampled_from(sorted(self.in_transit.keys() | self.arrived)))
        replay = shipment_id in self.arrived
        before = len(self.sg.movements(limit=10_000_000))
        shipment = self.sg.arrive(shipment_id, received).shipment
        if replay:
            assert len(self.sg.movements(limit=10_000_000)) == before
            return
        sku, warehouse, units = self.in_transit.pop(shipment_id)
        self.arrived.add(shipment_id)
        expected = units if received is None else received
        assert shipment.received == expected
        self.on_hand[(sku, warehouse)] += expected

    # -- listings

    @precondition(lambda self: len(self.listings) < len(LISTING_IDS))
    @rule(
        data=st.data(),
        components=st.lists(
            st.tuples(st.sampled_from(sorted(ITEMS)), st.integers(1, 2)),
            min_size=1,
            max_size=2,
            unique_by=lambda c: c[0],
        ),
        deduction=st.sampled_from(list(Deduction)),
        hold_seconds=st.sampled_from(HOLD_SECONDS),
        limit=st.none() | st.integers(1, 4),
        quota=st.none() | st.integers(0, 8),
    )
    def put_listing(
        self,
        data: st.DataObject,
        components: list[tuple[str, int]],
        deduction: Deduction,
        hold_seconds: int,
        limit: int | None,
        quota: int | None,
    ) -> None:
        self.counted = False
        listing_id = data.draw(st.sampled_from([lid for lid in LISTING_IDS if lid not in self.listings]))
        saved = self.sg.put_listing(
            listing_id, listing_id, components, deduction, hold_seconds, per_buyer_limit=limit, quota=quota
        )
        assert saved.created
        self.listings[listing_id] = ModelListing(
            listing_id, tuple(components), deduction, hold_seconds, limit, quota
        )

    # -- orders

    @precondition(lambda self: bool(self.listings))
    @rule(data=st.data(), buyer=st.sampled_from(BUYERS))
    def place(self, data: st.DataObject, buyer: str) -> None:
        self.counted = False
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.listings)), min_size=1, max_size=2, unique=True)
        )
        lines = tuple((lid, data.draw(st.integers(1, 3), label=f"quantity of {lid}")) for lid in chosen)
        self.serial += 1
        order_id = f"o{self.serial}"
        reasons = self._refusals(buyer, lines, limits=True)
        placed, refused = _attempt(lambda: self.sg.place_order(order_id, buyer, lines))
        if placed is None:
            assert type(refused) in reasons, f"{refused!r} refused {lines}; reasons: {reasons}"
            return
        assert not reasons, f"placed {lines} for {buyer} despite {reasons}"
        assert placed.created
        order = placed.order
        deduction = self.listings[chosen[0]].deduction
        if deduction is Deduction.PAYMENT:
            assert order.status is OrderStatus.PLACED
            assert order.allocations == ()
            expires_at = None
        else:
            assert order.status is OrderStatus.RESERVED
            totals: dict[str, int] = defaultdict(int)
            for a in order.allocations:
                totals[a.sku] += a.quantity
            assert totals == self._need(lines)
            expires_at = None
            if deduction is Deduction.RESERVE:
                hold = min(self.listings[lid].hold_seconds for lid in chosen)
                expires_at = self.clock.now() + timedelta(seconds=hold)
        assert order.expires_at == expires_at
        self.orders[order_id] = ModelOrder(
            order_id, buyer, lines, deduction, order.status, expires_at, order.allocations
        )

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def replay_placement(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        before = self._ledger_rows(model.order_id)
        again = self.sg.place_order(model.order_id, model.buyer, model.lines)
        assert not again.created
        assert again.order.status is model.status
        after = self._ledger_rows(model.order_id)
        assert after[: len(before)] == before
        assert all(m.reason is Reason.EXPIRE for m in after[len(before) :]), "a replay deducted again"

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def conflicting_placement(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        other = next(b for b in BUYERS if b != model.buyer)
        before = len(self.sg.movements(limit=10_000_000))
        with pytest.raises(OrderConflict):
            self.sg.place_order(model.order_id, other, model.lines)
        assert len(self.sg.movements(limit=10_000_000)) == before

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        status = model.status
        if status is OrderStatus.CANCELLED:
            with pytest.raises(InvalidTransition):
                self.sg.pay(model.order_id)
            return
        if status in {OrderStatus.PAID, OrderStatus.SHIPPED}:
            before = self._ledger_rows(model.order_id)
            assert self.sg.pay(model.order_id).status is status
            assert self._ledger_rows(model.order_id) == before
            return
        if status is OrderStatus.RESERVED:
            assert self.sg.pay(model.order_id).status is OrderStatus.PAID
            model.status, model.hold_end = OrderStatus.PAID, Reason.COMMIT
            return
        expired = status is OrderStatus.EXPIRED
        reasons = self._refusals(model.buyer, model.lines, limits=expired, skip=model.order_id)
        reasons.discard(InvalidInput)
        paid, refused = _attempt(lambda: self.sg.pay(model.order_id))
        if paid is None:
            assert reasons, f"payment of {model.order_id} ({status}) refused without a reason: {refused!r}"
            allowed = {HoldExpired, LimitExceeded} if expired else {SoldOut}
            assert type(refused) in allowed
            return
        assert not reasons, f"{model.order_id} ({status}) was paid despite {reasons}"
        assert paid.status is OrderStatus.PAID
        assert paid.expires_at is None
        model.status = OrderStatus.PAID

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        status = model.status
        if status is OrderStatus.SHIPPED:
            with pytest.raises(InvalidTransition):
                self.sg.cancel(model.order_id)
            return
        if status is OrderStatus.EXPIRED:
            # Pinned by the contract suite; here any answer that keeps the promises will do.
            with contextlib.suppress(InvalidTransition):
                model.status = self.sg.cancel(model.order_id).status
            assert model.status in {OrderStatus.EXPIRED, OrderStatus.CANCELLED}
            return
        assert self.sg.cancel(model.order_id).status is OrderStatus.CANCELLED
        if status is OrderStatus.RESERVED:
            model.hold_end = Reason.CANCEL
        model.status = OrderStatus.CANCELLED

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        if model.status not in {OrderStatus.PAID, OrderStatus.SHIPPED}:
            with pytest.raises(InvalidTransition):
                self.sg.ship(model.order_id)
            return
        shipped = self.sg.ship(model.order_id)
        assert shipped.status is OrderStatus.SHIPPED
        if model.status is OrderStatus.PAID:
            for a in shipped.allocations:
                self.on_hand[(a.sku, a.warehouse)] -= a.quantity
        model.status = OrderStatus.SHIPPED

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def get_order(self, data: st.DataObject) -> None:
        self.counted = False
        model = self.orders[data.draw(st.sampled_from(self._order_ids()))]
        assert self.sg.get_order(model.order_id).status is model.status

    # -- time

    @rule(seconds=st.sampled_from(HOLD_SECONDS) | st.integers(1, 1000))
    def advance_clock(self, seconds: int) -> None:
        self.counted = False
        now = self.clock.advance(seconds)
        for model in self.orders.values():
            if (
                model.status is OrderStatus.RESERVED
                and model.expires_at is not None
                and model.expires_at <= now
            ):
                model.status, model.hold_end = OrderStatus.EXPIRED, Reason.EXPIRE

    @rule()
    def sweep(self) -> None:
        self.counted = False
        now = self.clock.now()
        _, orders = self._stored()
        due = [
            o
            for o in orders.values()
            if o.status is OrderStatus.RESERVED and o.expires_at and o.expires_at <= now
        ]
        assert self.sg.expire_due() == len(due)
        assert self.sg.expire_due() == 0

    # -- the promises

    @invariant()
    def promises_hold(self) -> None:
        assert self.sg.check() == []
        levels, stored = self._stored()
        now = self.clock.now()
        self._orders_agree_with_the_model(stored, now)
        self._each_hold_ends_exactly_once(stored)
        self._limits_and_quotas_hold()
        self._nothing_is_oversold()
        self._counters_agree_with_the_model(levels)
        # Holds that ran out are no promise: shortages are reported after they are released.
        logical = self._logical_levels().values()
        short = {(lv.sku, lv.warehouse, -_available(lv)) for lv in logical if _short(lv)}
        assert {(s.sku, s.warehouse, s.short_by) for s in self.sg.shortages()} == short

    def _orders_agree_with_the_model(self, stored: dict[str, Order], now: datetime) -> None:
        assert set(stored) == set(self.orders), "a refused order was kept, or a placed one lost"
        for order_id, model in self.orders.items():
            order = stored[order_id]
            assert (order.buyer_id, order.deduction) == (model.buyer, model.deduction)
            assert tuple((ln.listing_id, ln.quantity) for ln in order.lines) == model.lines
            unswept = (
                model.status is OrderStatus.EXPIRED
                and order.status is OrderStatus.RESERVED
                and order.expires_at is not None
                and order.expires_at <= now
            )
            assert order.status is model.status or unswept, f"{order_id}: {order.status} != {model.status}"

    def _each_hold_ends_exactly_once(self, stored: dict[str, Order]) -> None:
        ledger = self._ledger()
        for order_id, model in self.orders.items():
            order = stored[order_id]
            rows = ledger.get(order_id, [])
            holds = [m for m in rows if m.counter is Counter.RESERVED and m.delta > 0]
            ends = [m for m in rows if m.counter is Counter.RESERVED and m.delta < 0]
            assert all(m.reason is Reason.HOLD for m in holds)
            assert len(holds) == len(model.placement_allocations)
            reasons = {m.reason for m in ends}
            assert reasons <= ENDS, f"{order_id} ended its hold as {reasons}"
            assert len(reasons) <= 1, f"{order_id} ended its hold as {reasons}"
            reserved = sum(m.delta for m in rows if m.counter is Counter.RESERVED)
            if order.status is OrderStatus.RESERVED:
                assert not ends
                assert reserved == sum(a.quantity for a in order.allocations)
            else:
                assert len(ends) == len(holds), f"{order_id}: {len(holds)} holds, {len(ends)} ends"
                assert reserved == 0
                if holds:
                    assert reasons == {model.hold_end}
            committed = sum(m.delta for m in rows if m.counter is Counter.COMMITTED)
            paid = sum(a.quantity for a in order.allocations) if order.status is OrderStatus.PAID else 0
            assert committed == paid
            on_hand = sum(m.delta for m in rows if m.counter is Counter.ON_HAND)
            shipped = sum(a.quantity for a in order.allocations) if order.status is OrderStatus.SHIPPED else 0
            assert on_hand == -shipped

    def _limits_and_quotas_hold(self) -> None:
        for listing in self.listings.values():
            if listing.limit is not None:
                for buyer in BUYERS:
                    assert self._units(buyer, listing.listing_id) <= listing.limit
            if listing.quota is not None:
                assert self._sold(listing.listing_id) <= listing.quota

    def _nothing_is_oversold(self) -> None:
        """Only a count may leave a level promising more than it holds, and then the item stops selling."""
        after = self._logical_levels()
        for key, level in after.items():
            previous = self.before.get(key)
            was_short = previous is not None and _short(previous)
            if _short(level) and not self.counted:
                assert was_short, f"{key} became short without a stock count: {level}"
        for sku in ITEMS:
            old = [lv for (s, _), lv in self.before.items() if s == sku]
            if any(_short(lv) for lv in old):
                new = [lv for (s, _), lv in after.items() if s == sku]
                promised_then = sum(_promised(lv) for lv in old)
                assert sum(_promised(lv) for lv in new) <= promised_then, f"{sku} was sold while short"
        self.before = after

    def _counters_agree_with_the_model(self, levels: list[Level]) -> None:
        incoming: dict[Key, int] = defaultdict(int)
        for sku, warehouse, units in self.in_transit.values():
            incoming[(sku, warehouse)] += units
        for lv in levels:
            key = (lv.sku, lv.warehouse)
            assert lv.on_hand == self.on_hand[key], f"on_hand of {key}"
            assert lv.incoming == incoming[key], f"incoming of {key}"
            assert lv.safety == ITEMS[lv.sku]


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def trading_on(kind: StoreKind) -> type[TradingDay]:
    return type(f"TradingDayOn{kind.name.title()}", (TradingDay,), {"kind": kind})


@pytest.mark.parametrize("kind", STORE_KINDS, ids=str)
def test_random_trading_keeps_every_promise(kind: StoreKind) -> None:
    run_state_machine_as_test(trading_on(kind), settings=SETTINGS)
