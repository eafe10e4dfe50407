"""The promises of DOMAIN.md under real concurrency: OS processes racing on one store.

Each test sets up a sale, then ``race`` fires the buyers' calls from
``PROCESSES`` worker processes of ``THREADS`` threads each, every one with its
own connection to the same store, all released at the same instant (see
``racing.py``). Each test asserts exact counts, that no level was oversold at
any moment of the race, and that ``check()`` finds no drift afterwards.

They run on every backend that processes can share: a store opened again from
its URL must see the same data (``StoreKind.persistent`` in ``tests/conftest.py``),
which rules out the one-process memory store.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from racing import EXPIRE, JSON, PROCESSES, THREADS, Outcome, Shop, level, oversold, pay, place, race

import stockguard
from stockguard import OrderStatus, Reason, Stockguard
from stockguard.service.base import SWEEP_BATCH


@pytest.fixture
def shop(shared_store_url: str) -> Iterator[Shop]:
    """An empty store (for SQLite, one file in tmp_path) and this process's own connection to it."""
    sg = stockguard.connect(shared_store_url)
    yield Shop(shared_store_url, sg)
    sg.store.close()


# -- reading the outcome


def errors(outcomes: Sequence[Outcome]) -> Tally[str | None]:
    """How many calls succeeded (key None) and failed, by error class."""
    return Tally(o.error for o in outcomes)


def first_details(outcomes: Sequence[Outcome]) -> dict[str, str]:
    """One message for each kind of error: the assertion text when counts are off."""
    found: dict[str, str] = {}
    for o in outcomes:
        if o.error is not None:
            found.setdefault(o.error, o.detail or "")
    return found


def assert_promises_kept(sg: Stockguard) -> None:
    assert sg.check() == []
    assert oversold(sg) == []


def stock(sg: Stockguard, sku: str, units: int) -> None:
    sg.put_item(sku, sku)
    sg.receive(sku, units)


# -- the promises


def test_last_unit_goes_to_exactly_one_of_300_buyers(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 1)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve")

    outcomes = race(shop, [place(f"o-{n}", f"buyer-{n}", "maotai-sale") for n in range(300)])

    assert errors(outcomes) == {None: 1, "SoldOut": 299}, first_details(outcomes)
    (winner,) = [o for o in outcomes if o.error is None]
    assert winner.created
    assert winner.status == OrderStatus.RESERVED.value
    assert level(sg, "maotai").reserved == 1
    assert sg.get_listing("maotai-sale").sellable == 0
    assert sg.get_listing("maotai-sale").sold == 1
    assert_promises_kept(sg)


def test_many_units_sell_exactly_stock(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 200)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "order")

    outcomes = race(shop, [place(f"o-{n}", f"buyer-{n}", "maotai-sale") for n in range(600)])

    assert errors(outcomes) == {None: 200, "SoldOut": 400}, first_details(outcomes)
    winners = {str(o.order["buyer_id"]) for o in outcomes if o.order is not None}
    assert len(winners) == 200
    assert level(sg, "maotai").reserved == 200
    assert sg.get_listing("maotai-sale").sold == 200
    assert_promises_kept(sg)


def _gift_shop(sg: Stockguard) -> None:
    """50 bottles and 71 glasses; a gift box is 1 bottle + 2 glasses, so 35 boxes at most."""
    stock(sg, "bottle", 50)
    stock(sg, "glass", 71)
    sg.put_listing("gift-box", "Gift box", [("bottle", 1), ("glass", 2)], "reserve")
    sg.put_listing("bottle-only", "One bottle", [("bottle", 1)], "reserve")
    assert sg.get_listing("gift-box").sellable == 35


def _box_and_bottle_buyers(boxes: int, bottles: int) -> list[JSON]:
    """Box and single-bottle buyers interleaved, so both kinds race from the first moment."""
    box_calls = [place(f"box-{n}", f"box-buyer-{n}", "gift-box") for n in range(boxes)]
    bottle_calls = [place(f"bottle-{n}", f"bottle-buyer-{n}", "bottle-only") for n in range(bottles)]
    calls: list[JSON] = []
    for n in range(max(boxes, bottles)):
        calls.extend(box_calls[n : n + 1] + bottle_calls[n : n + 1])
    return calls


