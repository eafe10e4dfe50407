"""Counts from a warehouse system, proved once per store: the difference is applied, late and
repeated counts never overwrite newer ones nor erase what moved after them, a batch is all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from conftest import FakeClock, snapshot
from stockguard import (
    Counter,
    InvalidInput,
    Reason,
    Stockguard,
    StreamKind,
    UnknownItem,
    WarehouseCount,
)

BOTTLE = "maotai-500ml"


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    yield
    assert sg.check() == []


def stocked(sg: Stockguard, units: int) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.receive(BOTTLE, units)
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "order")


def on_hand(sg: Stockguard, warehouse: str = "main") -> int:
    return next(lv.on_hand for lv in sg.get_item(BOTTLE).levels if lv.warehouse == warehouse)


def count(
    clock: FakeClock, counted: int, sequence: int, ago: float = 0, warehouse: str = "main"
) -> WarehouseCount:
    return WarehouseCount(BOTTLE, warehouse, counted, clock.now() - timedelta(seconds=ago), sequence)


def test_a_count_moves_on_hand_by_the_difference_in_the_ledger(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 10)
    clock.advance(60)
    report = sg.sync_counts([count(clock, 8, sequence=1)])

    assert [(a.adjustment, a.on_hand) for a in report.applied] == [(-2, 8)]
    assert (report.ignored, report.shortages) == ((), ())
    assert on_hand(sg) == 8
    last = sg.movements(sku=BOTTLE)[-1]
    assert (last.counter, last.delta, last.reason, last.reference) == (
        Counter.ON_HAND,
        -2,
        Reason.COUNT,
        "warehouse count main#1",
    )
    assert sg.events(StreamKind.ITEM, BOTTLE)[-1].data["on_hand"] == 8


def test_a_late_count_keeps_what_moved_after_it_and_the_holds(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 10)
    clock.advance(60)
    counted_at = clock.now()
    clock.advance(60)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    sg.pay("o-1")
    sg.ship("o-1")  # two bottles left after the shelves were counted
    sg.place_order("o-2", "bob", [("bottle", 3)])  # a hold made after the count
    sg.receive(BOTTLE, 5)

    # The warehouse counted 9 (one bottle broken) before all that; its message arrives now.
    report = sg.sync_counts([WarehouseCount(BOTTLE, "main", 9, counted_at, 1)])

    assert [a.adjustment for a in report.applied] == [-1]
    level = sg.get_item(BOTTLE).levels[0]
    assert (level.on_hand, level.reserved) == (9 - 2 + 5, 3)
    assert sg.get_listing("bottle").sellable == 12 - 3


def test_a_repeated_or_older_count_changes_nothing(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 10)
    clock.advance(60)
    sg.sync_counts([count(clock, 7, sequence=5)])
    before = snapshot(sg.store, (BOTTLE,))

    report = sg.sync_counts([count(clock, 7, sequence=5), count(clock, 50, sequence=4, ago=30)])

    assert report.applied == ()
    assert [(i.count.sequence, i.newer_sequence) for i in report.ignored] == [(4, 5), (5, 5)]
    assert snapshot(sg.store, (BOTTLE,)) == before
    assert on_hand(sg) == 7


def test_counts_of_one_batch_apply_in_the_order_of_their_sequences(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 10)
    clock.advance(60)
    report = sg.sync_counts([count(clock, 6, sequence=8), count(clock, 9, sequence=7, ago=10)])
    assert [(a.count.sequence, a.on_hand) for a in report.applied] == [(7, 9), (8, 6)]
    assert on_hand(sg) == 6


def test_a_newer_count_that_agrees_with_an_applied_one_moves_nothing(
    sg: Stockguard, clock: FakeClock
) -> None:
    """The first count's correction belongs to its own as_of, not to when it arrived: the second
    count (taken after the first, received after it was applied) must not count it twice."""
    stocked(sg, 10)
    clock.advance(60)
    sg.sync_counts([count(clock, 7, sequence=1, ago=30)])
    clock.advance(60)
    report = sg.sync_counts([count(clock, 7, sequence=2, ago=80)])
    assert [(a.adjustment, a.on_hand) for a in report.applied] == [(0, 7)]
    assert on_hand(sg) == 7


def test_a_count_below_the_promised_units_is_kept_and_reported_as_a_shortage(
    sg: Stockguard, clock: FakeClock
) -> None:
    stocked(sg, 5)
    sg.place_order("o-1", "alice", [("bottle", 4)])
    clock.advance(60)
    report = sg.sync_counts([count(clock, 2, sequence=1)])

    assert [(s.sku, s.warehouse, s.short_by) for s in report.shortages] == [(BOTTLE, "main", 2)]
    assert sg.get_listing("bottle").sellable == 0
    assert [(s.sku, s.short_by) for s in sg.shortages()] == [(BOTTLE, 2)]


def test_a_count_for_a_new_warehouse_creates_its_level(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 5)
    clock.advance(60)
    sg.sync_counts([count(clock, 12, sequence=1, warehouse="east")])
    assert on_hand(sg, "east") == 12
    assert sg.get_listing("bottle").sellable == 17


def test_a_batch_with_one_bad_count_changes_nothing(sg: Stockguard, clock: FakeClock) -> None:
    stocked(sg, 10)
    clock.advance(60)
    before = snapshot(sg.store, (BOTTLE,))
    good = count(clock, 3, sequence=1)
    with pytest.raises(UnknownItem):
        sg.sync_counts([good, WarehouseCount("no-such-sku", "main", 1, clock.now(), 1)])
    for bad in (
        WarehouseCount(BOTTLE, "main", -1, clock.now(), 2),
        WarehouseCount(BOTTLE, "main", 1, clock.now() + timedelta(minutes=5), 2),
        WarehouseCount(BOTTLE, "bad warehouse!", 1, clock.now(), 2),
        good,  # the same count twice in one batch
    ):
        with pytest.raises(InvalidInput):
            sg.sync_counts([good, bad])
    with pytest.raises(InvalidInput):
        sg.sync_counts([])
    assert snapshot(sg.store, (BOTTLE,)) == before
