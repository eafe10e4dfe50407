"""The promises of DOMAIN.md, proved once per store through the Stockguard facade.

Every test runs against every kind in ``conftest.STORE_KINDS`` and ends with
``check()`` finding nothing (see ``_ledger_agrees_after_every_scenario``).
State is read straight from the store where a read through the facade would
sweep expired holds and so hide what a test is about.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest

from conftest import FakeClock, StoreKind, snapshot
from stockguard import (
    Allocation,
    Counter,
    Deduction,
    Drift,
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    Level,
    LimitExceeded,
    Order,
    OrderConflict,
    OrderStatus,
    Reason,
    Shortage,
    SoldOut,
    Stockguard,
    StockguardError,
    UnknownItem,
    UnknownListing,
    UnknownOrder,
    UnknownShipment,
)
from stockguard.service.orders import Placement
from stockguard.stores.base import Store

BOTTLE = "maotai-500ml"
GLASS = "glass"
HOLD = 900


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    """Conservation: whatever a test did, the ledger, the counters and the orders agree."""
    yield
    assert sg.check() == []


# -- helpers


def stock(
    sg: Stockguard, sku: str = BOTTLE, units: int = 5, warehouse: str = "main", safety: int = 0
) -> None:
    sg.put_item(sku, sku.title(), safety=safety)
    sg.receive(sku, units, warehouse)


def sell(
    sg: Stockguard,
    deduction: str,
    listing_id: str = "bottle",
    components: tuple[tuple[str, int], ...] = ((BOTTLE, 1),),
    **terms: Any,
) -> None:
    sg.put_listing(listing_id, listing_id.title(), components, deduction, **terms)


def level(store: Store, sku: str = BOTTLE, warehouse: str = "main") -> Level:
    """A stored level, read without sweeping."""
    with store.read() as tx:
        (found,) = [lv for lv in tx.levels([sku]).get(sku, []) if lv.warehouse == warehouse]
        return found


def counters(store: Store, sku: str = BOTTLE, warehouse: str = "main") -> tuple[int, int, int, int, int]:
    """(on_hand, reserved, committed, safety, incoming)."""
    lv = level(store, sku, warehouse)
    return lv.on_hand, lv.reserved, lv.committed, lv.safety, lv.incoming


def stored_order(store: Store, order_id: str) -> Order:
    with store.read() as tx:
        found = tx.order(order_id)
    assert found is not None
    return found


def moves(sg: Stockguard, order_id: str) -> list[tuple[Counter, int, Reason]]:
    return [(m.counter, m.delta, m.reason) for m in sg.movements(order_id=order_id)]


def ledger_size(sg: Stockguard) -> int:
    return len(sg.movements(limit=1_000_000))


def place(
    sg: Stockguard, order_id: str, quantity: int = 1, listing_id: str = "bottle", buyer: str = ""
) -> Order:
    return sg.place_order(order_id, buyer or f"buyer-{order_id}", [(listing_id, quantity)]).order


# -- the `order` strategy: held at placement, no time limit


def test_order_strategy_holds_stock_at_placement(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    placed = sg.place_order("o-1", "alice", [("bottle", 2)])
    assert placed.created
    assert placed.order.status is OrderStatus.RESERVED
    assert placed.order.expires_at is None
    assert placed.order.allocations == (Allocation(BOTTLE, "main", 2),)
    assert counters(store) == (5, 2, 0, 0, 0)
    assert sg.get_listing("bottle").sellable == 3
    assert moves(sg, "o-1") == [(Counter.RESERVED, 2, Reason.HOLD)]


def test_order_strategy_hold_never_expires(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=1)
    sell(sg, "order")
    place(sg, "o-1")
    clock.advance(365 * 86_400)
    assert sg.expire_due() == 0
    assert sg.get_order("o-1").status is OrderStatus.RESERVED
    with pytest.raises(SoldOut):
        place(sg, "o-2")
    assert counters(store) == (1, 1, 0, 0, 0)


def test_order_strategy_payment_confirms_the_hold(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 2)
    paid = sg.pay("o-1")
    assert paid.status is OrderStatus.PAID
    assert counters(store) == (5, 0, 2, 0, 0)
    assert moves(sg, "o-1") == [
        (Counter.RESERVED, 2, Reason.HOLD),
        (Counter.RESERVED, -2, Reason.COMMIT),
        (Counter.COMMITTED, 2, Reason.COMMIT),
    ]


def test_cancellation_returns_the_stock_of_a_held_order(sg: Stockguard, store: Store) -> None:
    stock(sg, units=1)
    sell(sg, "order")
    place(sg, "o-1")
    assert sg.cancel("o-1").status is OrderStatus.CANCELLED
    assert counters(store) == (1, 0, 0, 0, 0)
    assert place(sg, "o-2").status is OrderStatus.RESERVED


def test_cancellation_returns_the_stock_of_a_paid_order(sg: Stockguard, store: Store) -> None:
    stock(sg, units=1)
    sell(sg, "order")
    place(sg, "o-1")
    sg.pay("o-1")
    sg.cancel("o-1")
    assert counters(store) == (1, 0, 0, 0, 0)
    assert moves(sg, "o-1")[-1] == (Counter.COMMITTED, -1, Reason.CANCEL)
    assert sg.get_listing("bottle").sellable == 1


# -- the `payment` strategy: checks at placement, takes at payment


def test_payment_strategy_takes_nothing_at_placement(sg: Stockguard, store: Store) -> None:
    stock(sg, units=2)
    sell(sg, "payment")
    before = ledger_size(sg)
    order = place(sg, "o-1", 2)
    assert order.status is OrderStatus.PLACED
    assert order.allocations == ()
    assert order.expires_at is None
    assert counters(store) == (2, 0, 0, 0, 0)
    assert ledger_size(sg) == before
    assert sg.get_listing("bottle").sellable == 2


def test_payment_strategy_refuses_a_placement_that_could_never_be_paid(sg: Stockguard) -> None:
    stock(sg, units=2)
    sell(sg, "payment")
    with pytest.raises(SoldOut):
        place(sg, "o-1", 3)
    with pytest.raises(UnknownOrder):
        sg.get_order("o-1")


def test_payment_strategy_takes_the_stock_at_payment(sg: Stockguard, store: Store) -> None:
    stock(sg, units=2)
    sell(sg, "payment")
    place(sg, "o-1", 2)
    paid = sg.pay("o-1")
    assert paid.status is OrderStatus.PAID
    assert paid.allocations == (Allocation(BOTTLE, "main", 2),)
    assert counters(store) == (2, 0, 2, 0, 0)
    assert moves(sg, "o-1") == [(Counter.COMMITTED, 2, Reason.COMMIT)]


def test_exactly_as_many_payments_succeed_as_units_exist(sg: Stockguard, store: Store) -> None:
    stock(sg, units=3)
    sell(sg, "payment")
    for n in range(5):
        place(sg, f"o-{n}")
    outcomes: dict[str, str] = {}
    for n in range(5):
        try:
            outcomes[f"o-{n}"] = sg.pay(f"o-{n}").status.value
        except SoldOut:
            outcomes[f"o-{n}"] = "refused"
    assert list(outcomes.values()) == ["paid", "paid", "paid", "refused", "refused"]
    assert counters(store) == (3, 0, 3, 0, 0)


def test_a_refused_payment_leaves_the_order_placed_and_takes_nothing(sg: Stockguard, store: Store) -> None:
    stock(sg, units=1)
    sell(sg, "payment")
    place(sg, "o-1")
    place(sg, "o-2")
    sg.pay("o-1")
    before = snapshot(store)
    with pytest.raises(SoldOut):
        sg.pay("o-2")
    assert snapshot(store) == before
    assert sg.get_order("o-2").status is OrderStatus.PLACED
    assert moves(sg, "o-2") == []
    # The buyer may pay once stock comes back.
    sg.receive(BOTTLE, 1)
    assert sg.pay("o-2").status is OrderStatus.PAID


# -- the `reserve` strategy: held for hold_seconds, then released exactly once


def test_reserve_holds_stock_for_hold_seconds(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    order = place(sg, "o-1")
    assert order.status is OrderStatus.RESERVED
    assert order.expires_at == clock.now() + timedelta(seconds=60)
    assert counters(store) == (1, 1, 0, 0, 0)
    clock.advance(59.999)
    assert sg.expire_due() == 0
    assert sg.pay("o-1").status is OrderStatus.PAID
    assert counters(store) == (1, 0, 1, 0, 0)


def test_reserve_hold_lasts_900_seconds_by_default(sg: Stockguard, clock: FakeClock) -> None:
    stock(sg)
    sell(sg, "reserve")
    assert place(sg, "o-1").expires_at == clock.now() + timedelta(seconds=900)


def test_an_order_of_several_reserve_listings_is_held_for_the_shortest_hold(
    sg: Stockguard, clock: FakeClock
) -> None:
    stock(sg, BOTTLE)
    stock(sg, GLASS)
    sell(sg, "reserve", "bottle", hold_seconds=600)
    sell(sg, "reserve", "glass", ((GLASS, 1),), hold_seconds=120)
    order = sg.place_order("o-1", "alice", [("bottle", 1), ("glass", 1)]).order
    assert order.expires_at == clock.now() + timedelta(seconds=120)


def test_a_hold_expires_when_its_time_is_up(sg: Stockguard, clock: FakeClock) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(60)
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED


def test_expire_due_releases_each_hold_exactly_once(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=5)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1", 2)
    place(sg, "o-2", 1)
    clock.advance(30)
    place(sg, "o-3", 1)  # due 30 seconds later than the others
    clock.advance(30)
    assert sg.expire_due() == 2
    assert sg.expire_due() == 0
    assert counters(store) == (5, 1, 0, 0, 0)
    assert moves(sg, "o-1") == [(Counter.RESERVED, 2, Reason.HOLD), (Counter.RESERVED, -2, Reason.EXPIRE)]
    assert moves(sg, "o-2") == [(Counter.RESERVED, 1, Reason.HOLD), (Counter.RESERVED, -1, Reason.EXPIRE)]
    assert stored_order(store, "o-1").status is OrderStatus.EXPIRED
    assert stored_order(store, "o-3").status is OrderStatus.RESERVED
    clock.advance(30)
    assert sg.expire_due() == 1
    assert sg.expire_due() == 0
    assert counters(store) == (5, 0, 0, 0, 0)


def test_an_expired_hold_returns_its_stock_when_nobody_sweeps(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    # No sweeper ran: the next buyer still gets the unit.
    assert place(sg, "o-2").status is OrderStatus.RESERVED
    assert counters(store) == (1, 1, 0, 0, 0)
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED
    assert moves(sg, "o-1") == [(Counter.RESERVED, 1, Reason.HOLD), (Counter.RESERVED, -1, Reason.EXPIRE)]
    assert sg.expire_due() == 0
    assert moves(sg, "o-1")[-1] == (Counter.RESERVED, -1, Reason.EXPIRE)


def test_get_order_shows_an_expired_hold_as_expired_without_a_sweep(sg: Stockguard, clock: FakeClock) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(3600)
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED
    assert moves(sg, "o-1").count((Counter.RESERVED, -1, Reason.EXPIRE)) == 1
    assert sg.get_listing("bottle").sellable == 1


def test_paying_after_expiry_takes_the_stock_again_when_some_is_left(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    paid = sg.pay("o-1")
    assert paid.status is OrderStatus.PAID
    assert paid.expires_at is None
    assert counters(store) == (1, 0, 1, 0, 0)
    assert moves(sg, "o-1") == [
        (Counter.RESERVED, 1, Reason.HOLD),
        (Counter.RESERVED, -1, Reason.EXPIRE),
        (Counter.COMMITTED, 1, Reason.COMMIT),
    ]
    assert sg.get_listing("bottle").sold == 1


def test_paying_a_swept_expired_order_takes_the_stock_again(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    assert sg.expire_due() == 1
    assert sg.pay("o-1").status is OrderStatus.PAID
    assert counters(store) == (1, 0, 1, 0, 0)
    assert sg.ship("o-1").status is OrderStatus.SHIPPED
    assert counters(store) == (0, 0, 0, 0, 0)


def test_paying_after_expiry_when_none_is_left_is_refused_as_expired(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    place(sg, "o-2")  # takes the unit o-1 gave back
    before = snapshot(store)
    with pytest.raises(HoldExpired) as refused:
        sg.pay("o-1")
    assert refused.value.code == "expired"
    assert snapshot(store) == before
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED
    assert counters(store) == (1, 1, 0, 0, 0)


def test_a_refused_payment_after_an_unswept_expiry_still_records_the_expiry(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    sg.count(BOTTLE, 0, "broken bottle")  # nothing left to take again
    with pytest.raises(HoldExpired):
        sg.pay("o-1")
    assert stored_order(store, "o-1").status is OrderStatus.EXPIRED
    assert moves(sg, "o-1") == [(Counter.RESERVED, 1, Reason.HOLD), (Counter.RESERVED, -1, Reason.EXPIRE)]
    assert counters(store) == (0, 0, 0, 0, 0)
    assert sg.expire_due() == 0


def test_cancelling_an_expired_order_is_never_a_silent_no_op(sg: Stockguard, clock: FakeClock) -> None:
    """DOMAIN.md: a transition that does not exist is a clear error, never a silent no-op.

    An expired order may still be paid, so a buyer who cancels it must either be
    told it cannot be cancelled, or have it cancelled so a later payment fails.
    """
    stock(sg, units=1)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    sg.expire_due()
    try:
        answered = sg.cancel("o-1")
    except InvalidTransition:
        return
    assert answered.status is OrderStatus.CANCELLED, "cancel answered an expired order unchanged"
    with pytest.raises(InvalidTransition):
        sg.pay("o-1")


# -- idempotency: the order id is the key


def test_replayed_placement_changes_nothing(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "reserve")
    first = sg.place_order("o-1", "alice", [("bottle", 2)])
    before = snapshot(store)
    again = sg.place_order("o-1", "alice", [("bottle", 2)])
    assert not again.created
    assert again.order == first.order
    assert snapshot(store) == before


@pytest.mark.parametrize("deduction", ["order", "payment", "reserve"])
def test_replayed_placement_returns_the_order_as_it_is_now(
    sg: Stockguard, store: Store, deduction: str
) -> None:
    stock(sg, units=5)
    sell(sg, deduction)
    place(sg, "o-1", 2, buyer="alice")
    sg.pay("o-1")
    before = snapshot(store)
    again = sg.place_order("o-1", "alice", [("bottle", 2)])
    assert not again.created
    assert again.order.status is OrderStatus.PAID
    assert snapshot(store) == before


def test_replayed_placement_of_an_expired_order_does_not_hold_again(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=5)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1", 2, buyer="alice")
    clock.advance(61)
    again = sg.place_order("o-1", "alice", [("bottle", 2)])
    assert not again.created
    assert again.order.status is OrderStatus.EXPIRED
    assert counters(store) == (5, 0, 0, 0, 0)
    assert [r for _, _, r in moves(sg, "o-1")] == [Reason.HOLD, Reason.EXPIRE]


def test_replayed_payment_changes_nothing(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "payment")
    place(sg, "o-1", 2)
    first = sg.pay("o-1")
    before = snapshot(store)
    assert sg.pay("o-1") == first
    assert snapshot(store) == before


def test_replayed_cancel_changes_nothing(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "reserve")
    place(sg, "o-1", 2)
    first = sg.cancel("o-1")
    before = snapshot(store)
    assert sg.cancel("o-1") == first
    assert snapshot(store) == before
    assert counters(store) == (5, 0, 0, 0, 0)


def test_replayed_shipment_changes_nothing(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 2)
    sg.pay("o-1")
    first = sg.ship("o-1")
    before = snapshot(store)
    assert sg.ship("o-1") == first
    assert sg.pay("o-1") == first  # paying a shipped order is a replay of the payment too
    assert snapshot(store) == before
    assert counters(store) == (3, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("buyer", "lines"),
    [
        ("mallory", [("bottle", 2)]),
        ("alice", [("bottle", 3)]),
        ("alice", [("box", 2)]),
        ("alice", [("bottle", 2), ("box", 1)]),
    ],
    ids=["other-buyer", "other-quantity", "other-listing", "extra-line"],
)
def test_same_order_id_with_a_different_body_is_a_conflict(
    sg: Stockguard, store: Store, buyer: str, lines: list[tuple[str, int]]
) -> None:
    stock(sg, units=10)
    stock(sg, GLASS, units=10)
    sell(sg, "reserve")
    sell(sg, "reserve", "box", ((BOTTLE, 1), (GLASS, 2)))
    sg.place_order("o-1", "alice", [("bottle", 2)])
    before = snapshot(store)
    with pytest.raises(OrderConflict) as conflict:
        sg.place_order("o-1", buyer, lines)
    assert conflict.value.code == "order_conflict"
    assert snapshot(store) == before


def test_placements_queued_together_are_decided_one_after_another(sg: Stockguard, store: Store) -> None:
    """Queued without waiting, placements share the writer's batches (and, on PostgreSQL,
    one statement deciding them all): each still gets the answer it would get alone, in turn."""
    stock(sg, units=4)
    sell(sg, "reserve", per_buyer_limit=2)
    queued = [
        ("o-1", "alice", 1),
        ("o-2", "alice", 1),
        ("o-3", "alice", 1),  # alice's third unit: over the limit
        ("o-1", "alice", 1),  # a replay
        ("o-4", "bob", 1),
        ("o-1", "alice", 2),  # the same id, another body
        ("o-5", "carol", 1),
        ("o-6", "dave", 1),  # the fifth unit of four
    ]
    futures = [sg.placing(order_id, buyer, [("bottle", units)]) for order_id, buyer, units in queued]

    def outcome(future: Future[Placement]) -> str:
        error = future.exception(timeout=30)
        if error is not None:
            return type(error).__name__
        return "created" if future.result().created else "replayed"

    assert [outcome(future) for future in futures] == [
        "created",
        "created",
        "LimitExceeded",
        "replayed",
        "created",
        "OrderConflict",
        "created",
        "SoldOut",
    ]
    assert counters(store)[:3] == (4, 4, 0)
    assert sg.get_listing("bottle").sold == 4


def test_a_refused_placement_leaves_no_order_behind(sg: Stockguard, store: Store) -> None:
    stock(sg, units=1)
    sell(sg, "reserve")
    with pytest.raises(SoldOut):
        place(sg, "o-1", 2)
    with pytest.raises(UnknownOrder):
        sg.get_order("o-1")
    # The id is free: the same id may be placed once it fits.
    assert place(sg, "o-1", 1).status is OrderStatus.RESERVED


# -- a sold-out listing: refused off the write path, and selling again whenever stock comes back


def sold_out_and_proved(sg: Stockguard, units: int = 1, **terms: Any) -> None:
    """Sell out a listing (one unit of safety stock kept back) and be refused twice:
    the writer's refusal, then the read that proves it."""
    stock(sg, units=units + 1, safety=1)
    sell(sg, "reserve", **terms)
    for n in range(units):
        place(sg, f"sold-{n}")
    for n in range(2):
        with pytest.raises(SoldOut):
            place(sg, f"refused-{n}")


