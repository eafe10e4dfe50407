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
from sqlalchemy.engine import make_url

from conftest import POSTGRES_SERVER, empty_postgres_url
from cutting_proxy import CuttingProxy
from e2e.server import (
    JSON,
    assert_problem,
    body,
    make_listing,
    new_token,
    order_body,
    running_server,
    sellable,
    stockguard_command,
)
from e2e.test_http_concurrency import BUYERS, _crowd, _get, _outcome
from stockguard.bootstrap import upgrade_database


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


def test_a_payment_whose_commit_is_in_doubt_answers_outcome_unknown_until_it_can_be_told(
    tmp_path: Path,
) -> None:
    """The connection to PostgreSQL is cut after the server committed the payment and before the
    service heard, and the server then takes no new connection: the service cannot know, and says
    so (503 ``outcome_unknown``, never ``unavailable``, which promises that nothing changed). Paying
    again once the server is back answers what happened."""
    url = empty_postgres_url()
    upgrade_database(url)
    server_url = make_url(POSTGRES_SERVER)
    with (
        CuttingProxy((server_url.host or "127.0.0.1", server_url.port or 5432)) as proxy,
        # Asking for 2 s instead of 10: the operator's setting, in the database URL.
        running_server(
            tmp_path / "data", args=("--db", proxy.url(url) + "&in_doubt_seconds=2"), allowed_5xx=(503,)
        ) as server,
    ):
        admin, storefront = server.client(server.admin), server.client(server.storefront)
        listing_id = make_listing(admin, 3, "reserve", hold_seconds=600)
        order = order_body(listing_id)
        body(storefront.post("/v1/orders", json=order), 201)

        # Cut at the COMMIT of the transaction that pays (the sweeper commits every 0.2 s too).
        proxy.arm(b"COMMIT", after=b"UPDATE orders SET status", deliver=True, refuse_after=True)
        headers = {"Authorization": f"Bearer {server.storefront}"}
        in_doubt = httpx.post(f"{server.url}/v1/orders/{order['order_id']}/pay", headers=headers, timeout=60)
        assert proxy.cuts == 1
        assert_problem(in_doubt, 503, "outcome_unknown")
        assert in_doubt.headers["Retry-After"] == "1"

        proxy.refuse_new = False
        paid = body(storefront.post(f"/v1/orders/{order['order_id']}/pay"), 200)
        assert paid["status"] == "paid"
        assert sellable(admin, listing_id) == 2
