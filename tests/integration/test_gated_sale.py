"""A flash sale behind the Redis gate, on real Redis (one server, a cluster, a server killed)
and real stores (SQLite, PostgreSQL): the store's promises hold whatever happens to Redis.

Two ``connect(url, redis_url=...)`` are two service processes: each with its
gate client, its writer and its memory of sold-out listings.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

import stockguard
from conftest import FakeClock
from redis_cluster import LocalCluster, LocalRedis
from redis_servers import REDIS_URL, single_redis
from stockguard import LimitExceeded, Stockguard, StockguardError
from stockguard.gate.connect import open_gate
from stockguard.service.admission import GateState

Process = Callable[[], Stockguard]


def _open(store_url: str, redis_url: str, prefix: str, clock: FakeClock | None = None) -> Stockguard:
    if clock is None:
        return stockguard.connect(store_url, redis_url=redis_url, redis_prefix=prefix)
    guard = Stockguard(stockguard.open_store(store_url), clock.now)
    guard.use_gate(open_gate(redis_url, prefix))
    return guard


@pytest.fixture
def processes(shared_store_url: str) -> Iterator[Callable[[str], Stockguard]]:
    """Open service processes on the store and on a Redis; each test gets a key prefix of its own."""
    prefix = f"sg-test-{secrets.token_hex(4)}"
    opened: list[Stockguard] = []

    def open_one(redis_url: str) -> Stockguard:
        opened.append(_open(shared_store_url, redis_url, prefix))
        return opened[-1]

    yield open_one
    for guard in opened:
        guard.close()


def stock_a_sale(
    guard: Stockguard, units: int, *, limit: int | None = 1, listing: str = "maotai-sale"
) -> None:
    guard.put_item(f"{listing}-bottle", "Maotai bottle")
    guard.receive(f"{listing}-bottle", units)
    guard.put_listing(listing, "Maotai", [(f"{listing}-bottle", 1)], "order", per_buyer_limit=limit)


def buy(guard: Stockguard, order_id: str, buyer_id: str, listing: str = "maotai-sale") -> str:
    try:
        placement = guard.place_order(order_id, buyer_id, [(listing, 1)])
    except StockguardError as refusal:
        return refusal.code
    return "created" if placement.created else "replayed"


def gate_state(guard: Stockguard, listing: str = "maotai-sale") -> GateState | None:
    assert guard._gated is not None
    return guard._gated._gate.state(listing)


def assert_store_and_gate_agree(guard: Stockguard) -> None:
    assert guard.check() == []
    assert guard.gate_drift() == []


def sell_to_everyone(buyers: Sequence[tuple[Any, ...]], threads: int = 16) -> Counter[str]:
    """Each buyer's ``buy(*buyer)``, many at once."""
    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(lambda b: buy(*b), buyers))


def test_the_last_units_go_to_exactly_as_many_buyers_through_the_gate(
    processes: Callable[[str], Stockguard],
) -> None:
    first, second = processes(single_redis_url()), processes(single_redis_url())
    stock_a_sale(first, 40)
    assert first.reconcile_gate() == 1
    # 400 buyers, half of them trying twice under another order id: the limit is one each.
    buyers = [(first if n % 2 else second, f"o-{n}", f"buyer-{n % 400}") for n in range(600)]
    outcomes = sell_to_everyone(buyers)
    assert outcomes["created"] == 40
    assert set(outcomes) <= {"created", "sold_out", "limit_exceeded"}
    listing = first.get_listing("maotai-sale")
    assert (listing.sold, listing.sellable) == (40, 0)
    state = gate_state(first)
    assert state is not None
    assert state.tokens == 0
    assert len(state.orders) == 40
    assert_store_and_gate_agree(first)


def forget_everything(guard: Stockguard, listing: str = "maotai-sale") -> None:
    gate: Any = guard._gated._gate._gate  # type: ignore[union-attr]
    gate._client.delete(*gate.keys(listing).all())
    assert gate_state(guard, listing) is None


