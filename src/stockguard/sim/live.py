"""The article's flash sale sent to a running ``stockguard serve`` over HTTP, paced so that a
person watching ``/dashboard`` sees it happen.

One bottle listing under ``reserve`` deduction, screened against fresh accounts and limited to
one bottle per buyer. Buyers arrive at a steady rate: genuine ones (old accounts with purchases)
mostly pay after a while, some press buy twice, some never pay so their holds run out and the
bottles go on sale again; scalper-like accounts (days old, nothing bought) are refused as not
eligible. Every answer is tallied, and at the end the tally is checked against what the service
says of the listing: the units paid for plus those still held never pass the stock.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

SCREENING = {"min_account_age_days": 30, "min_paid_orders": 1}
REQUEST_TIMEOUT = 30.0


class LiveSaleError(Exception):
    """The service refused to set the sale up, or could not be reached."""


@dataclass(frozen=True, slots=True)
class LiveConfig:
    url: str
    token: str  # the admin token: the sale's item and listing are created too
    units: int = 1_000
    buyers: int = 6_000
    rate: float = 100.0  # buyers arriving per second
    scalper_share: float = 0.3
    pay_share: float = 0.6  # of genuine buyers who got a bottle
    double_click_share: float = 0.1  # genuine buyers who press buy twice
    hold_seconds: int = 20
    concurrency: int = 64  # requests in flight at most
    seed: int = 1


@dataclass(slots=True)
class LiveResult:
    listing_id: str
    stock: int
    outcomes: Counter[str] = field(default_factory=Counter)  # per answer to an order
    paid: int = 0  # payments answered 200
    payments_refused: int = 0  # payments refused: the hold had run out and the bottle was sold again
    seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)  # the listing as the service tells it at the end

    def as_json(self) -> dict[str, object]:
        return {
            "listing_id": self.listing_id,
            "stock": self.stock,
            "outcomes": dict(self.outcomes),
            "paid": self.paid,
            "payments_refused": self.payments_refused,
            "oversold": self.oversold,
            "seconds": round(self.seconds, 3),
            "final": self.final,
        }

    @property
    def oversold(self) -> int:
        """Bottles buyers were told they paid for beyond the stock: must be 0."""
        return max(0, self.paid - self.stock)


@dataclass(frozen=True, slots=True)
class _Buyer:
    buyer_id: str
    scalper: bool
    pays: bool
    presses_twice: bool


def crowd(config: LiveConfig, run: str) -> list[_Buyer]:
    draw = random.Random(config.seed)
    return [
        _Buyer(
            f"{run}-buyer-{n}",
            scalper := draw.random() < config.scalper_share,
            not scalper and draw.random() < config.pay_share,
            not scalper and draw.random() < config.double_click_share,
        )
        for n in range(config.buyers)
    ]


async def run_live(config: LiveConfig, progress: Callable[[int], None] = lambda done: None) -> LiveResult:
    run = f"live-{secrets.token_hex(3)}"
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    headers = {"Authorization": f"Bearer {config.token}"}
    async with httpx.AsyncClient(
        base_url=config.url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:
        listing_id = await _set_up(client, config, run)
        result = LiveResult(listing_id, config.units)
        sale = _Sale(client, config, listing_id, result)
        started = time.monotonic()
        buyers = crowd(config, run)
        tasks = []
        for n, buyer in enumerate(buyers):
            await _wait_until(started + n / config.rate)
            tasks.append(asyncio.create_task(sale.buyer(buyer)))
            progress(n + 1)
        await asyncio.gather(*tasks)
        await asyncio.gather(*sale.payments)
        result.seconds = time.monotonic() - started
        result.final = await _expect(client.get(f"/v1/listings/{listing_id}"), 200)
    return result


async def _wait_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _set_up(client: httpx.AsyncClient, config: LiveConfig, run: str) -> str:
    sku = listing_id = f"maotai-{run}"
    await _expect(client.put(f"/v1/items/{sku}", json={"name": "Feitian Maotai 53% 500 ml"}), 201)
    await _expect(client.post(f"/v1/items/{sku}/receipts", json={"quantity": config.units}), 200)
    listing = {
        "title": f"Maotai flash sale {run}",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": "reserve",
        "hold_seconds": config.hold_seconds,
        "per_buyer_limit": 1,
        "screening": SCREENING,
    }
    await _expect(client.put(f"/v1/listings/{listing_id}", json=listing), 201)
    return listing_id


async def _expect(request: Awaitable[httpx.Response], *statuses: int) -> dict[str, Any]:
    """The JSON of an answer that must have one of ``statuses``."""
    try:
        response = await request
    except httpx.HTTPError as failure:
        raise LiveSaleError(f"the service did not answer: {failure!r}") from failure
    if response.status_code not in statuses:
        raise LiveSaleError(f"{response.request.method} {response.request.url.path}: {response.text}")
    document: dict[str, Any] = response.json()
    return document


class _Sale:
    def __init__(
        self, client: httpx.AsyncClient, config: LiveConfig, listing_id: str, result: LiveResult
    ) -> None:
        self.client, self.config, self.listing_id, self.result = client, config, listing_id, result
        self.payments: list[asyncio.Task[None]] = []
        self.draw = random.Random(config.seed + 1)
        # Requests wait their turn here rather than in httpx's pool, whose queue of waiters
        # costs more CPU the longer it gets.
        self.in_flight = asyncio.Semaphore(config.concurrency)

    async def _send(self, method: str, path: str, *statuses: int, body: Any = None) -> dict[str, Any]:
        async with self.in_flight:
            return await _expect(self.client.request(method, path, json=body), *statuses)

    async def buyer(self, buyer: _Buyer) -> None:
        await self._profile(buyer)
        for press in range(2 if buyer.presses_twice else 1):
            order_id = f"{buyer.buyer_id}-{press}"
            line = {"listing_id": self.listing_id, "quantity": 1}
            body = {"order_id": order_id, "buyer_id": buyer.buyer_id, "lines": [line]}
            answer = await self._send("POST", "/v1/orders", 201, 403, 409, 429, body=body)
            outcome = answer.get("code", "created")
            self.result.outcomes[outcome] += 1
            if outcome == "created" and buyer.pays:
                delay = self.draw.uniform(1.0, self.config.hold_seconds * 0.8)
                self.payments.append(asyncio.create_task(self._pay(order_id, delay)))

    async def _profile(self, buyer: _Buyer) -> None:
        now = datetime.now(UTC)
        if buyer.scalper:
            profile = {"registered_at": (now - timedelta(days=2)).isoformat(), "paid_orders": 0}
        else:
            profile = {
                "registered_at": (now - timedelta(days=900)).isoformat(),
                "paid_orders": 12,
                "active_days_90d": 40,
            }
        await self._send("PUT", f"/v1/buyers/{buyer.buyer_id}", 200, 201, body=profile)

    async def _pay(self, order_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        answer = await self._send("POST", f"/v1/orders/{order_id}/pay", 200, 409, 410)
        if answer.get("status") == "paid":
            self.result.paid += 1
        else:
            self.result.payments_refused += 1
