"""Selling incoming stock, proved once per store: presale holds only a share of the shipments due by
the cut-off, never touches stock on hand, moves onto the stock when it arrives, oldest first, and a
late or short shipment is reported with the orders it leaves waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from conftest import FakeClock
from stockguard import (
    Counter,
    FulfilFrom,
    InvalidInput,
    InvalidTransition,
    OrderContext,
    OrderStatus,
    Presale,
    SoldOut,
    Stockguard,
    StreamKind,
)

BOTTLE = "maotai-500ml"


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    yield
    assert sg.check() == []


def presale_shop(
    sg: Stockguard, clock: FakeClock, on_hand: int = 2, incoming: int = 10, share: int = 50, days: int = 10
) -> None:
    """Bottles on hand, a shipment due in a week, a listing selling ahead what arrives within ``days``."""
    sg.put_item(BOTTLE, "Maotai 500 ml")
    if on_hand:
        sg.receive(BOTTLE, on_hand)
    sg.expect("ship-1", BOTTLE, incoming, clock.now() + timedelta(days=7))
    terms = Presale(clock.now() + timedelta(days=days), share)
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "reserve", hold_seconds=3600, presale_terms=terms)


def counter(sg: Stockguard, which: Counter) -> int:
    return sg.get_item(BOTTLE).total(which)


def test_once_stock_on_hand_is_gone_orders_hold_a_share_of_incoming_stock(
    sg: Stockguard, clock: FakeClock
) -> None:
    presale_shop(sg, clock)
    assert sg.get_listing("bottle").presale_left == 5
    on_hand = sg.place_order("o-1", "alice", [("bottle", 2)]).order
    assert (on_hand.fulfil_from, on_hand.expected_at) == (FulfilFrom.STOCK, None)

    ahead = sg.place_order("o-2", "bob", [("bottle", 3)]).order
    assert ahead.fulfil_from is FulfilFrom.INCOMING
    assert ahead.expected_at == clock.now() + timedelta(days=7)
    assert (counter(sg, Counter.PRESOLD), counter(sg, Counter.RESERVED), counter(sg, Counter.ON_HAND)) == (
        3,
        2,
        2,
    )
    stock = sg.get_listing("bottle")
    assert (stock.sellable, stock.presale_left, stock.sold) == (0, 2, 5)
    sg.place_order("o-3", "carol", [("bottle", 2)])
    with pytest.raises(SoldOut, match="on its way"):
        sg.place_order("o-4", "dave", [("bottle", 1)])
    assert sg.events(StreamKind.ITEM, BOTTLE)[-1].data["presold"] == 5


def test_only_shipments_due_by_the_cut_off_are_sold_ahead(sg: Stockguard, clock: FakeClock) -> None:
    presale_shop(sg, clock, on_hand=0, days=5)  # the shipment is due in seven
    assert sg.get_listing("bottle").presale_left == 0
    with pytest.raises(SoldOut):
        sg.place_order("o-1", "alice", [("bottle", 1)])
    sg.expect("ship-2", BOTTLE, 4, clock.now() + timedelta(days=3))
    order = sg.place_order("o-1", "alice", [("bottle", 2)]).order
    assert order.expected_at == clock.now() + timedelta(days=3)


def test_an_order_naming_warehouses_or_a_listing_without_presale_never_sells_ahead(
    sg: Stockguard, clock: FakeClock
) -> None:
    presale_shop(sg, clock, on_hand=0)
    with pytest.raises(SoldOut):
        sg.placing("o-1", "alice", [("bottle", 1)], OrderContext(warehouses=["main"])).result()
    sg.put_listing("plain", "Maotai", [(BOTTLE, 1)], "reserve")
    with pytest.raises(SoldOut):
        sg.place_order("o-2", "bob", [("bottle", 1), ("plain", 1)])


def test_a_presale_hold_expires_or_is_cancelled_and_a_paid_one_waits_to_ship(
    sg: Stockguard, clock: FakeClock
) -> None:
    presale_shop(sg, clock, on_hand=0)
    sg.place_order("o-1", "alice", [("bottle", 1)])
    sg.place_order("o-2", "bob", [("bottle", 2)])
    sg.place_order("o-3", "carol", [("bottle", 1)])
    assert counter(sg, Counter.PRESOLD) == 4
    sg.cancel("o-2")
    paid = sg.pay("o-3")
    assert (paid.status, paid.fulfil_from) == (OrderStatus.PAID, FulfilFrom.INCOMING)
    with pytest.raises(InvalidTransition, match="not arrived"):
        sg.ship("o-3")
    clock.advance(3601)
    assert sg.expire_due() == 1  # o-1
    assert (counter(sg, Counter.PRESOLD), counter(sg, Counter.COMMITTED)) == (1, 0)


def test_an_arrival_moves_the_oldest_presale_orders_onto_the_stock(sg: Stockguard, clock: FakeClock) -> None:
    presale_shop(sg, clock, on_hand=0)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    sg.place_order("o-2", "bob", [("bottle", 2)])
    sg.pay("o-2")
    report = sg.arrive("ship-1")
    assert (report.moved, report.waiting, report.uncovered) == (("o-1", "o-2"), (), ())
    assert (counter(sg, Counter.PRESOLD), counter(sg, Counter.RESERVED), counter(sg, Counter.COMMITTED)) == (
        0,
        2,
        2,
    )
    moved = sg.get_order("o-2")
    assert (moved.fulfil_from, moved.expected_at) == (FulfilFrom.STOCK, None)
    assert sg.ship("o-2").status is OrderStatus.SHIPPED
    assert sg.get_listing("bottle").sellable == 6
    assert [m.reason.value for m in sg.movements(order_id="o-1")] == ["hold", "arrival", "arrival"]


def test_a_short_shipment_moves_whom_it_can_first_come_first_served_and_reports_the_rest(
    sg: Stockguard, clock: FakeClock
) -> None:
    presale_shop(sg, clock, on_hand=0, share=100)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    sg.place_order("o-2", "bob", [("bottle", 2)])
    sg.place_order("o-3", "carol", [("bottle", 1)])  # would fit, but may not jump the queue
    report = sg.arrive("ship-1", received=3)
    assert report.moved == ("o-1",)
    assert report.waiting == ("o-2", "o-3")
    assert report.uncovered == ("o-3", "o-2"), "nothing else is on its way: youngest first"
    [issue] = sg.shipment_issues()
    assert (issue.kind, issue.short_by, issue.orders) == ("short", 3, ("o-3", "o-2"))
    assert (counter(sg, Counter.ON_HAND), counter(sg, Counter.RESERVED), counter(sg, Counter.PRESOLD)) == (
        3,
        2,
        3,
    )

    sg.expect("ship-2", BOTTLE, 5, clock.now() + timedelta(days=2))
    assert sg.shipment_issues() == []
    assert sg.arrive("ship-2").moved == ("o-2", "o-3")


def test_a_late_shipment_is_reported_with_the_orders_waiting_for_it(sg: Stockguard, clock: FakeClock) -> None:
    presale_shop(sg, clock, on_hand=0)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    assert sg.shipment_issues() == []
    clock.advance(timedelta(days=8).total_seconds())  # o-1's hold ran out long ago
    sg.place_order("o-2", "bob", [("bottle", 1)])
    sg.pay("o-2")
    [late] = sg.shipment_issues()
    assert (late.kind, late.orders) == ("late", ("o-2",))
    assert late.shipment is not None
    assert late.shipment.shipment_id == "ship-1"


def test_presale_terms_are_checked(sg: Stockguard, clock: FakeClock) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    for terms in (
        Presale(clock.now(), 0),
        Presale(clock.now(), 101),
        Presale(clock.now().replace(tzinfo=None), 50),
    ):
        with pytest.raises(InvalidInput, match="presale"):
            sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "reserve", presale_terms=terms)