@pytest.mark.parametrize(
    "give_back",
    [
        pytest.param(lambda sg: sg.cancel("sold-0"), id="cancellation"),
        pytest.param(lambda sg: sg.receive(BOTTLE, 1), id="delivery"),
        pytest.param(lambda sg: sg.count(BOTTLE, 3, "found one"), id="count"),
        pytest.param(lambda sg: sg.put_item(BOTTLE, "Maotai", safety=0), id="lower-safety"),
    ],
)
def test_a_sold_out_listing_sells_again_as_soon_as_stock_comes_back(
    sg: Stockguard, store: Store, give_back: Callable[[Stockguard], Any]
) -> None:
    sold_out_and_proved(sg)
    give_back(sg)
    assert place(sg, "after").status is OrderStatus.RESERVED


def test_a_sold_out_listing_sells_again_when_a_hold_runs_out(sg: Stockguard, clock: FakeClock) -> None:
    sold_out_and_proved(sg, hold_seconds=60)
    clock.advance(61)  # nobody sweeps: the proof ends with the hold
    assert place(sg, "after").status is OrderStatus.RESERVED
    assert sg.get_order("sold-0").status is OrderStatus.EXPIRED


def test_a_sold_out_listing_sells_again_when_its_quota_is_raised(sg: Stockguard) -> None:
    stock(sg, units=5)
    sell(sg, "reserve", quota=1)
    place(sg, "o-1")
    for n in range(2):
        with pytest.raises(SoldOut):
            place(sg, f"refused-{n}")
    sell(sg, "reserve", quota=2)
    assert place(sg, "after").status is OrderStatus.RESERVED


