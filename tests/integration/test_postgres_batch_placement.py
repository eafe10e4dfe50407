"""PostgreSQL: a batch decided in memory (migration 0013) answers and writes exactly what the
batch of one-order placements before it (0011) did.

Each case builds one random batch over a catalog with every rule the one-step
placement decides (limits, a quota, bundles, warehouses by priority, safety
stock, a shortage, all three strategies) and every reason it hands an order to
the service (a listing with rules of the service's own, an unknown listing,
mixed strategies, an order id the store holds or the batch repeats, holds
that ran out, before the batch or within it). The batch runs through ``stockguard_place_many`` and, from the
same state, through 0011's function (with the one-order functions it called,
which 0013 dropped); the answers and every row either leaves
(orders, lines, the ledger, stock, listings, events) must be the same.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from conftest import START, FakeClock, empty_postgres_url
from stockguard import Stockguard, open_store
from stockguard.bootstrap import upgrade_database
from stockguard.stores.sql.migrations.earlier import revision_module

REFERENCE = "stockguard_place_many_reference"
LISTINGS = ("solo", "pair", "held", "later", "brief", "device-limited", "nothing", "short", "unknown")
BUYERS = ("ann", "bob", "cy", "dee")
HOLD = 600  # seconds, the holds placed before each batch
_ROWS = {
    "orders": "SELECT order_id, buyer_id, deduction, status, created_at, updated_at, expires_at, lines, "
    "allocations FROM orders ORDER BY order_id",
    "order_lines": "SELECT order_id, listing_id, buyer_id, quantity FROM order_lines "
    "ORDER BY order_id, listing_id",
    "movements": "SELECT at, sku, warehouse, counter, delta, reason, order_id, reference FROM movements "
    "ORDER BY id",
    "levels": "SELECT sku, warehouse, on_hand, reserved, committed, safety FROM levels "
    "ORDER BY sku, warehouse",
    "listings": "SELECT listing_id, sold FROM listings ORDER BY listing_id",
    "events": "SELECT stream, seq, type, at, data, published FROM events ORDER BY id",
    "event_streams": "SELECT stream, seq, last FROM event_streams ORDER BY stream",
}


@pytest.fixture(scope="module")
def catalog_url() -> str:
    """A store with every rule the one-step placement decides, a few live orders, and 0011's
    batch function beside the current one."""
    url = empty_postgres_url()
    upgrade_database(url)
    clock = FakeClock()
    sg = Stockguard(open_store(url), clock=clock.now)
    try:
        sg.put_warehouse("east", priority=1)
        sg.put_warehouse("west", priority=2)
        sg.put_item("a", "A", safety=2)
        sg.put_item("b", "B")
        sg.put_item("c", "C")
        sg.put_item("d", "D")  # never received: no stock row
        sg.put_item("e", "E")
        for sku, warehouse, units in (("a", "east", 9), ("a", "west", 6), ("a", "main", 4), ("b", "west", 7)):
            sg.receive(sku, units, warehouse)
        sg.receive("c", 5)
        sg.receive("e", 3)
        sg.put_listing("solo", "Solo", [("a", 1)], "reserve", hold_seconds=HOLD, per_buyer_limit=3)
        sg.put_listing("pair", "Pair", [("a", 2), ("b", 1)], "reserve", hold_seconds=HOLD * 2, quota=6)
        sg.put_listing("held", "Held", [("b", 1), ("c", 1)], "order")
        sg.put_listing("later", "Later", [("c", 1)], "payment", per_buyer_limit=2)
        sg.put_listing("device-limited", "Device", [("a", 1)], "reserve", per_device_limit=1)
        sg.put_listing("nothing", "Nothing", [("d", 1)], "reserve")
        sg.put_listing("short", "Short", [("e", 1)], "reserve")
        sg.put_listing("brief", "Brief", [("b", 1)], "reserve", hold_seconds=1)  # runs out within a batch
        placed = (("ann", "solo"), ("bob", "pair"), ("ann", "later"), ("cy", "short"))
        for n, (buyer, listing) in enumerate(placed):
            sg.place_order(f"old-{n}", buyer, [(listing, 1)])
        sg.count("e", 0, "breakage")  # a shortage: "short" holds a unit the count took away
        with psycopg.connect(url, autocommit=True) as connection:
            for function in _reference_functions():
                connection.execute(function)
    finally:
        sg.close()
    return url


def _reference_functions() -> list[str]:
    """0011's stockguard_place_many and the one-order functions it called (which 0013 dropped),
    under names of their own."""
    before = revision_module("0013_postgres_batch_placement")
    core, _unused, quiet, emit_placed = before.ONE_ORDER_BEFORE
    place_many = revision_module("0011_postgres_events_once_per_batch").PLACE_MANY
    renamed = {
        "stockguard_place_core(": "reference_place_core(",
        "stockguard_place_quiet(": "reference_place_quiet(",
        "stockguard_emit_placed(": "reference_emit_placed(",
        "stockguard_place_many(": f"{REFERENCE}(",
    }
    functions = []
    for function in (core, quiet, emit_placed, place_many):
        for name, reference in renamed.items():
            function = function.replace(name, reference)
        functions.append(function)
    return functions


def _random_batch(seed: int) -> list[list[Any]]:
    """[order_id, buyer_id, lines, now] as ``transaction.place_many`` sends them."""
    rng = random.Random(seed)
    # Half of the batches come after the holds placed before them ran out.
    start = START + timedelta(seconds=HOLD + 1 if seed % 2 else 5)
    orders: list[list[Any]] = []
    for n in range(rng.randint(20, 48)):
        pick = rng.random()
        if pick < 0.05:
            order_id = f"old-{rng.randrange(4)}"
        elif pick < 0.1 and orders:
            order_id = rng.choice(orders)[0]
        else:
            order_id = f"new-{seed}-{n}"
        listings = rng.sample(LISTINGS[:-1], 2) if rng.random() < 0.2 else [rng.choice(LISTINGS)]
        lines = [[listing, rng.randint(1, 3)] for listing in listings]
        moment = (start + timedelta(milliseconds=100 * n)).timestamp()
        orders.append([order_id, rng.choice(BUYERS), lines, moment])
    return orders


def _decide(connection: psycopg.Connection[Any], function: str, batch: list[list[Any]]) -> dict[str, Any]:
    answers = connection.execute(f"SELECT {function}(%s::jsonb)", [json.dumps(batch)]).fetchone()
    assert answers is not None
    left = {table: connection.execute(query).fetchall() for table, query in _ROWS.items()}
    return {"answers": answers[0], **left}


@pytest.mark.parametrize("seed", range(24))
def test_a_batch_decides_and_writes_as_one_placement_per_order(catalog_url: str, seed: int) -> None:
    batch = _random_batch(seed)
    with psycopg.connect(catalog_url) as connection:  # one transaction, never committed
        connection.execute("SAVEPOINT before")
        decided = _decide(connection, "stockguard_place_many", batch)
        connection.execute("ROLLBACK TO SAVEPOINT before")
        expected = _decide(connection, REFERENCE, batch)
        connection.rollback()

    outcomes = [answer["outcome"] for answer in decided["answers"]]
    assert len(outcomes) == len(batch)
    for table in ("answers", *_ROWS):
        assert decided[table] == expected[table], f"{table} differ for seed {seed}"


def test_the_random_batches_meet_every_answer(catalog_url: str) -> None:
    """The cases above are only worth as much as the answers they reach."""
    seen: set[str] = set()
    with psycopg.connect(catalog_url) as connection:
        for seed in range(24):
            connection.execute("SAVEPOINT before")
            answers = _decide(connection, "stockguard_place_many", _random_batch(seed))["answers"]
            seen.update(answer["outcome"] for answer in answers)
            connection.execute("ROLLBACK TO SAVEPOINT before")
        connection.rollback()
    assert seen == {"reserved", "placed", "fallback", "limit_exceeded", "quota", "sold_out"}
