"""The operator's overview (what the dashboard shows), proved once per store: held and paid units per
listing, the holds running out minute by minute, levels and shortages, all from one read."""

from __future__ import annotations

from datetime import timedelta

from conftest import FakeClock
from stockguard import Stockguard

BOTTLE, GLASS = "maotai-500ml", "glass"


def stock_up(sg: Stockguard) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.put_item(GLASS, "Tasting glass")
    sg.receive(BOTTLE, 10)
    sg.receive(GLASS, 20)
    sg.put_listing("bottle", "One bottle", [(BOTTLE, 1)], "reserve", hold_seconds=150)
    sg.put_listing(
        "gift-box", "Bottle and two glasses", [(BOTTLE, 1), (GLASS, 2)], "reserve", hold_seconds=30
    )
    sg.put_listing("at-order", "Bottle, taken at order", [(BOTTLE, 1)], "order")


def test_each_listing_tells_held_units_from_paid_ones(sg: Stockguard) -> None:
    stock_up(sg)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    sg.place_order("o-2", "bob", [("bottle", 1), ("gift-box", 1)])
    sg.place_order("o-3", "carol", [("at-order", 1)])
    sg.pay("o-2")
    sg.cancel("o-1")
    sg.place_order("o-4", "dave", [("bottle", 3)])

    listings = {view.stock.listing.listing_id: view for view in sg.overview().listings}
    assert list(listings) == ["at-order", "bottle", "gift-box"]
    assert (listings["bottle"].held, listings["bottle"].taken) == (3, 1)
    assert (listings["gift-box"].held, listings["gift-box"].taken) == (0, 1)
    # `order` deduction holds without a deadline until it is paid: held, not yet paid.
    assert (listings["at-order"].held, listings["at-order"].taken) == (1, 0)
    assert listings["bottle"].stock.sellable == 10 - 3 - 1 - 1 - 1


def test_holds_running_out_are_counted_per_listing_and_minute(sg: Stockguard, clock: FakeClock) -> None:
    stock_up(sg)
    sg.place_order("o-box", "alice", [("gift-box", 2)])  # runs out in 30 s: minute 0
    sg.place_order("o-bottle", "bob", [("bottle", 1)])  # runs out in 150 s: minute 2
    clock.advance(20)
    sg.place_order("o-late", "carol", [("bottle", 3), ("gift-box", 1)])  # box's hold decides: 30 s
    sg.place_order("o-kept", "dave", [("at-order", 1)])  # no deadline: never running out

    view = sg.overview(horizon=timedelta(minutes=5))
    expiring = {(e.listing_id, e.minute): e.units for e in view.expiring}
    assert expiring == {("gift-box", 0): 3, ("bottle", 0): 3, ("bottle", 2): 1}
    soonest = [(line.order_id, line.listing_id, line.quantity) for line in view.soonest]
    assert soonest == [
        ("o-box", "gift-box", 2),
        ("o-late", "bottle", 3),
        ("o-late", "gift-box", 1),
        ("o-bottle", "bottle", 1),
    ]
    assert view.soonest[0].expires_at == view.at + timedelta(seconds=10)

    assert [(e.listing_id, e.minute) for e in sg.overview(horizon=timedelta(minutes=1)).expiring] == [
        ("bottle", 0),
        ("gift-box", 0),
    ]


def test_a_hold_past_its_deadline_is_released_before_the_overview_reads(
    sg: Stockguard, clock: FakeClock
) -> None:
    stock_up(sg)
    sg.place_order("o-1", "alice", [("gift-box", 2)])
    clock.advance(31)
    view = sg.overview()
    assert view.expiring == []
    assert view.soonest == []
    box = next(v for v in view.listings if v.stock.listing.listing_id == "gift-box")
    assert (box.held, box.taken, box.stock.sellable) == (0, 0, 10)
    assert sg.get_order("o-1").status.value == "expired"


def test_levels_and_shortages_come_with_the_overview(sg: Stockguard) -> None:
    stock_up(sg)
    sg.put_warehouse("north", priority=5)
    sg.receive(BOTTLE, 2, warehouse="north")
    sg.place_order("o-1", "alice", [("bottle", 4)])
    sg.count(BOTTLE, 1, "broken crate", warehouse="main")  # main promised 2 of the 4; 1 is left

    view = sg.overview()
    levels = {(lv.sku, lv.warehouse): (lv.on_hand, lv.reserved) for lv in view.levels}
    assert levels == {(BOTTLE, "north"): (2, 2), (BOTTLE, "main"): (1, 2), (GLASS, "main"): (20, 0)}
    # By item, then in the order holds take from the warehouses.
    order = [(lv.sku, lv.warehouse) for lv in view.levels]
    assert order == [(GLASS, "main"), (BOTTLE, "north"), (BOTTLE, "main")]
    assert [(s.sku, s.warehouse, s.short_by) for s in view.shortages] == [(BOTTLE, "main", 1)]


def test_draw_entries_by_standing_come_with_the_overview(sg: Stockguard, clock: FakeClock) -> None:
    stock_up(sg)
    now = clock.now()
    sg.put_draw("d1", "bottle", 2, now, now + timedelta(hours=1))
    for buyer in ("alice", "bob", "carol"):
        sg.enter_draw("d1", buyer)
    assert sg.overview().draws == {("d1", "entered"): 3} == sg.draw_standings()


def test_an_empty_store_has_an_empty_overview(sg: Stockguard) -> None:
    view = sg.overview()
    assert (view.listings, view.expiring, view.soonest, view.levels, view.shortages) == ([], [], [], [], [])
    assert view.draws == {}
