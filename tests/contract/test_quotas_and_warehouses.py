"""Channel quotas that start again each period, and which warehouse a hold takes from, proved once
per store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from conftest import FakeClock
from stockguard import (
    Counter,
    InvalidInput,
    OrderConflict,
    OrderContext,
    SoldOut,
    Stockguard,
    StreamKind,
)

BOTTLE = "maotai-500ml"


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    yield
    assert sg.check() == []


def until(clock: FakeClock, moment: datetime) -> None:
    clock.advance((moment - clock.now()).total_seconds())


def yearly(sg: Stockguard, quota: int, units: int = 100, deduction: str = "order") -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.receive(BOTTLE, units)
    sg.put_listing(
        "channel", "Maotai, one channel", [(BOTTLE, 1)], deduction, quota=quota, quota_period="year"
    )


# -- quotas that start again


def test_a_yearly_quota_starts_again_on_the_first_of_january(sg: Stockguard, clock: FakeClock) -> None:
    yearly(sg, quota=3)
    sg.place_order("o-1", "alice", [("channel", 2)])
    stock = sg.get_listing("channel")
    assert (stock.sellable, stock.quota_left) == (1, 1)
    assert stock.quota_resets_at == datetime(2026, 1, 1, tzinfo=UTC)
    sg.place_order("o-2", "bob", [("channel", 1)])
    with pytest.raises(SoldOut, match="quota"):
        sg.place_order("o-3", "carol", [("channel", 1)])

    until(clock, datetime(2026, 1, 1, tzinfo=UTC))
    stock = sg.get_listing("channel")
    assert (stock.sellable, stock.sold, stock.quota_left) == (3, 3, 3)
    assert stock.quota_resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    sg.place_order("o-3", "carol", [("channel", 3)])
    assert sg.get_listing("channel").quota_left == 0


def test_last_years_cancellation_gives_nothing_to_this_years_quota(sg: Stockguard, clock: FakeClock) -> None:
    yearly(sg, quota=2, deduction="order")
    sg.place_order("old", "alice", [("channel", 2)])
    until(clock, datetime(2026, 6, 1, tzinfo=UTC))
    sg.place_order("new", "bob", [("channel", 2)])
    sg.cancel("old")
    stock = sg.get_listing("channel")
    assert (stock.quota_left, stock.sellable, stock.sold) == (0, 0, 2)
    with pytest.raises(SoldOut):
        sg.place_order("more", "carol", [("channel", 1)])
    sg.cancel("new")
    assert sg.get_listing("channel").quota_left == 2


def test_an_expired_hold_gives_its_period_back(sg: Stockguard, clock: FakeClock) -> None:
    yearly(sg, quota=1)
    sg.put_listing(
        "channel", "Maotai", [(BOTTLE, 1)], "reserve", hold_seconds=60, quota=1, quota_period="month"
    )
    sg.place_order("o-1", "alice", [("channel", 1)])
    assert sg.get_listing("channel").quota_left == 0
    clock.advance(61)
    assert sg.get_listing("channel").quota_left == 1
    event = sg.events(StreamKind.LISTING, "channel")[-1]
    assert (event.data["quota"], event.data["quota_left"], event.data["sellable"]) == (1, 1, 1)


def test_a_quota_period_needs_a_quota_and_a_known_name(sg: Stockguard) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    with pytest.raises(InvalidInput, match="quota_period needs a quota"):
        sg.put_listing("x", "X", [(BOTTLE, 1)], "order", quota_period="year")
    with pytest.raises(InvalidInput, match="quota_period must be one of"):
        sg.put_listing("x", "X", [(BOTTLE, 1)], "order", quota=5, quota_period="decade")
    with pytest.raises(InvalidInput, match="warehouse_choice must be one of"):
        sg.put_listing("x", "X", [(BOTTLE, 1)], "order", warehouse_choice="cheapest")


# -- which warehouse


def two_warehouses(sg: Stockguard, choice: str = "priority") -> None:
    sg.put_warehouse("near", priority=1)
    sg.put_warehouse("far", priority=2)
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.receive(BOTTLE, 3, "near")
    sg.receive(BOTTLE, 10, "far")
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "reserve", warehouse_choice=choice)


def held(sg: Stockguard) -> dict[str, int]:
    return {lv.warehouse: lv.get(Counter.RESERVED) for lv in sg.get_item(BOTTLE).levels}


def test_by_priority_a_hold_takes_from_the_first_warehouse_then_the_next(sg: Stockguard) -> None:
    two_warehouses(sg)
    order = sg.place_order("o-1", "alice", [("bottle", 5)]).order
    assert [(a.warehouse, a.quantity) for a in order.allocations] == [("near", 3), ("far", 2)]


def test_by_most_available_a_hold_takes_from_the_fullest_warehouse(sg: Stockguard) -> None:
    two_warehouses(sg, "most_available")
    sg.place_order("o-1", "alice", [("bottle", 2)])
    assert held(sg) == {"near": 0, "far": 2}
    sg.place_order("o-2", "bob", [("bottle", 6)])  # far now has 8, near 3
    assert held(sg) == {"near": 0, "far": 8}
    sg.place_order("o-3", "carol", [("bottle", 3)])  # near 3, far 2: near is fullest now
    assert held(sg) == {"near": 3, "far": 8}


def test_an_order_naming_warehouses_takes_only_from_them_in_its_order(sg: Stockguard) -> None:
    two_warehouses(sg)
    nearest_far = OrderContext(warehouses=["far"])
    order = sg.placing("o-1", "alice", [("bottle", 4)], nearest_far).result().order
    assert [(a.warehouse, a.quantity) for a in order.allocations] == [("far", 4)]
    with pytest.raises(SoldOut, match="near"):
        sg.placing("o-2", "bob", [("bottle", 4)], OrderContext(warehouses=["near"])).result()
    with pytest.raises(SoldOut):
        sg.placing("o-3", "bob", [("bottle", 1)], OrderContext(warehouses=["moon"])).result()
    both = sg.placing("o-4", "carol", [("bottle", 5)], OrderContext(warehouses=["far", "near"])).result()
    assert [(a.warehouse, a.quantity) for a in both.order.allocations] == [("far", 5)]
    assert sg.get_order("o-4").context.warehouses == ("far", "near")
    # The warehouses are part of the order: the same id with others is another order.
    with pytest.raises(OrderConflict):
        sg.placing("o-4", "carol", [("bottle", 5)], OrderContext(warehouses=["near", "far"])).result()
    for bad in ([], ["far", "far"], ["bad name!"]):
        with pytest.raises(InvalidInput):
            sg.placing("o-5", "dave", [("bottle", 1)], OrderContext(warehouses=bad))


def test_paying_after_expiry_takes_again_from_the_named_warehouses(sg: Stockguard, clock: FakeClock) -> None:
    two_warehouses(sg)
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "reserve", hold_seconds=60)
    sg.placing("o-1", "alice", [("bottle", 2)], OrderContext(warehouses=["far"])).result()
    clock.advance(61)
    paid = sg.pay("o-1")
    assert [(a.warehouse, a.quantity) for a in paid.allocations] == [("far", 2)]


def test_a_sale_of_a_shared_item_tells_the_quota_listing_what_is_left_of_its_period(
    sg: Stockguard, clock: FakeClock
) -> None:
    """PostgreSQL writes this event on the server (the plain listing sells by its one-step path)."""
    yearly(sg, quota=5, units=6)
    sg.place_order("o-1", "alice", [("channel", 2)])
    until(clock, datetime(2026, 2, 1, tzinfo=UTC))
    sg.place_order("o-2", "bob", [("channel", 1)])
    sg.put_listing("plain", "Maotai, every channel", [(BOTTLE, 1)], "order")
    sg.place_order("o-3", "carol", [("plain", 2)])

    stock = sg.get_listing("channel")
    assert (stock.sellable, stock.quota_left) == (1, 4)
    event = sg.events(StreamKind.LISTING, "channel")[-1]
    assert (event.data["sellable"], event.data["quota_left"], event.data["sold"]) == (1, 4, 3)
