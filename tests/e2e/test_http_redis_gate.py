"""`stockguard serve --redis`: a sale over HTTP behind the gate, on one Redis and on a cluster,
and `stockguard check --redis` / `stockguard gate reconcile` against what it left.

PostgreSQL and Redis are the local servers (skipped without them, except
under ``CI=true``); the cluster is the suite's own.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import empty_postgres_url
from e2e.server import JSON, make_listing, order_body, running_server, stockguard_command
from e2e.test_http_concurrency import _crowd, _get, _outcome
from redis_cluster import LocalCluster
from redis_servers import REDIS_URL, single_redis
from stockguard.gate.connect import redis_client

BUYERS = 400
UNITS = 25


def _redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        single_redis().close()
        return REDIS_URL
    cluster: LocalCluster = request.getfixturevalue("cluster")
    return f"redis://127.0.0.1:{cluster.live_ports()[0]}/0"


@pytest.fixture(params=["redis", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return _redis_url(request)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*stockguard_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
def test_a_sale_behind_the_gate_sells_every_unit_once_and_check_compares_gate_and_store(
    tmp_path: Path, redis_url: str
) -> None:
    url, prefix = empty_postgres_url(), f"sg-e2e-{secrets.token_hex(4)}"
    assert cli("db", "upgrade", "--db", url).returncode == 0
    gate = ("--db", url, "--redis", redis_url, "--redis-prefix", prefix)
    with running_server(
        tmp_path / "data",
        workers=2,
        args=gate,
    ) as server:
        admin = server.client(server.admin)
        listing_id = make_listing(admin, UNITS, "reserve", per_buyer_limit=1)
        requests: list[tuple[str, str, JSON | None]] = [
            ("POST", "/v1/orders", order_body(listing_id)) for _ in range(BUYERS)
        ]
        outcomes = Counter(
            _outcome(response) for response in asyncio.run(_crowd(server, server.storefront, requests))
        )
        assert outcomes == {"201": UNITS, "sold_out": BUYERS - UNITS}
        sold = _get(admin, f"/v1/listings/{listing_id}")
        assert (sold["sellable"], sold["sold"]) == (0, UNITS)
        # Start-up reported Redis's persistence settings, which the acknowledgement relies on none of.
        assert "its persistence: appendonly=" in server.log()
        assert "rely on no Redis persistence" in server.log()
    checked = cli("check", *gate)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the gate agrees with the store" in checked.stdout

    tampered = _tamper_tokens(redis_url, prefix, listing_id)
    drifted = cli("check", *gate)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert f"tokens │    {tampered} │" in drifted.stdout, drifted.stdout
    reconciled = cli("gate", "reconcile", *gate)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert cli("check", *gate).returncode == 0


def _tamper_tokens(redis_url: str, prefix: str, listing_id: str) -> int:
    """Give the gate tokens the store does not have, behind stockguard's back."""
    client = redis_client(redis_url)
    client.hset(f"{{{prefix}:{listing_id}}}:state", "tokens", 7)
    client.close()
    return 7


def test_serve_refuses_to_start_when_its_redis_is_unreachable(tmp_path: Path) -> None:
    refused = cli("serve", "--data-dir", str(tmp_path), "--port", "0", "--redis", "redis://127.0.0.1:1/0")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "cannot start" in refused.stdout + refused.stderr
