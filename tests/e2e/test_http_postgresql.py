"""`stockguard serve --db postgresql://...`: the schema check at start, and several servers on one database.

Each test works in a schema of its own on the local PostgreSQL (skipped
without one, except under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import empty_postgres_url
from e2e.server import JSON, make_listing, new_token, order_body, running_server, stockguard_command
from e2e.test_http_concurrency import BUYERS, _crowd, _get, _outcome


def test_serve_refuses_a_schema_behind_the_code_until_db_upgrade(tmp_path: Path) -> None:
    url = empty_postgres_url()
    refused = subprocess.run(
        [*stockguard_command(), "serve", "--db", url, "--data-dir", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "stockguard db upgrade" in refused.stdout + refused.stderr

    upgraded = subprocess.run(
        [*stockguard_command(), "db", "upgrade", "--db", url], capture_output=True, text=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with running_server(tmp_path / "data", args=("--db", url)) as server:
        assert server.client(server.admin).get("/healthz").status_code == 200


@pytest.mark.slow
def test_two_servers_and_their_workers_on_one_database_sell_the_last_unit_once(tmp_path: Path) -> None:
    """Two `stockguard serve` processes (one with two workers) share one schema: 500 buyers
    spread over them for one unit get exactly one sale, and the store proves its counters."""
    url = empty_postgres_url()
    subprocess.run([*stockguard_command(), "db", "upgrade", "--db", url], check=True, capture_output=True)
    tokens = (new_token(), new_token())
    with (
        running_server(tmp_path / "one", tokens=tokens, args=("--db", url)) as one,
        running_server(tmp_path / "two", tokens=tokens, workers=2, args=("--db", url)) as two,
    ):
        admin = one.client(one.admin)
        listing_id = make_listing(admin, 1, "reserve")
        orders = [order_body(listing_id) for _ in range(BUYERS)]
        requests: list[tuple[str, str, JSON | None]] = [("POST", "/v1/orders", doc) for doc in orders]

        async def both() -> list[httpx.Response]:
            half = len(requests) // 2
            first, second = await asyncio.gather(
                _crowd(one, one.storefront, requests[:half]), _crowd(two, two.storefront, requests[half:])
            )
            return [*first, *second]

        outcomes = [_outcome(response) for response in asyncio.run(both())]
        assert Counter(outcomes) == {"201": 1, "sold_out": BUYERS - 1}
        sold = _get(two.client(two.admin), f"/v1/listings/{listing_id}")
        assert (sold["sellable"], sold["sold"]) == (0, 1)
    checked = subprocess.run(
        [*stockguard_command(), "check", "--db", url], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
