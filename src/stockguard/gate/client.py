"""GateClient: the gate as the service uses it, without blocking the caller on Redis.

Callers queue their calls, an admission with the function its answer is
given to (no future per order: one cost more than the rest of an
admission's work in this process). One thread takes every call waiting and
decides the admissions of each listing in one script call, one pipeline per
node, so a burst of buyers costs one round trip, not one each. Calls that only tell the gate
something (a release, a forgotten order, a new bound on tokens, a sold-out
announcement) go first in each batch, in the order they were made, so an
admission queued after them sees their effect.

It also notices a Redis that went back in time: every answer carries the
listing's change count (``seq``), and an answer below the highest this
process has seen comes from a server restored from an old snapshot. Such a
gate's state cannot be trusted; its answer becomes ``unloaded``, and the
service loads the listing again.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import redis

from stockguard.domain.model import LiveLine
from stockguard.gate.pipe import AdmissionPipe, Sent
from stockguard.gate.redis_gate import AdmitRequest, RedisGate
from stockguard.service.admission import Admission, Answered, Decision, GateState
from stockguard.stores.sql.forks import QueueThread, take_waiting

log = logging.getLogger("stockguard.gate")

MAX_BATCH = 256
SOLD_OUT_CHANNEL = "sold-out"


class _Admit(NamedTuple):  # one per order on the hot path: cheaper than a dataclass
    request: AdmitRequest
    answered: Answered


# A call that only tells the gate something: run in order, failures logged.
_Tell = Callable[[RedisGate], object]


# How long starting the gate waits for Redis to confirm the sold-out channel's subscription;
# past it (Redis slow or down) the process starts anyway and subscribes when Redis answers.
SUBSCRIBE_WAIT_S = 2.0


class GateClient:
    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        self._name = secrets.token_hex(8)  # tells this process's announcements from the others'
        self._calls: QueueThread[_Admit | _Tell] = QueueThread("stockguard-gate", self._loop)
        self._seen: dict[str, int] = {}  # listing -> the highest seq answered
        self._listeners: list[Callable[[str], None]] = []
        self._subscriber: threading.Thread | None = None
        self._subscribed = threading.Event()  # Redis confirmed the sold-out channel's subscription
        self._closed = threading.Event()

    # -- AdmissionGate
    def admit(self, listing_id: str, order_id: str, buyer_id: str, quantity: int, answered: Answered) -> None:
        self._calls.put(_Admit(AdmitRequest(listing_id, order_id, buyer_id, quantity), answered))

    def release(self, listing_id: str, order_id: str) -> None:
        self._calls.put(lambda gate: gate.release(listing_id, order_id))

    def forget(self, listing_id: str, order_id: str) -> None:
        self._calls.put(lambda gate: gate.forget(listing_id, order_id))

    def cap_tokens(self, listing_id: str, at_most: int) -> None:
        self._calls.put(lambda gate: gate.bound_tokens(listing_id, at_most=at_most))

    def raise_tokens(self, listing_id: str, at_least: int) -> None:
        self._calls.put(lambda gate: gate.bound_tokens(listing_id, at_least=at_least))

    def announce_sold_out(self, listing_id: str) -> None:
        message = f"{self._name} {listing_id}"
        self._calls.put(lambda gate: gate.publish(SOLD_OUT_CHANNEL, message))

    def load(self, listing_id: str, tokens: int, limit: int | None, live: Iterable[LiveLine]) -> None:
        """Synchronous: the caller loads from a thread of its own, and waits for Redis."""
        loaded = self._gate.load(listing_id, tokens, limit, live, seen_seq=self._seen.get(listing_id, 0))
        # Answers to admissions made before the load and read after it carry a lower seq: they
        # count as from a gate gone back in time (their orders take the path without a gate).
        self._saw(listing_id, loaded.seq)
        log.info('{"gate_loaded": "%s", "tokens": %d}', listing_id, tokens)

    def state(self, listing_id: str) -> GateState | None:
        return self._gate.state(listing_id)

    def on_sold_out_elsewhere(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` with each listing another process announces sold out. Returns once
        Redis confirmed the subscription (at most ``SUBSCRIBE_WAIT_S``): an announcement made
        after a process started is heard by it, not lost to a thread still connecting."""
        self._listeners.append(listener)
        if self._subscriber is None:
            self._subscriber = threading.Thread(target=self._listen, name="stockguard-gate-sub", daemon=True)
            self._subscriber.start()
        self._subscribed.wait(SUBSCRIBE_WAIT_S)

    def close(self) -> None:
        self._closed.set()
        self._calls.close(timeout=10)
        if self._subscriber is not None:
            self._subscriber.join(timeout=5)

    # -- the thread
    def _loop(self, queued: queue.SimpleQueue[_Admit | _Tell | None]) -> None:
        pipe = AdmissionPipe(self._gate)
        on_their_way: deque[tuple[list[_Admit], Sent]] = deque()
        try:
            while True:
                batch: list[_Admit | _Tell] | None = take_waiting(queued, MAX_BATCH, block=not on_their_way)
                if batch is None:
                    break
                admits: list[_Admit] = []
                for call in batch:
                    if isinstance(call, _Admit):
                        admits.append(call)
                        continue
                    while on_their_way:  # a call that tells the gate something comes after them
                        self._receive(pipe, *on_their_way.popleft())
                    self._tell(call)
                if admits:
                    # Batches not on a working line are read (asked) before a newer batch is
                    # sent, so Redis decides the batches in the order they were taken.
                    while any(not sent.on_working_line for _, sent in on_their_way):
                        self._receive(pipe, *on_their_way.popleft())
                    on_their_way.append((admits, pipe.send([call.request for call in admits])))
                # Two batches on their way at most: the older one's answers are read once a
                # newer one was sent, or when nothing new is waiting.
                if on_their_way and (len(on_their_way) > 1 or not batch):
                    self._receive(pipe, *on_their_way.popleft())
        finally:
            while on_their_way:
                self._receive(pipe, *on_their_way.popleft())
            pipe.close()

    def _tell(self, call: _Tell) -> None:
        try:
            call(self._gate)
        except redis.RedisError as error:
            # The gate may now be off by this call: the store still decides every
            # order, and `stockguard check` reports what drifted.
            log.warning("gate call failed: %s", error)

    def _receive(self, pipe: AdmissionPipe, admits: list[_Admit], sent: Sent) -> None:
        self._give(admits, pipe.receive(sent))

    def _give(self, admits: list[_Admit], answers: list[Admission | redis.RedisError]) -> None:
        unreachable: redis.RedisError | None = None
        for call, answer in zip(admits, answers, strict=True):
            if isinstance(answer, redis.RedisError):
                unreachable = answer
                decided = None
            else:
                decided = self._trusted(call.request.listing_id, answer)
            try:
                call.answered(decided)
            except Exception:  # the caller's failure; this thread answers the other callers
                log.exception("an admission's answer failed")
        if unreachable is not None:
            log.warning("the gate is unreachable: %s", unreachable)

    def _trusted(self, listing_id: str, admission: Admission) -> Admission:
        if admission.seq is None:
            return admission
        seen = self._seen.get(listing_id, 0)
        if admission.seq < seen:
            log.warning('{"gate_stale": "%s", "seq": %d, "seen": %d}', listing_id, admission.seq, seen)
            return Admission(Decision.UNLOADED)
        self._saw(listing_id, admission.seq)
        return admission

    def _saw(self, listing_id: str, seq: int) -> None:
        if seq > self._seen.get(listing_id, 0):
            self._seen[listing_id] = seq

    def _listen(self) -> None:
        subscription: Any = None
        while not self._closed.is_set():
            try:
                if subscription is None:
                    subscription = self._gate.pubsub(SOLD_OUT_CHANNEL)
                message = subscription.get_message(timeout=0.5)
            except redis.RedisError:
                subscription = None  # subscribe again once Redis answers
                self._closed.wait(0.5)
                continue
            if message is not None and message.get("type") == "subscribe":
                self._subscribed.set()
            if message is None or message.get("type") != "message":
                continue
            sender, _, listing_id = str(message["data"]).partition(" ")
            if sender == self._name:
                continue  # this process knows already, and on firmer ground
            for listener in self._listeners:
                listener(listing_id)
        if subscription is not None:
            subscription.close()
