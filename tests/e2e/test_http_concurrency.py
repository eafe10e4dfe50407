"""Crowds against the real server: every request of a crowd is in flight at once.

One unit and 500 buyers gives exactly one sale, with one worker process and
with two; under ``payment`` deduction 50 simultaneous payments for one unit
give exactly one ``paid``; replays and per-buyer limits hold under the same
pressure; and a hold expires once, by the sweeper, with nobody reading.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.server import (
    JSON,
    PROBLEM_JSON,
    Server,
    body,
    make_listing,
    metric_samples,
    order_body,
    running_server,
    uid,
)

BUYERS = 500
PAYMENTS = 50


def _outcome(response: httpx.Response) -> str:
    """``"201"``, ``"200"``, or the problem code of a refusal; a 5xx or a malformed refusal fails."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code < 300:
        return str(response.status_code)
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.text
    problem = response.json()
    assert problem["status"] == response.status_code
    code: str = problem["code"]
    return code


async def _crowd(
    server: Server, token: str, requests: list[tuple[str, str, JSON | None]]
) -> list[httpx.Response]:
    """Send every request at once, each on its own connection, and wait for all the answers."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        limits=limits,
        timeout=120.0,
    ) as client:
        start = asyncio.Event()

        async def one(method: str, path: str, document: JSON | None) -> httpx.Response:
            await start.wait()
            return await client.request(method, path, json=document)

        tasks = [asyncio.create_task(one(*request)) for request in requests]
        await asyncio.sleep(0)  # every task is waiting at the gate
        start.set()
        return await asyncio.gather(*tasks)


def crowd(server: Server, token: str, requests: list[tuple[str, str, JSON | None]]) -> list[str]:
    return [_outcome(response) for response in asyncio.run(_crowd(server, token, requests))]


def _get(client: httpx.Client, path: str) -> Any:
    return body(client.get(path), 200)


def _one_unit_many_buyers(server: Server) -> None:
    admin = server.client(server.admin)
    listing_id = make_listing(admin, 1, "reserve")
    sku = _get(admin, f"/v1/listings/{listing_id}")["components"][0]["sku"]
    orders = [order_body(listing_id) for _ in range(BUYERS)]

    outcomes = crowd(server, server.storefront, [("POST", "/v1/orders", document) for document in orders])

    assert Counter(outcomes) == {"201": 1, "sold_out": BUYERS - 1}
    winner = orders[outcomes.index("201")]["order_id"]
    assert _get(admin, f"/v1/orders/{winner}")["status"] == "reserved"
    stock = _get(admin, f"/v1/items/{sku}")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (1, 1, 0)
    sold = _get(admin, f"/v1/listings/{listing_id}")
    assert (sold["sellable"], sold["sold"]) == (0, 1)
    loser = orders[outcomes.index("sold_out")]["order_id"]
    assert admin.get(f"/v1/orders/{loser}").status_code == 404  # a refused order leaves nothing behind


@pytest.mark.slow
def test_500_buyers_for_one_unit_get_one_sale(server: Server) -> None:
    _one_unit_many_buyers(server)


@pytest.mark.slow
def test_500_buyers_for_one_unit_get_one_sale_with_two_workers(server_two_workers: Server) -> None:
    _one_unit_many_buyers(server_two_workers)


@pytest.mark.slow
def test_500_buyers_for_one_unit_get_one_sale_on_uvloop(tmp_path: Path) -> None:
    """``--loop uvloop`` (installed with uvicorn[standard]; asyncio is the default, see the README)."""
    with running_server(tmp_path, args=("--loop", "uvloop")) as server:
        _one_unit_many_buyers(server)
        # The event loop in use is uvloop's compiled module, mapped into the serving process.
        assert "/uvloop/loop." in Path(f"/proc/{server.process.pid}/maps").read_text()


def _many_payments_for_one_unit(server: Server) -> None:
    admin = server.client(server.admin)
    storefront = server.client(server.storefront)
    listing_id = make_listing(admin, 1, "payment")
    sku = _get(admin, f"/v1/listings/{listing_id}")["components"][0]["sku"]
    order_ids = [
        body(storefront.post("/v1/orders", json=order_body(listing_id)), 201)["order_id"]
        for _ in range(PAYMENTS)
    ]
    assert {_get(admin, f"/v1/orders/{o}")["status"] for o in order_ids} == {"placed"}

    outcomes = crowd(server, server.storefront, [("POST", f"/v1/orders/{o}/pay", None) for o in order_ids])

    assert Counter(outcomes) == {"200": 1, "sold_out": PAYMENTS - 1}
    statuses = Counter(_get(admin, f"/v1/orders/{o}")["status"] for o in order_ids)
    assert statuses == {"paid": 1, "placed": PAYMENTS - 1}
    assert _get(admin, f"/v1/orders/{order_ids[outcomes.index('200')]}")["status"] == "paid"
    stock = _get(admin, f"/v1/items/{sku}")
    assert (stock["on_hand"], stock["reserved"], stock["committed"], stock["available"]) == (1, 0, 1, 0)


@pytest.mark.slow
def test_50_payments_for_one_unit_give_one_paid(server: Server) -> None:
    _many_payments_for_one_unit(server)


@pytest.mark.slow
def test_50_payments_for_one_unit_give_one_paid_with_two_workers(server_two_workers: Server) -> None:
    _many_payments_for_one_unit(server_two_workers)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_replays_of_one_order_deduct_once(
    server: Server, server_two_workers: Server, workers: int
) -> None:
    running = server if workers == 1 else server_two_workers
    admin = running.client(running.admin)
    listing_id = make_listing(admin, 5, "order")
    document = order_body(listing_id, 2)

    outcomes = crowd(running, running.storefront, [("POST", "/v1/orders", document)] * PAYMENTS)

    assert Counter(outcomes) == {"201": 1, "200": PAYMENTS - 1}
    sold = _get(admin, f"/v1/listings/{listing_id}")
    assert (sold["sellable"], sold["sold"]) == (3, 2)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_per_buyer_limit_holds_under_concurrency(
    server: Server, server_two_workers: Server, workers: int
) -> None:
    running = server if workers == 1 else server_two_workers
    admin = running.client(running.admin)
    listing_id = make_listing(admin, 100, "order", per_buyer_limit=1)
    buyer = uid("scalper")
    orders = [order_body(listing_id, buyer_id=buyer) for _ in range(PAYMENTS)]

    outcomes = crowd(running, running.storefront, [("POST", "/v1/orders", document) for document in orders])

    assert Counter(outcomes) == {"201": 1, "limit_exceeded": PAYMENTS - 1}
    assert _get(admin, f"/v1/listings/{listing_id}")["sold"] == 1


def _holds_expired(client: httpx.Client) -> float:
    return metric_samples(client.get("/metrics").text, "stockguard_holds_expired_total").get("", 0.0)


@pytest.mark.slow
def test_the_sweeper_releases_a_hold_once_with_nobody_reading(server_two_workers: Server) -> None:
    """Two workers sweep; the hold's unit comes back once, without any read to trigger it."""
    admin = server_two_workers.client(server_two_workers.admin)
    listing_id = make_listing(admin, 1, "reserve", hold_seconds=1)
    sku = _get(admin, f"/v1/listings/{listing_id}")["components"][0]["sku"]
    before = _holds_expired(admin)
    placed = body(admin.post("/v1/orders", json=order_body(listing_id)), 201)
    assert placed["status"] == "reserved"
    time.sleep(2.0)  # hold of 1 s, plus the contract's one second: no request meanwhile
    # The scrape reads the counters before it reads any stock, so only a sweeper counted this.
    assert _holds_expired(admin) - before == 1
    stock = _get(admin, f"/v1/items/{sku}")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (1, 0, 1)
    assert _get(admin, f"/v1/orders/{placed['order_id']}")["status"] == "expired"
    time.sleep(0.5)  # more sweeps of both workers: still released once
    assert _holds_expired(admin) - before == 1
