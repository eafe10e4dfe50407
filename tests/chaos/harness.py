"""A hot sale on two service processes, a fault injected while it runs, and the checker's verdict.

``hot_sale`` runs the recorded traffic in a thread of its own while the test, on the main
thread, hurts processes at given moments. Afterwards it waits for every hold to run out and
checks the history and the store against every promise.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stockguard
from stockguard.chaos.checker import Report, check_run
from stockguard.chaos.history import History
from stockguard.chaos.services import Service, service
from stockguard.chaos.traffic import Traffic, TrafficConfig

TOKENS = ("chaos-admin-token", "chaos-storefront-token")


@dataclass
class Sale:
    traffic: Traffic
    thread: threading.Thread
    started: float  # time.monotonic() when the traffic began
    started_epoch: float  # the same moment, as time.time() (the history's clock)
    errors: list[BaseException] = field(default_factory=list)

    def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` into the sale."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    @property
    def history(self) -> History:
        return self.traffic.history


@contextmanager
def two_services(db_url: str, folder: Path, **env: str) -> Iterator[list[Service]]:
    services = [service(name, db_url, folder, TOKENS, extra_env=env) for name in ("svc-a", "svc-b")]
    try:
        for each in services:  # both start at once, then both are waited for
            each.launch()
        for each in services:
            each.wait_healthy()
        yield services
    finally:
        for each in services:
            each.interrupt()
        for each in services:
            each.stop()


def run_sale(services: list[Service], seconds: float, **config: Any) -> Sale:
    """``config``: TrafficConfig's fields beyond the services and tokens (pay_share, say)."""
    traffic = Traffic(TrafficConfig(tuple(s.url for s in services), *TOKENS, seconds=seconds, **config))
    sale = Sale(traffic, threading.Thread(), time.monotonic(), time.time())

    def drive() -> None:
        try:
            asyncio.run(traffic.run())
        except BaseException as error:  # reported by finish()
            sale.errors.append(error)

    sale.thread = threading.Thread(target=drive, name="chaos-traffic")
    sale.thread.start()
    return sale


def finish(sale: Sale, db_url: str, settle: Callable[[], None] | None = None) -> Report:
    """Wait for the traffic to end and every hold to run out, then check the run."""
    sale.thread.join(120)
    assert not sale.thread.is_alive(), "the traffic did not end"
    assert not sale.errors, sale.errors
    time.sleep(sale.traffic.config.hold_seconds + 1.0)  # a sweeper releases what ran out
    if settle is not None:
        settle()
    guard = stockguard.connect(db_url)
    try:
        guard.expire_due()  # whatever no sweeper released yet (a killed one, say)
        return check_run(sale.history, guard)
    finally:
        guard.close()


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"


def recovery_after(sale: Sale, moment: float) -> float | None:
    """Seconds from ``moment`` (the fault mended) to the first order answered 201 after it."""
    sold = [c.end for c in sale.history if c.status == 201 and c.start >= moment]
    return round(min(sold) - moment, 2) if sold else None


def keep_figures(scenario: str, sale: Sale, report: Report, recovered_in: float | None) -> None:
    """The scenario's figures, for docs/reliability.md, in test-artifacts/chaos/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figures = {
        "scenario": scenario,
        "requests": report.calls,
        "no_answer": report.unknown,
        "acknowledged_orders": report.acknowledged_orders,
        "lost_orders": report.lost_orders,
        "oversold_units": report.oversold_units,
        "clean": report.clean,
        "first_sale_after_recovery_s": recovered_in,
        "outcomes": dict(report.outcomes),
    }
    (ARTIFACTS / f"{scenario}.json").write_text(json.dumps(figures, indent=2))


def assert_clean(report: Report) -> None:
    assert report.clean, report.as_json()
    assert report.lost_orders == 0
    assert report.oversold_units == 0
    assert report.acknowledged_orders > 50, report.as_json()  # the sale really sold
