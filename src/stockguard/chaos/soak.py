"""The soak: mixed traffic for minutes on two service processes, their memory, open files and
database connections sampled as it runs, a service process killed (``kill -9``) and started
again now and then, and the checker's verdict at the end. ``stockguard soak`` runs it."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

import stockguard
from stockguard.bootstrap import upgrade_database
from stockguard.chaos.checker import Report, check_run
from stockguard.chaos.history import Op
from stockguard.chaos.services import Service, service
from stockguard.chaos.traffic import Traffic, TrafficConfig

TOKENS = ("soak-admin-token", "soak-storefront-token")


@dataclass(frozen=True, slots=True)
class SoakConfig:
    db_url: str
    minutes: float = 10.0
    buyers: int = 24
    sample_every: float = 10.0  # seconds between resource samples
    kill_every: float = 120.0  # seconds between kill -9 of a service process (0: never)
    folder: Path | None = None  # logs and the history; default: a temporary folder


@dataclass(frozen=True, slots=True)
class Sample:
    second: float  # since the traffic began
    rss_mib: list[float]  # per service process (its workers included)
    open_files: list[int]
    db_connections: int | None  # PostgreSQL backends of this database; None on SQLite


@dataclass(frozen=True, slots=True)
class Recovery:
    fault: str
    second: float  # when it was injected, since the traffic began
    healthy_after: float  # seconds from the restart until /healthz answered
    selling_after: float | None  # seconds from the kill until that process answered 201 again


@dataclass
class SoakResult:
    config: dict[str, object]
    report: Report
    samples: list[Sample] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "config": self.config,
            "seconds": round(self.seconds, 1),
            "report": self.report.as_json(),
            "samples": [asdict(s) for s in self.samples],
            "recoveries": [asdict(r) for r in self.recoveries],
            "bounds": self.bounds(),
        }

    def bounds(self) -> dict[str, object]:
        """Memory at the first and last quarter of the run (medians), and the most of each resource."""
        if not self.samples:
            return {}
        quarter = max(1, len(self.samples) // 4)
        first = [sum(s.rss_mib) for s in self.samples[:quarter]]
        last = [sum(s.rss_mib) for s in self.samples[-quarter:]]
        connections = [s.db_connections for s in self.samples if s.db_connections is not None]
        return {
            "rss_mib_first_quarter": round(statistics.median(first), 1),
            "rss_mib_last_quarter": round(statistics.median(last), 1),
            "rss_mib_max": round(max(sum(s.rss_mib) for s in self.samples), 1),
            "open_files_max": max(sum(s.open_files) for s in self.samples),
            "db_connections_max": max(connections) if connections else None,
        }


def run_soak(config: SoakConfig, progress: Callable[[float], None] = lambda second: None) -> SoakResult:
    folder = config.folder or Path(tempfile.mkdtemp(prefix="stockguard-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    upgrade_database(config.db_url)
    services = [service(name, config.db_url, folder, TOKENS) for name in ("svc-a", "svc-b")]
    for each in services:
        each.launch()
    for each in services:
        each.wait_healthy()
    traffic = Traffic(
        TrafficConfig(
            tuple(s.url for s in services),
            *TOKENS,
            buyers=config.buyers,
            seconds=config.minutes * 60,
            # Enough goods coming in that most of the soak sells rather than refuses.
            restock_every=1.0,
            restock_units=40,
        ),
        folder / "history.jsonl",
    )
    shown = make_url(config.db_url).render_as_string(hide_password=True)
    result = SoakResult({"db": shown, **_plain(config)}, Report())
    failures: list[BaseException] = []
    driver = threading.Thread(target=_drive, args=(traffic, failures), name="soak-traffic")
    began = time.monotonic()
    driver.start()
    try:
        _watch(config, services, traffic, result, began, driver, progress)
        driver.join()
        if failures:
            raise failures[0]
        time.sleep(traffic.config.hold_seconds + 1.0)
        guard = stockguard.connect(config.db_url)
        try:
            guard.expire_due()
            result.report = check_run(traffic.history, guard)
        finally:
            guard.close()
    finally:
        traffic.history.close()
        for each in services:
            each.interrupt()
        for each in services:
            each.stop()
    result.seconds = time.monotonic() - began
    (folder / "soak.json").write_text(json.dumps(result.as_json(), indent=2))
    return result


def _drive(traffic: Traffic, failures: list[BaseException]) -> None:
    try:
        asyncio.run(traffic.run())
    except BaseException as failure:  # reported by run_soak
        failures.append(failure)


def _watch(
    config: SoakConfig,
    services: list[Service],
    traffic: Traffic,
    result: SoakResult,
    began: float,
    driver: threading.Thread,
    progress: Callable[[float], None],
) -> None:
    """Sample every ``sample_every`` seconds and kill a process every ``kill_every``, until the
    traffic ends."""
    next_sample, next_kill, victim = 0.0, config.kill_every or float("inf"), 0
    while driver.is_alive():
        second = time.monotonic() - began
        if second >= next_sample:
            next_sample += config.sample_every
            result.samples.append(_sample(second, services, config.db_url))
            progress(second)
        total = config.minutes * 60
        # A kill needs time left to watch the recovery in.
        if second >= next_kill and second < total - min(30.0, total / 4):
            next_kill += config.kill_every
            result.recoveries.append(_kill_and_restart(services[victim], traffic, second, began))
            victim = (victim + 1) % len(services)
        time.sleep(0.2)


def _kill_and_restart(target: Service, traffic: Traffic, second: float, began: float) -> Recovery:
    killed = time.time()
    target.kill()
    time.sleep(1.0)  # down for a moment: the other process serves alone
    target.launch()
    healthy = target.wait_healthy()
    deadline = time.time() + 30
    selling = None
    while time.time() < deadline and selling is None:
        time.sleep(0.2)
        sold = [
            c.end
            for c in traffic.history.calls
            if c.via == target.url and c.op is Op.PLACE and c.status == 201 and c.start > killed
        ]
        selling = min(sold) - killed if sold else None
    return Recovery(
        "kill -9 of a service process",
        round(second, 1),
        round(healthy, 2),
        None if selling is None else round(selling, 2),
    )


def _sample(second: float, services: list[Service], db_url: str) -> Sample:
    used = [s.resources() for s in services]
    return Sample(
        round(second, 1),
        [round(u.rss_bytes / 2**20, 1) for u in used],
        [u.open_files for u in used],
        _db_connections(db_url),
    )


def _db_connections(db_url: str) -> int | None:
    if not db_url.startswith("postgresql"):
        return None
    plain = db_url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return None if row is None else int(row[0])


def _plain(config: SoakConfig) -> dict[str, object]:
    return {"minutes": config.minutes, "buyers": config.buyers, "kill_every": config.kill_every}
