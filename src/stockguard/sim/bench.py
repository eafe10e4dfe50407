"""Holds per second on one hot listing, per store and process count, beside the naive shop.

Every hold must succeed (the listing has as many units as there are buyers,
each buyer distinct), so the figure is the cost of the atomic hold itself,
not of refusals. The naive shop's figure is its check-then-write with an
instant gateway: what an unsafe deduction costs on the same kind of file.
"""

from __future__ import annotations

import os
import platform
import secrets
import statistics
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from stockguard import Deduction, Stockguard, connect
from stockguard.bootstrap import MEMORY_URL
from stockguard.sim.buyers import Crowd, Outcome
from stockguard.sim.checkout import Job
from stockguard.sim.naive import stock_listing
from stockguard.sim.pool import SaleRun, SimulationError, Tick, WorkerPool, run_in_process

LONG_HOLD_SECONDS = 3600  # no hold may expire while it is being measured


@dataclass(frozen=True, slots=True)
class BenchConfig:
    holds: int = 5_000  # holds per run
    runs: int = 3
    workers: int = 2  # processes in the multi-process cases
    threads: int = 16  # threads in each process of the concurrent cases


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    store: str  # memory, sqlite, or naive-sqlite
    processes: int
    threads: int
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "store": self.store,
            "processes": self.processes,
            "threads": self.threads,
            "holds_per_second": round(self.median, 1),
            "runs": [round(rate, 1) for rate in self.rates],
        }


class BenchView(Protocol):
    def sale(self, name: str, total: int) -> AbstractContextManager[Tick]: ...


def cases(config: BenchConfig) -> list[Case]:
    """One caller alone, then concurrent callers: how a server calls (and what group commit batches)."""
    many, threads = config.workers, config.threads
    return [
        Case("stockguard memory", "memory", 1, 1),
        Case("stockguard memory", "memory", 1, threads),
        Case("stockguard sqlite", "sqlite", 1, 1),
        Case("stockguard sqlite", "sqlite", 1, threads),
        Case("stockguard sqlite", "sqlite", many, threads),
        Case("naive check-then-write", "naive-sqlite", 1, threads),
        Case("naive check-then-write", "naive-sqlite", many, threads),
    ]


def run_bench(config: BenchConfig, workdir: Path, view: BenchView) -> list[Case]:
    """Measure every case ``config.runs`` times, in turn, so slow drifts of the machine hit all alike."""
    measured = cases(config)
    sqlite_url = f"sqlite:///{workdir / 'bench.db'}"
    naive_path = str(workdir / "naive.db")
    setup = connect(sqlite_url)
    try:
        with WorkerPool(config.workers) as pool:
            for run in range(config.runs):
                for case in measured:
                    label = f"{case.name} {case.processes}x{case.threads} (run {run + 1}/{config.runs})"
                    with view.sale(label, config.holds) as tick:
                        case.rates.append(_measure(case, config, setup, sqlite_url, naive_path, pool, tick))
    finally:
        setup.store.close()
    return measured


def _measure(
    case: Case,
    config: BenchConfig,
    setup: Stockguard,
    sqlite_url: str,
    naive_path: str,
    pool: WorkerPool,
    tick: Tick,
) -> float:
    token = secrets.token_hex(4)
    listing_id = f"hot-{token}"
    if case.store == "naive-sqlite":
        stock_listing(naive_path, listing_id, config.holds)
        # Every buyer pays at once through an instant gateway: one check-then-write each.
        job = Job("naive", naive_path, listing_id, token, Crowd(config.holds, 1.0, 0.0), case.threads)
        sale = pool.run(job, tick, processes=case.processes)
        return _rate(sale, Outcome.PAID, config.holds)
    # Buyers that never pay: each visit is exactly one hold.
    crowd = Crowd(config.holds, 0.0, 0.0)
    if case.store == "memory":
        guard = connect(MEMORY_URL)
        _hot_listing(guard, listing_id, config.holds)
        job = Job("stockguard", MEMORY_URL, listing_id, token, crowd, case.threads)
        return _rate(run_in_process(job, guard, tick), Outcome.WALKED_AWAY, config.holds)
    _hot_listing(setup, listing_id, config.holds)
    job = Job("stockguard", sqlite_url, listing_id, token, crowd, case.threads)
    return _rate(pool.run(job, tick, processes=case.processes), Outcome.WALKED_AWAY, config.holds)


def _hot_listing(guard: Stockguard, listing_id: str, units: int) -> None:
    guard.put_item(listing_id, "Hot item")
    guard.receive(listing_id, units)
    guard.put_listing(listing_id, "Hot listing", [(listing_id, 1)], Deduction.RESERVE, LONG_HOLD_SECONDS)


def _rate(sale: SaleRun, expected: Outcome, holds: int) -> float:
    if sale.count(expected) != holds:
        raise SimulationError(f"expected {holds} successful holds, buyers saw {sale.outcomes}")
    return holds / sale.seconds


def bench_json(config: BenchConfig, measured: list[Case], command: str) -> dict[str, object]:
    """The figures with what produced them: machine, command, date (docs/benchmarks.md wants all three)."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "holds_per_run": config.holds,
        "runs": config.runs,
        "results": [case.as_json() for case in measured],
    }
