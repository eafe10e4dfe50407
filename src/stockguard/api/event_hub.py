"""Following event streams for server-sent events: one store read per stream per tick.

However many storefront pages follow one listing, this process reads the
listing's new events once every ``interval`` and hands them to every follower
from memory. A follower that asks for older events than the hub still holds
(a page resuming with an old ``Last-Event-ID``) reads them from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from stockguard.domain.errors import StockguardError
from stockguard.domain.events import Event, StreamKind, stream_of
from stockguard.service import Stockguard

log = logging.getLogger("stockguard.events")

POLL_S = 0.2
RECENT = 1000  # events kept per followed stream
READ = 1000  # events read at once


@dataclass
class _Followed:
    known: int  # the last sequence number the hub has read
    recent: deque[Event] = field(default_factory=lambda: deque(maxlen=RECENT))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    followers: int = 0


class EventHub:
    def __init__(self, guard: Stockguard, interval: float = POLL_S) -> None:
        self._guard = guard
        self._interval = interval
        self._streams: dict[str, _Followed] = {}
        self._task: asyncio.Task[None] | None = None

    async def follow(self, kind: StreamKind, key: str, after: int) -> AsyncIterator[Event]:
        """The stream's events after ``after``, then each new one as it is committed, until cancelled."""
        stream = stream_of(kind, key)
        followed = self._streams.setdefault(stream, _Followed(known=after))
        followed.followers += 1
        self._start()
        try:
            last = after
            while True:
                changed = followed.changed  # taken before looking: a later change sets this one
                batch = await self._after(followed, kind, key, last)
                for event in batch:
                    yield event
                    last = event.seq
                if not batch:
                    await changed.wait()
        finally:
            followed.followers -= 1

    async def _after(self, followed: _Followed, kind: StreamKind, key: str, last: int) -> list[Event]:
        recent = followed.recent
        if last >= followed.known:
            return []
        if recent and recent[0].seq <= last + 1:
            return [event for event in recent if event.seq > last]
        return await asyncio.to_thread(self._guard.events, kind, key, last, READ)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="stockguard-event-hub")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for stream, followed in list(self._streams.items()):
                if followed.followers == 0:
                    del self._streams[stream]
                    continue
                kind, key = stream.split(":", 1)
                try:
                    new = await asyncio.to_thread(self._guard.events, kind, key, followed.known, READ)
                except StockguardError as error:  # the store is briefly unavailable: next tick
                    log.warning("reading events failed: %s", error.detail)
                    continue
                if new:
                    followed.recent.extend(new)
                    followed.known = new[-1].seq
                    followed.changed.set()
                    followed.changed = asyncio.Event()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
