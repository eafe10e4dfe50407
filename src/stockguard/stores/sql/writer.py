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

A store may also decide one kind of work for the whole batch in one statement
before the works run (``decide_together``; PostgreSQL places plain new orders
so). That statement is a transaction of its own (one round trip, no BEGIN or
COMMIT); the works its answers settle are answered at once, and only the rest
runs in the batch's transaction, where a savepoint is opened for a work only
when it runs a statement of its own.

A COMMIT whose answer is cut off (the server restarted, the network went) may
or may not have been applied, and the callers must not hear "nothing
changed" when something did. The writer takes the transaction's id before it
commits and, from a thread of its own, asks the database what became of it
once it answers again; a joint decision cut off the same way is run again,
which placing by order id makes safe. Only when the database stays away for
the backend's ``in_doubt_seconds`` (10 s unless the URL says otherwise) do
those callers hear ``OutcomeUnknown``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from stockguard.domain.errors import OutcomeUnknown, Unavailable
from stockguard.stores.sql import forks
from stockguard.stores.sql.engines import Backend, Session

T = TypeVar("T")

log = logging.getLogger("stockguard.store")

# Bounds how long one batch holds the database's write lock.
MAX_BATCH = 64
# Runs of one piece of work that hit a retryable conflict before it fails as Unavailable.
MAX_ATTEMPTS = 5
# Pause between questions while the database does not answer.
IN_DOUBT_POLL_SECONDS = 0.2


# Decides the requests of a batch's works in one statement (atomic by itself, in
# autocommit): one answer per request, in order.
DecideTogether = Callable[[Any, list[Any]], list[Any]]


@dataclass(eq=False)
class _Work(Generic[T]):
    run: Callable[[Any, Any], T]  # (cursor, the answer decided for its request, or None)
    request: Any = None
    future: Future[T] = field(default_factory=Future)


