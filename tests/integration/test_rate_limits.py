"""Rate limits per buyer and per IP address: in memory, on one real Redis, on the suite's Redis Cluster.

No mocks and no sleeping: limits are "N per minute" (or longer), so every hit
of a test falls in one window, and the tests count allowed and refused hits.
Every Redis test works under a key prefix of its own and deletes its keys.
Without Redis at 127.0.0.1:6379 the Redis runs are skipped, except under CI
(``CI=true``), where that is a failure; the cluster needs ``redis-server``.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_cluster import LocalCluster, LocalRedis
from redis_servers import REDIS_URL, single_redis
from stockguard.domain.errors import InvalidInput, RateLimited
from stockguard.service.rate_limits import RateLimits


def outcomes(limits: RateLimits, buyer: str, ip: str | None, times: int) -> list[bool]:
    """For each of ``times`` orders: True if let through, False if refused."""
    allowed = []
    for _ in range(times):
        try:
            limits.check(buyer, ip)
        except RateLimited:
            allowed.append(False)
        else:
            allowed.append(True)
    return allowed


def refusal(limits: RateLimits, buyer: str, ip: str | None) -> RateLimited:
    with pytest.raises(RateLimited) as raised:
        limits.check(buyer, ip)
    return raised.value


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def redis_client() -> Iterator[Any]:
    client = single_redis()
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix of this test's own on the local Redis; its keys are deleted afterwards."""
    made = f"sg-test-{secrets.token_hex(4)}"
    yield made
    keys = list(redis_client.scan_iter(f"{made}*"))  # also the keys of f"{made}-other"
    if keys:
        redis_client.delete(*keys)


# ---- in memory ----------------------------------------------------------------------


def test_a_buyer_gets_exactly_the_limit_then_is_refused() -> None:
    limits = RateLimits("3/minute", None)
    assert outcomes(limits, "b1", None, 5) == [True, True, True, False, False]


def test_each_buyer_has_a_budget_of_their_own() -> None:
    limits = RateLimits("2/minute", None)
    assert outcomes(limits, "b1", None, 3) == [True, True, False]
    assert outcomes(limits, "b2", None, 3) == [True, True, False]


def test_the_ip_limit_applies_across_buyers() -> None:
    limits = RateLimits("10/minute", "3/minute")
    allowed = [outcomes(limits, f"buyer-{n}", "203.0.113.7", 1)[0] for n in range(5)]
    assert allowed == [True, True, True, False, False]
    assert outcomes(limits, "buyer-9", "198.51.100.1", 1) == [True]  # another address


def test_an_order_without_an_ip_is_counted_against_the_buyer_only() -> None:
    limits = RateLimits("2/minute", "1/minute")
    assert outcomes(limits, "b1", None, 3) == [True, True, False]


def test_an_order_refused_by_the_ip_limit_spends_none_of_the_buyers_budget() -> None:
    limits = RateLimits("2/minute", "1/minute")
    assert outcomes(limits, "other", "203.0.113.7", 1) == [True]  # fills the address's budget
    assert outcomes(limits, "b1", "203.0.113.7", 4) == [False] * 4
    assert outcomes(limits, "b1", "198.51.100.1", 3) == [True, False, False]  # still 2, less 1 for the IP


def test_an_order_refused_by_the_buyer_limit_spends_none_of_the_ips_budget() -> None:
    limits = RateLimits("1/minute", "3/minute")
    assert outcomes(limits, "b1", "203.0.113.7", 4) == [True, False, False, False]
    assert [outcomes(limits, f"b{n}", "203.0.113.7", 1)[0] for n in (2, 3, 4)] == [True, True, False]


def test_every_limit_of_a_several_limit_string_holds() -> None:
    limits = RateLimits("5/second; 2/minute", None)
    assert outcomes(limits, "b1", None, 3) == [True, True, False]


def test_the_refusal_names_the_limit_and_when_to_try_again() -> None:
    limits = RateLimits("1/minute", "5 per 2 minutes")
    limits.check("b1", None)
    by_buyer = refusal(limits, "b1", None)
    assert by_buyer.detail.startswith("buyer 'b1' placed more than 1 orders per 1 minute; try again in ")
    assert by_buyer.detail.endswith(f" {by_buyer.retry_after} s")
    for n in range(5):
        limits.check(f"b-{n}", "203.0.113.7")
    by_ip = refusal(limits, "b9", "203.0.113.7")
    assert by_ip.detail.startswith("IP address '203.0.113.7' placed more than 5 orders per 2 minutes")


@pytest.mark.parametrize(
    ("limit", "window"), [("2/second", 1), ("2/minute", 60), ("2 per 3 hours", 3 * 3600)]
)
def test_retry_after_is_at_least_a_second_and_at_most_the_window(limit: str, window: int) -> None:
    limits = RateLimits(limit, None)
    limits.check("b1", None)
    limits.check("b1", None)
    assert 1 <= refusal(limits, "b1", None).retry_after <= window


@pytest.mark.parametrize(
    "bad", ["5", "", "five per second", "5/fortnight", "5 per", "0/second", "5/second; 0/minute"]
)
def test_a_bad_limit_string_raises_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput, match="per_buyer rate limit"):
        RateLimits(bad, None)
    with pytest.raises(InvalidInput, match="per_ip rate limit"):
        RateLimits(None, bad)


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("memcached://127.0.0.1:11211", False),
        ("redis://127.0.0.1:notaport/0", False),
        (None, True),
        ("redis://127.0.0.1:7000/3", True),
        ("redis+unix:///tmp/redis.sock", True),
    ],
)
def test_a_storage_it_cannot_use_raises_invalid_input(url: str | None, cluster: bool) -> None:
    with pytest.raises(InvalidInput):
        RateLimits("1/second", None, url, cluster=cluster)


