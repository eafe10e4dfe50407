"""A serving process pauses for nothing it can avoid: no cyclic garbage per request, a settled collector.

Objects in a reference cycle outlive their request until the garbage collector
walks them, and a collection pauses every request in flight. A refused order
once left its exception, the frames of its traceback and everything they held
in such a cycle, tens of objects for every buyer of a sold-out sale.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import stockguard
from stockguard.api.app import create_app
from stockguard.api.bridge import LoopBridge
from stockguard.api.routes.orders import place
from stockguard.api.runtime import SWITCH_INTERVAL, YOUNG_THRESHOLD
from stockguard.api.schemas import OrderIn
from stockguard.api.settings import Settings
from stockguard.service import Stockguard

ORDERS = 300


@pytest.fixture
def guard(store_url: str) -> Iterator[Stockguard]:
    service = stockguard.connect(store_url)
    service.put_item("bottle", "Bottle")
    service.receive("bottle", ORDERS)
    service.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=600)
    yield service
    service.close()


def _order(n: int) -> OrderIn:
    return OrderIn.model_validate(
        {"order_id": f"o-{n}", "buyer_id": f"b-{n}", "lines": [{"listing_id": "sale", "quantity": 1}]}
    )


def _cyclic_garbage_of(orders: range, guard: Stockguard) -> tuple[list[int], int]:
    """The answers' statuses, and how many objects only the collector could free after them."""

    async def scenario() -> tuple[list[int], int]:
        bridge = LoopBridge(asyncio.get_running_loop())
        await place(guard, bridge, _order(-1))  # warm: first-use caches are not garbage
        gc.collect()
        gc.disable()
        try:
            statuses = [(await place(guard, bridge, _order(n))).status_code for n in orders]
            return statuses, gc.collect()
        finally:
            gc.enable()

    return asyncio.run(scenario())


def test_selling_leaves_no_cyclic_garbage(guard: Stockguard) -> None:
    statuses, garbage = _cyclic_garbage_of(range(ORDERS - 1), guard)
    assert statuses == [201] * (ORDERS - 1)
    assert garbage < 50, f"{garbage} objects in cycles after {ORDERS - 1} orders"


def test_refusing_a_sold_out_sale_leaves_no_cyclic_garbage(guard: Stockguard) -> None:
    _cyclic_garbage_of(range(ORDERS - 1), guard)  # sells the rest
    statuses, garbage = _cyclic_garbage_of(range(ORDERS, 2 * ORDERS), guard)
    assert statuses == [409] * ORDERS
    assert garbage < 50, f"{garbage} objects in cycles after {ORDERS} refusals"


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_started_service_freezes_what_it_built_and_sets_the_interpreter_for_serving(
    kind: str, tmp_path: Path
) -> None:
    """Through the app's own start (its lifespan), as ``stockguard serve`` runs it."""
    threshold, switch_interval = gc.get_threshold(), sys.getswitchinterval()
    service = stockguard.connect("memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'stock.db'}")
    app = create_app(
        Settings(admin_token=SecretStr("a" * 32), storefront_token=SecretStr("s" * 32), data_dir=tmp_path),
        guard=service,
    )
    built = [[n] for n in range(100)]  # lives on, as the app's own objects do

    async def started() -> tuple[bool, int, float]:
        async with app.router.lifespan_context(app):
            frozen = not any(tracked is built for tracked in gc.get_objects())  # frozen: not listed
            return frozen, gc.get_threshold()[0], sys.getswitchinterval()

    try:
        frozen, young, switch = asyncio.run(started())
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(switch_interval)
        service.close()
    assert frozen
    assert young == YOUNG_THRESHOLD
    # Only a SQLite writer thread gains from a shorter switch interval (api/runtime.py).
    assert switch == (SWITCH_INTERVAL if kind == "sqlite" else switch_interval)