class Writer:
    """Runs write work on one connection, in batches, from a thread of its own."""

    def __init__(
        self,
        connect: Callable[[], Any],
        errors: tuple[type[Exception], ...],
        backend: Backend,
        decide_together: DecideTogether | None = None,
        on_lost: Callable[[], None] | None = None,
        before_commit: Callable[[Any], None] | None = None,
    ) -> None:
        """``on_lost`` runs when the writer's connection failed (the store drops its pool).
        ``before_commit(cursor)`` runs last in every batch's transaction that some work wrote in
        (the store writes the batch's change events there); ``batch_started`` before each batch."""
        self._connect = connect
        self._on_lost = on_lost
        self._decide_together = decide_together
        self._before_commit = before_commit
        self.batch_started: Callable[[], None] = lambda: None
        self._errors = errors
        self._backend = backend
        self._lock_path = backend.lock_path
        self._thread: forks.QueueThread[_Work[Any]] = forks.QueueThread("stockguard-writer", self._loop)
        self._lock_file: IO[bytes] | None = None
        # Committed batches in which some work wrote (not only read, and not only
        # answers decided together): what this process changed, and when.
        self.changes = 0
        self._changes_lock = threading.Lock()  # a commit found in doubt is counted by another thread
        # Once closed, work is refused at once: queued after the writer's last batch, it would wait
        # forever (a commit in doubt is still being asked about while the store closes).
        self._closed = False
        self._open_lock = threading.Lock()
        self._in_doubt: set[_Work[Any]] = set()  # works a resolver answers; answered by close()

    def submit(self, run: Callable[[Any, Any], T], request: Any = None) -> Future[T]:
        """Queue ``run(cursor, answer)``; the future resolves after the commit that holds its work.

        With a ``request``, ``answer`` is what ``decide_together`` answered for it
        (None where it was not decided)."""
        work: _Work[T] = _Work(run, request)
        with self._open_lock:
            if self._closed:
                work.future.set_exception(Unavailable("the store is closed"))
            else:
                self._thread.put(work)
        return work.future

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            in_doubt, self._in_doubt = self._in_doubt, set()
        # Their resolvers stop asking at their next try; their callers need not wait for it.
        for work in in_doubt:
            _settle(work.future, False, OutcomeUnknown())
        self._thread.close()

    def _loop(self, waiting: queue.SimpleQueue[_Work[Any] | None]) -> None:
        connection = forks.KeptConnection(self._connect, self._on_lost)
        self._lock_file = None if self._lock_path is None else open(self._lock_path, "a+b")  # noqa: SIM115
        while (batch := forks.take_waiting(waiting, MAX_BATCH)) is not None:
            try:
                self._run_batch(connection.get(), batch)
            except _InDoubt as doubt:
                _fail_unsettled(batch, doubt.__cause__, spare=doubt.works)
                self._start_resolving(doubt)
                connection.lost()
            except BaseException as error:  # the connection itself failed
                _fail_unsettled(batch, error)
                connection.lost()
        connection.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def _run_batch(self, connection: Any, batch: list[_Work[Any]]) -> None:
        cursor = connection.cursor()
        committed: list[tuple[_Work[Any], bool, Any, bool]] = []
        try:
            with self._process_lock():
                left = self._settle_decided(connection, cursor, batch)
                if not left:
                    return
                try:
                    committed += self._transaction(connection, cursor, left)
                except _LockCycle:
                    # Another process's transaction waits on rows this batch's earlier works locked
                    # while one of ours waits on its rows: running ours again in the same transaction
                    # would meet the same cycle (PostgreSQL breaks one a second). The whole batch was
                    # rolled back, which lets the other go on; each work now runs alone, and a work
                    # alone locks its rows in one sorted order.
                    for work, _answer in left:
                        committed += self._transaction(connection, cursor, [(work, None)])
        finally:
            # Answered after the lock is let go, and even when a later transaction failed:
            # what committed stays committed.
            for work, ok, value, _ in committed:
                _settle(work.future, ok, value)

    def _transaction(
        self, connection: Any, cursor: Any, works: list[tuple[_Work[Any], Any]]
    ) -> list[tuple[_Work[Any], bool, Any, bool]]:
        """Run ``works`` in one transaction and commit it; their results, to settle after."""
        results: list[tuple[_Work[Any], bool, Any, bool]] = []
        wrote, transaction_id = False, None  # its id once COMMIT is on its way, if it can be in doubt
        self.batch_started()
        cursor.execute(self._backend.begin_write)
        try:
            for work, answer in works:
                results.append(self._run_one(cursor, work, answer, others_locked=bool(results)))
            wrote = any(kept for *_, kept in results)
            if self._before_commit is not None and wrote:
                self._before_commit(_BatchCursor(cursor))
            transaction_id = self._backend.transaction_id(cursor)
            cursor.execute("COMMIT")
        except BaseException as error:
            if not self._backend.lost(connection):
                if self._backend.in_transaction(connection):
                    cursor.execute("ROLLBACK")
                raise
            if transaction_id is not None:
                raise _CommitInDoubt(
                    transaction_id, self._backend.session(connection), results, wrote
                ) from error
            raise  # lost before COMMIT was sent, or a transaction that wrote nothing: nothing stays
        if wrote:
            self.count_change()  # before anybody hears of the change
        return results

    @property
    def backend(self) -> Backend:
        return self._backend

    def _start_resolving(self, doubt: _InDoubt) -> None:
        with self._open_lock:
            if self._closed:
                for work in doubt.works:
                    _settle(work.future, False, OutcomeUnknown())
                return
            self._in_doubt.update(doubt.works)
        deadline = time.monotonic() + self._backend.in_doubt_seconds
        try:
            resolver = threading.Thread(
                target=self._resolve, args=(doubt, deadline), name="stockguard-in-doubt", daemon=True
            )
            resolver.start()
        except BaseException:
            log.exception("cannot start asking about a commit in doubt")
            self._answer_the_rest(doubt)

    def _resolve(self, doubt: _InDoubt, deadline: float) -> None:
        """Find out what became of ``doubt`` by ``deadline`` and answer its works; a failure of the
        asking itself leaves them ``OutcomeUnknown``, never unanswered."""
        try:
            doubt.resolve(self, deadline)
        except BaseException:
            log.exception("finding out what became of a commit in doubt failed")
        self._answer_the_rest(doubt)

    def _answer_the_rest(self, doubt: _InDoubt) -> None:
        """Whatever of ``doubt`` is still unanswered can no longer be told: OutcomeUnknown."""
        with self._open_lock:
            self._in_doubt.difference_update(doubt.works)
        for work in doubt.works:
            if not work.future.done():
                _settle(work.future, False, OutcomeUnknown())

    def ask_until(
        self, deadline: float, question: Callable[[Any], T | None], final: Collection[T]
    ) -> T | None:
        """``question(cursor)`` on a connection of its own, asked again while the database does not
        answer or the answer is not in ``final``, until ``deadline`` (or until the writer closes):
        a final answer, or None. No single try outlasts the time left by much: the connection
        times out its connect and drops when the server stops acknowledging."""
        while not self._closed:
            raw = None
            try:
                raw = self._backend.connect_for_asking(deadline - time.monotonic())
                answer = question(raw.cursor())
                if answer in final:
                    return answer
            except Exception:
                pass  # not answering yet: asked again
            finally:
                if raw is not None:
                    with contextlib.suppress(Exception):
                        raw.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(IN_DOUBT_POLL_SECONDS)
        return None

    def count_change(self) -> None:
        with self._changes_lock:
            self.changes += 1

    def _settle_decided(
        self, connection: Any, cursor: Any, batch: list[_Work[Any]]
    ) -> list[tuple[_Work[Any], Any]]:
        """Decide the batch's requests in one statement and answer every work that needs no more.

        The statement runs outside any transaction of ours, so it is one of its
        own: committed (durably) when it returns, or, when it raises on a live
        connection, not applied at all. A work whose answer settles it is answered
        at once; the rest (and every work, if the statement failed) is returned,
        with its answer, to run in the batch's transaction.
        """
        asking = [work for work in batch if work.request is not None]
        if self._decide_together is None or not asking:
            return [(work, None) for work in batch]
        try:
            decided = self._decide_together(cursor, [work.request for work in asking])
        except Exception as error:
            if self._backend.lost(connection):
                # Cut off: the statement may have committed. Its works are run again.
                raise _DecisionInDoubt(asking, self._backend.session(connection)) from error
            # Nothing was applied: every work runs on its own and meets its own
            # answer, e.g. after another process raced an insert.
            return [(work, None) for work in batch]
        answers = dict(zip(asking, decided, strict=True))
        left: list[tuple[_Work[Any], Any]] = []
        for work in batch:
            answer = answers.get(work)
            if answer is None:
                left.append((work, None))
                continue
            try:
                value = work.run(_NO_STATEMENTS, answer)
            except _NeedsTransaction:
                left.append((work, answer))
            except Exception as error:
                _settle(work.future, False, error)
            else:
                _settle(work.future, True, value)
        return left

    def _run_one(
        self, cursor: Any, work: _Work[Any], answer: Any, *, others_locked: bool = False
    ) -> tuple[_Work[Any], bool, Any, bool]:
        """(work, succeeded, its value or error, wrote something that stays)

        ``others_locked``: earlier works of this transaction ran; their locks stay held while
        this one is undone, so a deadlock is not retried here but raised as ``_LockCycle``.
        """
        attempt = 0
        while True:
            attempt += 1
            scoped = _SavepointCursor(cursor)
            try:
                value = work.run(scoped, answer)
            except Exception as error:
                # Only this piece of work is undone; a failure of the undo itself
                # escapes and fails the whole batch.
                scoped.undo()
                if self._backend.retryable(error) and others_locked:
                    raise _LockCycle from error
                if self._backend.retryable(error) and attempt < MAX_ATTEMPTS:
                    answer = None  # decided before the conflict: decide again in full
                    continue  # a deadlock victim, or a racing insert of the same key: run it again
                failure = _unavailable(error) if self._is_store_error(error) else error
                return work, False, failure, False  # undone: nothing it wrote stays
            scoped.keep()
            return work, True, value, scoped.written

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


