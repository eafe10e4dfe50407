"""RedisGate: the listing's admissions in Redis, one atomic script call per decision.

The gate holds, per listing, admission tokens (about as many as the store
has units to sell: a token lets an order on to the store, which still
decides), the ids of the orders it admitted and, when the listing has a
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

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from stockguard.domain.model import LiveLine
from stockguard.gate import scripts
from stockguard.gate.keys import ListingKeys
from stockguard.service.admission import Admission, Decision, GateState

DEFAULT_PREFIX = "sg"


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    listing_id: str
    order_id: str
    buyer_id: str
    quantity: int


class RedisGate:
    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX) -> None:
        """``client``: a ``redis.Redis`` or ``redis.RedisCluster`` with ``decode_responses=True``."""
        self._client = client
        self._prefix = prefix
        self._keys: dict[str, ListingKeys] = {}  # made once per listing: admissions are the hot path
        self._admit = client.register_script(scripts.ADMIT)
        self._release = client.register_script(scripts.RELEASE)
        self._load = client.register_script(scripts.LOAD)
        self._bound = client.register_script(scripts.BOUND)

    def keys(self, listing_id: str) -> ListingKeys:
        keys = self._keys.get(listing_id)
        if keys is None:
            keys = self._keys[listing_id] = ListingKeys.of(self._prefix, listing_id)
        return keys

    def admit(self, listing_id: str, order_id: str, buyer_id: str, quantity: int) -> Admission:
        answer = self._admit(keys=self.keys(listing_id).all(), args=[order_id, buyer_id, quantity])
        return _admission(answer)

    def admit_many(self, requests: Sequence[AdmitRequest]) -> list[Admission | redis.RedisError]:
        """``admit`` for many orders in one round trip per node (a pipeline, not a transaction:
        each script is atomic on its own). An answer that failed in the pipeline (NOSCRIPT, a
        slot that moved, a dropped connection) is asked again on its own, which loads the
        script or follows the cluster's redirection; one that fails again is its error."""
        answers: list[Admission | redis.RedisError | None] = [None] * len(requests)
        for node, indexes in self._by_node(requests):
            pipeline = node.pipeline(transaction=False)
            sha = self._admit.sha
            for i in indexes:
                request = requests[i]
                pipeline.evalsha(
                    sha,
                    3,
                    *self.keys(request.listing_id).all(),
                    request.order_id,
                    request.buyer_id,
                    request.quantity,
                )
            try:
                raw: list[Any] = pipeline.execute(raise_on_error=False)
            except redis.RedisError:
                raw = [None] * len(indexes)
            for i, answer in zip(indexes, raw, strict=True):
                if answer is not None and not isinstance(answer, Exception):
                    answers[i] = _admission(answer)
                    continue
                request = requests[i]
                try:
                    answers[i] = self.admit(
                        request.listing_id, request.order_id, request.buyer_id, request.quantity
                    )
                except redis.RedisError as error:
                    answers[i] = error
        return [answer for answer in answers if answer is not None]

    def _by_node(self, requests: Sequence[AdmitRequest]) -> list[tuple[Any, list[int]]]:
        """The requests' indexes grouped by the client that reaches their listing's node."""
        if not isinstance(self._client, redis.RedisCluster):
            return [(self._client, list(range(len(requests))))]
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, request in enumerate(requests):
            node = self._client.get_node_from_key(self.keys(request.listing_id).state)  # type: ignore[no-untyped-call]
            groups.setdefault(node.name, (node.redis_connection, []))[1].append(i)
        return list(groups.values())

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
        live: Iterable[LiveLine],
        seen_seq: int = 0,
    ) -> str:
        """Replace the gate's state for a listing with the store's: tokens set aside for the
        gate, the per-buyer limit, and the live orders (id, buyer, quantity). ``seen_seq``: the
        highest seq the caller has seen, so the new state counts on from above it. Answers
        the new epoch."""
        epoch = secrets.token_hex(8)
        args: list[Any] = [epoch, tokens, limit or 0, seen_seq + 1]
        for line in live:
            args.extend((line.order_id, line.buyer_id, line.quantity))
        self._load(keys=self.keys(listing_id).all(), args=args)
        return epoch

    def bound_tokens(
        self, listing_id: str, *, at_most: int | None = None, at_least: int | None = None
    ) -> int | None:
        """Tokens at most (the store has fewer units) or at least (it has more) so many;
        the tokens now, or None for an unloaded gate."""
        mode, bound = ("at_most", at_most) if at_least is None else ("at_least", at_least)
        now = int(self._bound(keys=[self.keys(listing_id).state], args=[mode, bound]))
        return None if now < 0 else now

    def publish(self, channel: str, message: str) -> None:
        self._client.publish(f"{self._prefix}:{channel}", message)

    def pubsub(self, channel: str) -> Any:
        """A subscription to one of the gate's channels (every node of a cluster hears a publish).
        Its first message is Redis's confirmation (type ``subscribe``); then the channel's messages."""
        subscription = self._client.pubsub()
        subscription.subscribe(f"{self._prefix}:{channel}")
        return subscription

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


_DECISIONS = {decision.value: decision for decision in Decision}


def _admission(answer: list[Any]) -> Admission:
    decision = _DECISIONS[answer[0]]
    if decision is Decision.UNLOADED:
        return Admission(decision)
    seq = int(answer[1])
    if decision in (Decision.ADMITTED, Decision.SOLD_OUT):
        return Admission(decision, seq, tokens_left=int(answer[2]))
    if decision is Decision.LIMIT:
        return Admission(decision, seq, used=int(answer[2]), limit=int(answer[3]))
    buyer, units = answer[2].split(" ")
    return Admission(decision, seq, admitted_as=(buyer, int(units)))
