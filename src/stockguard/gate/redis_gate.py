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
from typing import Any, NamedTuple

import redis

from stockguard.domain.model import LiveLine
from stockguard.gate import scripts
from stockguard.gate.keys import ListingKeys
from stockguard.service.admission import Admission, Decision, GateState

DEFAULT_PREFIX = "sg"


class AdmitRequest(NamedTuple):  # one per order on the hot path: cheaper than a dataclass
    listing_id: str
    order_id: str
    buyer_id: str
    quantity: int


class Loaded(NamedTuple):
    epoch: str  # a new one for every load
    seq: int  # the listing's change count now


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
        answers = self._admit(keys=self.keys(listing_id).all(), args=[order_id, buyer_id, quantity])
        return _admission(answers[0])

    def admit_many(self, requests: Sequence[AdmitRequest]) -> list[Admission | redis.RedisError]:
        """``admit`` for many orders: one script call per listing, decided in the order given.
        Orders of one listing (a hot sale) are one call; several listings go in one pipeline
        per node (not a transaction: each call is atomic on its own). A call that failed in the
        pipeline (NOSCRIPT, a slot that moved, a dropped connection) is made again on its own,
        which loads the script or follows the cluster's redirection (an order it had admitted
        answers ``replay`` then); one that fails again answers its error for each of its orders."""
        by_listing = by_listing_of(requests)
        answers: list[Admission | redis.RedisError | None] = [None] * len(requests)
        if len(by_listing) == 1:
            self.settle(requests, *by_listing.popitem(), None, answers)
            return [answer for answer in answers if answer is not None]
        for node, listings in self._by_node(list(by_listing)):
            pipeline = node.pipeline(transaction=False)
            for listing_id in listings:
                pipeline.execute_command(*self.admit_command(requests, listing_id, by_listing[listing_id]))
            try:
                raw: list[Any] = pipeline.execute(raise_on_error=False)
            except redis.RedisError:
                raw = [None] * len(listings)
            for listing_id, answered in zip(listings, raw, strict=True):
                self.settle(requests, listing_id, by_listing[listing_id], answered, answers)
        return [answer for answer in answers if answer is not None]

    def admit_command(
        self, requests: Sequence[AdmitRequest], listing_id: str, indexes: list[int]
    ) -> list[Any]:
        """The ADMIT script's call (by SHA) for these requests of one listing."""
        keys = self.keys(listing_id).all()
        return ["EVALSHA", self._admit.sha, 3, *keys, *_admit_args(requests, indexes)]

    def single_server(self) -> redis.Redis | None:
        """The client, when the gate runs on one Redis (not a cluster)."""
        return None if isinstance(self._client, redis.RedisCluster) else self._client

    def settle(
        self,
        requests: Sequence[AdmitRequest],
        listing_id: str,
        indexes: list[int],
        answered: Any,
        answers: list[Admission | redis.RedisError | None],
    ) -> None:
        """Put one listing's answers to ``admit_command`` in place; without a good answer (None,
        or an error), its call is made again on its own (through ``Script``, which loads the
        script on NOSCRIPT), where an order it had admitted answers ``replay``."""
        if answered is None or isinstance(answered, Exception):
            try:
                answered = self._admit(keys=self.keys(listing_id).all(), args=_admit_args(requests, indexes))
            except redis.RedisError as error:
                for i in indexes:
                    answers[i] = error
                return
        for i, answer in zip(indexes, answered, strict=True):
            answers[i] = _admission(answer)

    def _by_node(self, listing_ids: list[str]) -> list[tuple[Any, list[str]]]:
        """The listings grouped by the client that reaches their node."""
        if not isinstance(self._client, redis.RedisCluster):
            return [(self._client, listing_ids)]
        groups: dict[str, tuple[Any, list[str]]] = {}
        for listing_id in listing_ids:
            node = self._client.get_node_from_key(self.keys(listing_id).state)  # type: ignore[no-untyped-call]
            groups.setdefault(node.name, (node.redis_connection, []))[1].append(listing_id)
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
    ) -> Loaded:
        """Replace the gate's state for a listing with the store's: tokens set aside for the
        gate, the per-buyer limit, and the live orders (id, buyer, quantity). ``seen_seq``: the
        highest seq the caller has seen, so the new state counts on from above it (and above
        the state it replaces). Answers the new epoch and the seq it starts from."""
        epoch = secrets.token_hex(8)
        args: list[Any] = [epoch, tokens, limit or 0, seen_seq + 1]
        for line in live:
            args.extend((line.order_id, line.buyer_id, line.quantity))
        return Loaded(epoch, int(self._load(keys=self.keys(listing_id).all(), args=args)))

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


def by_listing_of(requests: Sequence[AdmitRequest]) -> dict[str, list[int]]:
    """The requests' indexes by listing, each listing's in the order given."""
    by_listing: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        by_listing.setdefault(request.listing_id, []).append(i)
    return by_listing


def _admit_args(requests: Sequence[AdmitRequest], indexes: list[int]) -> list[Any]:
    """The ADMIT script's arguments for these requests: order id, buyer, quantity of each."""
    args: list[Any] = []
    for i in indexes:
        request = requests[i]
        args += (request.order_id, request.buyer_id, request.quantity)
    return args


_DECISIONS = {decision.value: decision for decision in Decision}


def _admission(answer: list[Any]) -> Admission:
    """The ADMIT script's answer for one order (its numbers come as integers)."""
    decision = _DECISIONS[answer[0]]
    if decision is Decision.ADMITTED or decision is Decision.SOLD_OUT:
        return Admission(decision, answer[1], answer[2])
    if decision is Decision.UNLOADED:
        return Admission(decision)
    if decision is Decision.LIMIT:
        return Admission(decision, answer[1], used=answer[2], limit=answer[3])
    buyer, units = answer[2].split(" ")
    return Admission(decision, answer[1], admitted_as=(buyer, int(units)))