def single_redis_url() -> str:
    single_redis().close()
    return REDIS_URL


def test_a_bundle_and_a_single_sharing_one_item_never_oversell_it_through_the_gate(
    processes: Callable[[str], Stockguard],
) -> None:
    """Each listing has its own tokens, counted from the same bottles: the gate lets through
    more than the bottles allow, and the store refuses what does not fit."""
    first, second = processes(single_redis_url()), processes(single_redis_url())
    first.put_item("bottle", "Maotai bottle")
    first.receive("bottle", 30)
    first.put_listing("single", "One bottle", [("bottle", 1)], "order")
    first.put_listing("pair", "Two bottles", [("bottle", 2)], "order")
    buyers = [
        (first if n % 2 else second, f"o-{n}", f"buyer-{n}", "single" if n % 3 else "pair")
        for n in range(300)
    ]
    outcomes = sell_to_everyone(buyers)
    assert set(outcomes) <= {"created", "sold_out"}
    singles, pairs = first.get_listing("single").sold, first.get_listing("pair").sold
    assert outcomes["created"] == singles + pairs
    assert singles + 2 * pairs <= 30  # no bottle sold twice
    # A bottle left over (the last buyers all wanted pairs) still sells to a single buyer.
    left = 30 - singles - 2 * pairs
    assert [buy(first, f"late-{n}", f"late-{n}", "single") for n in range(left + 1)] == ["created"] * left + [
        "sold_out"
    ]
    assert first.check() == []
    first.reconcile_gate()
    assert first.gate_drift() == []


def test_a_buyer_at_the_limit_is_refused_and_a_replay_answers_its_order(
    processes: Callable[[str], Stockguard],
) -> None:
    guard = processes(single_redis_url())
    stock_a_sale(guard, 10, limit=2)
    guard.reconcile_gate()
    assert buy(guard, "o-1", "alice") == "created"
    assert buy(guard, "o-1", "alice") == "replayed"
    assert buy(guard, "o-2", "alice") == "created"
    with pytest.raises(LimitExceeded) as refused:
        guard.place_order("o-3", "alice", [("maotai-sale", 1)])
    assert "2" in refused.value.detail
    with pytest.raises(stockguard.UnknownOrder):
        guard.get_order("o-3")
    assert_store_and_gate_agree(guard)
    guard.put_listing("maotai-sale", "Maotai", [("maotai-sale-bottle", 1)], "order", per_buyer_limit=3)
    assert buy(guard, "o-3", "alice") == "created"  # the gate decides by the new terms at once
    assert buy(guard, "o-4", "alice") == "limit_exceeded"
    assert_store_and_gate_agree(guard)


def test_a_listing_never_loaded_sells_through_the_store_while_the_gate_loads_it(
    processes: Callable[[str], Stockguard],
) -> None:
    guard = processes(single_redis_url())
    stock_a_sale(guard, 3, limit=None)
    forget_everything(guard)  # as a Redis that lost its keys
    assert buy(guard, "o-1", "alice") == "created"  # the gate had nothing: the store decided
    wait_until(lambda: gate_state(guard) is not None)
    assert [buy(guard, f"o-{n}", f"buyer-{n}") for n in range(2, 6)] == ["created"] * 2 + ["sold_out"] * 2
    assert_store_and_gate_agree(guard)