class _InDoubt(BaseException, metaclass=abc.ABCMeta):
    """The connection was lost while work's changes were being committed: they may stay or not.

    ``resolve(writer)`` runs on a thread of its own, finds out, and answers ``works`` (those it
    leaves unanswered hear ``OutcomeUnknown``)."""

    def __init__(self, works: list[_Work[Any]], session: Session | None) -> None:
        super().__init__()
        self.works = works
        # The session that was cut off: ended first, so that nothing it still runs can change
        # the answer afterwards (a COMMIT not yet through, a statement waiting on a lock).
        self.session = session

    @abc.abstractmethod
    def resolve(self, writer: Writer, deadline: float) -> None:
        """Find out by ``deadline`` (monotonic), and answer the works."""

    def end_session(self, writer: Writer, cursor: Any) -> bool:
        """Whether the cut-off session has ended (asked to end if not); False if unknown."""
        return self.session is not None and writer.backend.end_session(cursor, self.session)


class _CommitInDoubt(_InDoubt):
    """A batch's COMMIT was cut off: the database keeps what became of the transaction by id."""

    def __init__(
        self,
        transaction_id: str,
        session: Session | None,
        results: list[tuple[_Work[Any], bool, Any, bool]],
        wrote: bool,
    ) -> None:
        super().__init__([work for work, *_ in results], session)
        self.transaction_id = transaction_id
        self.results = results
        self.wrote = wrote

    def resolve(self, writer: Writer, deadline: float) -> None:
        fate = writer.ask_until(deadline, lambda cursor: self._fate(writer, cursor), {"committed", "aborted"})
        if fate == "committed":
            if self.wrote:
                writer.count_change()
            for work, ok, value, _ in self.results:
                _settle(work.future, ok, value)
            return
        failure: Exception = _unavailable(self.__cause__ or self) if fate == "aborted" else OutcomeUnknown()
        for work in self.works:
            _settle(work.future, False, failure)

    def _fate(self, writer: Writer, cursor: Any) -> str | None:
        # Committed or aborted is final whether the session has ended or not; ending it only
        # turns a transaction that stays "in progress" (its session waiting for a client that
        # is gone) into an answer.
        with contextlib.suppress(Exception):
            self.end_session(writer, cursor)
        return writer.backend.commit_status(cursor, self.transaction_id)


