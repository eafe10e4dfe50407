"""Processes killed mid-sale (``kill -9``): a service process, and an expiry sweeper while it
releases. PostgreSQL store, two service processes; every call recorded and checked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaos.harness import assert_clean, finish, keep_figures, recovery_after, run_sale, two_services
from conftest import empty_postgres_url
from stockguard.bootstrap import upgrade_database
from stockguard.chaos.history import Op
from stockguard.chaos.services import Process, sweeper

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url() -> str:
    url = empty_postgres_url()
    upgrade_database(url)
    return url


def test_a_service_process_killed_mid_sale_loses_nothing_it_acknowledged(db_url: str, tmp_path: Path) -> None:
    # The sale goes on well past the restart: a process starting on a busy machine may take seconds.
    with two_services(db_url, tmp_path) as (first, second):
        sale = run_sale([first, second], seconds=14)
        sale.at(3)
        first.kill()
        sale.at(5.5)
        first.start()  # returns once it answers /healthz
        restarted = time.time()
        report = finish(sale, db_url)
    keep_figures("service-kill", sale, report, recovery_after(sale, restarted))
    assert_clean(report)
    cut_off = [c for c in sale.history if c.via == first.url and not c.answered]
    assert cut_off, "the kill hit no request in flight"
    served_after = [c for c in sale.history if c.via == first.url and c.answered and c.start >= restarted]
    back = restarted - sale.started_epoch
    assert served_after, f"the restarted process did not serve again (it answered /healthz {back:.1f} s in)"


def test_a_sweeper_killed_while_releasing_releases_each_hold_once(db_url: str, tmp_path: Path) -> None:
    # The services sweep rarely; the sweepers started here release almost every hold.
    with two_services(db_url, tmp_path, STOCKGUARD_SWEEP_INTERVAL="30") as services:
        sweepers = [sweeper(f"sweeper-{n}", db_url, tmp_path / "sweepers", every=0.05) for n in range(2)]
        for each in sweepers:
            each.start()
        sale = run_sale(services, seconds=10, pay_share=0.2, cancel_share=0.1)
        for moment in (2.0, 3.5, 5.0, 6.5, 8.0):
            sale.at(moment)
            # A sweeper takes seconds to start on a busy machine: killed before it sweeps, it
            # would prove nothing. Once it releases, it is killed mid-release as often as not
            # (it sweeps every 50 ms, and holds run out all the time).
            releasing(sweepers[0], until=sale.started + 10 + sale.traffic.config.hold_seconds)
            sweepers[0].kill()
            sweepers[0].start()
        report = finish(sale, db_url)
        for each in sweepers:
            each.stop()
    keep_figures("sweeper-kill", sale, report, None)
    assert_clean(report)
    assert "released" in sweepers[0].output(), "the killed sweeper never got to release anything"
    assert sweepers[0].starts == 6
    expired = report.outcomes
    assert sum(n for outcome, n in expired.items() if outcome.startswith(Op.PLACE.value + " 201")) > 50


def releasing(sweeper: Process, until: float) -> None:
    """Wait until the sweeper's current run has released holds, or the sale is over (``until``,
    monotonic: no new holds run out after it)."""
    while "released" not in sweeper.logs[-1].read_text(errors="replace") and time.monotonic() < until:
        time.sleep(0.05)