def test_a_sweep_that_releases_nothing_leaves_the_stock_version_as_it_was(
    sg: Stockguard, store: Store
) -> None:
    """Sweepers run every fraction of a second: one that found nothing due must not void every
    sold-out proof (buyers would go back to reading stock after each sweep)."""
    sold_out_and_proved(sg, hold_seconds=60)
    version = settled_version(store)
    assert sg.expire_due() == 0
    assert store.stock_version() == version


def settled_version(store: Store) -> object:
    """The stock version once changes of the setup stopped arriving (another connection hears
    PostgreSQL's notifications a moment after the commits)."""
    deadline = time.monotonic() + 10
    version = store.stock_version()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = store.stock_version()
        if again == version and version is not None:
            return version
        version = again
    raise AssertionError("the stock version did not settle")


def test_a_proof_of_few_units_still_sells_what_is_left(sg: Stockguard) -> None:
    sold_out_and_proved(sg, units=1)
    sg.receive(BOTTLE, 2)
    for n in range(2):
        with pytest.raises(SoldOut):
            place(sg, f"too-many-{n}", quantity=3)
    assert place(sg, "two", quantity=2).status is OrderStatus.RESERVED


def test_a_replay_of_the_order_that_got_the_last_unit_answers_with_the_order(sg: Stockguard) -> None:
    sold_out_and_proved(sg)
    again = sg.place_order("sold-0", "buyer-sold-0", [("bottle", 1)])
    assert not again.created
    assert again.order.status is OrderStatus.RESERVED


