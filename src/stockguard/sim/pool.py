"""Real concurrency for the simulator: worker processes, each serving buyers on several threads.

Buyers are streamed: every thread takes the next few buyer indexes from one
counter shared by all processes, so buyers arrive roughly in order, nobody
pre-builds a crowd, and a fast worker simply serves more of it. Worker
processes are spawned once and reused for every sale of a run, so the start-up
cost of a Python process is paid once and never timed.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
import traceback
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from types import TracebackType
from typing import Any, Protocol

from stockguard import Stockguard
from stockguard.sim.buyers import Outcome
from stockguard.sim.checkout import Checkout, Job, open_checkouts

CHUNK = 16  # buyers a thread takes at a time: few enough to keep arrival order, enough to keep locking rare
TICK_SECONDS = 0.1  # how often the parent reports progress while a sale runs
READY_TIMEOUT_SECONDS = 120.0

Tick = Callable[[int], None]


class SimulationError(RuntimeError):
    """The simulation itself failed (a worker crashed, figures disagree), not the shop."""


class _Event(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class SaleRun:
    """What the buyers saw, summed over every thread, and how long the sale took."""

    outcomes: dict[Outcome, int]
    seconds: float

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome, 0)


class Turnstile:
    """The shared buyer counter: hands out buyer indexes and counts buyers served."""

    def __init__(self, context: Any) -> None:
        self._next: Synchronized[int] = context.Value("q", 0)
        self._done: Synchronized[int] = context.Value("q", 0)
        self._total: Synchronized[int] = context.Value("q", 0)

    def reset(self, total: int) -> None:
        with self._next.get_lock():
            self._next.value = 0
            self._done.value = 0
            self._total.value = total

    def take(self, count: int) -> range:
        with self._next.get_lock():
            start = self._next.value
            end = min(start + count, self._total.value)
            self._next.value = end
        return range(start, end)

    def served(self, count: int) -> None:
        with self._done.get_lock():
            self._done.value += count

    @property
    def done(self) -> int:
        return self._done.value


def serve_crowd(job: Job, checkouts: list[Checkout], turnstile: Turnstile, stop: _Event) -> Tally[Outcome]:
    """Serve buyers on one thread per checkout until the crowd is gone; the first failure stops all."""
    tallies = [Tally[Outcome]() for _ in checkouts]
    failures: list[str] = []

    def run(checkout: Checkout, tally: Tally[Outcome]) -> None:
        try:
            while not stop.is_set():
                batch = turnstile.take(CHUNK)
                if not batch:
                    return
                for index in batch:
                    tally[checkout.serve(job.crowd.buyer(index))] += 1
                turnstile.served(len(batch))
        except BaseException:
            failures.append(traceback.format_exc())
            stop.set()

    threads = [
        threading.Thread(target=run, args=pair, daemon=True) for pair in zip(checkouts, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SimulationError(failures[0])
    return sum(tallies, Tally[Outcome]())


def _worker_main(
    jobs: Queue[Job | None],
    results: Queue[tuple[str, Any]],
    turnstile: Turnstile,
    start: _Event,
    stop: _Event,
) -> None:
    """A worker process: open the shop, report ready, wait for the start gun, serve, report."""
    while (job := jobs.get()) is not None:
        try:
            with open_checkouts(job) as checkouts:
                results.put(("ready", None))
                start.wait()
                tally = serve_crowd(job, checkouts, turnstile, stop)
            results.put(("done", dict(tally)))
        except BaseException:
            stop.set()
            results.put(("error", traceback.format_exc()))


class WorkerPool:
    """``processes`` spawned workers that run sales one after another."""

    def __init__(self, processes: int) -> None:
        context: SpawnContext = mp.get_context("spawn")
        self.processes = processes
        self._turnstile = Turnstile(context)
        self._start = context.Event()
        self._stop = context.Event()
        self._results: Queue[tuple[str, Any]] = context.Queue()
        self._jobs: list[Queue[Job | None]] = [context.Queue() for _ in range(processes)]
        self._workers = [
            context.Process(
                target=_worker_main,
                args=(jobs, self._results, self._turnstile, self._start, self._stop),
                daemon=True,
            )
            for jobs in self._jobs
        ]
        for worker in self._workers:
            worker.start()

    def run(self, job: Job, on_tick: Tick, processes: int | None = None) -> SaleRun:
        """Run one sale on the first ``processes`` workers (all by default) and sum what they saw."""
        count = self.processes if processes is None else min(processes, self.processes)
        self._start.clear()
        self._stop.clear()
        self._turnstile.reset(job.crowd.size)
        for jobs in self._jobs[:count]:
            jobs.put(job)
        errors = [text for kind, text in self._collect(count, on_tick=None) if kind == "error"]
        if errors:
            self._stop.set()
        began = time.perf_counter()
        self._start.set()
        outcomes: Tally[Outcome] = Tally()
        for kind, payload in self._collect(count - len(errors), on_tick):
            if kind == "error":
                errors.append(payload)
            else:
                outcomes.update(payload)
        seconds = time.perf_counter() - began
        self._start.clear()
        if errors:
            raise SimulationError(f"a worker process failed:\n{errors[0]}")
        return SaleRun(dict(outcomes), seconds)

    def _collect(self, count: int, on_tick: Tick | None) -> list[tuple[str, Any]]:
        """Wait for ``count`` messages from workers, ticking progress and watching that they live."""
        messages: list[tuple[str, Any]] = []
        waited = 0.0
        while len(messages) < count:
            try:
                messages.append(self._results.get(timeout=TICK_SECONDS))
            except queue.Empty:
                waited += TICK_SECONDS
                dead = [w.pid for w in self._workers if not w.is_alive()]
                if dead:
                    raise SimulationError(f"worker processes {dead} died") from None
                if on_tick is None and waited > READY_TIMEOUT_SECONDS:
                    raise SimulationError("worker processes did not get ready in time") from None
            if on_tick is not None:
                on_tick(self._turnstile.done)
        return messages

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if error is not None:
            # Leaving mid-sale (Ctrl-C, a failing sweeper): let the workers wind down now.
            self._stop.set()
            self._start.set()
        self.close()


def run_in_process(job: Job, guard: Stockguard, on_tick: Tick) -> SaleRun:
    """Run a sale on threads of this process: how a ``memory://`` store, which lives here, is shared."""
    turnstile = Turnstile(mp.get_context("spawn"))
    turnstile.reset(job.crowd.size)
    stop = threading.Event()
    found: list[Tally[Outcome] | BaseException] = []

    def sale() -> None:
        try:
            found.append(serve_crowd(job, checkouts, turnstile, stop))
        except BaseException as error:
            found.append(error)

    with open_checkouts(job, guard) as checkouts:
        began = time.perf_counter()
        runner = threading.Thread(target=sale, daemon=True)
        runner.start()
        try:
            while runner.is_alive():
                runner.join(TICK_SECONDS)
                on_tick(turnstile.done)
        finally:
            stop.set()  # nothing left to stop after a finished sale; stops the buyers if a tick failed
            runner.join()
        seconds = time.perf_counter() - began
    result = found[0]
    if isinstance(result, BaseException):
        raise result
    return SaleRun(dict(result), seconds)