def test_cancellation_and_expiry_give_the_gate_its_tokens_back(shared_store_url: str) -> None:
    clock = FakeClock()
    prefix = f"sg-test-{secrets.token_hex(4)}"
    guard = _open(shared_store_url, single_redis_url(), prefix, clock)
    try:
        guard.put_item("bottle", "Maotai bottle")
        guard.receive("bottle", 2)
        guard.put_listing(
            "maotai-sale", "Maotai", [("bottle", 1)], "reserve", hold_seconds=60, per_buyer_limit=1
        )
        guard.reconcile_gate()
        assert [buy(guard, f"o-{n}", f"buyer-{n}") for n in range(3)] == ["created", "created", "sold_out"]
        guard.cancel("o-0")
        wait_until(lambda: (state := gate_state(guard)) is not None and state.tokens == 1)
        assert buy(guard, "o-0-again", "buyer-0") == "created"  # the cancelled order stopped counting
        clock.advance(61)
        assert guard.expire_due() == 2
        wait_until(lambda: (state := gate_state(guard)) is not None and state.tokens == 2)
        assert [buy(guard, f"p-{n}", f"buyer-{n}") for n in range(3)] == ["created", "created", "sold_out"]
        assert_store_and_gate_agree(guard)
    finally:
        guard.close()


def test_paying_an_expired_order_counts_it_in_the_gate_again(shared_store_url: str) -> None:
    clock = FakeClock()
    guard = _open(shared_store_url, single_redis_url(), f"sg-test-{secrets.token_hex(4)}", clock)
    try:
        guard.put_item("bottle", "Maotai bottle")
        guard.receive("bottle", 3)
        guard.put_listing(
            "maotai-sale", "Maotai", [("bottle", 1)], "reserve", hold_seconds=60, per_buyer_limit=1
        )
        assert buy(guard, "o-1", "alice") == "created"
        clock.advance(61)
        assert guard.expire_due() == 1
        wait_until(lambda: (state := gate_state(guard)) is not None and state.orders == {})
        assert guard.pay("o-1").status is stockguard.OrderStatus.PAID  # takes a unit again
        wait_until(lambda: (state := gate_state(guard)) is not None and "o-1" in state.orders)
        assert buy(guard, "o-2", "alice") == "limit_exceeded"
        assert_store_and_gate_agree(guard)
    finally:
        guard.close()


