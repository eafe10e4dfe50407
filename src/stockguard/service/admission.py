"""The admission gate port: what the service needs from a gate in front of the store.

A gate (``stockguard.gate``: Redis) answers a buyer fast, before the store: a
replay of an order id it admitted, a buyer over the listing's limit, no
tokens left, or admitted. The store stays the one that decides: an admitted
order is still placed by the store's own rules, so a gate that is wrong (lost,
restored from an old snapshot, behind the store) can only cost time or a
refusal the service then checks, never a unit sold twice.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from stockguard.domain.model import LiveLine


class Decision(enum.StrEnum):
    ADMITTED = "admitted"  # a token per unit was taken: the store places the order
    REPLAY = "replay"  # this order id was admitted before
    LIMIT = "limit"  # the buyer's units would pass the listing's limit
    SOLD_OUT = "sold_out"  # not enough tokens
    UNLOADED = "unloaded"  # the gate holds nothing for the listing: load it from the store first


class Admission(NamedTuple):
    """A gate's answer. A named tuple: one is made per order on the hot path, several times
    cheaper than a frozen dataclass."""

    decision: Decision
    seq: int | None = None  # the gate's change count when it answered (None: unloaded)
    tokens_left: int | None = None  # after an admission, or what a sold-out gate has
    used: int | None = None  # LIMIT: the buyer's units so far
    limit: int | None = None  # LIMIT: the listing's limit
    admitted_as: tuple[str, int] | None = None  # REPLAY: (buyer, quantity) first admitted


@dataclass(frozen=True, slots=True)
class GateState:
    """What a gate holds for a listing."""

    tokens: int
    limit: int  # 0: none
    epoch: str  # set by each load
    seq: int
    orders: dict[str, tuple[str, int]]  # order id -> (buyer, quantity)
    buyers: dict[str, int]  # buyer -> units admitted (kept only under a limit)


@dataclass(frozen=True, slots=True)
class GateDrift:
    """Where a gate and the store disagree about a listing (``stockguard check --redis``)."""

    listing_id: str
    what: str  # tokens, orders, buyers, limit
    gate: str
    store: str


# Takes a gate's answer to one admission: None when the gate could not be reached.
Answered = Callable[[Admission | None], object]


class AdmissionGate(Protocol):
    def admit(self, listing_id: str, order_id: str, buyer_id: str, quantity: int, answered: Answered) -> None:
        """Decide one order line and give the answer to ``answered``, from the gate's own thread
        (it must not block)."""
        ...

    def release(self, listing_id: str, order_id: str) -> None:
        """The store did not place an admitted order: its tokens come back (once only)."""
        ...

    def forget(self, listing_id: str, order_id: str) -> None:
        """An order ended (cancelled, expired) or the store refused it for stock: it stops
        counting for its buyer, and no tokens come back (once only)."""
        ...

    def cap_tokens(self, listing_id: str, at_most: int) -> None:
        """The store has fewer units than the gate has tokens: fewer tokens."""
        ...

    def raise_tokens(self, listing_id: str, at_least: int) -> None:
        """The store has more units than the gate has tokens (a restock, a hold that ended)."""
        ...

    def load(self, listing_id: str, tokens: int, limit: int | None, live: Iterable[LiveLine]) -> None:
        """Replace what the gate holds for a listing with the store's state."""
        ...

    def state(self, listing_id: str) -> GateState | None:
        """What the gate holds for the listing now (None: nothing, it is loaded on demand)."""
        ...

    def announce_sold_out(self, listing_id: str) -> None:
        """Tell every process using the gate that the store has nothing left of the listing."""
        ...

    def on_sold_out_elsewhere(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(listing_id)`` whenever any process announces a listing sold out."""
        ...

    def close(self) -> None: ...
