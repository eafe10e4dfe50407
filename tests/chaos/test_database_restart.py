"""PostgreSQL restarted mid-sale: the requests it cannot serve answer 503 ``unavailable`` and change
nothing, and both service processes serve again on their own once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers import missing
from chaos.harness import assert_clean, finish, keep_figures, recovery_after, run_sale, two_services
from chaos.private_postgres import PrivatePostgres, server_binaries
from stockguard.bootstrap import upgrade_database

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if server_binaries() is None:
        missing("PostgreSQL's server binaries are needed for a server of the test's own")
    server = PrivatePostgres.create()
    try:
        upgrade_database(server.url)
        yield server
    finally:
        server.remove()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_restart_mid_sale_answers_unavailable_and_recovers(
    postgres: PrivatePostgres, tmp_path: Path, mode: str
) -> None:
    with two_services(postgres.url, tmp_path) as services:
        sale = run_sale(services, seconds=9)
        sale.at(2.5)
        postgres.stop(mode)
        down = time.time()  # stopped: pg_ctl waits
        sale.at(5)
        restarting = time.time()  # the server may accept connections a little before start() returns
        postgres.start()
        up = time.time()
        report = finish(sale, postgres.url)
        assert all(service.running for service in services), "a service process gave up"
    keep_figures(f"postgresql-restart-{mode}", sale, report, recovery_after(sale, up))
    assert_clean(report)
    during = [c for c in sale.history if c.answered and down < c.start and c.end < restarting]
    assert any(c.status == 503 for c in during), "no request met the outage"
    assert all(c.status in (503, 409, 404, 410) for c in during), [
        c for c in during if c.status not in (503, 409, 404, 410)
    ]
    assert not [c for c in during if c.acknowledged], "nothing can be acknowledged without the database"
    sold_after = [c for c in sale.history if c.status == 201 and c.start > up]
    assert sold_after, "the service did not sell again after the database came back"
    for service in services:
        assert "Traceback" not in service.output()
