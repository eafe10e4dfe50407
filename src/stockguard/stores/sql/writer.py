"""Group commit: one writer thread per process runs everyone's writes in shared transactions.

A hot listing makes every buyer's hold a write on the same rows, and each
transaction pays for its begin, its commit and the pages it writes to the
log (about 90 µs a commit in SQLite here, against a few µs per statement).
So callers hand their work to the store's writer thread; the writer takes all
the work waiting, runs each piece in a savepoint of its own inside one
transaction, and commits once for all. A piece of work that raises is rolled
back to its savepoint alone. Every caller gets its answer only after the
commit that contains its work, so nothing is acknowledged before it is
durable, and a failed commit fails every member of the batch.

Across processes, writers queue on an exclusive ``flock`` of a lock file next
to the database before ``BEGIN IMMEDIATE``: the kernel wakes the next one the
moment the lock is free, where SQLite's own busy handler would sleep and poll.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from stockguard.domain.errors import Unavailable
from stockguard.stores.sql.engines import Backend

T = TypeVar("T")

# Bounds how long one batch holds the database's write lock.
MAX_BATCH = 64
# Runs of one piece of work that hit a retryable conflict before it fails as Unavailable.
MAX_ATTEMPTS = 5


@dataclass(eq=False)
class _Work(Generic[T]):
    run: Callable[[Any], T]
    future: Future[T] = field(default_factory=Future)


class Writer:
    """Runs write work on one connection, in batches, from a thread of its own."""

    def __init__(
        self,
        connect: Callable[[], Any],
        errors: tuple[type[Exception], ...],
        backend: Backend,
    ) -> None:
        self._connect = connect
        self._errors = errors
        self._backend = backend
        self._lock_path = backend.lock_path
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock_file: IO[bytes] | None = None

    def submit(self, run: Callable[[Any], T]) -> Future[T]:
        """Queue ``run(cursor)``; the future resolves after the commit that holds its work."""
        self._ensure_thread()
        work: _Work[T] = _Work(run)
        self._queue.put(work)
        return work.future

    def close(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join()
        self._thread = None

    def _ensure_thread(self) -> None:
        # A forked child inherits the writer object but not its thread.
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="stockguard-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        connection = None
        self._lock_file = None if self._lock_path is None else open(self._lock_path, "a+b")  # noqa: SIM115
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            try:
                if connection is None:
                    connection = self._connect()
                self._run_batch(connection, batch)
            except BaseException as error:  # the connection itself failed
                for work in batch:
                    if not work.future.done():
                        work.future.set_exception(_unavailable(error))
                if connection is not None:
                    connection.invalidate()
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def _next_batch(self) -> list[_Work[Any]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                break
            if work is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(work)
        return batch

    def _run_batch(self, connection: Any, batch: list[_Work[Any]]) -> None:
        cursor = connection.cursor()
        results: list[tuple[_Work[Any], bool, Any]] = []
        with self._process_lock():
            cursor.execute(self._backend.begin_write)
            try:
                for work in batch:
                    results.append(self._run_one(cursor, work))
                cursor.execute("COMMIT")
            except BaseException:
                if self._backend.in_transaction(connection):
                    cursor.execute("ROLLBACK")
                raise
        for work, ok, value in results:
            if ok:
                work.future.set_result(value)
            else:
                work.future.set_exception(value)

    def _run_one(self, cursor: Any, work: _Work[Any]) -> tuple[_Work[Any], bool, Any]:
        attempt = 0
        while True:
            attempt += 1
            cursor.execute("SAVEPOINT work")
            try:
                value = work.run(cursor)
            except Exception as error:
                # Only this piece of work is undone; a failure of the undo itself
                # escapes and fails the whole batch.
                cursor.execute("ROLLBACK TO work")
                cursor.execute("RELEASE work")
                if self._backend.retryable(error) and attempt < MAX_ATTEMPTS:
                    continue  # a deadlock victim, or a racing insert of the same key: run it again
                return work, False, _unavailable(error) if self._is_store_error(error) else error
            cursor.execute("RELEASE work")
            return work, True, value

    def _is_store_error(self, error: Exception) -> bool:
        return isinstance(error, self._errors) or self._backend.retryable(error)

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        if self._lock_file is None:
            yield
            return
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)


def _unavailable(error: BaseException) -> Unavailable:
    if isinstance(error, Unavailable):
        return error
    return Unavailable(f"the database is unavailable: {getattr(error, 'orig', None) or error}")