def _sold_by_listing(outcomes: Sequence[Outcome]) -> Tally[str]:
    return Tally(str(o.order["order_id"]).split("-")[0] for o in outcomes if o.order is not None)


def test_bundle_sells_exactly_min_floor_available_over_quantity(shop: Shop) -> None:
    # 15 single bottles + 35 boxes use the 50 bottles exactly, so no box can lose
    # its bottle to a single buyer: the glasses alone decide, floor(71 / 2) = 35.
    sg = shop.sg
    _gift_shop(sg)

    outcomes = race(shop, _box_and_bottle_buyers(boxes=150, bottles=15))

    assert errors(outcomes) == {None: 50, "SoldOut": 115}, first_details(outcomes)
    assert _sold_by_listing(outcomes) == {"box": 35, "bottle": 15}
    assert level(sg, "bottle").reserved == 50
    assert level(sg, "glass").reserved == 70
    assert sg.get_listing("gift-box").sellable == 0
    assert sg.get_listing("gift-box").sold == 35
    assert sg.get_listing("bottle-only").sold == 15
    assert_promises_kept(sg)


def test_bundle_and_single_bottle_buyers_never_take_more_bottles_than_stock(shop: Shop) -> None:
    # More bottle demand than bottles: who wins varies, the totals may not.
    sg = shop.sg
    _gift_shop(sg)

    outcomes = race(shop, _box_and_bottle_buyers(boxes=120, bottles=100))

    assert set(errors(outcomes)) == {None, "SoldOut"}, first_details(outcomes)
    sold = _sold_by_listing(outcomes)
    assert sold["box"] <= 35
    # 100 single buyers for at most 50 bottles: some were refused, so the bottles ran out.
    assert sold["box"] + sold["bottle"] == 50
    assert level(sg, "bottle").reserved == 50
    assert level(sg, "glass").reserved == 2 * sold["box"]
    assert sg.get_listing("gift-box").sellable == 0
    assert sg.get_listing("bottle-only").sellable == 0
    assert_promises_kept(sg)


def test_per_buyer_limit_holds_when_one_buyer_fires_many_orders_at_once(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 50)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve", per_buyer_limit=2)

    outcomes = race(shop, [place(f"o-{n}", "scalper", "maotai-sale") for n in range(100)])

    assert errors(outcomes) == {None: 2, "LimitExceeded": 98}, first_details(outcomes)
    assert level(sg, "maotai").reserved == 2
    assert sg.get_listing("maotai-sale").sold == 2
    assert_promises_kept(sg)


def test_a_ring_of_50_new_accounts_shipping_to_one_address_gets_only_the_address_limit(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 100)
    sg.put_listing(
        "maotai-sale", "Maotai", [("maotai", 1)], "reserve", per_buyer_limit=2, per_address_limit=3
    )
    # Each account orders twice (its own limit would allow it), from its own device, to one
    # address spelled a few ways; four processes of eight threads fire them at once.
    spellings = ["88 Canal Street, Unit 5", "88 canal street unit 5", "88  CANAL STREET  UNIT 5"]
    calls = [
        place(f"o-{n}-{k}", f"ring-{n}", "maotai-sale", device_id=f"phone-{n}", address=spellings[n % 3])
        for n in range(50)
        for k in range(2)
    ]

    outcomes = race(shop, calls)

    assert errors(outcomes) == {None: 3, "LimitExceeded": 97}, first_details(outcomes)
    assert level(sg, "maotai").reserved == 3
    assert sg.get_listing("maotai-sale").sold == 3
    assert_promises_kept(sg)


