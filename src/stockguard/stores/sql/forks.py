"""The background threads of the store and the gate: which process they belong to, and their queues.

A forked child inherits a store's objects but none of its threads. Each
background thread notes the generation it was started in; when the number
differs, the caller is in a child and starts the thread again. Cheaper to
compare on every call than asking the kernel for the pid.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("stockguard.store")

_forks_seen = [0]
os.register_at_fork(after_in_child=lambda: _forks_seen.__setitem__(0, _forks_seen[0] + 1))


def generation() -> int:
    """Forks this process has been through (a child counts its parent's and one more)."""
    return _forks_seen[0]


def take_waiting(waiting: queue.SimpleQueue[T | None], limit: int, *, block: bool = True) -> list[T] | None:
    """Block for one item (``block=False``: answer [] when none is queued), then take every
    item already queued, up to ``limit``.

    None in the queue means stop: it ends the batch, stays queued for the next
    call, and the call after the last batch answers None.
    """
    try:
        first = waiting.get(block=block)
    except queue.Empty:
        return []
    if first is None:
        return None
    batch = [first]
    while len(batch) < limit:
        try:
            item = waiting.get_nowait()
        except queue.Empty:
            break
        if item is None:
            waiting.put(None)  # stop after this batch
            break
        batch.append(item)
    return batch


class QueueThread(Generic[T]):
    """A daemon thread fed by a queue of its own, started on first use and again in a forked
    child (which inherits this object but not the thread). ``run(queue)`` is the thread's
    body: it takes items (``take_waiting``) until it meets None, which ``close`` puts."""

    def __init__(self, name: str, run: Callable[[queue.SimpleQueue[T | None]], None]) -> None:
        self._name = name
        self._run = run
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._forks = -1  # the process generation the thread belongs to
        self._start_lock = threading.Lock()

    def put(self, item: T) -> None:
        if self._thread is None or self._forks != generation():
            with self._start_lock:
                if self._thread is None or self._forks != generation():
                    self._queue = queue.SimpleQueue()
                    self._forks = generation()
                    self._thread = threading.Thread(
                        target=self._run, args=(self._queue,), name=self._name, daemon=True
                    )
                    self._thread.start()
        self._queue.put(item)

    def close(self, timeout: float | None = None) -> None:
        """Stop this process's thread once it has taken what was queued before."""
        if self._thread is not None and self._forks == generation():
            self._queue.put(None)
            self._thread.join(timeout)
        self._thread = None


class KeptConnection:
    """The driver connection a background thread keeps from batch to batch. One that failed is
    dropped (``lost``): closed, its pool told (a restarted server took every connection with
    it), and the next ``get`` connects again."""

    def __init__(self, connect: Callable[[], Any], on_lost: Callable[[], None] | None) -> None:
        self._connect = connect
        self._on_lost = on_lost
        self._connection: Any = None

    def get(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def lost(self) -> None:
        """Let the failed connection go. Never raises: the thread that keeps it carries on with
        a new one whatever happens here."""
        connection, self._connection = self._connection, None  # the next get connects again, come what may
        if connection is None:
            return  # connecting itself failed
        try:
            connection.invalidate()
            connection.close()
        except Exception:
            log.warning("letting a lost database connection go failed", exc_info=True)
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:
                log.warning("telling the pool of a lost database connection failed", exc_info=True)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
