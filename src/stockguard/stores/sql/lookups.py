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
import threading
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
        self._queue: queue.SimpleQueue[tuple[str, Future[bool]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._forks = -1  # the process generation the thread belongs to
        self._start_lock = threading.Lock()

    def exists(self, order_id: str) -> Future[bool]:
        if self._thread is None or self._forks != forks.generation():
            with self._start_lock:
                if self._thread is None or self._forks != forks.generation():
                    # A forked child inherits this object but not the thread: start its own.
                    self._queue = queue.SimpleQueue()
                    self._forks = forks.generation()
                    self._thread = threading.Thread(target=self._loop, name="stockguard-lookups", daemon=True)
                    self._thread.start()
        future: Future[bool] = Future()
        self._queue.put((order_id, future))
        return future

    def close(self) -> None:
        if self._thread is not None and self._forks == forks.generation():
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        connection = None
        while True:
            waiting = forks.take_waiting(self._queue, MAX_IDS)
            if waiting is None:
                break
            try:
                if connection is None:
                    connection = self._connect()
                found = self._look_up(connection, [order_id for order_id, _ in waiting])
            except Exception as error:
                for _, future in waiting:
                    future.set_exception(Unavailable(f"the database is unavailable: {error}"))
                if connection is not None:
                    connection.invalidate()
                    connection.close()
                    self._on_lost()
                connection = None
                continue
            for order_id, future in waiting:
                future.set_result(order_id in found)
        if connection is not None:
            connection.close()

    @staticmethod
    def _look_up(connection: Any, order_ids: list[str]) -> set[str]:
        cursor = connection.cursor()
        cursor.execute("SELECT order_id FROM orders WHERE order_id = ANY(%(ids)s)", {"ids": order_ids})
        return {row[0] for row in cursor.fetchall()}