# -- transitions that do not exist are errors


def _ordered(sg: Stockguard, deduction: str = "reserve") -> None:
    stock(sg, units=5)
    sell(sg, deduction)
    place(sg, "o-1")


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        (["cancel"], "pay"),
        (["cancel"], "ship"),
        ([], "ship"),
        (["pay", "ship"], "cancel"),
    ],
    ids=["pay-cancelled", "ship-cancelled", "ship-unpaid", "cancel-shipped"],
)
def test_a_transition_that_does_not_exist_is_refused_and_changes_nothing(
    sg: Stockguard, store: Store, steps: list[str], action: str
) -> None:
    _ordered(sg)
    for step in steps:
        getattr(sg, step)("o-1")
    before = snapshot(store)
    with pytest.raises(InvalidTransition) as refused:
        getattr(sg, action)("o-1")
    assert refused.value.code == "invalid_transition"
    assert snapshot(store) == before


def test_shipping_an_unpaid_payment_order_is_refused(sg: Stockguard, store: Store) -> None:
    _ordered(sg, "payment")
    before = snapshot(store)
    with pytest.raises(InvalidTransition):
        sg.ship("o-1")
    assert snapshot(store) == before
    assert sg.get_order("o-1").status is OrderStatus.PLACED


def test_shipping_an_expired_order_is_refused(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    _ordered(sg)
    clock.advance(HOLD)
    with pytest.raises(InvalidTransition):
        sg.ship("o-1")
    assert sg.get_order("o-1").status is OrderStatus.EXPIRED
    assert sg.get_item(BOTTLE).levels[0].reserved == 0
    assert moves(sg, "o-1") == [(Counter.RESERVED, 1, Reason.HOLD), (Counter.RESERVED, -1, Reason.EXPIRE)]


# -- all or nothing


def test_an_order_takes_all_its_lines_or_none(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=5)
    stock(sg, GLASS, units=1)
    sell(sg, "reserve", "bottle")
    sell(sg, "reserve", "glass", ((GLASS, 1),))
    before = snapshot(store)
    with pytest.raises(SoldOut):
        sg.place_order("o-1", "alice", [("bottle", 3), ("glass", 2)])
    assert snapshot(store) == before
    order = sg.place_order("o-2", "alice", [("bottle", 3), ("glass", 1)]).order
    assert sorted(order.allocations, key=lambda a: a.sku) == [
        Allocation(GLASS, "main", 1),
        Allocation(BOTTLE, "main", 3),
    ]
    assert counters(store, BOTTLE)[1] == 3
    assert counters(store, GLASS)[1] == 1


def test_a_quota_on_one_line_refuses_the_whole_order(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=5)
    stock(sg, GLASS, units=5)
    sell(sg, "order", "bottle")
    sell(sg, "order", "glass", ((GLASS, 1),), quota=1)
    before = snapshot(store)
    with pytest.raises(SoldOut):
        sg.place_order("o-1", "alice", [("bottle", 1), ("glass", 2)])
    assert snapshot(store) == before


def test_a_limit_on_one_line_refuses_the_whole_order(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=5)
    stock(sg, GLASS, units=5)
    sell(sg, "order", "bottle")
    sell(sg, "order", "glass", ((GLASS, 1),), per_buyer_limit=1)
    before = snapshot(store)
    with pytest.raises(LimitExceeded):
        sg.place_order("o-1", "alice", [("bottle", 1), ("glass", 2)])
    assert snapshot(store) == before


def test_one_order_may_not_mix_deduction_strategies(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE)
    stock(sg, GLASS)
    sell(sg, "reserve", "bottle")
    sell(sg, "payment", "glass", ((GLASS, 1),))
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        sg.place_order("o-1", "alice", [("bottle", 1), ("glass", 1)])
    assert snapshot(store) == before


# -- bundles


def test_a_bundle_takes_each_component_times_its_quantity(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=5)
    stock(sg, GLASS, units=7)
    sell(sg, "reserve", "gift-box", ((BOTTLE, 1), (GLASS, 2)))
    assert sg.get_listing("gift-box").sellable == 3
    order = sg.place_order("o-1", "alice", [("gift-box", 2)]).order
    assert sorted(order.allocations, key=lambda a: a.sku) == [
        Allocation(GLASS, "main", 4),
        Allocation(BOTTLE, "main", 2),
    ]
    assert counters(store, BOTTLE) == (5, 2, 0, 0, 0)
    assert counters(store, GLASS) == (7, 4, 0, 0, 0)
    assert sg.get_listing("gift-box").sellable == 1
    sg.pay("o-1")
    sg.ship("o-1")
    assert counters(store, BOTTLE) == (3, 0, 0, 0, 0)
    assert counters(store, GLASS) == (3, 0, 0, 0, 0)


def test_a_bundle_sells_out_when_any_component_runs_out(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=5)
    stock(sg, GLASS, units=3)
    sell(sg, "reserve", "gift-box", ((BOTTLE, 1), (GLASS, 2)))
    place(sg, "o-1", 1, "gift-box")
    assert sg.get_listing("gift-box").sellable == 0
    before = snapshot(store)
    with pytest.raises(SoldOut):
        place(sg, "o-2", 1, "gift-box")
    assert snapshot(store) == before


def test_listings_sharing_an_item_draw_from_the_same_stock(sg: Stockguard, store: Store) -> None:
    stock(sg, BOTTLE, units=4)
    stock(sg, GLASS, units=10)
    sell(sg, "order", "bottle")
    sell(sg, "order", "gift-box", ((BOTTLE, 1), (GLASS, 2)))
    sell(sg, "order", "double", ((BOTTLE, 2),))
    sg.place_order("o-1", "alice", [("bottle", 1), ("gift-box", 1)])
    assert counters(store, BOTTLE)[1] == 2
    assert sg.get_listing("double").sellable == 1
    with pytest.raises(SoldOut):
        sg.place_order("o-2", "bob", [("double", 1), ("bottle", 1)])
    place(sg, "o-3", 1, "double")
    assert sg.get_listing("bottle").sellable == 0
    assert sg.get_listing("gift-box").sellable == 0


# -- warehouses


def _two_warehouses(sg: Stockguard, north: int, south: int) -> None:
    sg.put_warehouse("north", priority=1)
    sg.put_warehouse("south", priority=2)
    sg.put_item(BOTTLE, "Maotai")
    sg.receive(BOTTLE, south, "south")
    sg.receive(BOTTLE, north, "north")
    sell(sg, "reserve")


def test_allocation_takes_from_the_highest_priority_warehouse_first(sg: Stockguard, store: Store) -> None:
    _two_warehouses(sg, north=3, south=3)
    assert place(sg, "o-1", 2).allocations == (Allocation(BOTTLE, "north", 2),)
    assert counters(store, warehouse="north")[1] == 2
    assert counters(store, warehouse="south")[1] == 0


def test_allocation_splits_an_order_across_warehouses(sg: Stockguard, store: Store) -> None:
    _two_warehouses(sg, north=3, south=3)
    order = place(sg, "o-1", 5)
    assert order.allocations == (Allocation(BOTTLE, "north", 3), Allocation(BOTTLE, "south", 2))
    assert counters(store, warehouse="north") == (3, 3, 0, 0, 0)
    assert counters(store, warehouse="south") == (3, 2, 0, 0, 0)
    assert sg.get_listing("bottle").sellable == 1
    with pytest.raises(SoldOut):
        place(sg, "o-2", 2)


def test_changing_priorities_changes_where_the_next_hold_comes_from(sg: Stockguard) -> None:
    _two_warehouses(sg, north=3, south=3)
    sg.put_warehouse("south", priority=0)
    assert place(sg, "o-1", 1).allocations == (Allocation(BOTTLE, "south", 1),)


def test_cancellation_returns_units_to_the_warehouses_they_came_from(sg: Stockguard, store: Store) -> None:
    _two_warehouses(sg, north=2, south=3)
    place(sg, "o-1", 4)
    sg.cancel("o-1")
    assert counters(store, warehouse="north") == (2, 0, 0, 0, 0)
    assert counters(store, warehouse="south") == (3, 0, 0, 0, 0)


def test_shipping_lowers_on_hand_and_committed_in_each_warehouse_it_took_from(
    sg: Stockguard, store: Store
) -> None:
    _two_warehouses(sg, north=2, south=3)
    place(sg, "o-1", 4)
    sg.pay("o-1")
    assert counters(store, warehouse="north") == (2, 0, 2, 0, 0)
    assert counters(store, warehouse="south") == (3, 0, 2, 0, 0)
    assert sg.ship("o-1").status is OrderStatus.SHIPPED
    assert counters(store, warehouse="north") == (0, 0, 0, 0, 0)
    assert counters(store, warehouse="south") == (1, 0, 0, 0, 0)
    assert [
        (m.warehouse, m.counter, m.delta) for m in sg.movements(order_id="o-1") if m.reason is Reason.SHIP
    ] == [
        ("north", Counter.COMMITTED, -2),
        ("north", Counter.ON_HAND, -2),
        ("south", Counter.COMMITTED, -2),
        ("south", Counter.ON_HAND, -2),
    ]


# -- safety stock


def test_safety_stock_is_never_sold(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5, safety=2)
    sell(sg, "order")
    assert sg.get_listing("bottle").sellable == 3
    place(sg, "o-1", 3)
    with pytest.raises(SoldOut):
        place(sg, "o-2", 1)
    assert counters(store) == (5, 3, 0, 2, 0)


def test_safety_stock_is_kept_back_in_each_warehouse(sg: Stockguard, store: Store) -> None:
    sg.put_item(BOTTLE, "Maotai", safety=1)
    sg.receive(BOTTLE, 3, "north")
    sg.receive(BOTTLE, 3, "south")
    sell(sg, "order")
    assert sg.get_listing("bottle").sellable == 4
    place(sg, "o-1", 4)
    with pytest.raises(SoldOut):
        place(sg, "o-2", 1)


def test_changing_safety_stock_is_a_movement(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    saved = sg.put_item(BOTTLE, "Maotai", safety=4)
    assert not saved.created
    assert counters(store) == (5, 0, 0, 4, 0)
    assert [(m.counter, m.delta, m.reason) for m in sg.movements(sku=BOTTLE)][-1] == (
        Counter.SAFETY,
        4,
        Reason.SAFETY,
    )
    assert sg.get_listing("bottle").sellable == 1


def test_an_empty_warehouse_below_its_safety_stock_does_not_stop_sales(
    sg: Stockguard, clock: FakeClock
) -> None:
    """Announcing goods to a new warehouse creates an empty level there; nothing is promised from it."""
    stock(sg, units=5, safety=1)
    sell(sg, "order")
    sg.expect("s-1", BOTTLE, 10, clock.now() + timedelta(days=1), "south")
    assert sg.shortages() == []
    assert sg.get_listing("bottle").sellable == 4
    assert place(sg, "o-1", 1).status is OrderStatus.RESERVED


def test_counting_an_empty_warehouse_below_its_safety_stock_is_no_shortage(sg: Stockguard) -> None:
    """DOMAIN.md: a shortage is a count below what is already promised; here nothing is."""
    stock(sg, units=5, safety=2)
    sg.receive(BOTTLE, 1, "south")
    sell(sg, "order")
    assert sg.count(BOTTLE, 0, "empty shelf", "south").short_by == 0
    assert sg.shortages() == []
    assert sg.get_listing("bottle").sellable == 3


# -- stock counts and shortages


def test_a_count_below_what_is_promised_is_recorded_and_reported_as_a_shortage(
    sg: Stockguard, store: Store
) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 4)
    result = sg.count(BOTTLE, 2, "two bottles broken")
    assert result.short_by == 2
    assert counters(store) == (2, 4, 0, 0, 0)
    assert [(m.counter, m.delta, m.reason, m.reference) for m in sg.movements(sku=BOTTLE)][-1] == (
        Counter.ON_HAND,
        -3,
        Reason.COUNT,
        "two bottles broken",
    )
    assert sg.shortages() == [Shortage(BOTTLE, "main", 2)]
    assert sg.get_item(BOTTLE).short


def test_a_shortage_stops_new_sales_of_the_item(sg: Stockguard, store: Store) -> None:
    sg.put_warehouse("north", priority=1)
    sg.put_warehouse("south", priority=2)
    sg.put_item(BOTTLE, "Maotai")
    sg.receive(BOTTLE, 10, "north")
    sg.receive(BOTTLE, 2, "south")
    sell(sg, "order")
    sell(sg, "payment", "bottle-p")
    sell(sg, "reserve", "gift-box", ((BOTTLE, 1),))
    place(sg, "o-pay", 1, "bottle-p")
    # Ten units stay free in the north; the south is counted short.
    sg.put_warehouse("north", priority=3)
    place(sg, "o-1", 2)
    assert sg.count(BOTTLE, 1, "theft", "south").short_by == 1
    assert sg.get_listing("bottle").sellable == 0
    before = snapshot(store)
    for listing_id in ("bottle", "gift-box"):
        with pytest.raises(SoldOut):
            place(sg, f"o-{listing_id}", 1, listing_id)
    with pytest.raises(SoldOut):
        sg.pay("o-pay")
    assert snapshot(store) == before


def test_a_shortage_does_not_stop_paying_for_stock_already_held(sg: Stockguard, store: Store) -> None:
    stock(sg, units=3)
    sell(sg, "reserve")
    place(sg, "o-1", 3)
    sg.count(BOTTLE, 1, "flood")
    assert sg.pay("o-1").status is OrderStatus.PAID
    assert sg.shortages() == [Shortage(BOTTLE, "main", 2)]


def test_a_receipt_mends_a_shortage(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 4)
    sg.count(BOTTLE, 2, "two bottles broken")
    sg.receive(BOTTLE, 3)
    assert sg.shortages() == []
    assert sg.get_listing("bottle").sellable == 1
    assert place(sg, "o-2", 1).status is OrderStatus.RESERVED
    with pytest.raises(SoldOut):
        place(sg, "o-3", 1)


def test_a_cancellation_mends_a_shortage(sg: Stockguard) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 4)
    sg.count(BOTTLE, 3, "one bottle broken")
    assert sg.shortages() == [Shortage(BOTTLE, "main", 1)]
    sg.cancel("o-1")
    assert sg.shortages() == []
    assert sg.get_listing("bottle").sellable == 3


