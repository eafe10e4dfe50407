"""A sold-out listing proved in one process sells again when another process gives stock back.

Two ``connect(url)`` on one database are two stores as two processes have
them: each with its writer, its pool and its own view of the stock version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import stockguard
from stockguard import OrderStatus, SoldOut, Stockguard

# Another process's change reaches this one a moment after its commit (SQLite: at once).
PATIENCE_SECONDS = 10


@pytest.fixture
def two_processes(shared_store_url: str) -> Iterator[tuple[Stockguard, Stockguard]]:
    seller, other = stockguard.connect(shared_store_url), stockguard.connect(shared_store_url)
    yield seller, other
    seller.store.close()
    other.store.close()


def sold_out_and_proved(sg: Stockguard) -> None:
    sg.put_item("maotai", "Maotai")
    sg.receive("maotai", 1)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve")
    sg.place_order("o-1", "alice", [("maotai-sale", 1)])
    for n in range(3):  # the writer's refusal, the read that proves it, a refusal from the proof
        with pytest.raises(SoldOut):
            sg.place_order(f"refused-{n}", f"buyer-{n}", [("maotai-sale", 1)])


def place_until_it_sells(sg: Stockguard) -> tuple[OrderStatus, int]:
    """The order placed once the stock is back, and how many refusals came first."""
    deadline, refusals = time.monotonic() + PATIENCE_SECONDS, 0
    while True:
        try:
            return sg.place_order("after", "bob", [("maotai-sale", 1)]).order.status, refusals
        except SoldOut:
            refusals += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@pytest.mark.parametrize(
    "give_back",
    [
        pytest.param(lambda sg: sg.cancel("o-1"), id="cancellation"),
        pytest.param(lambda sg: sg.receive("maotai", 1), id="delivery"),
        pytest.param(lambda sg: sg.count("maotai", 2, "found one"), id="count"),
    ],
)
def test_stock_given_back_by_another_process_sells_again(
    two_processes: tuple[Stockguard, Stockguard], give_back: Callable[[Stockguard], Any]
) -> None:
    seller, other = two_processes
    sold_out_and_proved(seller)
    give_back(other)
    status, _ = place_until_it_sells(seller)
    assert status is OrderStatus.RESERVED
    assert seller.check() == []


def test_a_proof_keeps_refusing_while_other_processes_only_sell(
    two_processes: tuple[Stockguard, Stockguard],
) -> None:
    seller, other = two_processes
    sold_out_and_proved(seller)
    other.put_item("glass", "Glass")
    other.receive("glass", 5)
    other.put_listing("glass-sale", "Glass", [("glass", 1)], "order")
    other.place_order("elsewhere", "carol", [("glass-sale", 1)])
    for n in range(20):
        with pytest.raises(SoldOut):
            seller.place_order(f"late-{n}", f"late-buyer-{n}", [("maotai-sale", 1)])
    assert seller.get_listing("maotai-sale").sold == 1


def test_a_shipment_that_ends_a_shortage_lets_another_process_sell_again(
    two_processes: tuple[Stockguard, Stockguard],
) -> None:
    """A shortage in one warehouse stops the item everywhere; shipping can end it without any
    level's free units growing, and the process that proved the listing sold out must hear of it."""
    seller, other = two_processes
    other.put_warehouse("main", 1)
    other.put_warehouse("east", 2)
    other.put_item("maotai", "Maotai")
    other.receive("maotai", 5, "main")
    other.receive("maotai", 3, "east")
    other.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "order")
    other.place_order("big", "alice", [("maotai-sale", 5)])  # all of main
    other.pay("big")
    other.put_item("maotai", "Maotai", safety=1)  # main now promises more than it may: a shortage
    assert other.shortages()
    for n in range(3):
        with pytest.raises(SoldOut):
            seller.place_order(f"refused-{n}", f"buyer-{n}", [("maotai-sale", 1)])
    other.ship("big")  # main: nothing held, nothing promised; east's 2 sell again
    assert not other.shortages()
    status, _ = place_until_it_sells(seller)
    assert status is OrderStatus.RESERVED
