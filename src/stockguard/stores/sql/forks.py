"""Helpers of the store's background threads: which process they belong to, and their queues.

A forked child inherits a store's objects but none of its threads. Each
background thread notes the generation it was started in; when the number
differs, the caller is in a child and starts the thread again. Cheaper to
compare on every call than asking the kernel for the pid.
"""

from __future__ import annotations

import os
import queue
from typing import TypeVar

T = TypeVar("T")

_forks_seen = [0]
os.register_at_fork(after_in_child=lambda: _forks_seen.__setitem__(0, _forks_seen[0] + 1))


def generation() -> int:
    """Forks this process has been through (a child counts its parent's and one more)."""
    return _forks_seen[0]


def take_waiting(waiting: queue.SimpleQueue[T | None], limit: int) -> list[T] | None:
    """Block for one item, then take every item already queued, up to ``limit``.

    None in the queue means stop: it ends the batch, stays queued for the next
    call, and the call after the last batch answers None.
    """
    first = waiting.get()
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