class _DecisionInDoubt(_InDoubt):
    """A joint decision was cut off. Each of its works (placements, idempotent by order id) is run
    again, in full, once the database answers: it finds what the cut-off statement did, or does
    it now."""

    def resolve(self, writer: Writer, deadline: float) -> None:
        # Run again only once the cut-off statement cannot run on: beside it, the placement would
        # find the stock its own first run took and answer a refusal for a placed order.
        if writer.ask_until(deadline, lambda cursor: self.end_session(writer, cursor), {True}) is None:
            return  # the session cannot be ended, or told apart: its works hear OutcomeUnknown
        waiting = self.works
        while waiting and writer.ask_until(deadline, _reachable, {True}) is not None:
            runs = [(work, writer.submit(work.run)) for work in waiting]
            waiting = []
            for work, again in runs:
                try:
                    error = again.exception(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return  # not run again in time: those left hear OutcomeUnknown
                if isinstance(error, Unavailable):
                    waiting.append(work)  # this run changed nothing; the first one still may have
                elif error is not None:
                    _settle(work.future, False, error)
                else:
                    _settle(work.future, True, again.result())
            if waiting and time.monotonic() >= deadline:
                return  # those still waiting hear OutcomeUnknown
            if waiting:
                time.sleep(IN_DOUBT_POLL_SECONDS)


def _reachable(cursor: Any) -> bool:
    cursor.execute("SELECT 1")
    return cursor.fetchone() is not None


class _LockCycle(BaseException):
    """A work of a batch met a deadlock (or a racing insert) while earlier works of the batch
    hold their locks: the batch rolls back and its works run alone. A BaseException, so that no
    ``except Exception`` in a work can take it for its own error."""


class _NeedsTransaction(BaseException):
    """A work answered by a joint decision tried to run a statement: it runs in the transaction.

    A BaseException, so that no ``except Exception`` on the way can take it for the work's own error.
    """


class _NoStatements:
    """The cursor for a work that should be settled by its answer alone."""

    def execute(self, sql: str, params: Any = None, /) -> Any:
        raise _NeedsTransaction

    def executemany(self, sql: str, params: Any, /) -> Any:
        raise _NeedsTransaction

    def fetchone(self) -> Any:
        raise _NeedsTransaction

    def fetchall(self) -> list[Any]:
        raise _NeedsTransaction

    def mark_written(self) -> None:
        raise _NeedsTransaction


_NO_STATEMENTS = _NoStatements()


class _BatchCursor:
    """The batch's own cursor, for what runs in its transaction after its works (no savepoint)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Any = None, /) -> Any:
        return self._cursor.execute(sql) if params is None else self._cursor.execute(sql, params)

    def executemany(self, sql: str, params: Any, /) -> Any:
        return self._cursor.executemany(sql, params)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def mark_written(self) -> None:
        """The batch wrote already (it runs only then)."""


class _SavepointCursor(_BatchCursor):
    """A work's cursor: opens a savepoint before the work's first statement, if it runs one."""

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor)
        self.opened = False
        self.written = False  # a write ran, not only reads (an empty sweep writes nothing)

    def _open(self) -> None:
        if not self.opened:
            self._cursor.execute("SAVEPOINT work")
            self.opened = True

    def execute(self, sql: str, params: Any = None, /) -> Any:
        self._open()
        return super().execute(sql, params)

    def executemany(self, sql: str, params: Any, /) -> Any:
        self._open()
        return super().executemany(sql, params)

    def mark_written(self) -> None:
        self.written = True

    def keep(self) -> None:
        if self.opened:
            self._cursor.execute("RELEASE work")

    def undo(self) -> None:
        if self.opened:
            self._cursor.execute("ROLLBACK TO work")
            self._cursor.execute("RELEASE work")


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    """Answer a caller; one who cancelled its future no longer listens, and the rest still hear."""
    if future.cancelled():
        return
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass  # cancelled meanwhile


def _fail_unsettled(
    batch: list[_Work[Any]], error: BaseException | None, spare: Sequence[_Work[Any]] = ()
) -> None:
    """Answer the batch's works not answered yet (and not in ``spare``): they changed nothing."""
    for work in batch:
        if not work.future.done() and work not in spare:
            _settle(
                work.future, False, _unavailable(error or Unavailable("the database connection was lost"))
            )


def _unavailable(error: BaseException) -> Unavailable:
    if isinstance(error, Unavailable):
        return error
    return Unavailable(f"the database is unavailable: {getattr(error, 'orig', None) or error}")
