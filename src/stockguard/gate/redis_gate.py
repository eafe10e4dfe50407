"""RedisGate: the listing's admissions in Redis, one atomic script call per decision.

The gate holds, per listing, admission tokens (units the SQL store has set
aside for it), the ids of the orders it admitted and, when the listing has a
per-buyer limit, the units each buyer was admitted. ``admit`` checks the
order id (a replay), the buyer's limit and the tokens, and takes them, in one
step. A gate that has no state for a listing (never loaded, or Redis came
back empty) answers ``unloaded`` and admits nobody until ``load`` rebuilt it
from the store.

Scripts are loaded once and called by SHA; redis-py's ``Script`` loads them
again when a server answers NOSCRIPT (a restart, a failover to a replica).
The same code runs on one Redis (``redis.Redis``) and on a cluster
(``redis.RedisCluster``): each script touches one listing's keys, which share
a hash slot.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stockguard.gate import scripts
from stockguard.gate.keys import ListingKeys

DEFAULT_PREFIX = "sg"


class Decision(enum.StrEnum):
    ADMITTED = "admitted"
    REPLAY = "replay"  # this order id was admitted before
    LIMIT = "limit"  # the buyer's units would pass the listing's limit
    SOLD_OUT = "sold_out"  # not enough tokens
    UNLOADED = "unloaded"  # the gate holds nothing for the listing: load it from the store first


@dataclass(frozen=True, slots=True)
class Admission:
    decision: Decision
    seq: int | None = None  # the gate's change count when it answered (None: unloaded)
    tokens_left: int | None = None  # after an admission, or what a sold-out gate has
    used: int | None = None  # LIMIT: the buyer's units so far
    limit: int | None = None  # LIMIT: the listing's limit
    admitted_as: tuple[str, int] | None = None  # REPLAY: (buyer, quantity) first admitted


@dataclass(frozen=True, slots=True)
class GateState:
    """What the gate holds for a listing (None for an unloaded one)."""

    tokens: int
    limit: int
    epoch: str
    seq: int
    orders: dict[str, tuple[str, int]]  # order id -> (buyer, quantity)
    buyers: dict[str, int]


class RedisGate:
    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX) -> None:
        """``client``: a ``redis.Redis`` or ``redis.RedisCluster`` with ``decode_responses=True``."""
        self._client = client
        self._prefix = prefix
        self._admit = client.register_script(scripts.ADMIT)
        self._release = client.register_script(scripts.RELEASE)
        self._load = client.register_script(scripts.LOAD)
        self._adjust = client.register_script(scripts.ADJUST)

    def keys(self, listing_id: str) -> ListingKeys:
        return ListingKeys.of(self._prefix, listing_id)

    def admit(self, listing_id: str, order_id: str, buyer_id: str, quantity: int) -> Admission:
        answer = self._admit(keys=self.keys(listing_id).all(), args=[order_id, buyer_id, quantity])
        decision = Decision(answer[0])
        if decision is Decision.UNLOADED:
            return Admission(decision)
        seq = int(answer[1])
        if decision in (Decision.ADMITTED, Decision.SOLD_OUT):
            return Admission(decision, seq, tokens_left=int(answer[2]))
        if decision is Decision.LIMIT:
            return Admission(decision, seq, used=int(answer[2]), limit=int(answer[3]))
        buyer, units = answer[2].split(" ")
        return Admission(decision, seq, admitted_as=(buyer, int(units)))

    def release(self, listing_id: str, order_id: str) -> int:
        """The store refused an admitted order: its tokens come back to the gate (once only)."""
        return int(self._release(keys=self.keys(listing_id).all(), args=[order_id, "tokens"]))

    def forget(self, listing_id: str, order_id: str) -> int:
        """An admitted order ended (cancelled, expired) and its units went back to the store's
        own stock: it stops counting for its buyer's limit, and no tokens come back (once only)."""
        return int(self._release(keys=self.keys(listing_id).all(), args=[order_id, "forget"]))

    def load(
        self,
        listing_id: str,
        tokens: int,
        limit: int | None,
        live_orders: Iterable[tuple[str, str, int]],
        seen_seq: int = 0,
    ) -> str:
        """Replace the gate's state for a listing with the store's: tokens set aside for the
        gate, the per-buyer limit, and the live orders (id, buyer, quantity). ``seen_seq``: the
        highest seq the caller has seen, so the new state counts on from above it. Answers
        the new epoch."""
        epoch = secrets.token_hex(8)
        args: list[Any] = [epoch, tokens, limit or 0, seen_seq + 1]
        for order_id, buyer_id, quantity in live_orders:
            args.extend((order_id, buyer_id, quantity))
        self._load(keys=self.keys(listing_id).all(), args=args)
        return epoch

    def add_tokens(self, listing_id: str, tokens: int) -> int | None:
        """More tokens (a new lease); the tokens now, or None for an unloaded gate."""
        now, _ = self._adjust(keys=[self.keys(listing_id).state], args=[tokens])
        return None if int(now) < 0 else int(now)

    def take_back(self, listing_id: str, tokens: int) -> int:
        """Take up to ``tokens`` unused tokens out (to return them to the store); how many were taken."""
        _, moved = self._adjust(keys=[self.keys(listing_id).state], args=[-tokens])
        return -int(moved)

    def state(self, listing_id: str) -> GateState | None:
        keys = self.keys(listing_id)
        state = self._client.hgetall(keys.state)
        if "epoch" not in state:
            return None
        orders = {
            order_id: (admitted.split(" ")[0], int(admitted.split(" ")[1]))
            for order_id, admitted in self._client.hgetall(keys.orders).items()
        }
        buyers = {buyer: int(units) for buyer, units in self._client.hgetall(keys.buyers).items()}
        return GateState(
            int(state["tokens"]), int(state["limit"]), state["epoch"], int(state["seq"]), orders, buyers
        )
