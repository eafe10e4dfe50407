"""The pure rules of deduction: sellable, allocation, transitions and the movements they write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockguard import (
    Allocation,
    Component,
    Counter,
    Deduction,
    FulfilFrom,
    InvalidTransition,
    Level,
    Listing,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
    SoldOut,
)
from stockguard.domain import rules
from stockguard.domain.rules import Action

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def level(
    sku: str,
    warehouse: str = "main",
    *,
    on_hand: int = 0,
    reserved: int = 0,
    committed: int = 0,
    safety: int = 0,
    priority: int = 100,
) -> Level:
    return Level(sku, warehouse, on_hand, reserved, committed, safety, priority=priority)


def listing(*components: tuple[str, int], quota: int | None = None) -> Listing:
    parts = tuple(Component(sku, quantity) for sku, quantity in components)
    return Listing("l", "L", parts, Deduction.RESERVE, quota=quota)


def order(status: OrderStatus, expires_at: datetime | None = None) -> Order:
    return Order(
        "o-1",
        "alice",
        (OrderLine("l", 1),),
        Deduction.RESERVE,
        status,
        created_at=NOW,
        updated_at=NOW,
        expires_at=expires_at,
        allocations=(Allocation("bottle", "north", 2), Allocation("bottle", "south", 1)),
    )


# -- levels


def test_available_is_on_hand_minus_reserved_committed_and_safety() -> None:
    lv = level("bottle", on_hand=10, reserved=2, committed=3, safety=1)
    assert lv.available == 4
    assert not lv.short


def test_a_level_promising_more_than_it_holds_is_short() -> None:
    assert level("bottle", on_hand=2, reserved=2, safety=1).short
    assert not level("bottle", on_hand=3, reserved=2, safety=1).short


# -- sellable


def test_sellable_of_a_single_item_listing_is_its_available_stock() -> None:
    levels = {"bottle": [level("bottle", on_hand=7, reserved=2)]}
    assert rules.sellable(listing(("bottle", 1)), levels, sold=0) == 5


def test_sellable_of_a_bundle_is_the_min_over_components_of_floor_available_over_quantity() -> None:
    # A gift box: 1 bottle + 2 glasses. 5 bottles, 7 glasses: 3 boxes (glasses run out first).
    levels = {"bottle": [level("bottle", on_hand=5)], "glass": [level("glass", on_hand=7)]}
    assert rules.sellable(listing(("bottle", 1), ("glass", 2)), levels, sold=0) == 3


def test_sellable_sums_an_item_over_its_warehouses() -> None:
    levels = {"bottle": [level("bottle", "north", on_hand=2), level("bottle", "south", on_hand=3)]}
    assert rules.sellable(listing(("bottle", 2)), levels, sold=0) == 2


def test_sellable_keeps_safety_stock_back() -> None:
    levels = {"bottle": [level("bottle", on_hand=5, safety=2)]}
    assert rules.sellable(listing(("bottle", 1)), levels, sold=0) == 3


def test_sellable_is_capped_by_what_is_left_of_the_quota() -> None:
    levels = {"bottle": [level("bottle", on_hand=100)]}
    assert rules.sellable(listing(("bottle", 1), quota=10), levels, sold=0) == 10
    assert rules.sellable(listing(("bottle", 1), quota=10), levels, sold=7) == 3
    assert rules.sellable(listing(("bottle", 1), quota=10), levels, sold=10) == 0


def test_sellable_is_never_negative_when_more_than_the_quota_was_sold() -> None:
    levels = {"bottle": [level("bottle", on_hand=100)]}
    assert rules.sellable(listing(("bottle", 1), quota=3), levels, sold=5) == 0


def test_stock_caps_sellable_below_the_quota() -> None:
    levels = {"bottle": [level("bottle", on_hand=4)]}
    assert rules.sellable(listing(("bottle", 1), quota=10), levels, sold=2) == 4


def test_an_item_without_levels_sells_nothing() -> None:
    assert (
        rules.sellable(listing(("bottle", 1), ("glass", 1)), {"bottle": [level("bottle", on_hand=3)]}, 0) == 0
    )


def test_a_shortage_in_any_warehouse_stops_sales_of_the_item() -> None:
    levels = {
        "bottle": [
            level("bottle", "north", on_hand=50),
            level("bottle", "south", on_hand=1, reserved=2),  # counted below what was promised
        ]
    }
    assert rules.item_available(levels["bottle"]) == 0
    assert rules.sellable(listing(("bottle", 1)), levels, sold=0) == 0
    with pytest.raises(SoldOut):
        rules.allocate({"bottle": 1}, levels)


# -- required units


def test_required_units_expand_bundles_and_add_up_items_shared_by_lines() -> None:
    listings = {
        "box": Listing("box", "Box", (Component("bottle", 1), Component("glass", 2)), Deduction.ORDER),
        "single": Listing("single", "Single", (Component("bottle", 1),), Deduction.ORDER),
    }
    lines = [OrderLine("box", 3), OrderLine("single", 2)]
    assert rules.required_units(lines, listings) == {"bottle": 5, "glass": 6}


# -- allocation


def test_allocation_takes_from_the_lowest_priority_number_first() -> None:
    south, north = (
        level("bottle", "south", on_hand=10, priority=2),
        level("bottle", "north", on_hand=10, priority=1),
    )
    assert rules.allocate({"bottle": 4}, {"bottle": [south, north]}) == (Allocation("bottle", "north", 4),)
    north.priority = 9
    assert rules.allocate({"bottle": 4}, {"bottle": [south, north]}) == (Allocation("bottle", "south", 4),)


def test_allocation_splits_across_warehouses_in_priority_order() -> None:
    levels = {
        "bottle": [
            level("bottle", "a", on_hand=5, priority=3),
            level("bottle", "b", on_hand=2, reserved=1, priority=1),
            level("bottle", "c", on_hand=9, priority=2),
        ]
    }
    assert rules.allocate({"bottle": 8}, levels) == (
        Allocation("bottle", "b", 1),
        Allocation("bottle", "c", 7),
    )
    assert rules.allocate({"bottle": 12}, levels) == (
        Allocation("bottle", "b", 1),
        Allocation("bottle", "c", 9),
        Allocation("bottle", "a", 2),
    )


def test_allocation_breaks_priority_ties_by_warehouse_name() -> None:
    levels = {
        "bottle": [
            level("bottle", "zeta", on_hand=1),
            level("bottle", "alpha", on_hand=1),
            level("bottle", "mid", on_hand=1),
        ]
    }
    result = rules.allocate({"bottle": 3}, levels)
    assert [a.warehouse for a in result] == ["alpha", "mid", "zeta"]


def test_allocation_skips_warehouses_with_nothing_available_and_keeps_safety() -> None:
    levels = {
        "bottle": [
            level("bottle", "north", on_hand=3, safety=3, priority=1),
            level("bottle", "south", on_hand=4, safety=1, priority=2),
        ]
    }
    assert rules.allocate({"bottle": 3}, levels) == (Allocation("bottle", "south", 3),)
    with pytest.raises(SoldOut):
        rules.allocate({"bottle": 4}, levels)


def test_allocation_refuses_the_whole_order_when_any_item_lacks_units() -> None:
    levels = {"bottle": [level("bottle", on_hand=10)], "glass": [level("glass", on_hand=1)]}
    with pytest.raises(SoldOut):
        rules.allocate({"bottle": 1, "glass": 2}, levels)
    with pytest.raises(SoldOut):
        rules.allocate({"bottle": 1, "cork": 1}, levels)


def test_allocation_covers_every_item_of_a_bundle() -> None:
    levels = {"bottle": [level("bottle", on_hand=10)], "glass": [level("glass", on_hand=4)]}
    assert rules.allocate({"glass": 4, "bottle": 2}, levels) == (
        Allocation("bottle", "main", 2),
        Allocation("glass", "main", 4),
    )


@given(
    st.lists(
        st.tuples(
            st.integers(0, 20), st.integers(0, 5), st.integers(0, 5), st.integers(0, 3), st.integers(0, 3)
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 60),
)
def test_allocation_takes_exactly_the_need_never_more_than_available_and_in_priority_order(
    shape: list[tuple[int, int, int, int, int]], need: int
) -> None:
    levels = [
        Level(
            "bottle",
            f"w{i}",
            on_hand=on_hand,
            reserved=reserved,
            committed=committed,
            safety=safety,
            priority=priority,
        )
        for i, (on_hand, reserved, committed, safety, priority) in enumerate(shape)
    ]
    short = any(lv.short for lv in levels)
    total = 0 if short else sum(lv.available for lv in levels)
    if total < need:
        with pytest.raises(SoldOut):
            rules.allocate({"bottle": need}, {"bottle": levels})
        return
    result = rules.allocate({"bottle": need}, {"bottle": levels})
    assert sum(a.quantity for a in result) == need
    by_name = {lv.warehouse: lv for lv in levels}
    assert all(0 < a.quantity <= by_name[a.warehouse].available for a in result)
    assert len({a.warehouse for a in result}) == len(result)
    # Every warehouse ranked ahead of the last one used gave all it had.
    ranked = sorted(levels, key=lambda lv: (lv.priority, lv.warehouse))
    last = max(ranked.index(by_name[a.warehouse]) for a in result)
    taken = {a.warehouse: a.quantity for a in result}
    for lv in ranked[:last]:
        assert taken.get(lv.warehouse, 0) == max(lv.available, 0)


# -- transitions

OK, REPLAY, INVALID = "ok", "replay", "invalid"
# The whole lifecycle of DOMAIN.md, spelled out: what each action does from each status.
TRANSITIONS: dict[tuple[Action, OrderStatus], str] = {
    (Action.PAY, OrderStatus.PLACED): OK,
    (Action.PAY, OrderStatus.RESERVED): OK,
    (Action.PAY, OrderStatus.EXPIRED): OK,  # takes stock again if any is left
    (Action.PAY, OrderStatus.PAID): REPLAY,
    (Action.PAY, OrderStatus.SHIPPED): REPLAY,
    (Action.PAY, OrderStatus.CANCELLED): INVALID,
    (Action.CANCEL, OrderStatus.PLACED): OK,
    (Action.CANCEL, OrderStatus.RESERVED): OK,
    (Action.CANCEL, OrderStatus.PAID): OK,
    (Action.CANCEL, OrderStatus.CANCELLED): REPLAY,
    (Action.CANCEL, OrderStatus.SHIPPED): INVALID,
    (Action.CANCEL, OrderStatus.EXPIRED): OK,  # stops a later payment from taking stock again
    (Action.SHIP, OrderStatus.PAID): OK,
    (Action.SHIP, OrderStatus.SHIPPED): REPLAY,
    (Action.SHIP, OrderStatus.PLACED): INVALID,
    (Action.SHIP, OrderStatus.RESERVED): INVALID,
    (Action.SHIP, OrderStatus.CANCELLED): INVALID,
    (Action.SHIP, OrderStatus.EXPIRED): INVALID,
    (Action.EXPIRE, OrderStatus.RESERVED): OK,
    (Action.EXPIRE, OrderStatus.EXPIRED): REPLAY,
    (Action.EXPIRE, OrderStatus.PLACED): INVALID,
    (Action.EXPIRE, OrderStatus.PAID): INVALID,
    (Action.EXPIRE, OrderStatus.SHIPPED): INVALID,
    (Action.EXPIRE, OrderStatus.CANCELLED): INVALID,
}


def test_the_transition_table_covers_every_action_and_status() -> None:
    assert set(TRANSITIONS) == {(a, s) for a in Action for s in OrderStatus}


@pytest.mark.parametrize(("action", "status"), sorted(TRANSITIONS), ids=lambda v: str(v))
def test_each_transition_is_allowed_replayed_or_refused_as_the_lifecycle_says(
    action: Action, status: OrderStatus
) -> None:
    expected = TRANSITIONS[(action, status)]
    subject = order(status)
    assert rules.is_replay(subject, action) is (expected == REPLAY)
    if expected == INVALID:
        with pytest.raises(InvalidTransition, match=action.value):
            rules.check_transition(subject, action)
    elif expected == OK:
        rules.check_transition(subject, action)
        assert rules.TARGET[action] is not status


def test_each_action_leads_to_its_status() -> None:
    assert rules.TARGET == {
        Action.PAY: OrderStatus.PAID,
        Action.CANCEL: OrderStatus.CANCELLED,
        Action.SHIP: OrderStatus.SHIPPED,
        Action.EXPIRE: OrderStatus.EXPIRED,
    }


def test_a_reserved_hold_is_due_from_its_expiry_time_on() -> None:
    expires = NOW + timedelta(seconds=900)
    held = order(OrderStatus.RESERVED, expires)
    assert not rules.is_due(held, expires - timedelta(microseconds=1))
    assert rules.is_due(held, expires)
    assert rules.is_due(held, expires + timedelta(days=1))


@pytest.mark.parametrize("status", [s for s in OrderStatus if s is not OrderStatus.RESERVED])
def test_only_reserved_orders_are_ever_due(status: OrderStatus) -> None:
    assert not rules.is_due(order(status, NOW - timedelta(days=1)), NOW)


def test_a_hold_without_an_expiry_is_never_due() -> None:
    assert not rules.is_due(order(OrderStatus.RESERVED, None), NOW + timedelta(days=3650))


# -- the movements each step writes


ALLOCS = (Allocation("bottle", "north", 2), Allocation("glass", "south", 3))


def deltas(movements: list[Movement]) -> list[tuple[str, str, Counter, int, Reason]]:
    for m in movements:
        assert m.order_id == "o-1"
        assert m.at == NOW
    return [(m.sku, m.warehouse, m.counter, m.delta, m.reason) for m in movements]


def test_a_hold_raises_reserved() -> None:
    assert deltas(rules.hold_movements(ALLOCS, "o-1", NOW)) == [
        ("bottle", "north", Counter.RESERVED, 2, Reason.HOLD),
        ("glass", "south", Counter.RESERVED, 3, Reason.HOLD),
    ]


def test_paying_a_hold_moves_units_from_reserved_to_committed() -> None:
    held = replace(order(OrderStatus.RESERVED), allocations=ALLOCS)
    assert deltas(rules.commit_movements(held, NOW)) == [
        ("bottle", "north", Counter.RESERVED, -2, Reason.COMMIT),
        ("bottle", "north", Counter.COMMITTED, 2, Reason.COMMIT),
        ("glass", "south", Counter.RESERVED, -3, Reason.COMMIT),
        ("glass", "south", Counter.COMMITTED, 3, Reason.COMMIT),
    ]


def test_presold_units_stay_presold_when_paid_and_move_onto_stock_when_they_arrive() -> None:
    presold = replace(order(OrderStatus.RESERVED), allocations=ALLOCS, fulfil_from=FulfilFrom.INCOMING)
    assert deltas(rules.hold_movements(ALLOCS, "o-1", NOW, FulfilFrom.INCOMING)) == [
        ("bottle", "north", Counter.PRESOLD, 2, Reason.HOLD),
        ("glass", "south", Counter.PRESOLD, 3, Reason.HOLD),
    ]
    assert rules.commit_movements(presold, NOW) == []
    assert deltas(rules.arrival_movements(replace(presold, status=OrderStatus.PAID), NOW)) == [
        ("bottle", "north", Counter.PRESOLD, -2, Reason.ARRIVAL),
        ("bottle", "north", Counter.COMMITTED, 2, Reason.ARRIVAL),
        ("glass", "south", Counter.PRESOLD, -3, Reason.ARRIVAL),
        ("glass", "south", Counter.COMMITTED, 3, Reason.ARRIVAL),
    ]
    assert deltas(rules.return_movements(presold, Reason.EXPIRE, NOW)) == [
        ("bottle", "north", Counter.PRESOLD, -2, Reason.EXPIRE),
        ("glass", "south", Counter.PRESOLD, -3, Reason.EXPIRE),
    ]


def test_taking_at_payment_raises_committed_only() -> None:
    assert deltas(rules.take_movements(ALLOCS, "o-1", NOW)) == [
        ("bottle", "north", Counter.COMMITTED, 2, Reason.COMMIT),
        ("glass", "south", Counter.COMMITTED, 3, Reason.COMMIT),
    ]


def test_returning_a_hold_lowers_reserved_and_returning_a_paid_order_lowers_committed() -> None:
    held = replace(order(OrderStatus.RESERVED), allocations=ALLOCS)
    paid = replace(held, status=OrderStatus.PAID)
    assert deltas(rules.return_movements(held, Reason.EXPIRE, NOW)) == [
        ("bottle", "north", Counter.RESERVED, -2, Reason.EXPIRE),
        ("glass", "south", Counter.RESERVED, -3, Reason.EXPIRE),
    ]
    assert deltas(rules.return_movements(paid, Reason.CANCEL, NOW)) == [
        ("bottle", "north", Counter.COMMITTED, -2, Reason.CANCEL),
        ("glass", "south", Counter.COMMITTED, -3, Reason.CANCEL),
    ]


def test_shipping_lowers_committed_and_on_hand() -> None:
    paid = replace(order(OrderStatus.PAID), allocations=ALLOCS)
    assert deltas(rules.ship_movements(paid, NOW)) == [
        ("bottle", "north", Counter.COMMITTED, -2, Reason.SHIP),
        ("bottle", "north", Counter.ON_HAND, -2, Reason.SHIP),
        ("glass", "south", Counter.COMMITTED, -3, Reason.SHIP),
        ("glass", "south", Counter.ON_HAND, -3, Reason.SHIP),
    ]
