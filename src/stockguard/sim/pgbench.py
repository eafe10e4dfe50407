"""The PostgreSQL bench: one hot listing, many buyers, plain row locks against stockguard.

Every run makes a schema of its own in the given database, migrates it
(stockguard's tables) and adds the plain arms' two tables; then each arm sells
its own hot item of ``units`` units to ``buyers`` distinct buyers, one unit
each, through ``clients`` concurrent clients, so after the units are gone the
rest are refusals. The schema is dropped at the end of the run, whatever
happened. Commits are durable in every arm: the bench refuses to run when the
server says otherwise.

Figures per arm: holds per second over the selling phase (from the start to
the answer of the last hold), latency per attempt, refusals, errors, and what
the database says was sold, from which oversold is computed.
"""

from __future__ import annotations

import os
import secrets
import statistics
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Protocol

import psycopg

from stockguard import connect
from stockguard.bootstrap import upgrade_database
from stockguard.sim.pgarms import (
    Audit,
    ConditionalClient,
    Connection,
    ForUpdateClient,
    GuardClient,
    GuardClients,
    audit_guard,
    audit_plain,
    check_store_durable,
    conninfo,
    create_plain_tables,
    open_connection,
    schema_url,
    stock_hot_listing,
)
from stockguard.sim.pgload import Load, run_processes, run_threads
from stockguard.sim.pool import Tick

SCHEMA_PREFIX = "sg_bench_"
FOR_UPDATE = "select-for-update"
CONDITIONAL = "conditional-update"
STOCKGUARD = "stockguard"
STOCKGUARD_PROCESSES = "stockguard-processes"


@dataclass(frozen=True, slots=True)
class PgBenchConfig:
    url: str  # the database; each run works in a schema of its own there
    clients: int = 64
    units: int = 10_000
    buyers: int = 100_000
    runs: int = 3
    processes: int = 2  # worker processes of the multi-process stockguard arm (1: leave it out)


class PgBenchView(Protocol):
    def sale(self, name: str, total: int) -> AbstractContextManager[Tick]: ...


@dataclass(frozen=True, slots=True)
class ArmRun:
    """One arm in one run."""

    holds: int  # holds the clients were told they got
    refusals: int
    errors: int
    sold: int  # units the database says are sold
    oversold: int
    consistent: bool
    selling_seconds: float
    seconds: float
    p50_ms: float
    p99_ms: float
    hold_p50_ms: float
    hold_p99_ms: float
    first_error: str | None

    @property
    def holds_per_s(self) -> float:
        return self.holds / self.selling_seconds if self.selling_seconds > 0 else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "holds_per_s": round(self.holds_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "hold_p50_ms": round(self.hold_p50_ms, 3),
            "hold_p99_ms": round(self.hold_p99_ms, 3),
            "holds": self.holds,
            "refusals": self.refusals,
            "errors": self.errors,
            "sold": self.sold,
            "oversold": self.oversold,
            "consistent": self.consistent,
            "selling_s": round(self.selling_seconds, 3),
            "seconds": round(self.seconds, 3),
            "first_error": self.first_error,
        }


