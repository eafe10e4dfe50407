"""The service around the API: first-start tokens, /metrics, and logs without secrets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from e2e.server import (
    Server,
    assert_problem,
    body,
    make_item,
    make_listing,
    metric_samples,
    new_token,
    order_body,
    running_server,
    stockguard_command,
    uid,
)

# -- tokens


def _check_roles(server: Server) -> None:
    """The server's admin token may change stock, its storefront token may not, others get 401."""
    admin, storefront = server.client(server.admin), server.client(server.storefront)
    sku = make_item(admin, 1)
    body(storefront.get(f"/v1/items/{sku}"), 200)
    assert_problem(storefront.put(f"/v1/items/{sku}", json={"name": "x"}), 403, "forbidden")
    assert_problem(server.client(new_token()).get(f"/v1/items/{sku}"), 401, "unauthenticated")
    assert_problem(server.client(None).get(f"/v1/items/{sku}"), 401, "unauthenticated")


@pytest.mark.slow
def test_first_start_creates_tokens_prints_them_once_and_later_starts_reuse_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tokens_file = data / "tokens.json"
    with running_server(data, configure_tokens=False) as first:
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        stored = json.loads(tokens_file.read_text())
        assert set(stored) == {"admin", "storefront"}
        assert (first.admin, first.storefront) == (stored["admin"], stored["storefront"])
        assert first.admin != first.storefront
        assert min(len(first.admin), len(first.storefront)) >= 32
        _check_roles(first)
    printed = first.output()
    assert printed.count(first.admin) == 1
    assert printed.count(first.storefront) == 1
    # (running_server checked on the way out that neither token is in the log.)

    kept = tokens_file.read_text()
    for workers in (1, 2):
        with running_server(data, configure_tokens=False, workers=workers) as again:
            assert (again.admin, again.storefront) == (first.admin, first.storefront)
            for _ in range(4):  # new connections, so both workers answer some
                _check_roles(again)
        assert tokens_file.read_text() == kept
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        for token in (first.admin, first.storefront):
            assert token not in again.output()
            assert token not in again.log()


def test_tokens_from_the_environment_are_used_and_not_written(server: Server, admin: httpx.Client) -> None:
    assert not (server.data_dir / "tokens.json").exists()
    assert server.admin not in server.output()
    _check_roles(server)


