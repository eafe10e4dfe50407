"""Mixed traffic against one or more service processes, every call recorded in a ``History``.

Buyers place orders for a bottle or a gift box (a bottle and two glasses) under ``reserve``
deduction with short holds, then pay, cancel, or let the hold run out. A buyer whose request
got no answer, or ``unavailable``, sends the same order again (the order id is its idempotency
key) to the next process, as a storefront would. An operator receives stock now and then and
counts it. Nothing here decides what is correct: the checker does, from the history.
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from stockguard.chaos.history import Call, History, Op, SaleTerms

RETRIES = 3  # a placement or payment that got no answer is sent again this many times


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    urls: tuple[str, ...]  # the service processes, asked in turn
    admin_token: str
    storefront_token: str
    buyers: int = 24  # concurrent buyers
    seconds: float = 20.0
    hold_seconds: int = 2
    bottles: int = 60  # on hand at the start
    glasses: int = 80
    pay_share: float = 0.5
    cancel_share: float = 0.2  # the rest let their hold run out
    restock_every: float = 1.5  # seconds between receipts (0: none)
    restock_units: int = 6  # the most a receipt brings (at least 2)
    count_every: float = 4.0  # seconds between counts (0: none)
    timeout: float = 5.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Sale:
    run: str
    bottle: str  # SKUs
    glass: str
    single: str  # listing ids
    gift_box: str

    @property
    def terms_components(self) -> dict[str, list[tuple[str, int]]]:
        return {self.single: [(self.bottle, 1)], self.gift_box: [(self.bottle, 1), (self.glass, 2)]}


class Traffic:
    """Sets a sale up, then runs buyers and an operator until the time is up."""

    def __init__(self, config: TrafficConfig, history_path: Path | None = None) -> None:
        """``history_path``: also write every call there, a JSON line each."""
        self.config = config
        run = f"chaos-{secrets.token_hex(3)}"
        self.sale = Sale(run, f"{run}-bottle", f"{run}-glass", f"{run}-single", f"{run}-gift")
        terms = SaleTerms(
            self.sale.terms_components, config.hold_seconds, [self.sale.bottle, self.sale.glass]
        )
        self.history = History(terms, history_path)
        self._turn = 0
        self._draw = random.Random(config.seed)

    def next_url(self) -> str:
        self._turn += 1
        return self.config.urls[self._turn % len(self.config.urls)]

    async def run(self, until: Callable[[], bool] | None = None) -> History:
        """Set up the sale, then sell for ``config.seconds`` (or until ``until()`` says so)."""
        limits = httpx.Limits(max_connections=self.config.buyers + 4)
        async with httpx.AsyncClient(limits=limits, timeout=self.config.timeout) as client:
            self._client = client
            await self._set_up()
            deadline = time.monotonic() + self.config.seconds
            done = until or (lambda: time.monotonic() >= deadline)
            await asyncio.gather(
                *(self._buyer(n, done) for n in range(self.config.buyers)),
                self._operator(done),
            )
        return self.history

    # -- calls, recorded

    async def _call(
        self, op: Op, target: str, method: str, path: str, token: str, body: Any = None, **known: Any
    ) -> tuple[Call, dict[str, Any]]:
        url = self.next_url()
        start = time.time()
        try:
            response = await self._client.request(
                method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            status: int | None = response.status_code
            document: dict[str, Any] = response.json() if response.content else {}
        except (httpx.HTTPError, ValueError):
            status, document = None, {}
        call = Call(
            op,
            target,
            start,
            time.time(),
            status,
            code=document.get("code"),
            order_status=document.get("status") if isinstance(document.get("status"), str) else None,
            expires_at=_epoch(document.get("expires_at")),
            via=url,
            **known,
        )
        self.history.add(call)
        return call, document

    async def _until_answered(self, send: Callable[[], Awaitable[tuple[Call, dict[str, Any]]]]) -> Call:
        """Send, and send again while there is no answer or the store is unavailable."""
        for _ in range(RETRIES):
            call, _document = await send()
            if call.status is not None and call.status != 503:
                return call
            await asyncio.sleep(0.2)
        call, _document = await send()
        return call

    # -- the sale

    async def _set_up(self) -> None:
        sale = self.sale
        for sku, units in ((sale.bottle, self.config.bottles), (sale.glass, self.config.glasses)):
            await self._setup_call("PUT", f"/v1/items/{sku}", {"name": sku})
            call = await self._until_answered(functools.partial(self._receive, sku, units))
            if not call.acknowledged:
                raise RuntimeError(f"could not stock {sku}: {call}")
        for listing_id, components in sale.terms_components.items():
            listing = {
                "title": listing_id,
                "components": [{"sku": sku, "quantity": per} for sku, per in components],
                "deduction": "reserve",
                "hold_seconds": self.config.hold_seconds,
            }
            await self._setup_call("PUT", f"/v1/listings/{listing_id}", listing)

    async def _setup_call(self, method: str, path: str, body: Any) -> None:
        for _ in range(20):
            try:
                response = await self._client.request(
                    method,
                    self.next_url() + path,
                    json=body,
                    headers={"Authorization": f"Bearer {self.config.admin_token}"},
                )
                if response.status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
        raise RuntimeError(f"could not set the sale up: {method} {path}")

    async def _buyer(self, n: int, done: Callable[[], bool]) -> None:
        draw = random.Random(self.config.seed * 1000 + n)
        front = self.config.storefront_token
        count = 0
        while not done():
            count += 1
            order_id = f"{self.sale.run}-{n}-{count}"
            listing_id = self.sale.single if draw.random() < 0.7 else self.sale.gift_box
            quantity = draw.choice((1, 1, 2))
            body = {
                "order_id": order_id,
                "buyer_id": f"buyer-{n}",
                "lines": [{"listing_id": listing_id, "quantity": quantity}],
            }
            place = functools.partial(
                self._call, Op.PLACE, order_id, "POST", "/v1/orders", front, body, listing_id=listing_id
            )
            placed = await self._until_answered(functools.partial(place, quantity=quantity))
            if placed.status != 201:
                await asyncio.sleep(draw.uniform(0.01, 0.1))
                continue
            choice = draw.random()
            await asyncio.sleep(draw.uniform(0.0, self.config.hold_seconds * 0.6))
            if choice < self.config.pay_share:
                action = (Op.PAY, "pay")
            elif choice < self.config.pay_share + self.config.cancel_share:
                action = (Op.CANCEL, "cancel")
            else:
                continue  # the hold runs out
            path = f"/v1/orders/{order_id}/{action[1]}"
            await self._until_answered(
                functools.partial(self._call, action[0], order_id, "POST", path, front)
            )

    async def _operator(self, done: Callable[[], bool]) -> None:
        """Receipts every few seconds, and now and then a count that finds a few more bottles."""
        last_receipt = last_count = time.monotonic()
        while not done():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if self.config.restock_every and now - last_receipt >= self.config.restock_every:
                last_receipt = now
                sku = self._draw.choice((self.sale.bottle, self.sale.glass))
                units = self._draw.randint(2, max(2, self.config.restock_units))
                await self._receive(sku, units)
            if self.config.count_every and now - last_count >= self.config.count_every:
                last_count = now
                await self._count_more(self.sale.bottle, 3)

    def _receive(self, sku: str, units: int) -> Awaitable[tuple[Call, dict[str, Any]]]:
        path, body = f"/v1/items/{sku}/receipts", {"quantity": units}
        return self._call(Op.RECEIVE, sku, "POST", path, self.config.admin_token, body, quantity=units)

    async def _count_more(self, sku: str, extra: int) -> None:
        """Count ``extra`` bottles more than the service has on hand. Only this operator changes
        on_hand during a sale (no goods ship), so the count reads a figure nobody else moves."""
        try:
            response = await self._client.get(
                f"{self.next_url()}/v1/items/{sku}",
                headers={"Authorization": f"Bearer {self.config.admin_token}"},
            )
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        counted = int(response.json()["on_hand"]) + extra
        body = {"counted": counted, "reason": "found behind the shelf"}
        await self._call(
            Op.COUNT,
            sku,
            "POST",
            f"/v1/items/{sku}/adjustments",
            self.config.admin_token,
            body,
            quantity=counted,
        )


def _epoch(value: object) -> float | None:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
