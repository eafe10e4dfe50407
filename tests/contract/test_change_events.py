"""Change events, proved once per store: every committed change writes its event in the same
transaction, numbered 1, 2, 3... per stream; nothing refused or rolled back writes one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from conftest import FakeClock
from stockguard import (
    EventType,
    InvalidInput,
    SoldOut,
    Stockguard,
    StreamKind,
)

BOTTLE, BOX = "maotai-500ml", "gift-box"


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    yield
    assert sg.check() == []


def data(sg: Stockguard, kind: StreamKind, key: str) -> list[dict[str, Any]]:
    events = sg.events(kind, key)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gap-free, in order"
    return [dict(e.data) for e in events]


def sellable(sg: Stockguard, listing_id: str) -> list[int]:
    return [d["sellable"] for d in data(sg, StreamKind.LISTING, listing_id)]


def statuses(sg: Stockguard, order_id: str) -> list[str]:
    return [d["status"] for d in data(sg, StreamKind.ORDER, order_id)]


def bottles(sg: Stockguard, units: int, deduction: str = "reserve", **terms: Any) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.receive(BOTTLE, units)
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], deduction, **terms)


def test_a_sale_writes_each_change_of_listing_order_and_item_in_its_stream(sg: Stockguard) -> None:
    bottles(sg, 5)
    sg.place_order("o-1", "alice", [("bottle", 2)])
    sg.pay("o-1")
    sg.place_order("o-2", "bob", [("bottle", 1)])
    sg.cancel("o-2")
    sg.ship("o-1")

    # Paying and shipping leave the sellable quantity as it is: no listing event for them.
    assert sellable(sg, "bottle") == [5, 3, 2, 3]
    assert statuses(sg, "o-1") == ["reserved", "paid", "shipped"]
    assert statuses(sg, "o-2") == ["reserved", "cancelled"]
    levels = [(d["on_hand"], d["reserved"], d["committed"]) for d in data(sg, StreamKind.ITEM, BOTTLE)]
    assert levels[-6:] == [(5, 0, 0), (5, 2, 0), (5, 0, 2), (5, 1, 2), (5, 0, 2), (3, 0, 0)]
    last_order = sg.events(StreamKind.ORDER, "o-1")[-1]
    assert last_order.type is EventType.ORDER_CHANGED
    assert last_order.data["lines"] == [{"listing_id": "bottle", "quantity": 2}]
    assert last_order.message()["seq"] == 3


def test_an_order_event_says_when_its_hold_runs_out_and_expiry_writes_its_own(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 2, hold_seconds=60)
    placed = sg.place_order("o-1", "alice", [("bottle", 1)]).order
    clock.advance(61)
    assert sg.expire_due() == 1

    first, second = data(sg, StreamKind.ORDER, "o-1")
    assert first["status"] == "reserved"
    assert placed.expires_at is not None
    assert first["expires_at"] == placed.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert second["status"] == "expired"
    assert sellable(sg, "bottle") == [2, 1, 2]


def test_payment_deduction_orders_change_the_listing_only_when_paid(sg: Stockguard) -> None:
    bottles(sg, 3, deduction="payment")
    sg.place_order("o-1", "alice", [("bottle", 1)])
    assert statuses(sg, "o-1") == ["placed"]
    assert sellable(sg, "bottle") == [3]
    sg.pay("o-1")
    assert statuses(sg, "o-1") == ["placed", "paid"]
    assert sellable(sg, "bottle") == [3, 2]


def test_a_refused_or_invalid_request_writes_no_event(sg: Stockguard) -> None:
    bottles(sg, 1, per_buyer_limit=1)
    sg.place_order("o-1", "alice", [("bottle", 1)])
    before = {kind: sg.events(kind, key) for kind, key in _streams()}
    with pytest.raises(SoldOut):
        sg.place_order("o-2", "bob", [("bottle", 1)])
    with pytest.raises(InvalidInput):
        sg.place_order("o-3", "bob", [("bottle", 0)])
    sg.place_order("o-1", "alice", [("bottle", 1)])  # a replay changes nothing either
    assert {kind: sg.events(kind, key) for kind, key in _streams()} == before
    assert sg.events(StreamKind.ORDER, "o-2") == []


def _streams() -> list[tuple[StreamKind, str]]:
    return [(StreamKind.LISTING, "bottle"), (StreamKind.ITEM, BOTTLE), (StreamKind.ORDER, "o-1")]


def test_a_change_to_an_item_tells_every_listing_that_sells_it(sg: Stockguard) -> None:
    bottles(sg, 10)
    sg.put_item(BOX, "Gift box")
    sg.receive(BOX, 3)
    sg.put_listing("gift-set", "Maotai in a gift box", [(BOTTLE, 2), (BOX, 1)], "reserve")
    sg.place_order("o-1", "alice", [("bottle", 5)])  # leaves 5 bottles: two gift sets
    sg.receive(BOX, 10)  # boxes no longer the limit: still two gift sets, no event
    sg.receive(BOTTLE, 1)  # 6 bottles: three gift sets

    assert sellable(sg, "gift-set") == [3, 2, 3]
    assert sellable(sg, "bottle") == [10, 5, 6]


def test_a_quota_shows_what_is_left_of_it(sg: Stockguard) -> None:
    bottles(sg, 10, quota=4)
    sg.place_order("o-1", "alice", [("bottle", 3)])
    last = data(sg, StreamKind.LISTING, "bottle")[-1]
    assert (last["sellable"], last["sold"], last["quota"], last["quota_left"]) == (1, 3, 4, 1)


def test_events_resume_after_a_known_sequence(sg: Stockguard) -> None:
    bottles(sg, 10)
    for n in range(4):
        sg.place_order(f"o-{n}", f"buyer-{n}", [("bottle", 1)])
    everything = sg.events(StreamKind.LISTING, "bottle")
    assert sg.events(StreamKind.LISTING, "bottle", after=2) == everything[2:]
    assert sg.events(StreamKind.LISTING, "bottle", after=2, limit=1) == everything[2:3]
    assert sg.events(StreamKind.LISTING, "bottle", after=len(everything)) == []
    with pytest.raises(InvalidInput):
        sg.events("warehouse", "main")
    with pytest.raises(InvalidInput):
        sg.events(StreamKind.LISTING, "bottle", after=-1)


def test_published_events_leave_the_relay_queue_and_only_they_are_pruned(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 3)
    waiting = sg.unpublished(1000)
    assert waiting, "the setup wrote events"
    assert [e.position for e in waiting] == sorted(e.position for e in waiting)
    sg.mark_published([e.position for e in waiting[:2]])
    assert sg.unpublished(1000) == waiting[2:]

    assert sg.hold_relay_lease("relay-a", seconds=30)
    sg.prune_events(retention=timedelta(hours=1))
    assert sg.unpublished(1000) == waiting[2:], "younger than the retention: kept"
    clock.advance(3601)
    sg.prune_events(retention=timedelta(hours=1))
    assert sg.unpublished(1000) == waiting[2:], "unpublished events wait for the relay"
    assert sg.events(StreamKind.ITEM, BOTTLE) == [e for e in waiting[2:] if e.stream == f"item:{BOTTLE}"]


def test_without_a_relay_events_are_kept_for_the_retention_period_only(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 3)
    clock.advance(3601)
    sg.place_order("o-1", "alice", [("bottle", 1)])
    sg.prune_events(retention=timedelta(hours=1))
    [kept] = sg.events(StreamKind.LISTING, "bottle")
    assert (kept.seq, kept.data["sellable"]) == (2, 2), "numbering goes on after pruning"
    assert [e.stream for e in sg.unpublished(1000)] == [f"item:{BOTTLE}", "order:o-1", "listing:bottle"]


def test_one_relay_holds_the_lease_until_it_runs_out(sg: Stockguard, clock: FakeClock) -> None:
    assert sg.hold_relay_lease("relay-a", seconds=10)
    assert not sg.hold_relay_lease("relay-b", seconds=10)
    assert sg.hold_relay_lease("relay-a", seconds=10), "the holder renews"
    clock.advance(11)
    assert sg.hold_relay_lease("relay-b", seconds=10)
    assert not sg.hold_relay_lease("relay-a", seconds=10)
