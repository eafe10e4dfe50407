"""Order-id lookups answered by a thread of their own, many per round trip.

A sold-out listing's buyers are refused after one lookup (is this order id a
replay?). On PostgreSQL that is a network round trip; made on the caller's
thread, it would stall an event loop for every refusal. So callers queue the
id and get a future; this thread takes every id waiting, asks for all of them
in one statement (autocommit: each statement sees the latest commits) and
answers each future.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from stockguard.domain.errors import Unavailable
from stockguard.stores.sql import forks

MAX_IDS = 512


class OrderLookups:
    def __init__(self, connect: Callable[[], Any], on_lost: Callable[[], None]) -> None:
        """``connect``: a pooled driver connection in autocommit; ``on_lost``: drop the pool."""
        self._connect = connect
        self._on_lost = on_lost
        self._thread: forks.QueueThread[tuple[str, Future[bool]]] = forks.QueueThread(
            "stockguard-lookups", self._loop
        )

    def exists(self, order_id: str) -> Future[bool]:
        future: Future[bool] = Future()
        self._thread.put((order_id, future))
        return future

    def close(self) -> None:
        self._thread.close()

    def _loop(self, queued: queue.SimpleQueue[tuple[str, Future[bool]] | None]) -> None:
        connection = forks.KeptConnection(self._connect, self._on_lost)
        while (waiting := forks.take_waiting(queued, MAX_IDS)) is not None:
            try:
                found = self.look_up(connection.get(), [order_id for order_id, _ in waiting])
            except Exception as error:
                for _, future in waiting:
                    future.set_exception(Unavailable(f"the database is unavailable: {error}"))
                connection.lost()
                continue
            for order_id, future in waiting:
                future.set_result(order_id in found)
        connection.close()

    @staticmethod
    def look_up(connection: Any, order_ids: list[str]) -> set[str]:
        """Which of ``order_ids`` exist, in one statement on ``connection``."""
        cursor = connection.cursor()
        # Planned again each time, never prepared: a prepared statement keeps the plan made on its
        # first runs, and one made while a new store's orders were few reads them all, on every
        # lookup, for as long as the connection lives (until autovacuum analyses the table).
        cursor.execute(
            "SELECT order_id FROM orders WHERE order_id = ANY(%(ids)s)", {"ids": order_ids}, prepare=False
        )
        return {row[0] for row in cursor.fetchall()}
