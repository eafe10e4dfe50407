"""The relay loop: read unpublished events in order, publish, mark them published.

At least once: an event is marked published only after the broker
acknowledged it, so a relay killed between the two sends it again when it (or
another) starts; consumers drop a repeat by its stream and sequence number.
In order: one relay publishes at a time (a lease in the store, renewed every
batch), oldest position first, and one stream's positions follow its commit
order (``stores.outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta

from stockguard.domain.errors import StockguardError
from stockguard.relay.brokers import Broker, BrokerUnavailable
from stockguard.service.events import DEFAULT_RETENTION, EventService

log = logging.getLogger("stockguard.relay")

BATCH = 500
IDLE_WAIT_S = 0.05  # how soon a new event is published when the relay had nothing to do
RETRY_WAIT_S = 0.5  # after the store or the broker failed
LEASE_S = 10.0  # another relay takes over this long after this one stopped renewing
PRUNE_EVERY_S = 60.0


class Relay:
    def __init__(
        self,
        events: EventService,
        broker: Broker,
        *,
        holder: str | None = None,
        batch: int = BATCH,
        retention: timedelta = DEFAULT_RETENTION,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._broker = broker
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self._batch = batch
        self._retention = retention
        self._monotonic = monotonic
        self._pruned_at = -PRUNE_EVERY_S
        self._lease_until = -LEASE_S  # by the monotonic clock: when this relay's lease runs out
        self.published = 0  # events this relay had acknowledged

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; store and broker failures are waited out, never fatal."""
        await self._connect(stop)
        try:
            while not stop.is_set():
                try:
                    sent = await self.relay_once()
                except (StockguardError, BrokerUnavailable) as error:
                    log.warning("relay paused: %s", getattr(error, "detail", error))
                    await _wait(stop, RETRY_WAIT_S)
                    continue
                if sent == 0:
                    await _wait(stop, IDLE_WAIT_S)
        finally:
            await self._broker.close()

    async def _connect(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._broker.connect()
                return
            except Exception as error:  # the broker is not up yet: keep trying
                log.warning("relay cannot reach the broker: %r", error)
                await _wait(stop, RETRY_WAIT_S)

    async def relay_once(self) -> int:
        """Publish one batch if this relay holds the lease; how many events it published."""
        if not await self._hold_lease():
            return 0
        batch = await asyncio.to_thread(self._events.unpublished, self._batch)
        if not batch:
            await self._prune_now_and_then()
            return 0
        await self._broker.publish(batch)
        await asyncio.to_thread(self._events.mark_published, [e.position for e in batch])
        self.published += len(batch)
        return len(batch)

    async def _hold_lease(self) -> bool:
        """Renewed once half of it is used: an idle relay writes to the store every few seconds only."""
        asked = self._monotonic()
        if asked < self._lease_until - LEASE_S / 2:
            return True
        if not await asyncio.to_thread(self._events.hold_relay_lease, self.holder, LEASE_S):
            self._lease_until = -LEASE_S
            return False
        self._lease_until = asked + LEASE_S
        return True

    async def _prune_now_and_then(self) -> None:
        now = self._monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            await asyncio.to_thread(self._events.prune_events, self._retention)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
