"""Scalper defence over real HTTP against ``stockguard serve``: buyer profiles and verdicts,
screening (403 `not_eligible` with reasons), device and address limits, rate limits (429
`rate_limited` with Retry-After), draws from creation to `stockguard verify-draw`, and the
decisions counted in /metrics."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from e2e.server import (
    JSON,
    Server,
    assert_problem,
    body,
    make_listing,
    metric_samples,
    order_body,
    running_server,
    sellable,
    stockguard_command,
    uid,
)
from e2e.test_http_concurrency import crowd
from redis_servers import REDIS_URL, single_redis

STRICT = {"min_account_age_days": 30, "min_paid_orders": 1, "min_active_days_90d": 5, "phone_verified": True}


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def customer(client: httpx.Client) -> str:
    buyer_id = uid("customer")
    profile = {
        "registered_at": ago(900),
        "member_since": ago(800),
        "paid_orders": 9,
        "active_days_90d": 30,
        "last_active_at": ago(1),
        "phone_verified": True,
    }
    body(client.put(f"/v1/buyers/{buyer_id}", json=profile), 201)
    return buyer_id


def scalper(client: httpx.Client) -> str:
    buyer_id = uid("scalper")
    body(client.put(f"/v1/buyers/{buyer_id}", json={"registered_at": ago(2), "active_days_90d": 1}), 201)
    return buyer_id


# -- buyers


def test_a_storefront_keeps_buyer_profiles_and_reads_them_back(storefront: httpx.Client) -> None:
    buyer_id = customer(storefront)
    profile = body(storefront.get(f"/v1/buyers/{buyer_id}"), 200)
    assert profile["paid_orders"] == 9
    assert profile["phone_verified"] is True
    assert profile["verdict"] is None
    again = {"registered_at": ago(900), "paid_orders": 10}
    assert body(storefront.put(f"/v1/buyers/{buyer_id}", json=again), 200)["paid_orders"] == 10
    assert_problem(storefront.get(f"/v1/buyers/{uid('nobody')}"), 404, "not_found")


@pytest.mark.parametrize(
    "profile",
    [
        {},
        {"registered_at": "2025-01-01T00:00:00"},  # no time zone
        {"registered_at": ago(-1)},  # in the future
        {"registered_at": ago(5), "active_days_90d": 91},
        {"registered_at": ago(5), "paid_orders": "3"},
        {"registered_at": ago(5), "phone_verified": "yes"},
        {"registered_at": ago(5), "vip": True},
    ],
)
def test_a_bad_profile_is_refused_and_changes_nothing(storefront: httpx.Client, profile: JSON) -> None:
    buyer_id = uid("buyer")
    assert_problem(storefront.put(f"/v1/buyers/{buyer_id}", json=profile), 422, "invalid")
    assert_problem(storefront.get(f"/v1/buyers/{buyer_id}"), 404, "not_found")


def test_only_an_admin_gives_verdicts(admin: httpx.Client, storefront: httpx.Client) -> None:
    buyer_id = scalper(storefront)
    verdict = {"verdict": "deny", "reason": "resold bottles"}
    assert_problem(storefront.put(f"/v1/buyers/{buyer_id}/verdict", json=verdict), 403, "forbidden")
    denied = body(admin.put(f"/v1/buyers/{buyer_id}/verdict", json=verdict), 200)
    assert denied["verdict"]["verdict"] == "deny"
    assert body(admin.delete(f"/v1/buyers/{buyer_id}/verdict"), 200)["verdict"] is None
    assert_problem(admin.delete(f"/v1/buyers/{uid('nobody')}/verdict"), 404, "not_found")


# -- screening and limits


def test_a_scalper_gets_403_not_eligible_with_every_reason_and_nothing_changes(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 5, "reserve", screening=STRICT)
    assert body(admin.get(f"/v1/listings/{listing_id}"), 200)["screening"]["min_paid_orders"] == 1
    problem = assert_problem(
        storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=scalper(storefront))),
        403,
        "not_eligible",
    )
    assert len(problem["reasons"]) == 4
    assert problem["reasons"][0].startswith("the account was opened 2 days ago")
    assert sellable(storefront, listing_id) == 5
    order = body(
        storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=customer(storefront))), 201
    )
    assert order["status"] == "reserved"


def test_an_allowed_buyer_passes_and_a_denied_one_does_not(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 5, "order", screening=STRICT)
    vouched, barred = scalper(storefront), customer(storefront)
    body(admin.put(f"/v1/buyers/{vouched}/verdict", json={"verdict": "allow", "reason": "staff"}), 200)
    body(admin.put(f"/v1/buyers/{barred}/verdict", json={"verdict": "deny", "reason": "chargebacks"}), 200)
    body(storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=vouched)), 201)
    problem = assert_problem(
        storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=barred)), 403, "not_eligible"
    )
    assert "chargebacks" in problem["reasons"][0]


def test_device_and_address_limits_answer_limit_exceeded(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 10, "reserve", per_device_limit=1, per_address_limit=2)
    context = {"device_id": uid("phone"), "address": "7 Rue du Port, Lyon", "ip": "203.0.113.7"}
    first = body(storefront.post("/v1/orders", json=order_body(listing_id) | context), 201)
    assert first["device_id"] == context["device_id"]
    assert first["ip"] == "203.0.113.7"
    assert len(first["address_hash"]) == 64
    assert "Lyon" not in json.dumps(first)
    same_device = order_body(listing_id) | context
    assert (
        "per device"
        in assert_problem(storefront.post("/v1/orders", json=same_device), 409, "limit_exceeded")["detail"]
    )
    second = order_body(listing_id) | context | {"device_id": uid("phone")}
    body(storefront.post("/v1/orders", json=second), 201)
    third = order_body(listing_id) | context | {"device_id": uid("phone"), "address": "7 rue du port lyon"}
    assert (
        "per address"
        in assert_problem(storefront.post("/v1/orders", json=third), 409, "limit_exceeded")["detail"]
    )
    missing = order_body(listing_id)
    assert_problem(storefront.post("/v1/orders", json=missing), 422, "invalid")
    assert_problem(
        storefront.post("/v1/orders", json=order_body(listing_id) | {"ip": "1.2.3"}), 422, "invalid"
    )
    assert sellable(storefront, listing_id) == 8


def test_a_ring_of_50_accounts_racing_to_one_address_over_two_workers_gets_the_address_limit(
    server_two_workers: Server,
) -> None:
    server = server_two_workers
    admin = server.client(server.admin)
    listing_id = make_listing(admin, 100, "reserve", per_buyer_limit=2, per_address_limit=3)
    spellings = ["88 Canal Street, Unit 5", "88 canal street unit 5", "88  CANAL STREET  UNIT 5"]
    orders = [
        order_body(listing_id, buyer_id=f"{listing_id}-ring-{n}")
        | {"device_id": f"{listing_id}-phone-{n}", "address": spellings[n % 3]}
        for n in range(50)
        for _ in range(2)
    ]

    outcomes = crowd(server, server.storefront, [("POST", "/v1/orders", document) for document in orders])

    assert Counter(outcomes) == {"201": 3, "limit_exceeded": 97}
    listing = body(admin.get(f"/v1/listings/{listing_id}"), 200)
    assert (listing["sold"], listing["sellable"]) == (3, 97)


def test_screening_and_limit_refusals_are_counted_by_rule(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    def count() -> dict[str, float]:
        return metric_samples(admin.get("/metrics").text, "stockguard_refusals_total")

    before = count()
    listing_id = make_listing(admin, 5, "reserve", screening={"phone_verified": True}, per_device_limit=1)
    assert_problem(
        storefront.post(
            "/v1/orders", json=order_body(listing_id, buyer_id=scalper(storefront)) | {"device_id": "d"}
        ),
        403,
        "not_eligible",
    )
    after = count()
    key = '{code="not_eligible",rule="phone_verified"}'
    assert after[key] == before.get(key, 0) + 1


# -- rate limits


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ("--rate-per-buyer", "3/minute", "--rate-per-ip", "5/minute")
    with running_server(tmp_path_factory.mktemp("rate-limited"), args=args) as running:
        yield running


def test_a_buyer_over_the_rate_gets_429_with_retry_after(limited_server: Server) -> None:
    admin, storefront = (
        limited_server.client(limited_server.admin),
        limited_server.client(limited_server.storefront),
    )
    listing_id = make_listing(admin, 100, "reserve")
    buyer_id = uid("bot")
    answers = [
        storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=buyer_id)) for _ in range(5)
    ]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201]
    for refused in answers[3:]:
        assert_problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert sellable(storefront, listing_id) == 97


def test_one_ip_over_the_rate_gets_429_whatever_the_buyer(limited_server: Server) -> None:
    admin, storefront = (
        limited_server.client(limited_server.admin),
        limited_server.client(limited_server.storefront),
    )
    listing_id = make_listing(admin, 100, "reserve")
    ip = "198.51.100.23"
    answers = [storefront.post("/v1/orders", json=order_body(listing_id) | {"ip": ip}) for _ in range(7)]
    assert [a.status_code for a in answers] == [201] * 5 + [429] * 2
    assert sellable(storefront, listing_id) == 95


def test_with_redis_every_worker_counts_against_one_rate_budget(tmp_path: Path) -> None:
    prefix = uid("sg-rate")
    args = ("--redis", REDIS_URL, "--redis-prefix", prefix, "--rate-per-buyer", "3/minute")
    with running_server(tmp_path / "data", workers=2, args=args) as server:
        admin = server.client(server.admin)
        listing_id = make_listing(admin, 100, "reserve")
        buyer_id = uid("bot")
        # Forty at once, each on its own connection: both workers take several. Counted in each
        # worker's memory, six would pass; counted in Redis, three do.
        orders = [order_body(listing_id, buyer_id=buyer_id) for _ in range(40)]
        outcomes = crowd(server, server.storefront, [("POST", "/v1/orders", document) for document in orders])
        assert Counter(outcomes) == {"201": 3, "rate_limited": 37}
        assert sellable(admin, listing_id) == 97
    redis = single_redis()
    try:
        counted = [key for key in redis.scan_iter(f"{prefix}:rate*") if buyer_id in key]
        assert counted, "the buyer's orders were not counted in Redis"
    finally:
        redis.close()


def test_serve_refuses_a_rate_that_does_not_parse(tmp_path: Path) -> None:
    finished = subprocess.run(
        [*stockguard_command(), "serve", "--data-dir", str(tmp_path), "--rate-per-buyer", "lots"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "rate limit" in finished.stderr


# -- draws


def draw_terms(listing_id: str, units: int, open_seconds: float, **more: object) -> JSON:
    """Terms of a draw open from now for ``open_seconds``."""
    opens = datetime.now(UTC)
    window = {
        "opens_at": opens.isoformat(),
        "closes_at": (opens + timedelta(seconds=open_seconds)).isoformat(),
    }
    return {"listing_id": listing_id, "units": units, **window, **more}


def wait_until_closed(terms: JSON) -> None:
    closes = datetime.fromisoformat(terms["closes_at"]) + timedelta(seconds=0.2)
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()))


def test_a_draw_from_creation_to_verification(
    admin: httpx.Client, storefront: httpx.Client, server: Server
) -> None:
    listing_id = make_listing(admin, 3, "reserve", screening={"min_paid_orders": 1})
    draw_id = uid("draw")
    terms = draw_terms(listing_id, 2, 2, payment_seconds=1)
    assert_problem(storefront.put(f"/v1/draws/{draw_id}", json=terms), 403, "forbidden")
    created = body(admin.put(f"/v1/draws/{draw_id}", json=terms), 201)
    assert created["state"] == "open"
    assert created["seed"] is None
    assert len(created["commitment"]) == 64
    assert body(admin.put(f"/v1/draws/{draw_id}", json=terms), 200)["commitment"] == created["commitment"]

    customers = [customer(storefront) for _ in range(6)]
    for n, buyer_id in enumerate(customers):
        entry = {"buyer_id": buyer_id, "device_id": f"{draw_id}-phone-{n}", "address": f"{n} Harbour Road"}
        assert body(storefront.post(f"/v1/draws/{draw_id}/entries", json=entry), 201)["number"] == n + 1
    again = {"buyer_id": customers[0]}
    assert body(storefront.post(f"/v1/draws/{draw_id}/entries", json=again), 200)["number"] == 1
    shared = {"buyer_id": customer(storefront), "device_id": f"{draw_id}-phone-0"}
    assert_problem(storefront.post(f"/v1/draws/{draw_id}/entries", json=shared), 409, "limit_exceeded")
    refused = assert_problem(
        storefront.post(f"/v1/draws/{draw_id}/entries", json={"buyer_id": scalper(storefront)}),
        403,
        "not_eligible",
    )
    assert refused["reasons"]
    assert_problem(admin.post(f"/v1/draws/{draw_id}/run"), 409, "invalid_transition")

    wait_until_closed(terms)
    late = {"buyer_id": customer(storefront)}
    assert_problem(storefront.post(f"/v1/draws/{draw_id}/entries", json=late), 409, "invalid_transition")
    assert_problem(storefront.post(f"/v1/draws/{draw_id}/run"), 403, "forbidden")
    drawn = body(admin.post(f"/v1/draws/{draw_id}/run"), 200)
    assert drawn["state"] == "drawn"
    assert drawn["seed"] is not None
    assert [w["status"] for w in drawn["winners"]] == ["reserved", "reserved"]
    assert len(drawn["waiting"]) == 4
    assert sellable(storefront, listing_id) == 1

    # Neither winner pays: within the sweeper's second, the next two on the list hold the units.
    body(storefront.post(f"/v1/orders/{drawn['winners'][0]['order_id']}/pay"), 200)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        report = body(storefront.get(f"/v1/draws/{draw_id}"), 200)
        if len(report["winners"]) == 3:
            break
        time.sleep(0.2)
    assert [w["status"] for w in report["winners"]] == ["paid", "expired", "reserved"]
    assert [w["buyer_id"] for w in report["winners"]] == [
        *(w["buyer_id"] for w in drawn["winners"]),
        drawn["waiting"][0]["buyer_id"],
    ]

    standing = metric_samples(admin.get("/metrics").text, "stockguard_draw_standing")
    counted = {
        label.split('standing="')[1].rstrip('"}'): n for label, n in standing.items() if draw_id in label
    }
    assert counted == {"paid": 1, "expired": 1, "reserved": 1, "waiting": 3}

    verified = subprocess.run(
        [*stockguard_command(), "verify-draw", draw_id, "--url", server.url, "--token", server.storefront],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "fair" in verified.stdout


def test_verify_draw_finds_a_tampered_record(
    admin: httpx.Client, storefront: httpx.Client, tmp_path: Path
) -> None:
    listing_id = make_listing(admin, 3, "reserve")
    draw_id = uid("draw")
    terms = draw_terms(listing_id, 1, 1)
    body(admin.put(f"/v1/draws/{draw_id}", json=terms), 201)
    for _ in range(5):
        body(storefront.post(f"/v1/draws/{draw_id}/entries", json={"buyer_id": uid("b")}), 201)
    wait_until_closed(terms)
    body(admin.post(f"/v1/draws/{draw_id}/run"), 200)
    record = {
        "draw": body(storefront.get(f"/v1/draws/{draw_id}"), 200),
        "entries": body(storefront.get(f"/v1/draws/{draw_id}/entries"), 200),
    }
    honest, tampered = tmp_path / "honest.json", tmp_path / "tampered.json"
    honest.write_text(json.dumps(record))
    record["entries"]["entries"][-1] = "an-extra-entry"
    tampered.write_text(json.dumps(record))
    command = [*stockguard_command(), "verify-draw", "--from"]
    assert subprocess.run([*command, str(honest)], capture_output=True, timeout=60).returncode == 0
    assert subprocess.run([*command, str(tampered)], capture_output=True, timeout=60).returncode == 1


def test_bad_draws_are_refused(admin: httpx.Client) -> None:
    listing_id = make_listing(admin, 3, "reserve")
    good = draw_terms(listing_id, 1, 3600)
    for bad in (
        good | {"closes_at": good["opens_at"]},
        good | {"units": 0},
        good | {"opens_at": "2026-01-01T00:00:00"},
        good | {"payment_seconds": 100_000},
    ):
        assert_problem(admin.put(f"/v1/draws/{uid('draw')}", json=bad), 422, "invalid")
    assert_problem(
        admin.put(f"/v1/draws/{uid('draw')}", json=good | {"listing_id": uid("none")}), 404, "not_found"
    )
    assert_problem(admin.get(f"/v1/draws/{uid('draw')}"), 404, "not_found")