def test_a_listing_sold_out_in_one_process_is_refused_by_the_others_from_memory(
    processes: Callable[[str], Stockguard], own_redis: LocalRedis
) -> None:
    seller, other = processes(own_redis.url), processes(own_redis.url)
    wait_until(lambda: other.store.stock_version() is not None)  # listening for restocks
    stock_a_sale(seller, 1, limit=None)
    seller.reconcile_gate()
    assert buy(seller, "o-1", "alice") == "created"
    assert buy(seller, "o-2", "bob") == "sold_out"  # the gate has no tokens, a read proves it
    stats = redis.Redis.from_url(own_redis.url, decode_responses=True)

    def scripts_run() -> int:
        return int(stats.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    wait_until(lambda: other._sold_out.refusing(_one_line(), other.store.stock_version(), other.clock()))
    before = scripts_run()
    assert [buy(other, f"r-{n}", f"buyer-{n}") for n in range(20)] == ["sold_out"] * 20
    assert scripts_run() == before  # refused from memory: the gate was never asked
    stats.close()
    seller.receive("maotai-sale-bottle", 1)  # stock comes back: the other process sells it
    wait_until(lambda: buy(other, "after", "carol") == "created")
    assert_store_and_gate_agree(seller)


def _one_line() -> tuple[stockguard.OrderLine, ...]:
    return (stockguard.OrderLine("maotai-sale", 1),)


def test_redis_killed_mid_sale_and_back_empty_oversells_nothing(
    processes: Callable[[str], Stockguard], own_redis: LocalRedis
) -> None:
    first, second = processes(own_redis.url), processes(own_redis.url)
    stock_a_sale(first, 150, limit=1)
    first.reconcile_gate()
    created: list[str] = []
    lock = threading.Lock()

    def buyer(n: int) -> str:
        outcome = buy(first if n % 2 else second, f"o-{n}", f"buyer-{n % 500}")
        if outcome == "created":
            with lock:
                created.append(f"o-{n}")
        return outcome

    with ThreadPoolExecutor(16) as pool:
        early = list(pool.map(buyer, range(0, 100)))
        own_redis.kill()  # kill -9: every key is gone
        during = list(pool.map(buyer, range(100, 130)))
        own_redis.restart(from_snapshot=False)
        late = list(pool.map(buyer, range(130, 900)))
    outcomes = Counter(early + during + late)
    assert outcomes["created"] == 150
    assert set(outcomes) <= {"created", "sold_out", "limit_exceeded"}  # Redis down: the store decided
    assert "created" in during
    for order_id in created:  # every acknowledged order is in the store
        assert first.get_order(order_id).status is stockguard.OrderStatus.RESERVED
    assert "created" in late
    assert gate_state(first) is not None  # loaded again from the store, and sold through
    assert first.get_listing("maotai-sale").sold == 150
    assert first.check() == []
    first.reconcile_gate()
    assert first.gate_drift() == []


def test_a_redis_restored_from_an_old_snapshot_is_loaded_again_before_it_decides(
    processes: Callable[[str], Stockguard], own_redis: LocalRedis
) -> None:
    guard = processes(own_redis.url)
    stock_a_sale(guard, 10, limit=1)
    guard.reconcile_gate()
    assert [buy(guard, f"o-{n}", f"buyer-{n}") for n in range(3)] == ["created"] * 3
    own_redis.snapshot()  # the backup: 7 tokens, three orders
    assert [buy(guard, f"o-{n}", f"buyer-{n}") for n in range(3, 8)] == ["created"] * 5
    own_redis.kill()
    own_redis.restart(from_snapshot=True)  # 7 tokens again, and buyers 3 to 7 unknown
    # The old state answers below the change count this process saw: it is loaded again, and
    # the buyers it forgot are still held to their limit; the sale ends at exactly 10.
    outcomes = [buy(guard, f"again-{n}", f"buyer-{n}") for n in range(3, 8)]
    assert outcomes == ["limit_exceeded"] * 5
    wait_until(lambda: (state := gate_state(guard)) is not None and len(state.orders) == 8)
    assert [buy(guard, f"o-{n}", f"buyer-{n}") for n in range(8, 14)] == ["created"] * 2 + ["sold_out"] * 4
    assert guard.get_listing("maotai-sale").sold == 10
    assert_store_and_gate_agree(guard)


def test_hot_listings_over_a_cluster_sell_exactly_through_a_master_failover(
    processes: Callable[[str], Stockguard], cluster: LocalCluster
) -> None:
    url = f"redis://127.0.0.1:{cluster.live_ports()[0]}/0"
    first, second = processes(url), processes(url)
    listings = [f"hot-{n}" for n in range(6)]
    for listing in listings:
        stock_a_sale(first, 20, limit=None, listing=listing)
    first.reconcile_gate()
    assert_gate_spread_over_masters(first, cluster, listings)
    victim = cluster.master_of(first._gated._gate._gate.keys("hot-0").state)  # type: ignore[union-attr]
    buyers = [(first if n % 2 else second, f"o-{n}", f"buyer-{n}", listings[n % 6]) for n in range(400)]
    with ThreadPoolExecutor(16) as pool:
        early = list(pool.map(lambda b: buy(*b), buyers[:100]))
        cluster.kill_master(victim)  # its replica takes over, maybe without the last writes
        late = list(pool.map(lambda b: buy(*b), buyers[100:]))
    outcomes = Counter(early + late)
    assert outcomes["created"] == 120
    assert set(outcomes) <= {"created", "sold_out"}
    for listing in listings:
        assert first.get_listing(listing).sold == 20
    assert first.check() == []
    first.reconcile_gate()
    assert first.gate_drift() == []


def assert_gate_spread_over_masters(guard: Stockguard, cluster: LocalCluster, listings: list[str]) -> None:
    gate: Any = guard._gated._gate._gate  # type: ignore[union-attr]
    masters = {cluster.master_of(gate.keys(listing).state) for listing in listings}
    assert len(masters) >= 2


def wait_until(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.01)