def test_a_count_at_or_above_what_is_promised_is_no_shortage(sg: Stockguard, store: Store) -> None:
    stock(sg, units=5)
    sell(sg, "order")
    place(sg, "o-1", 4)
    assert sg.count(BOTTLE, 4, "recount").short_by == 0
    assert sg.shortages() == []
    assert sg.count(BOTTLE, 9, "found a pallet").short_by == 0
    assert counters(store) == (9, 4, 0, 0, 0)
    before = ledger_size(sg)
    sg.count(BOTTLE, 9, "same again")
    assert ledger_size(sg) == before  # a count that changes nothing writes nothing


def test_an_expired_hold_is_not_a_shortage(sg: Stockguard, clock: FakeClock) -> None:
    """An expired hold promises nothing, whether or not a sweeper has run yet."""
    stock(sg, units=3)
    sell(sg, "reserve", hold_seconds=60)
    place(sg, "o-1", 3)
    clock.advance(61)
    assert sg.count(BOTTLE, 1, "two bottles broken").short_by == 0
    assert sg.shortages() == []


# -- incoming shipments


def test_an_expected_shipment_counts_as_incoming_not_on_hand(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=2)
    sell(sg, "order")
    shipment = sg.expect("s-1", BOTTLE, 10, clock.now() + timedelta(days=2))
    assert not shipment.arrived
    assert counters(store) == (2, 0, 0, 0, 10)
    assert sg.get_listing("bottle").sellable == 2
    with pytest.raises(SoldOut):
        place(sg, "o-1", 3)


