"""Checkouts: how one buyer-serving thread takes a buyer through a shop.

A sale job names its shop (stockguard or the naive one) by plain data so it
can cross into a worker process; :func:`open_checkouts` turns it into one
checkout per thread there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from stockguard import HoldExpired, SoldOut, Stockguard, connect
from stockguard.sim.buyers import Buyer, Crowd, Outcome
from stockguard.sim.naive import NaiveCheckout

ShopKind = Literal["naive", "stockguard"]


@dataclass(frozen=True, slots=True)
class Job:
    """One sale: which shop, where its data lives, which listing, which crowd, how many threads each."""

    shop: ShopKind
    location: str  # a stockguard store URL, or the naive shop's SQLite file
    listing_id: str
    order_prefix: str
    crowd: Crowd
    threads: int


class Checkout(Protocol):
    def serve(self, buyer: Buyer) -> Outcome: ...


class GuardedCheckout:
    """A buyer through stockguard: place an order for one unit, then (maybe) pay for it.

    The same code serves all three strategies; the listing decides what
    placement and payment do to the stock.
    """

    def __init__(self, guard: Stockguard, listing_id: str, order_prefix: str) -> None:
        self._guard = guard
        self._line = [(listing_id, 1)]
        self._prefix = order_prefix

    def serve(self, buyer: Buyer) -> Outcome:
        order_id = f"{self._prefix}-{buyer.index}"
        try:
            self._guard.place_order(order_id, buyer.buyer_id, self._line)
        except SoldOut:
            return Outcome.SOLD_OUT
        if not buyer.pays:
            return Outcome.WALKED_AWAY
        # The buyer goes through the payment gateway, which then confirms to the shop.
        time.sleep(buyer.gateway_seconds)
        try:
            self._guard.pay(order_id)
        except (SoldOut, HoldExpired):
            return Outcome.PAYMENT_REFUSED
        return Outcome.PAID


@contextmanager
def open_checkouts(job: Job, guard: Stockguard | None = None) -> Iterator[list[Checkout]]:
    """One checkout per thread of ``job``; stockguard ones share one facade (it is thread-safe).

    Pass ``guard`` to reuse a facade this process already has (the only way to
    share a ``memory://`` store); otherwise one is opened here and closed after.
    """
    if job.shop == "naive":
        naive = [NaiveCheckout(job.location, job.listing_id, job.order_prefix) for _ in range(job.threads)]
        try:
            yield list(naive)
        finally:
            for checkout in naive:
                checkout.close()
        return
    own = guard is None
    facade = connect(job.location) if guard is None else guard
    try:
        yield [GuardedCheckout(facade, job.listing_id, job.order_prefix) for _ in range(job.threads)]
    finally:
        if own:
            facade.store.close()