def test_with_no_limits_it_is_disabled_and_checks_nothing() -> None:
    limits = RateLimits(None, None, f"redis://127.0.0.1:{unused_port()}/0")
    assert not limits.enabled
    assert outcomes(limits, "b1", "203.0.113.7", 100) == [True] * 100
    assert RateLimits("1/second", None).enabled
    assert RateLimits(None, "1/second").enabled


def test_two_limiters_in_memory_count_separately() -> None:
    one, two = RateLimits("1/minute", None), RateLimits("1/minute", None)
    assert outcomes(one, "b1", None, 2) == [True, False]
    assert outcomes(two, "b1", None, 2) == [True, False]


# ---- one real Redis -------------------------------------------------------------------


def test_two_limiters_on_one_redis_and_prefix_share_one_budget(prefix: str) -> None:
    # As two processes of one deployment would: each its own client, one budget.
    with (
        RateLimits("3/minute", "4/minute", REDIS_URL, prefix) as first,
        RateLimits("3/minute", "4/minute", REDIS_URL, prefix) as second,
    ):
        by_buyer = [outcomes(limits, "b1", None, 1)[0] for limits in (first, second, first, second)]
        assert by_buyer == [True, True, True, False]
        by_ip = [
            outcomes(limits, f"b-{n}", "203.0.113.7", 1)[0] for n, limits in enumerate([first, second] * 3)
        ]
        assert by_ip == [True, True, True, True, False, False]


def test_limiters_with_different_prefixes_on_one_redis_keep_separate_budgets(prefix: str) -> None:
    with (
        RateLimits("2/minute", None, REDIS_URL, prefix) as shop_a,
        RateLimits("2/minute", None, REDIS_URL, f"{prefix}-other") as shop_b,
    ):
        assert outcomes(shop_a, "b1", None, 3) == [True, True, False]
        assert outcomes(shop_b, "b1", None, 3) == [True, True, False]


def test_every_key_on_redis_starts_with_the_prefix(prefix: str, redis_client: Any) -> None:
    with RateLimits("2/minute", "2/minute", REDIS_URL, prefix) as limits:
        limits.check("b1", "203.0.113.7")
    keys = sorted(redis_client.scan_iter(f"*{prefix}*"))
    assert len(keys) == 2  # one for the buyer, one for the address
    assert all(key.startswith(f"{prefix}:") for key in keys)


def test_a_redis_that_is_not_listening_lets_orders_through_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{unused_port()}/0"
    with caplog.at_level(logging.WARNING, logger="stockguard.rate_limits"):
        limits = RateLimits("1/minute", "1/minute", url)
        assert outcomes(limits, "b1", "203.0.113.7", 20) == [True] * 20
        limits.close()
    warnings = [record for record in caplog.records if record.name == "stockguard.rate_limits"]
    assert len(warnings) == 1
    assert "rate limits not enforced" in warnings[0].getMessage()
    assert "hunter2-secret" not in caplog.text
    assert "hunter2-secret" not in limits.storage


def test_a_redis_that_dies_during_a_sale_lets_the_orders_after_it_through(own_redis: LocalRedis) -> None:
    with RateLimits("2/minute", None, own_redis.url) as limits:
        assert outcomes(limits, "b1", None, 3) == [True, True, False]
        own_redis.kill()
        assert outcomes(limits, "b1", None, 5) == [True] * 5


# ---- the suite's Redis Cluster ------------------------------------------------------------


def test_limiters_on_different_nodes_of_a_cluster_share_one_budget(cluster: LocalCluster) -> None:
    prefix = f"sg-test-{secrets.token_hex(4)}"
    first_port, second_port = cluster.live_ports()[:2]
    # A node's plain URL with cluster=True, and limits' own spelling of a cluster URL.
    with (
        RateLimits("3/minute", "2/minute", f"redis://127.0.0.1:{first_port}/0", prefix, cluster=True) as one,
        RateLimits("3/minute", "2/minute", f"redis+cluster://127.0.0.1:{second_port}", prefix) as two,
    ):
        assert [outcomes(limits, "b1", None, 1)[0] for limits in (one, two, one, two)] == [
            True,
            True,
            True,
            False,
        ]
        by_ip = [outcomes(limits, f"b-{n}", "203.0.113.7", 1)[0] for n, limits in enumerate([one, two] * 2)]
        assert by_ip == [True, True, False, False]
        assert 1 <= refusal(two, "b1", None).retry_after <= 60
    client = redis.RedisCluster(host="127.0.0.1", port=first_port)
    keys = list(client.scan_iter(f"{prefix}:*"))
    for key in keys:
        client.delete(key)
    client.close()
    assert len(keys) == 4  # buyers b1, b-0 and b-1, and the address


def test_a_cluster_that_is_not_listening_lets_orders_through() -> None:
    limits = RateLimits("1/minute", None, f"redis://127.0.0.1:{unused_port()}/0", cluster=True)
    assert limits.enabled
    assert outcomes(limits, "b1", None, 10) == [True] * 10
    limits.close()
