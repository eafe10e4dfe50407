"""The buyers of a flash sale: who they are, whether they pay, what happened to them.

Buyers are derived from their index alone (a hash of index and seed), never
pre-built in a list: every arm of the demo meets the very same crowd, each
worker can produce any buyer on demand, and a sale of a million buyers costs
no memory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: consecutive indexes spread over 64 bits
_MASK = (1 << 64) - 1


class Outcome(enum.StrEnum):
    """How one buyer's visit ended."""

    SOLD_OUT = "sold_out"  # refused at placement (or at the naive shop's stock check)
    WALKED_AWAY = "walked_away"  # placed an order (or held stock) and never paid
    PAID = "paid"  # the shop acknowledged the payment
    PAYMENT_REFUSED = "payment_refused"  # the shop refused the payment: no stock left or hold expired


@dataclass(frozen=True, slots=True)
class Crowd:
    """The sale's buyers: how many, how many of them pay, how long their payment takes."""

    size: int
    pay_share: float = 0.8
    gateway_ms: float = 10.0  # mean time of the payment gateway call
    seed: int = 1

    def buyer(self, index: int) -> Buyer:
        pays = _fraction(index, self.seed) < self.pay_share
        # Gateway latency varies between half and one and a half times its mean.
        jitter = 0.5 + _fraction(index, self.seed + 7919)
        return Buyer(index, f"b{index}", pays, self.gateway_ms * jitter / 1000)


@dataclass(frozen=True, slots=True)
class Buyer:
    index: int
    buyer_id: str
    pays: bool
    gateway_seconds: float


def _fraction(index: int, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for (index, seed)."""
    mixed = ((index + seed * 1_000_003) * _GOLDEN) & _MASK
    return (mixed >> 40) / (1 << 24)
