"""Awaiting the store's futures from the event loop, with one wake-up per batch of answers.

``asyncio.wrap_future`` wakes the loop once per future (``call_soon_threadsafe``:
a handle and a write to the loop's self-pipe each), and the store's writer
answers a whole batch of orders at once. The bridge queues the answers that
arrive and wakes the loop once for all of those queued before it runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    """Turns concurrent futures into awaitables of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._answered: deque[tuple[asyncio.Future[Any], Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._woken = False

    def wait(self, future: Future[T]) -> asyncio.Future[T]:
        """An asyncio future of this loop that settles as ``future`` does (call from the loop)."""
        waiting: asyncio.Future[T] = self._loop.create_future()
        future.add_done_callback(lambda done: self._arrived(waiting, done))
        return waiting

    def _arrived(self, waiting: asyncio.Future[Any], done: Future[Any]) -> None:
        # Any thread. Queue first, then wake the loop unless a wake-up is pending,
        # and the pending one has not yet started emptying the queue.
        self._answered.append((waiting, done))
        with self._lock:
            if self._woken:
                return
            self._woken = True
        self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        # On the loop. Allow the next wake-up before emptying: an answer queued
        # after this point either is taken below or wakes the loop again.
        with self._lock:
            self._woken = False
        answered = self._answered
        while answered:
            waiting, done = answered.popleft()
            if waiting.cancelled():
                continue
            error = done.exception()
            if error is not None:
                waiting.set_exception(error)
            else:
                waiting.set_result(done.result())