def test_an_arrival_moves_incoming_to_on_hand(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=2)
    sell(sg, "order")
    sg.expect("s-1", BOTTLE, 10, clock.now() + timedelta(days=2), "south")
    arrived = sg.arrive("s-1").shipment
    assert arrived.arrived
    assert arrived.received == 10
    assert counters(store, warehouse="south") == (10, 0, 0, 0, 0)
    assert sg.get_listing("bottle").sellable == 12


def test_a_short_arrival_receives_only_what_came(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=1)
    sg.expect("s-1", BOTTLE, 10, clock.now())
    assert sg.arrive("s-1", received=7).shipment.received == 7
    assert counters(store) == (8, 0, 0, 0, 0)
    sg.expect("s-2", BOTTLE, 5, clock.now())
    assert sg.arrive("s-2", received=0).shipment.received == 0  # written off
    assert counters(store) == (8, 0, 0, 0, 0)


def test_a_replayed_arrival_changes_nothing(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=1)
    sg.expect("s-1", BOTTLE, 10, clock.now())
    first = sg.arrive("s-1", received=6)
    before = snapshot(store, shipment_ids=("s-1",))
    assert sg.arrive("s-1") == first
    assert sg.arrive("s-1", received=10) == first
    assert snapshot(store, shipment_ids=("s-1",)) == before