def test_payment_deduction_lets_exactly_as_many_payments_succeed_as_units(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 10)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "payment")
    order_ids = [f"o-{n}" for n in range(100)]
    for n, order_id in enumerate(order_ids):
        placed = sg.place_order(order_id, f"buyer-{n}", [("maotai-sale", 1)]).order
        assert placed.status is OrderStatus.PLACED
    assert level(sg, "maotai").reserved == 0

    outcomes = race(shop, [pay(order_id) for order_id in order_ids])

    assert errors(outcomes) == {None: 10, "SoldOut": 90}, first_details(outcomes)
    assert {o.status for o in outcomes if o.error is None} == {OrderStatus.PAID.value}
    statuses = Tally(sg.get_order(order_id).status for order_id in order_ids)
    assert statuses == {OrderStatus.PAID: 10, OrderStatus.PLACED: 90}
    maotai = level(sg, "maotai")
    assert (maotai.committed, maotai.reserved) == (10, 0)
    assert sg.get_listing("maotai-sale").sold == 10
    assert_promises_kept(sg)


def test_expired_holds_are_released_exactly_once_by_racing_sweepers(shop: Shop) -> None:
    sg = shop.sg
    # More holds than one sweep releases, so the sweepers race batch after batch.
    holds = 2 * SWEEP_BATCH + 100
    stock(sg, "maotai", holds)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve", hold_seconds=1)
    order_ids = [f"o-{n}" for n in range(holds)]
    # Placed by a clerk whose clock stands ten minutes back: every hold is already
    # due for the sweepers, and none is released while the holds are placed.
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    clerk = Stockguard(sg.store, clock=lambda: ten_minutes_ago)
    for n, order_id in enumerate(order_ids):
        clerk.place_order(order_id, f"buyer-{n}", [("maotai-sale", 1)])
    assert level(clerk, "maotai").reserved == holds  # nothing swept them yet

    # Two sweeps per thread, all released at once.
    sweepers = [EXPIRE] * (2 * PROCESSES * THREADS)
    outcomes = race(shop, sweepers)

    assert errors(outcomes) == {None: len(sweepers)}, first_details(outcomes)
    assert sum(o.released or 0 for o in outcomes) == holds
    assert level(sg, "maotai").reserved == 0
    ledger = sg.movements(sku="maotai", limit=10 * holds)
    reasons = Tally((m.order_id, m.reason, m.delta) for m in ledger if m.order_id is not None)
    assert reasons == {
        **{(order_id, Reason.HOLD, 1): 1 for order_id in order_ids},
        **{(order_id, Reason.EXPIRE, -1): 1 for order_id in order_ids},
    }
    assert {sg.get_order(order_id).status for order_id in order_ids} == {OrderStatus.EXPIRED}
    assert sg.get_listing("maotai-sale").sold == 0
    assert_promises_kept(sg)


def test_replayed_placement_from_many_processes_deducts_once(shop: Shop) -> None:
    sg = shop.sg
    stock(sg, "maotai", 20)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve")
    order_ids = [f"o-{n}" for n in range(8)]
    callers = PROCESSES * THREADS
    # Every thread of every process places o-0, then o-1, ...: each id is fired by all at once.
    calls = [
        place(order_id, f"buyer-{order_id}", "maotai-sale") for order_id in order_ids for _ in range(callers)
    ]

    outcomes = race(shop, calls)

    assert errors(outcomes) == {None: len(calls)}, first_details(outcomes)
    for order_id in order_ids:
        mine = [o for o in outcomes if o.order is not None and o.order["order_id"] == order_id]
        assert len(mine) == callers
        assert sum(bool(o.created) for o in mine) == 1, order_id
        assert all(o.order == mine[0].order for o in mine), order_id
        assert mine[0].status == OrderStatus.RESERVED.value
        assert [m.reason for m in sg.movements(order_id=order_id)] == [Reason.HOLD]
    assert level(sg, "maotai").reserved == len(order_ids)
    assert sg.get_listing("maotai-sale").sold == len(order_ids)
    assert_promises_kept(sg)