def test_only_one_token_in_the_environment_refuses_to_start(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STOCKGUARD_")}
    env |= {"STOCKGUARD_ADMIN_TOKEN": new_token(), "COLUMNS": "250"}
    done = subprocess.run(
        [*stockguard_command(), "serve", "--port", "0", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "STOCKGUARD_STOREFRONT_TOKEN" in done.stdout + done.stderr
    assert env["STOCKGUARD_ADMIN_TOKEN"] not in done.stdout + done.stderr
    assert not (tmp_path / "tokens.json").exists()


# -- metrics


def _scrape(client: httpx.Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _value(text: str, name: str, labels: str = "") -> float:
    return metric_samples(text, name).get(labels, 0.0)


def _latency_count(text: str, route: str, status: str) -> float:
    labels = f'{{method="POST",route="{route}",status="{status}"}}'
    return _value(text, "stockguard_request_seconds_count", labels)


def _check_metrics(server: Server, orders: int) -> None:
    """Order outcomes, sellable per listing and the latency histogram, across however many workers."""
    admin, storefront = server.client(server.admin), server.client(server.storefront)
    listing_id = make_listing(admin, orders, "order")
    other = make_listing(admin, 7, "payment")
    before = _scrape(admin)

    documents = [order_body(listing_id) for _ in range(orders)]
    for document in documents:  # one connection each, so every worker takes some
        response = httpx.post(
            f"{server.url}/v1/orders", json=document, headers={"Authorization": f"Bearer {server.storefront}"}
        )
        assert response.status_code == 201
    body(storefront.post("/v1/orders", json=documents[0]), 200)  # a replay
    assert_problem(storefront.post("/v1/orders", json=order_body(listing_id)), 409, "sold_out")
    assert_problem(storefront.post("/v1/orders", json=order_body(uid("nolisting"))), 404, "not_found")
    assert_problem(storefront.post("/v1/orders", json={"order_id": "x"}), 422, "invalid")

    def counted(after: str) -> dict[str, float]:
        name = "stockguard_orders_total"
        changes = {}
        for outcome in ("created", "replayed", "sold_out", "not_found"):
            labels = f'{{outcome="{outcome}"}}'
            changes[outcome] = _value(after, name, labels) - _value(before, name, labels)
        changes["latency 201"] = _latency_count(after, "/v1/orders", "201") - _latency_count(
            before, "/v1/orders", "201"
        )
        return changes

    expected = {"created": orders, "replayed": 1, "sold_out": 1, "not_found": 1, "latency 201": orders}
    # A worker records a request's latency just after its answer left: give the last one a moment.
    deadline = time.monotonic() + 3
    after = _scrape(storefront)
    while counted(after) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        after = _scrape(storefront)
    assert counted(after) == expected
    assert _value(after, "stockguard_sellable", f'{{listing="{listing_id}"}}') == 0
    assert _value(after, "stockguard_sellable", f'{{listing="{other}"}}') == 7
    assert "" in metric_samples(after, "stockguard_holds_expired_total")
    assert _latency_count(after, "/v1/orders", "409") - _latency_count(before, "/v1/orders", "409") >= 1
    buckets = metric_samples(after, "stockguard_request_seconds_bucket")
    infinite = [
        v for k, v in buckets.items() if 'le="+Inf"' in k and 'route="/v1/orders"' in k and '"201"' in k
    ]
    assert infinite == [_latency_count(after, "/v1/orders", "201")]
    assert not [key for key in buckets if documents[0]["order_id"] in key]  # routes, never ids, are labels


def test_metrics(server: Server) -> None:
    _check_metrics(server, orders=5)


@pytest.mark.slow
def test_metrics_with_two_workers(server_two_workers: Server) -> None:
    _check_metrics(server_two_workers, orders=20)


@pytest.mark.slow
def test_holds_expired_by_the_sweeper_are_counted(server: Server, admin: httpx.Client) -> None:
    before = _value(_scrape(admin), "stockguard_holds_expired_total")
    listing_id = make_listing(admin, 1, "reserve", hold_seconds=1)
    body(admin.post("/v1/orders", json=order_body(listing_id)), 201)
    time.sleep(1.8)  # nobody reads: only the sweeper can release the hold
    assert _value(_scrape(admin), "stockguard_holds_expired_total") - before >= 1
    assert body(admin.get(f"/v1/listings/{listing_id}"), 200)["sellable"] == 1


# -- logs


def _wait_for_log(server: Server, needle: str) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in server.log().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_access_and_decision_logs_without_secrets(server: Server, admin: httpx.Client) -> None:
    storefront = server.client(server.storefront)
    listing_id = make_listing(admin, 1, "order")
    won, lost = order_body(listing_id), order_body(listing_id)
    body(storefront.post("/v1/orders", json=won), 201)
    assert_problem(storefront.post("/v1/orders", json=lost), 409, "sold_out")
    wrong = "Bearer " + new_token()
    assert_problem(
        server.client(None).get("/metrics", headers={"Authorization": wrong}), 401, "unauthenticated"
    )

    decided = _wait_for_log(server, won["order_id"]) + _wait_for_log(server, lost["order_id"])
    decisions = [json.loads(line[line.index("{") :]) for line in decided if "stockguard.decisions" in line]
    outcomes = {record["order_id"]: record["outcome"] for record in decisions}
    assert outcomes == {won["order_id"]: "created", lost["order_id"]: "sold_out"}
    assert _wait_for_log(server, '"path": "/v1/orders", "status": 409')
    log = server.log()
    for secret in (server.admin, server.storefront, wrong.split()[1]):
        assert secret not in log
