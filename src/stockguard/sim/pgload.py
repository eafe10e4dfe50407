"""The load of the PostgreSQL bench: many clients, each buyer one timed attempt.

Clients are threads of this process, or threads of spawned processes that
share the database. They take buyer indexes one at a time from one shared
counter (the pool's turnstile), so every buyer makes exactly one attempt, and
each client records the latency of each of its attempts and when its last
hold was answered. Times are ``time.monotonic()``, which on Linux is one clock
for every process of the machine, so stamps taken in workers compare with the
start stamp taken here.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any, Protocol

from stockguard.sim.pool import READY_TIMEOUT_SECONDS, TICK_SECONDS, SimulationError, Tick, Turnstile


class Client(Protocol):
    """One client of the shop: one buyer's attempt at one unit, answered held (True) or refused (False).

    Anything else (a lost connection, a store that is unavailable) raises and counts as an error.
    """

    def attempt(self, index: int) -> bool: ...


class ClientFactory(Protocol):
    """Plain data that opens ``threads`` clients inside a worker process (it crosses by pickling)."""

    @property
    def threads(self) -> int: ...

    def open(self) -> AbstractContextManager[Sequence[Client]]: ...


class _Event(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(slots=True)
class ClientRecord:
    """What one client saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per attempt
    hold_latencies: list[float] = field(default_factory=list)  # seconds, one per hold
    holds: int = 0
    refusals: int = 0
    errors: int = 0
    last_hold: float = 0.0  # monotonic time when this client's last hold was answered
    first_error: str | None = None


@dataclass(frozen=True, slots=True)
class Load:
    """What every client of one arm saw, and when the crowd was let in and was done."""

    records: list[ClientRecord]
    began: float
    ended: float

    @property
    def holds(self) -> int:
        return sum(r.holds for r in self.records)

    @property
    def refusals(self) -> int:
        return sum(r.refusals for r in self.records)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.records)

    @property
    def selling_seconds(self) -> float:
        """From the start to the answer of the last hold: the selling phase."""
        last = max((r.last_hold for r in self.records if r.holds), default=self.began)
        return last - self.began

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    def latencies(self) -> list[float]:
        return sorted(x for r in self.records for x in r.latencies)

    def hold_latencies(self) -> list[float]:
        return sorted(x for r in self.records for x in r.hold_latencies)

    @property
    def first_error(self) -> str | None:
        return next((r.first_error for r in self.records if r.first_error), None)


def serve(client: Client, turnstile: Turnstile, stop: _Event) -> ClientRecord:
    """Take buyers one by one until the crowd is gone; time each attempt."""
    record = ClientRecord()
    clock = time.monotonic
    while not stop.is_set():
        taken = turnstile.take(1)
        if not taken:
            break
        began = clock()
        try:
            held: bool | None = client.attempt(taken[0])
        except Exception as error:
            held = None
            record.errors += 1
            if record.first_error is None:
                record.first_error = f"{type(error).__name__}: {error}"
        answered = clock()
        record.latencies.append(answered - began)
        if held:
            record.holds += 1
            record.hold_latencies.append(answered - began)
            record.last_hold = answered
        elif held is not None:
            record.refusals += 1
        turnstile.served(1)
    return record


def _start_client_threads(
    clients: Sequence[Client], turnstile: Turnstile, start: Any, stop: Any
) -> tuple[list[threading.Thread], list[ClientRecord | BaseException]]:
    """One thread per client, each waiting for ``start``; a failing client stops them all.

    The records list fills in as the threads end: a ClientRecord, or the error.
    """
    records: list[ClientRecord | BaseException] = [ClientRecord() for _ in clients]

    def run(slot: int, client: Client) -> None:
        start.wait()
        try:
            records[slot] = serve(client, turnstile, stop)
        except BaseException as error:
            records[slot] = error
            stop.set()

    threads = [threading.Thread(target=run, args=pair, daemon=True) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    return threads, records


def run_threads(clients: Sequence[Client], buyers: int, tick: Tick) -> Load:
    """Every client on a thread of this process, let in at one instant."""
    turnstile = Turnstile(mp.get_context("spawn"))
    turnstile.reset(buyers)
    start, stop = threading.Event(), threading.Event()
    threads, records = _start_client_threads(clients, turnstile, start, stop)
    began = time.monotonic()
    start.set()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(TICK_SECONDS)
                tick(turnstile.done)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    ended = time.monotonic()
    tick(turnstile.done)
    failed = [r for r in records if isinstance(r, BaseException)]
    if failed:
        raise SimulationError(f"a client thread failed: {failed[0]!r}") from failed[0]
    return Load([r for r in records if isinstance(r, ClientRecord)], began, ended)


def run_processes(factory: ClientFactory, processes: int, buyers: int, tick: Tick) -> Load:
    """``processes`` spawned workers, each with ``factory.threads`` client threads, let in at one instant."""
    context = mp.get_context("spawn")
    turnstile = Turnstile(context)
    turnstile.reset(buyers)
    start, stop = context.Event(), context.Event()
    results: Queue[tuple[str, int, Any]] = context.Queue()
    workers = [
        context.Process(target=_worker_main, args=(factory, turnstile, start, stop, results), daemon=True)
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        _expect(_collect(results, workers, None), "ready")
        began = time.monotonic()
        start.set()
        done = _expect(_collect(results, workers, lambda: tick(turnstile.done)), "done")
        ended = time.monotonic()
        tick(turnstile.done)
    finally:
        stop.set()
        start.set()
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join()
    return Load([record for payload in done for record in payload], began, ended)


def _worker_main(
    factory: ClientFactory,
    turnstile: Turnstile,
    start: _Event,
    stop: _Event,
    results: Queue[tuple[str, int, Any]],
) -> None:
    """A worker process: open the clients, report ready, wait for the start, serve, report."""
    try:
        with factory.open() as clients:
            threads, found = _start_client_threads(clients, turnstile, start, stop)
            results.put(("ready", os.getpid(), None))
            for thread in threads:
                thread.join()
        failed = [r for r in found if isinstance(r, BaseException)]
        if failed:
            results.put(("error", os.getpid(), repr(failed[0])))
        else:
            results.put(("done", os.getpid(), [r for r in found if isinstance(r, ClientRecord)]))
    except BaseException:
        stop.set()
        results.put(("error", os.getpid(), traceback.format_exc()))


def _collect(
    results: Queue[tuple[str, int, Any]],
    workers: Sequence[BaseProcess],
    on_tick: Callable[[], None] | None,
) -> list[tuple[str, Any]]:
    """Wait for one message from each worker, ticking progress and watching that the workers live."""
    messages: dict[int, tuple[str, Any]] = {}
    waited = 0.0
    while len(messages) < len(workers):
        try:
            kind, pid, payload = results.get(timeout=TICK_SECONDS)
            messages[pid] = (kind, payload)
        except queue.Empty:
            waited += TICK_SECONDS
            dead = [w.pid for w in workers if not w.is_alive() and w.pid not in messages]
            if dead and results.empty():
                raise SimulationError(f"worker processes {dead} died") from None
            if on_tick is None and waited > READY_TIMEOUT_SECONDS:
                raise SimulationError("worker processes did not get ready in time") from None
        if on_tick is not None:
            on_tick()
    return list(messages.values())


def _expect(messages: list[tuple[str, Any]], kind: str) -> list[Any]:
    errors = [payload for found, payload in messages if found == "error"]
    if errors:
        raise SimulationError(f"a worker process failed:\n{errors[0]}")
    return [payload for found, payload in messages if found == kind]