def test_a_replayed_announcement_changes_nothing(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    stock(sg, units=1)
    first = sg.expect("s-1", BOTTLE, 10, clock.now())
    before = snapshot(store, shipment_ids=("s-1",))
    assert sg.expect("s-1", BOTTLE, 10, clock.now()) == first
    with pytest.raises(InvalidInput):
        sg.expect("s-1", BOTTLE, 11, clock.now())
    assert snapshot(store, shipment_ids=("s-1",)) == before
    assert counters(store)[4] == 10


# -- per-buyer limits


def _limited(sg: Stockguard, deduction: str, limit: int = 3, hold_seconds: int = HOLD) -> None:
    stock(sg, units=20)
    sell(sg, deduction, per_buyer_limit=limit, hold_seconds=hold_seconds)


@pytest.mark.parametrize("deduction", list(Deduction))
def test_a_per_buyer_limit_counts_live_paid_and_shipped_orders(
    sg: Stockguard, store: Store, deduction: Deduction
) -> None:
    _limited(sg, deduction)
    place(sg, "o-live", buyer="alice")  # placed or reserved
    place(sg, "o-paid", buyer="alice")
    sg.pay("o-paid")
    place(sg, "o-shipped", buyer="alice")
    sg.pay("o-shipped")
    sg.ship("o-shipped")
    before = snapshot(store)
    with pytest.raises(LimitExceeded) as refused:
        place(sg, "o-4", buyer="alice")
    assert refused.value.code == "limit_exceeded"
    assert snapshot(store) == before
    assert place(sg, "o-5", buyer="bob").status in {OrderStatus.PLACED, OrderStatus.RESERVED}


@pytest.mark.parametrize("deduction", list(Deduction))
def test_a_per_buyer_limit_does_not_count_cancelled_orders(sg: Stockguard, deduction: Deduction) -> None:
    _limited(sg, deduction, limit=2)
    place(sg, "o-1", 2, buyer="alice")
    with pytest.raises(LimitExceeded):
        place(sg, "o-2", 1, buyer="alice")
    sg.cancel("o-1")
    assert place(sg, "o-2", 2, buyer="alice").buyer_id == "alice"


def test_a_per_buyer_limit_counts_units_not_orders(sg: Stockguard) -> None:
    _limited(sg, "order", limit=3)
    with pytest.raises(LimitExceeded):
        place(sg, "o-1", 4, buyer="alice")
    place(sg, "o-1", 2, buyer="alice")
    with pytest.raises(LimitExceeded):
        place(sg, "o-2", 2, buyer="alice")
    place(sg, "o-2", 1, buyer="alice")


def test_a_per_buyer_limit_does_not_count_swept_expired_orders(sg: Stockguard, clock: FakeClock) -> None:
    _limited(sg, "reserve", limit=1, hold_seconds=60)
    place(sg, "o-1", buyer="alice")
    clock.advance(61)
    assert sg.expire_due() == 1
    assert place(sg, "o-2", buyer="alice").status is OrderStatus.RESERVED


def test_a_per_buyer_limit_does_not_count_expired_orders_nobody_swept(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    _limited(sg, "reserve", limit=1, hold_seconds=60)
    place(sg, "o-1", buyer="alice")
    clock.advance(61)
    assert place(sg, "o-2", buyer="alice").status is OrderStatus.RESERVED
    assert stored_order(store, "o-1").status is OrderStatus.EXPIRED


def test_paying_an_expired_order_cannot_pass_the_per_buyer_limit(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    _limited(sg, "reserve", limit=1, hold_seconds=60)
    place(sg, "o-1", buyer="alice")
    clock.advance(61)
    sg.expire_due()
    place(sg, "o-2", buyer="alice")
    with pytest.raises((LimitExceeded, HoldExpired)):
        sg.pay("o-1")
    assert stored_order(store, "o-1").status is OrderStatus.EXPIRED
    assert counters(store)[1:3] == (1, 0)


# -- quotas


def test_a_quota_caps_what_a_listing_sells(sg: Stockguard, store: Store) -> None:
    stock(sg, units=100)
    sell(sg, "order", quota=3)
    assert sg.get_listing("bottle").sellable == 3
    place(sg, "o-1", 2)
    assert sg.get_listing("bottle").sellable == 1
    with pytest.raises(SoldOut):
        place(sg, "o-2", 2)
    place(sg, "o-3", 1)
    assert sg.get_listing("bottle").sold == 3
    assert sg.get_listing("bottle").sellable == 0
    assert counters(store) == (100, 3, 0, 0, 0)


def test_a_quota_of_zero_sells_nothing(sg: Stockguard) -> None:
    stock(sg, units=100)
    sell(sg, "order", quota=0)
    assert sg.get_listing("bottle").sellable == 0
    with pytest.raises(SoldOut):
        place(sg, "o-1")


def test_a_quota_is_per_listing_not_per_item(sg: Stockguard) -> None:
    stock(sg, units=100)
    sell(sg, "order", "campaign", quota=1)
    sell(sg, "order", "shelf")
    place(sg, "o-1", 1, "campaign")
    with pytest.raises(SoldOut):
        place(sg, "o-2", 1, "campaign")
    place(sg, "o-3", 5, "shelf")
    assert sg.get_listing("campaign").sold == 1
    assert sg.get_listing("shelf").sold == 5


def test_a_cancellation_gives_the_quota_back_but_a_shipment_does_not(sg: Stockguard) -> None:
    stock(sg, units=100)
    sell(sg, "order", quota=2)
    place(sg, "o-1")
    place(sg, "o-2")
    sg.cancel("o-1")
    place(sg, "o-3")
    sg.pay("o-2")
    sg.ship("o-2")
    with pytest.raises(SoldOut):
        place(sg, "o-4")
    assert sg.get_listing("bottle").sold == 2


def test_a_payment_strategy_quota_is_taken_at_payment(sg: Stockguard, store: Store) -> None:
    stock(sg, units=100)
    sell(sg, "payment", quota=1)
    place(sg, "o-1")
    place(sg, "o-2")
    sg.pay("o-1")
    with pytest.raises(SoldOut):
        sg.pay("o-2")
    assert sg.get_order("o-2").status is OrderStatus.PLACED
    assert counters(store) == (100, 0, 1, 0, 0)


def test_a_swept_expired_hold_gives_the_quota_back(sg: Stockguard, clock: FakeClock) -> None:
    stock(sg, units=100)
    sell(sg, "reserve", quota=1, hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    sg.expire_due()
    assert place(sg, "o-2").status is OrderStatus.RESERVED


def test_an_expired_hold_gives_the_quota_back_when_nobody_sweeps(
    sg: Stockguard, store: Store, clock: FakeClock
) -> None:
    stock(sg, units=100)
    sell(sg, "reserve", quota=1, hold_seconds=60)
    place(sg, "o-1")
    clock.advance(61)
    assert place(sg, "o-2").status is OrderStatus.RESERVED
    assert stored_order(store, "o-1").status is OrderStatus.EXPIRED


# -- check: the ledger proves the counters


def _busy_shop(sg: Stockguard, clock: FakeClock) -> None:
    """on_hand 10, reserved 2, committed 3, safety 1, incoming 4; listing sold 5."""
    stock(sg, units=10, safety=1)
    sell(sg, "reserve")
    place(sg, "o-1", 2)
    place(sg, "o-2", 3)
    sg.pay("o-2")
    sg.expect("s-1", BOTTLE, 4, clock.now() + timedelta(days=1))


def test_check_is_empty_after_a_busy_day(sg: Stockguard, store: Store, clock: FakeClock) -> None:
    _busy_shop(sg, clock)
    assert counters(store) == (10, 2, 3, 1, 4)
    assert sg.check() == []


CHECKED_DRIFTS = {
    Counter.ON_HAND: [Drift(f"on_hand of {BOTTLE} in main against the ledger", 11, 10)],
    Counter.RESERVED: [
        Drift(f"reserved of {BOTTLE} in main against the ledger", 3, 2),
        Drift(f"reserved of {BOTTLE} in main against orders", 3, 2),
    ],
    Counter.COMMITTED: [
        Drift(f"committed of {BOTTLE} in main against the ledger", 4, 3),
        Drift(f"committed of {BOTTLE} in main against orders", 4, 3),
    ],
    Counter.SAFETY: [Drift(f"safety of {BOTTLE} in main against the ledger", 2, 1)],
    Counter.INCOMING: [
        Drift(f"incoming of {BOTTLE} in main against the ledger", 5, 4),
        Drift(f"incoming of {BOTTLE} in main against shipments in transit", 5, 4),
    ],
    Counter.PRESOLD: [
        Drift(f"presold of {BOTTLE} in main against the ledger", 1, 0),
        Drift(f"presold of {BOTTLE} in main against orders", 1, 0),
    ],
}


@pytest.mark.parametrize("counter", list(Counter))
def test_check_names_every_difference_when_a_counter_is_changed_behind_its_back(
    sg: Stockguard, store: Store, store_kind: StoreKind, clock: FakeClock, counter: Counter
) -> None:
    _busy_shop(sg, clock)
    store_kind.tamper_level(store, BOTTLE, "main", counter, +1)
    drifts = sg.check()
    assert sorted(drifts, key=str) == sorted(CHECKED_DRIFTS[counter], key=str)
    store_kind.tamper_level(store, BOTTLE, "main", counter, -1)  # the autouse check sees it mended


def test_check_names_a_listing_whose_sold_units_were_changed_behind_its_back(
    sg: Stockguard, store: Store, store_kind: StoreKind, clock: FakeClock
) -> None:
    _busy_shop(sg, clock)
    store_kind.tamper_sold(store, "bottle", -2)
    assert sg.check() == [Drift("sold of listing bottle against orders", 3, 5)]
    store_kind.tamper_sold(store, "bottle", +2)


# -- bad input changes nothing and gets a clear, typed error


@dataclass(frozen=True)
class BadCall:
    name: str
    call: Callable[[Stockguard, FakeClock], object]
    error: type[StockguardError]


def _bad(name: str, error: type[StockguardError], call: Callable[[Stockguard, FakeClock], object]) -> BadCall:
    return BadCall(name, call, error)


def _any(value: object) -> Any:
    """Let a deliberately ill-typed value through the type checker."""
    return cast(Any, value)


def _placing(order_id: object, lines: object) -> Callable[[Stockguard, FakeClock], object]:
    return lambda sg, _c: sg.place_order(_any(order_id), "alice", _any(lines))


def _acting(action: str, order_id: str) -> Callable[[Stockguard, FakeClock], object]:
    return lambda sg, _c: getattr(sg, action)(order_id)


BAD_CALLS = [
    # placements
    *[
        _bad(f"place-quantity-{q!r}", InvalidInput, _placing("o-9", [("bottle", q)]))
        for q in (0, -1, True, 1.0, 2.5, "1", None, 1_000_000_001)
    ],
    *[
        _bad(f"place-order-id-{i!r}", InvalidInput, _placing(i, [("bottle", 1)]))
        for i in ("", "a b", "x" * 65, "caf\u00e9", "o/1", 7, None)
    ],
    _bad("place-buyer-id", InvalidInput, lambda sg, _c: sg.place_order("o-9", "al ice", [("bottle", 1)])),
    _bad("place-listing-id", InvalidInput, lambda sg, _c: sg.place_order("o-9", "alice", [("bot tle", 1)])),
    _bad("place-no-lines", InvalidInput, lambda sg, _c: sg.place_order("o-9", "alice", [])),
    _bad(
        "place-101-lines",
        InvalidInput,
        lambda sg, _c: sg.place_order("o-9", "alice", [(f"l{n}", 1) for n in range(101)]),
    ),
    _bad(
        "place-duplicate-lines",
        InvalidInput,
        lambda sg, _c: sg.place_order("o-9", "alice", [("bottle", 1), ("bottle", 1)]),
    ),
    _bad(
        "place-unknown-listing", UnknownListing, lambda sg, _c: sg.place_order("o-9", "alice", [("nope", 1)])
    ),
    _bad(
        "place-unknown-listing-on-second-line",
        UnknownListing,
        lambda sg, _c: sg.place_order("o-9", "alice", [("bottle", 1), ("nope", 1)]),
    ),
    _bad(
        "place-line-of-three",
        InvalidInput,
        lambda sg, _c: sg.place_order("o-9", "alice", _any([("bottle", 1, 2)])),
    ),
    _bad(
        "place-line-of-one", InvalidInput, lambda sg, _c: sg.place_order("o-9", "alice", _any([("bottle",)]))
    ),
    _bad("place-line-none", InvalidInput, lambda sg, _c: sg.place_order("o-9", "alice", _any([None]))),
    _bad("place-lines-none", InvalidInput, lambda sg, _c: sg.place_order("o-9", "alice", _any(None))),
    # order actions
    *[
        _bad(f"{action}-unknown-order", UnknownOrder, _acting(action, "nope"))
        for action in ("pay", "cancel", "ship", "get_order")
    ],
    *[
        _bad(f"{action}-bad-order-id", InvalidInput, _acting(action, "bad id"))
        for action in ("pay", "cancel", "ship", "get_order")
    ],
    _bad("movements-bad-order-id", InvalidInput, lambda sg, _c: sg.movements(order_id="bad id")),
    # stock
    _bad("receive-unknown-sku", UnknownItem, lambda sg, _c: sg.receive("nope", 1)),
    _bad("receive-zero", InvalidInput, lambda sg, _c: sg.receive(BOTTLE, 0)),
    _bad("receive-bool", InvalidInput, lambda sg, _c: sg.receive(BOTTLE, True)),
    _bad("receive-too-many", InvalidInput, lambda sg, _c: sg.receive(BOTTLE, 1_000_000_001)),
    _bad("receive-bad-warehouse", InvalidInput, lambda sg, _c: sg.receive(BOTTLE, 1, "no where")),
    _bad("receive-blank-reference", InvalidInput, lambda sg, _c: sg.receive(BOTTLE, 1, reference=" ")),
    _bad("count-unknown-sku", UnknownItem, lambda sg, _c: sg.count("nope", 1, "stocktake")),
    _bad("count-negative", InvalidInput, lambda sg, _c: sg.count(BOTTLE, -1, "stocktake")),
    _bad("count-float", InvalidInput, lambda sg, _c: sg.count(BOTTLE, _any(1.0), "stocktake")),
    _bad("count-blank-reason", InvalidInput, lambda sg, _c: sg.count(BOTTLE, 1, "")),
    _bad("expect-unknown-sku", UnknownItem, lambda sg, c: sg.expect("s-9", "nope", 1, c.now())),
    _bad("expect-zero", InvalidInput, lambda sg, c: sg.expect("s-9", BOTTLE, 0, c.now())),
    _bad(
        "expect-naive-time",
        InvalidInput,
        lambda sg, c: sg.expect("s-9", BOTTLE, 1, c.now().replace(tzinfo=None)),
    ),
    _bad(
        "expect-time-not-a-datetime", InvalidInput, lambda sg, _c: sg.expect("s-9", BOTTLE, 1, _any("soon"))
    ),
    _bad("expect-other-contents", InvalidInput, lambda sg, c: sg.expect("s-1", BOTTLE, 99, c.now())),
    _bad("arrive-unknown-shipment", UnknownShipment, lambda sg, _c: sg.arrive("nope")),
    _bad("arrive-negative", InvalidInput, lambda sg, _c: sg.arrive("s-1", -1)),
    # catalog
    _bad("warehouse-negative-priority", InvalidInput, lambda sg, _c: sg.put_warehouse("north", -1)),
    _bad("warehouse-bad-name", InvalidInput, lambda sg, _c: sg.put_warehouse("no where")),
    _bad("item-bad-sku", InvalidInput, lambda sg, _c: sg.put_item("bad sku", "Bad")),
    _bad("item-blank-name", InvalidInput, lambda sg, _c: sg.put_item(BOTTLE, "  ")),
    _bad("item-negative-safety", InvalidInput, lambda sg, _c: sg.put_item(BOTTLE, "Maotai", safety=-1)),
    _bad("listing-unknown-sku", UnknownItem, lambda sg, _c: sg.put_listing("x", "X", [("nope", 1)], "order")),
    _bad("listing-no-components", InvalidInput, lambda sg, _c: sg.put_listing("x", "X", [], "order")),
    _bad(
        "listing-duplicate-sku",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1), (BOTTLE, 2)], "order"),
    ),
    _bad(
        "listing-zero-component",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 0)], "order"),
    ),
    _bad(
        "listing-bad-deduction", InvalidInput, lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1)], "later")
    ),
    _bad(
        "listing-zero-hold",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1)], "reserve", hold_seconds=0),
    ),
    _bad(
        "listing-day-and-a-second-hold",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1)], "reserve", hold_seconds=86_401),
    ),
    _bad(
        "listing-zero-limit",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1)], "order", per_buyer_limit=0),
    ),
    _bad(
        "listing-negative-quota",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", [(BOTTLE, 1)], "order", quota=-1),
    ),
    _bad(
        "listing-replaced-with-unknown-sku",
        UnknownItem,
        lambda sg, _c: sg.put_listing("bottle", "X", [("nope", 1)], "payment"),
    ),
    _bad(
        "listing-component-of-one",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", _any([(BOTTLE,)]), "order"),
    ),
    _bad(
        "listing-component-of-three",
        InvalidInput,
        lambda sg, _c: sg.put_listing("x", "X", _any([(BOTTLE, 1, 2)]), "order"),
    ),
    _bad(
        "listing-components-none", InvalidInput, lambda sg, _c: sg.put_listing("x", "X", _any(None), "order")
    ),
]


@pytest.mark.parametrize("bad", BAD_CALLS, ids=lambda bad: bad.name)
def test_bad_input_changes_nothing_and_gets_a_typed_error(
    sg: Stockguard, store: Store, clock: FakeClock, bad: BadCall
) -> None:
    stock(sg, units=5)
    sell(sg, "reserve")
    place(sg, "o-1", 2)
    sg.expect("s-1", BOTTLE, 3, clock.now())
    before = snapshot(store, skus=(BOTTLE, "nope", "bad sku"), shipment_ids=("s-1", "s-9", "nope"))
    with pytest.raises(bad.error) as refused:
        bad.call(sg, clock)
    assert refused.value.detail
    assert snapshot(store, skus=(BOTTLE, "nope", "bad sku"), shipment_ids=("s-1", "s-9", "nope")) == before
