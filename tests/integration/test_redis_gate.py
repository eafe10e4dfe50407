"""The Redis gate against real Redis: one server, and a local cluster of three masters with replicas.

Every test works under a key prefix of its own. Without Redis at 127.0.0.1:6379
the single-server runs are skipped, except under CI (``CI=true``), where that
is a failure; the cluster needs ``redis-server`` and ``redis-cli`` on the PATH.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_cluster import LocalCluster
from redis_servers import MAX_CONNECTIONS, single_redis
from stockguard.domain.model import LiveLine
from stockguard.gate import AdmitRequest, RedisGate
from stockguard.gate.client import GateClient
from stockguard.gate.pipe import AdmissionPipe
from stockguard.service.admission import Admission, Decision

REDIS_URL = os.environ.get("STOCKGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["redis", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "redis":
        made = single_redis()
    else:
        local: LocalCluster = request.getfixturevalue("cluster")
        port = local.live_ports()[0]
        made = redis.RedisCluster(
            host="127.0.0.1", port=port, decode_responses=True, max_connections=MAX_CONNECTIONS
        )
    yield made
    made.close()


@pytest.fixture
def gate(client: Any) -> Iterator[RedisGate]:
    prefix = f"sg-test-{secrets.token_hex(4)}"
    yield RedisGate(client, prefix)
    for listing in ("hot", "other", *(f"hot-{n}" for n in range(8))):
        client.delete(*RedisGate(client, prefix).keys(listing).all())


def test_an_unloaded_listing_admits_nobody(gate: RedisGate) -> None:
    assert gate.admit("hot", "o-1", "alice", 1).decision is Decision.UNLOADED
    assert gate.state("hot") is None


def test_racing_buyers_get_exactly_the_tokens(gate: RedisGate) -> None:
    gate.load("hot", tokens=25, limit=None, live=[])
    decisions: list[Decision] = []
    lock = threading.Lock()

    def buy(n: int) -> None:
        decision = gate.admit("hot", f"o-{n}", f"buyer-{n}", 1).decision
        with lock:
            decisions.append(decision)

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(decisions) == {Decision.ADMITTED: 25, Decision.SOLD_OUT: 175}
    state = gate.state("hot")
    assert state is not None
    assert state.tokens == 0
    assert len(state.orders) == 25


def test_a_replayed_order_id_is_admitted_once(gate: RedisGate) -> None:
    gate.load("hot", tokens=5, limit=None, live=[])
    assert gate.admit("hot", "o-1", "alice", 2).tokens_left == 3
    again = gate.admit("hot", "o-1", "alice", 2)
    assert again.decision is Decision.REPLAY
    assert again.admitted_as == ("alice", 2)
    state = gate.state("hot")
    assert state is not None
    assert state.tokens == 3


def test_the_per_buyer_limit_counts_every_admission_of_the_buyer(gate: RedisGate) -> None:
    gate.load("hot", tokens=10, limit=2, live=[])
    assert gate.admit("hot", "o-1", "alice", 1).decision is Decision.ADMITTED
    assert gate.admit("hot", "o-2", "alice", 1).decision is Decision.ADMITTED
    refused = gate.admit("hot", "o-3", "alice", 1)
    assert (refused.decision, refused.used, refused.limit) == (Decision.LIMIT, 2, 2)
    assert gate.admit("hot", "o-4", "bob", 2).decision is Decision.ADMITTED
    gate.release("hot", "o-1")  # cancelled: alice may buy one again
    assert gate.admit("hot", "o-5", "alice", 1).decision is Decision.ADMITTED


def test_a_release_gives_the_tokens_back_exactly_once(gate: RedisGate) -> None:
    gate.load("hot", tokens=3, limit=1, live=[])
    gate.admit("hot", "o-1", "alice", 1)
    assert gate.release("hot", "o-1") == 1
    assert gate.release("hot", "o-1") == 0
    state = gate.state("hot")
    assert state is not None
    assert (state.tokens, state.orders, state.buyers) == (3, {}, {})


def test_a_forgotten_order_stops_counting_for_its_buyer_and_gives_no_tokens_back(gate: RedisGate) -> None:
    gate.load("hot", tokens=3, limit=1, live=[])
    gate.admit("hot", "o-1", "alice", 1)
    assert gate.forget("hot", "o-1") == 1  # expired: its unit went back to the store's own stock
    assert gate.forget("hot", "o-1") == 0
    state = gate.state("hot")
    assert state is not None
    assert (state.tokens, state.orders, state.buyers) == (2, {}, {})
    assert gate.admit("hot", "o-2", "alice", 1).decision is Decision.ADMITTED


def test_every_change_counts_up_and_a_reload_counts_on_from_what_was_seen(gate: RedisGate) -> None:
    gate.load("hot", tokens=5, limit=None, live=[])
    seqs = [gate.admit("hot", f"o-{n}", f"b-{n}", 1).seq or 0 for n in range(3)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    refused = gate.admit("hot", "o-0", "b-0", 1)  # a replay changes nothing
    assert refused.seq == seqs[-1]
    seen = seqs[-1]
    gate.load("hot", tokens=2, limit=None, live=[], seen_seq=seen)
    after = gate.admit("hot", "o-9", "b-9", 1).seq
    assert after is not None
    assert after > seen + 1


def test_load_replaces_the_state_with_the_stores(gate: RedisGate) -> None:
    gate.load("hot", tokens=9, limit=2, live=[])
    gate.admit("hot", "stale", "carol", 1)
    first = gate.state("hot")
    loaded = gate.load(
        "hot", tokens=4, limit=2, live=[LiveLine("o-1", "alice", 2), LiveLine("o-2", "bob", 1)]
    )
    state = gate.state("hot")
    assert state is not None
    assert first is not None
    assert state.epoch == loaded.epoch != first.epoch
    assert state.seq == loaded.seq == first.seq + 1  # above the state it replaced, not back to 1
    assert state.seq == loaded.seq == first.seq + 1  # above the state it replaced, not back to 1
    assert state.tokens == 4
    assert state.orders == {"o-1": ("alice", 2), "o-2": ("bob", 1)}
    assert state.buyers == {"alice": 2, "bob": 1}
    assert gate.admit("hot", "o-3", "alice", 1).decision is Decision.LIMIT
    assert gate.admit("hot", "o-1", "alice", 2).decision is Decision.REPLAY


def test_a_gate_that_lost_its_keys_admits_nobody_until_loaded_again(gate: RedisGate, client: Any) -> None:
    gate.load("hot", tokens=5, limit=None, live=[])
    client.delete(*gate.keys("hot").all())  # as a Redis that came back empty
    assert gate.admit("hot", "o-1", "alice", 1).decision is Decision.UNLOADED
    assert gate.bound_tokens("hot", at_least=5) is None  # nothing changes on an unloaded gate
    gate.load("hot", tokens=1, limit=None, live=[])
    assert gate.admit("hot", "o-1", "alice", 1).decision is Decision.ADMITTED


def test_tokens_are_bounded_from_above_and_below_by_what_the_store_has(gate: RedisGate) -> None:
    gate.load("hot", tokens=2, limit=None, live=[])
    assert gate.bound_tokens("hot", at_least=5) == 5  # a restock the gate had not seen
    assert gate.bound_tokens("hot", at_least=3) == 5  # never lowered by an "at least"
    gate.admit("hot", "o-1", "alice", 1)
    assert gate.bound_tokens("hot", at_most=1) == 1  # the store refused for stock: fewer tokens
    assert gate.bound_tokens("hot", at_most=4) == 1
    gate.admit("hot", "o-2", "bob", 1)
    assert gate.admit("hot", "o-3", "carol", 1).decision is Decision.SOLD_OUT


def test_many_admissions_in_one_pipeline_answer_each_as_alone(gate: RedisGate, client: Any) -> None:
    gate.load("hot", tokens=3, limit=1, live=[])
    gate.load("other", tokens=1, limit=None, live=[])
    client.script_flush()  # the pipeline meets NOSCRIPT and asks those again on their own
    answers = gate.admit_many(
        [
            AdmitRequest("hot", "o-1", "alice", 1),
            AdmitRequest("hot", "o-1", "alice", 1),
            AdmitRequest("hot", "o-2", "alice", 1),
            AdmitRequest("other", "o-3", "bob", 1),
            AdmitRequest("other", "o-4", "carol", 1),
            AdmitRequest("unknown", "o-5", "dan", 1),
        ]
    )
    decisions = [answer.decision for answer in answers if isinstance(answer, Admission)]
    assert decisions == [
        Decision.ADMITTED,
        Decision.REPLAY,
        Decision.LIMIT,
        Decision.ADMITTED,
        Decision.SOLD_OUT,
        Decision.UNLOADED,
    ]
    assert gate.admit_many([AdmitRequest("hot", "o-6", "bob", 1)])[0] == Admission(
        Decision.ADMITTED, seq=3, tokens_left=1
    )


def test_scripts_flushed_from_the_server_are_loaded_again(gate: RedisGate, client: Any) -> None:
    gate.load("hot", tokens=2, limit=None, live=[])
    client.script_flush()  # as after a restart or a failover: EVALSHA answers NOSCRIPT
    assert gate.admit("hot", "o-1", "alice", 1).decision is Decision.ADMITTED


@pytest.fixture
def cluster_gate(cluster: LocalCluster) -> Iterator[tuple[RedisGate, Any]]:
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.live_ports()[0], decode_responses=True)
    yield RedisGate(client, f"sg-test-{secrets.token_hex(4)}"), client
    client.close()


def test_listings_spread_over_the_cluster_each_decide_on_their_node(
    cluster: LocalCluster, cluster_gate: tuple[RedisGate, Any]
) -> None:
    gate, _ = cluster_gate
    listings = [f"hot-{n}" for n in range(8)]
    masters = {cluster.master_of(gate.keys(listing).state) for listing in listings}
    assert len(masters) >= 2
    for listing in listings:
        gate.load(listing, tokens=3, limit=None, live=[])
    for listing in listings:
        decisions = [gate.admit(listing, f"{listing}-o-{n}", f"b-{n}", 1).decision for n in range(5)]
        assert Counter(decisions) == {Decision.ADMITTED: 3, Decision.SOLD_OUT: 2}


def test_the_gate_goes_on_after_its_master_is_killed_and_a_replica_promoted(
    cluster: LocalCluster, cluster_gate: tuple[RedisGate, Any]
) -> None:
    gate, client = cluster_gate
    gate.load("hot", tokens=10, limit=2, live=[])
    for n in range(4):
        assert gate.admit("hot", f"o-{n}", f"buyer-{n}", 1).decision is Decision.ADMITTED
    master = cluster.master_of(gate.keys("hot").state)
    # Replication is asynchronous: wait until the replica has every admission, then kill -9.
    replicated = client.execute_command(
        "WAIT", 1, 5000, target_nodes=client.get_node_from_key(gate.keys("hot").state)
    )
    assert replicated >= 1
    cluster.kill_master(master)
    assert cluster.master_of(gate.keys("hot").state) != master

    def admit(order_id: str, buyer_id: str) -> Decision:
        for _ in range(50):  # the client finds the new master after a failed call or two
            try:
                return gate.admit("hot", order_id, buyer_id, 1).decision
            except (redis.ConnectionError, redis.exceptions.ClusterDownError, redis.TimeoutError):
                continue
        raise AssertionError("the gate never answered after the failover")

    # The promoted replica has the state (and no scripts: NOSCRIPT, loaded again).
    assert admit("o-0", "buyer-0") is Decision.REPLAY
    decisions = [admit(f"o-{n}", f"buyer-{n}") for n in range(4, 12)]
    assert Counter(decisions) == {Decision.ADMITTED: 6, Decision.SOLD_OUT: 2}


@pytest.fixture
def piped() -> Iterator[tuple[RedisGate, AdmissionPipe, Any]]:
    """A gate on the single Redis and the pipe its client sends admissions through."""
    client = single_redis()
    gate = RedisGate(client, f"sg-test-{secrets.token_hex(4)}")
    pipe = AdmissionPipe(gate)
    yield gate, pipe, client
    pipe.close()
    client.delete(*gate.keys("hot").all())
    client.close()


def _requests(first: int, count: int) -> list[AdmitRequest]:
    return [AdmitRequest("hot", f"o-{n}", f"b-{n}", 1) for n in range(first, first + count)]


def test_batches_sent_before_earlier_answers_are_read_are_answered_in_order(
    piped: tuple[RedisGate, AdmissionPipe, Any],
) -> None:
    gate, pipe, _ = piped
    gate.load("hot", tokens=4, limit=None, live=[])
    first, second = pipe.send(_requests(0, 3)), pipe.send(_requests(3, 3))
    answers = [*pipe.receive(first), *pipe.receive(second)]
    assert all(isinstance(answer, Admission) for answer in answers)
    admissions = [answer for answer in answers if isinstance(answer, Admission)]
    assert [answer.decision for answer in admissions] == [Decision.ADMITTED] * 4 + [Decision.SOLD_OUT] * 2
    seqs = [answer.seq or 0 for answer in admissions]
    assert seqs == sorted(seqs)  # read in the order Redis decided them
    assert [answer.tokens_left for answer in admissions] == [3, 2, 1, 0, 0, 0]


def test_a_pipe_meeting_noscript_asks_again(piped: tuple[RedisGate, AdmissionPipe, Any]) -> None:
    gate, pipe, client = piped
    gate.load("hot", tokens=5, limit=None, live=[])
    client.script_flush()  # as after a restart: the batch's EVALSHA answers NOSCRIPT
    answers = pipe.receive(pipe.send(_requests(0, 2)))
    assert [answer.decision for answer in answers if isinstance(answer, Admission)] == [Decision.ADMITTED] * 2
    state = gate.state("hot")
    assert state is not None
    assert state.tokens == 3


def test_a_pipe_whose_connection_dropped_asks_again_and_takes_no_token_twice(
    piped: tuple[RedisGate, AdmissionPipe, Any],
) -> None:
    gate, pipe, client = piped
    gate.load("hot", tokens=10, limit=None, live=[])
    pipe.receive(pipe.send(_requests(0, 1)))  # the pipe holds a connection now
    client.client_kill_filter(_type="normal", skipme=True)  # every other connection, the pipe's too
    first, second = pipe.send(_requests(1, 3)), pipe.send(_requests(4, 3))  # into the closed connection
    answers = {"first": pipe.receive(first)}  # read fails: asked again, now
    assert not second.on_working_line  # so the client asks it again before it sends a newer batch
    answers["second"] = pipe.receive(second)
    answers["third"] = pipe.receive(pipe.send(_requests(7, 3)))  # on a new connection
    left = {
        batch: [(answer.decision, answer.tokens_left) for answer in found if isinstance(answer, Admission)]
        for batch, found in answers.items()
    }
    admitted = Decision.ADMITTED
    assert left == {
        "first": [(admitted, 8), (admitted, 7), (admitted, 6)],
        "second": [(admitted, 5), (admitted, 4), (admitted, 3)],
        "third": [(admitted, 2), (admitted, 1), (admitted, 0)],
    }
    state = gate.state("hot")
    assert state is not None
    assert (state.tokens, len(state.orders)) == (0, 10)  # one token per order, none twice


class _Answers:
    """What a GateClient answered, by order id, as its callers hear it."""

    def __init__(self, expected: int) -> None:
        self.by_order: dict[str, list[Admission | None]] = {}
        self._lock = threading.Lock()
        self._expected = expected
        self.all_in = threading.Event()

    def to(self, order_id: str) -> Callable[[Admission | None], None]:
        def answered(admission: Admission | None) -> None:
            with self._lock:
                self.by_order.setdefault(order_id, []).append(admission)
                if sum(map(len, self.by_order.values())) == self._expected:
                    self.all_in.set()

        return answered

    def admitted_tokens_left(self, prefix: str) -> list[int]:
        """The tokens left after each admission of the orders whose ids start with ``prefix``."""
        return sorted(
            admission.tokens_left or 0
            for order, heard in self.by_order.items()
            for admission in heard
            if order.startswith(prefix) and admission is not None and admission.decision is Decision.ADMITTED
        )


def test_the_client_answers_every_admission_once_and_tells_in_order(gate: RedisGate) -> None:
    gate.load("hot", tokens=150, limit=None, live=[])
    gate.load("other", tokens=20, limit=None, live=[])
    client = GateClient(gate)
    answers, late = _Answers(expected=250), _Answers(expected=1)
    try:
        for n in range(200):
            client.admit("hot", f"h-{n}", f"b-{n}", 1, answers.to(f"h-{n}"))
            if n < 50:
                client.admit("other", f"x-{n}", f"b-{n}", 1, answers.to(f"x-{n}"))
        assert answers.all_in.wait(30)
        client.release("hot", "h-0")  # as the service does once the store refused h-0
        client.admit("hot", "late", "zoe", 1, late.to("late"))  # decided after the release
        assert late.all_in.wait(10)
    finally:
        client.close()
    assert all(len(heard) == 1 and heard[0] is not None for heard in answers.by_order.values())
    assert answers.admitted_tokens_left("h-") == list(range(150))  # each token once, to one order each
    assert answers.admitted_tokens_left("x-") == list(range(20))
    assert late.admitted_tokens_left("late") == [0]  # the token h-0 gave back


def test_a_failing_caller_does_not_stop_the_client(gate: RedisGate) -> None:
    gate.load("hot", tokens=5, limit=None, live=[])
    client = GateClient(gate)
    answers = _Answers(expected=1)

    def fails(_: Admission | None) -> None:
        raise RuntimeError("a caller's own bug")

    try:
        client.admit("hot", "o-1", "alice", 1, fails)
        client.admit("hot", "o-2", "bob", 1, answers.to("o-2"))
        assert answers.all_in.wait(10)
    finally:
        client.close()
    assert answers.admitted_tokens_left("o-2") == [3]


def test_closing_the_client_answers_what_was_queued(gate: RedisGate) -> None:
    gate.load("hot", tokens=1_000, limit=None, live=[])
    client = GateClient(gate)
    answers = _Answers(expected=300)
    for n in range(300):
        client.admit("hot", f"o-{n}", f"b-{n}", 1, answers.to(f"o-{n}"))
    client.close()
    assert answers.all_in.is_set()
    state = gate.state("hot")
    assert state is not None
    assert state.tokens == 700
