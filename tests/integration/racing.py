"""Racing harness for the concurrency tests: worker processes released at once on one store.

``race`` starts worker processes (``race_worker.py``), each with its own
``stockguard.connect`` and several threads, parks them all until every worker
has connected, then releases them with one "go". While they race, this process
samples every stock level, so an oversell that lasts a single transaction is
seen, not only one left at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stockguard import Level, Stockguard

JSON = dict[str, Any]

WORKER = Path(__file__).with_name("race_worker.py")
PROCESSES = 4
THREADS = 8
# Every process of one store hashes delivery addresses with the same key.
ADDRESS_KEY = b"racing-address-key"
# A race that has not finished by then is hung; its workers are killed.
RACE_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call answered in a worker: an error class name, or the result."""

    error: str | None
    created: bool | None = None
    order: JSON | None = None
    released: int | None = None
    detail: str | None = None

    @property
    def status(self) -> str | None:
        return None if self.order is None else str(self.order["status"])


@dataclass(frozen=True, slots=True)
class Shop:
    """The store the workers race on (its URL), and the test process's own connection to it."""

    url: str
    sg: Stockguard


def place(order_id: str, buyer_id: str, listing_id: str, quantity: int = 1, **context: str) -> JSON:
    """A placement call; ``context``: device_id, ip, address, as an order may carry them."""
    call = {"op": "place", "order_id": order_id, "buyer_id": buyer_id, "lines": [[listing_id, quantity]]}
    return call | {"context": context} if context else call


def pay(order_id: str) -> JSON:
    return {"op": "pay", "order_id": order_id}


EXPIRE: JSON = {"op": "expire"}


def race(
    shop: Shop,
    calls: Sequence[JSON],
    *,
    processes: int = PROCESSES,
    threads: int = THREADS,
    start_at: float | None = None,
) -> list[Outcome]:
    """Run ``calls`` across worker processes and threads, all released at once; outcomes in call order.

    Call ``i`` goes to process ``i % processes``, and there to thread
    ``(i // processes) % threads``; each thread runs its calls in order. So a
    block of ``processes * threads`` consecutive calls is one call per thread,
    fired together. ``start_at`` (a ``time.time()`` value) delays the "go".
    """
    shares = [list(calls[p::processes]) for p in range(processes)]
    with _workers(processes) as workers:
        for worker, share in zip(workers, shares, strict=True):
            job = {"url": shop.url, "threads": threads, "calls": share, "address_key": ADDRESS_KEY.hex()}
            _send(worker, json.dumps(job))
        for worker in workers:
            _expect(worker, "ready")
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        with _watching_for_oversell(shop.sg) as oversells:
            for worker in workers:
                _send(worker, "go")
            replies = [_reply(worker) for worker in workers]
    assert not oversells, f"levels oversold during the race: {oversells[:5]}"
    outcomes: list[Outcome | None] = [None] * len(calls)
    for p, reply in enumerate(replies):
        for j, raw in enumerate(reply):
            outcomes[p + j * processes] = Outcome(**raw)
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


@dataclass(frozen=True, slots=True)
class _Worker:
    process: subprocess.Popen[str]
    stderr: IO[str]


@contextmanager
def _workers(count: int) -> Iterator[list[_Worker]]:
    """Start ``count`` worker processes; a watchdog kills them if the race hangs."""
    workers: list[_Worker] = []

    def kill_all() -> None:
        for worker in workers:
            worker.process.kill()

    with ExitStack() as stack:
        # Registered first so it is cancelled last, after every worker was waited for.
        watchdog = threading.Timer(RACE_TIMEOUT_SECONDS, kill_all)
        stack.callback(watchdog.cancel)
        watchdog.start()
        for _ in range(count):
            # stderr goes to a file: a pipe nobody reads could fill up and stall the worker.
            stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = stack.enter_context(
                subprocess.Popen(
                    [sys.executable, str(WORKER)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                )
            )
            workers.append(_Worker(process, stderr))
        yield workers


def _send(worker: _Worker, line: str) -> None:
    assert worker.process.stdin is not None
    worker.process.stdin.write(line + "\n")
    worker.process.stdin.flush()


def _read_line(worker: _Worker) -> str:
    assert worker.process.stdout is not None
    line = worker.process.stdout.readline()
    if not line:
        worker.process.wait()
        worker.stderr.seek(0)
        raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.stderr.read()}")
    return line


def _expect(worker: _Worker, word: str) -> None:
    line = _read_line(worker)
    assert line.strip() == word, line


def _reply(worker: _Worker) -> list[JSON]:
    reply: list[JSON] = json.loads(_read_line(worker))
    assert worker.process.wait() == 0
    return reply


@contextmanager
def _watching_for_oversell(sg: Stockguard) -> Iterator[list[str]]:
    """Sample all levels until the block ends; each read is one consistent snapshot of the store."""
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(oversold(sg))
            stop.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


# -- reading the stock without side effects


def all_levels(sg: Stockguard) -> list[Level]:
    """The stored levels as they are: read through the store so no read-time sweep runs."""
    with sg.store.read() as tx:
        return tx.all_levels()


def level(sg: Stockguard, sku: str) -> Level:
    (found,) = [lv for lv in all_levels(sg) if lv.sku == sku]
    return found


def oversold(sg: Stockguard) -> list[str]:
    return [
        f"{lv.sku}@{lv.warehouse}: reserved {lv.reserved} + committed {lv.committed}"
        f" > on_hand {lv.on_hand} - safety {lv.safety}"
        for lv in all_levels(sg)
        if lv.reserved + lv.committed > lv.on_hand - lv.safety
    ]