@dataclass(slots=True)
class PgArm:
    """One arm over every run: medians of the rates and latencies, the worst of the correctness figures."""

    name: str
    story: str
    processes: int
    threads: int  # client threads in each process
    runs: list[ArmRun] = field(default_factory=list)

    @property
    def clients(self) -> int:
        return self.processes * self.threads

    def median(self, figure: Callable[[ArmRun], float]) -> float:
        return statistics.median(figure(run) for run in self.runs) if self.runs else 0.0

    @property
    def holds_per_s(self) -> float:
        return self.median(lambda run: run.holds_per_s)

    @property
    def p50_ms(self) -> float:
        return self.median(lambda run: run.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self.median(lambda run: run.p99_ms)

    @property
    def hold_p50_ms(self) -> float:
        return self.median(lambda run: run.hold_p50_ms)

    @property
    def hold_p99_ms(self) -> float:
        return self.median(lambda run: run.hold_p99_ms)

    @property
    def refusals(self) -> int:
        return round(self.median(lambda run: run.refusals))

    @property
    def sold(self) -> int:
        return round(self.median(lambda run: run.sold))

    @property
    def oversold(self) -> int:
        return max((run.oversold for run in self.runs), default=0)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    @property
    def consistent(self) -> bool:
        return all(run.consistent for run in self.runs)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "processes": self.processes,
            "clients": self.clients,
            "holds_per_s": round(self.holds_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "hold_p50_ms": round(self.hold_p50_ms, 3),
            "hold_p99_ms": round(self.hold_p99_ms, 3),
            "refusals": self.refusals,
            "sold": self.sold,
            "oversold": self.oversold,  # the worst run
            "errors": self.errors,  # all runs
            "consistent": self.consistent,  # every run
            "runs": [run.as_json() for run in self.runs],
        }


def arms(config: PgBenchConfig) -> list[PgArm]:
    clients = config.clients
    measured = [
        PgArm(FOR_UPDATE, "SELECT ... FOR UPDATE, then UPDATE, + order row", 1, clients),
        PgArm(CONDITIONAL, "UPDATE ... WHERE available >= 1, + order row", 1, clients),
        PgArm(STOCKGUARD, "Stockguard.place_order, threads on one connect(url)", 1, clients),
    ]
    if config.processes > 1:
        threads = max(1, clients // config.processes)
        measured.append(
            PgArm(
                STOCKGUARD_PROCESSES,
                f"as above, {config.processes} processes sharing the database",
                config.processes,
                threads,
            )
        )
    return measured


def run_pg_bench(config: PgBenchConfig, view: PgBenchView) -> list[PgArm]:
    """Every arm once per run, in turn, each run in a fresh schema."""
    measured = arms(config)
    with _admin(config.url) as admin:
        for run in range(config.runs):
            with _fresh_schema(admin, config.url) as url:
                _prepare(url, measured, config.units)
                for arm in measured:
                    label = f"{arm.name} {arm.processes}x{arm.threads} (run {run + 1}/{config.runs})"
                    _checkpoint(admin)
                    with view.sale(label, config.buyers) as tick:
                        arm.runs.append(_measure(arm, url, config, tick))
    return measured


@contextmanager
def _admin(url: str) -> Iterator[Connection]:
    admin = psycopg.connect(conninfo(url), autocommit=True)
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def _fresh_schema(admin: Connection, url: str) -> Iterator[str]:
    """A new schema, stockguard's tables migrated into it; dropped afterwards whatever happened."""
    schema = f"{SCHEMA_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        scoped = schema_url(url, schema)
        upgrade_database(scoped)
        yield scoped
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _prepare(url: str, measured: list[PgArm], units: int) -> None:
    """The plain arms' tables and stock rows (checking durability on the way); stockguard's listings."""
    connection = open_connection(url)
    try:
        create_plain_tables(connection, [_sku(arm) for arm in measured if not _is_guard(arm)], units)
    finally:
        connection.close()
    guard = connect(url)
    try:
        check_store_durable(guard)
        for arm in measured:
            if _is_guard(arm):
                stock_hot_listing(guard, _sku(arm), units)
    finally:
        guard.store.close()


def _checkpoint(admin: Connection) -> None:
    """Start each arm with the previous arm's pages written out, so no arm pays for another's checkpoint."""
    with suppress(psycopg.errors.InsufficientPrivilege):
        admin.execute("CHECKPOINT")


def _is_guard(arm: PgArm) -> bool:
    return arm.name in {STOCKGUARD, STOCKGUARD_PROCESSES}


def _sku(arm: PgArm) -> str:
    return f"hot-{arm.name}"


def _measure(arm: PgArm, url: str, config: PgBenchConfig, tick: Tick) -> ArmRun:
    sku, prefix = _sku(arm), f"{arm.name}-{secrets.token_hex(3)}"
    if arm.name == STOCKGUARD_PROCESSES:
        factory = GuardClients(url, sku, prefix, arm.threads)
        load = run_processes(factory, arm.processes, config.buyers, tick)
    elif arm.name == STOCKGUARD:
        guard = connect(url)
        try:
            guard.get_listing(sku)
            clients = [GuardClient(guard, sku, prefix) for _ in range(arm.threads)]
            load = run_threads(clients, config.buyers, tick)
        finally:
            guard.store.close()
    else:
        plain = ForUpdateClient if arm.name == FOR_UPDATE else ConditionalClient
        connections = [open_connection(url) for _ in range(arm.threads)]
        try:
            load = run_threads([plain(c, sku, prefix) for c in connections], config.buyers, tick)
        finally:
            for connection in connections:
                connection.close()
    return _figures(load, _audit(arm, url, config.units))


def _audit(arm: PgArm, url: str, units: int) -> Audit:
    with psycopg.connect(conninfo(url)) as connection:
        if _is_guard(arm):
            return audit_guard(connection, _sku(arm), _sku(arm), units)
        return audit_plain(connection, _sku(arm), units)


def _figures(load: Load, audit: Audit) -> ArmRun:
    latencies, held = load.latencies(), load.hold_latencies()
    return ArmRun(
        holds=load.holds,
        refusals=load.refusals,
        errors=load.errors,
        sold=audit.sold,
        oversold=audit.oversold,
        # Every acknowledged hold is in the database, and nothing else is.
        consistent=audit.consistent and audit.sold == load.holds,
        selling_seconds=load.selling_seconds,
        seconds=load.seconds,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        hold_p50_ms=_percentile(held, 50) * 1000,
        hold_p99_ms=_percentile(held, 99) * 1000,
        first_error=load.first_error,
    )


def _percentile(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]
