"""The Redis flash-sale gate killed mid-sale (``kill -9``) and started again, empty or from a stale
snapshot: the gate rebuilds from the store before it admits again, and the history and the store
still keep every promise. PostgreSQL store, two service processes with ``--redis``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaos.harness import assert_clean, finish, keep_figures, recovery_after, run_sale, two_services
from conftest import empty_postgres_url
from redis_cluster import LocalRedis
from stockguard.bootstrap import upgrade_database

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("comes_back", ["empty", "from_stale_snapshot"])
def test_the_gate_killed_mid_sale_comes_back_without_overselling(
    own_redis: LocalRedis, tmp_path: Path, comes_back: str
) -> None:
    url = empty_postgres_url()
    upgrade_database(url)
    gate = {"STOCKGUARD_REDIS": own_redis.url, "STOCKGUARD_REDIS_PREFIX": f"chaos-{comes_back}"}
    with two_services(url, tmp_path, **gate) as services:
        sale = run_sale(services, seconds=10)
        sale.at(1.5)
        own_redis.snapshot()  # what the gate was two seconds in: stale by the time it is back
        sale.at(3)
        own_redis.kill()
        sale.at(5)
        own_redis.restart(from_snapshot=comes_back == "from_stale_snapshot")
        back = time.time()
        report = finish(sale, url)
    keep_figures(f"gate-restart-{comes_back}", sale, report, recovery_after(sale, back))
    assert_clean(report)
    sold_after = [c for c in sale.history if c.status == 201 and c.start > sale.started_epoch + 6]
    assert sold_after, "the sale went on after the gate came back"
