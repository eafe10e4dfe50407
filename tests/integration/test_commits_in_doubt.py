"""A commit whose answer is lost on the way: PostgreSQL may have applied it or not.

A proxy between the store and the server cuts the writer's connection at its
COMMIT (or at the statement that places a batch of orders together), either
after the server answered (the change stays; the store never heard) or before
the statement left (nothing stays). The caller must hear what happened: the
change when it stayed, ``Unavailable`` when nothing did, and ``OutcomeUnknown``
only while the server cannot be asked.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

import stockguard
from conftest import POSTGRES_SERVER, empty_postgres_url, postgres_admin
from cutting_proxy import CuttingProxy
from redis_servers import REDIS_URL
from stockguard import OrderStatus, OutcomeUnknown, Stockguard, Unavailable
from stockguard.bootstrap import upgrade_database

# The writer asks for its transaction's id just before it sends COMMIT.
TRANSACTION_ID = b"pg_current_xact_id_if_assigned"


@pytest.fixture
def proxy() -> Iterator[CuttingProxy]:
    server = make_url(POSTGRES_SERVER)
    with CuttingProxy((server.host or "127.0.0.1", server.port or 5432)) as proxy:
        yield proxy


@contextmanager
def open_sale(proxy: CuttingProxy, query: str = "") -> Iterator[tuple[Stockguard, str]]:
    """A store reaching PostgreSQL through the proxy, with 5 bottles on sale and o-1 holding one;
    and the schema's own URL, for looking behind the store's back."""
    url = empty_postgres_url()
    upgrade_database(url)
    sg = stockguard.connect(proxy.url(url) + query)
    sg.put_item("maotai", "Maotai")
    sg.receive("maotai", 5)
    sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve", hold_seconds=600)
    sg.place_order("o-1", "alice", [("maotai-sale", 1)])
    # The writer's connection has run its COMMIT more often than psycopg's threshold for
    # preparing a statement: from then on only the statement's name crosses the wire.
    for n in range(6):
        sg.put_item(f"spare-{n}", "Spare")
    try:
        yield sg, url
    finally:
        sg.store.close()


@pytest.fixture
def sale(proxy: CuttingProxy) -> Iterator[tuple[Stockguard, str]]:
    with open_sale(proxy) as opened:
        yield opened


@pytest.fixture
def impatient_sale(proxy: CuttingProxy) -> Iterator[tuple[Stockguard, str]]:
    """The same, on a store that asks about a commit in doubt for 1 s only (the operator's
    ``in_doubt_seconds`` in the URL; 10 s unless set)."""
    with open_sale(proxy, "&in_doubt_seconds=1") as opened:
        yield opened


def schema_of(url: str) -> str:
    return str(make_url(url).query["options"]).split("=", 1)[1]


def status_in_database(url: str, order_id: str) -> str | None:
    row = (
        postgres_admin()
        .execute(f"SELECT status FROM {schema_of(url)}.orders WHERE order_id = %s", (order_id,))
        .fetchone()
    )
    return None if row is None else str(row[0])


def test_a_payment_whose_commit_was_answered_too_late_is_told_paid(
    sale: tuple[Stockguard, str], proxy: CuttingProxy
) -> None:
    sg, url = sale
    proxy.arm(b"COMMIT", after=TRANSACTION_ID, deliver=True)
    paid = sg.pay("o-1")
    assert proxy.cuts == 1
    assert paid.status is OrderStatus.PAID
    assert status_in_database(url, "o-1") == "paid"
    assert sg.get_listing("maotai-sale").sellable == 4
    assert sg.check() == []


def test_a_cancellation_whose_commit_never_arrived_is_unavailable_and_changed_nothing(
    sale: tuple[Stockguard, str], proxy: CuttingProxy
) -> None:
    sg, url = sale
    proxy.arm(b"COMMIT", after=TRANSACTION_ID, deliver=False)
    with pytest.raises(Unavailable):
        sg.cancel("o-1")
    assert proxy.cuts == 1
    assert status_in_database(url, "o-1") == "reserved"
    assert sg.get_order("o-1").status is OrderStatus.RESERVED
    assert sg.get_listing("maotai-sale").sellable == 4
    assert sg.cancel("o-1").status is OrderStatus.CANCELLED  # and the next try goes through


def test_a_placement_whose_joint_decision_was_answered_too_late_is_told_its_order(
    sale: tuple[Stockguard, str], proxy: CuttingProxy
) -> None:
    sg, url = sale
    proxy.arm(b"stockguard_place_many", deliver=True)
    placed = sg.place_order("o-2", "bob", [("maotai-sale", 2)])
    assert proxy.cuts == 1
    assert placed.order.order_id == "o-2"
    assert not placed.created  # the cut statement placed it; running it again found it (HTTP: 200)
    assert placed.order.status is OrderStatus.RESERVED
    assert status_in_database(url, "o-2") == "reserved"
    assert sg.get_listing("maotai-sale").sellable == 2  # placed once, not twice
    assert sg.check() == []


def test_a_commit_in_doubt_while_the_server_cannot_be_asked_is_outcome_unknown(
    impatient_sale: tuple[Stockguard, str], proxy: CuttingProxy
) -> None:
    sg, url = impatient_sale
    proxy.arm(b"COMMIT", after=TRANSACTION_ID, deliver=True, refuse_after=True)
    with pytest.raises(OutcomeUnknown):
        sg.pay("o-1")
    assert status_in_database(url, "o-1") == "paid"  # it did stay: "unavailable" would have been a lie
    proxy.refuse_new = False
    assert sg.pay("o-1").status is OrderStatus.PAID  # paying again is safe and tells what happened
    assert sg.check() == []


def test_a_gated_placement_found_after_its_answer_was_lost_keeps_its_tokens(proxy: CuttingProxy) -> None:
    """Behind the Redis gate: the order the cut-off statement placed is found by running it again
    (not created by that run), yet it is this request's own order, so the gate keeps its token.
    Releasing it would put the gate a unit ahead of the store."""
    url = empty_postgres_url()
    upgrade_database(url)
    prefix = f"sg-test-{secrets.token_hex(4)}"
    sg = stockguard.connect(proxy.url(url), redis_url=REDIS_URL, redis_prefix=prefix)
    try:
        sg.put_item("maotai", "Maotai")
        sg.receive("maotai", 3)
        sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "order")
        assert sg.reconcile_gate() == 1
        proxy.arm(b"stockguard_place_many", deliver=True)
        placed = sg.place_order("o-1", "alice", [("maotai-sale", 1)])
        assert proxy.cuts == 1
        assert placed.order.order_id == "o-1"
        assert sg.get_listing("maotai-sale").sellable == 2
        assert sg.gate_drift() == []
        assert sg.check() == []
    finally:
        sg.close()


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_a_store_closing_while_a_commit_is_in_doubt_answers_outcome_unknown_at_once(
    sale: tuple[Stockguard, str], proxy: CuttingProxy, server: str
) -> None:
    """Closing does not wait out the asking (not even a try to connect that hangs on a silent
    network), and no caller is left without an answer."""
    sg, _ = sale
    refusing = server == "refusing"
    proxy.arm(
        b"COMMIT", after=TRANSACTION_ID, deliver=True, refuse_after=refusing, silence_after=not refusing
    )
    outcome: list[BaseException] = []

    def pay() -> None:
        try:
            sg.pay("o-1")
        except BaseException as error:
            outcome.append(error)

    paying = threading.Thread(target=pay)
    paying.start()
    assert proxy.cut_done.wait(10)
    sg.store.close()
    paying.join(5)
    assert not paying.is_alive()
    assert [type(error) for error in outcome] == [OutcomeUnknown]
    with pytest.raises(Unavailable):
        sg.place_order("o-2", "bob", [("maotai-sale", 1)])  # a closed store takes no more work


def test_a_commit_in_doubt_while_the_network_swallows_everything_is_outcome_unknown_in_time(
    impatient_sale: tuple[Stockguard, str], proxy: CuttingProxy
) -> None:
    """The server cannot be reached and does not refuse either: every try to ask gives up on its
    own (libpq's connect timeout), so the caller is answered instead of waiting on the asking
    for good."""
    sg, url = impatient_sale
    proxy.arm(b"COMMIT", after=TRANSACTION_ID, deliver=True, silence_after=True)
    paying = ThreadPoolExecutor(1).submit(sg.pay, "o-1")
    with pytest.raises(OutcomeUnknown):
        paying.result(timeout=60)  # without a connect timeout, the asking never returns
    assert status_in_database(url, "o-1") == "paid"
    proxy.silence_new = False
    assert sg.pay("o-1").status is OrderStatus.PAID


@pytest.mark.parametrize("seconds", ["0", "-1", "soon", "nan", "inf", "601"])
def test_an_in_doubt_time_out_of_range_is_refused_with_a_clear_error(seconds: str) -> None:
    with pytest.raises(ValueError, match="in_doubt_seconds must be a number of seconds above 0"):
        stockguard.connect(f"{empty_postgres_url()}&in_doubt_seconds={seconds}")


@pytest.fixture
def named_sale(proxy: CuttingProxy) -> Iterator[tuple[Stockguard, str, str]]:
    """The sale on a store whose connections carry a name of their own (to find its sessions)."""
    name = f"sg-doubt-{secrets.token_hex(4)}"
    with open_sale(proxy, f"&application_name={name}") as (sg, url):
        yield sg, url, name


def waiting_on_locks(name: str) -> list[str]:
    """The statements the store's sessions are running while they wait on a lock."""
    rows = postgres_admin().execute(
        "SELECT query FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (name,),
    )
    return [str(query) for (query,) in rows.fetchall()]


def test_a_joint_placement_cut_off_while_it_waits_on_a_lock_is_ended_before_it_is_run_again(
    named_sale: tuple[Stockguard, str, str], proxy: CuttingProxy
) -> None:
    """The server learns that its client went only when it answers: a cut-off statement waiting
    on a lock still runs, and commits, afterwards. Run again beside it, the placement would wait
    behind it, find the last bottle taken by its own first run, and answer sold out for an order
    that was placed. The writer ends the cut-off session first, so the first run never lands."""
    sg, url, name = named_sale
    sg.place_order("o-2", "bob", [("maotai-sale", 3)])  # one bottle left
    with psycopg.connect(POSTGRES_SERVER) as other:
        other.execute(f"SELECT on_hand FROM {schema_of(url)}.levels WHERE sku = 'maotai' FOR UPDATE")
        proxy.arm(b"stockguard_place_many", deliver=True, await_answer=False)
        placing = ThreadPoolExecutor(1).submit(sg.place_order, "o-3", "carol", [("maotai-sale", 1)])
        assert proxy.cut_done.wait(10)
        # The cut-off statement waited on the lock; it is ended, and only then is the placement
        # run again (one order at a time, not the joint statement), to wait in its place.
        ended_then_run_again = wait_until(lambda: run_again_alone(waiting_on_locks(name)))
    placed = placing.result(timeout=60)  # the lock is let go: the one run left goes through
    assert ended_then_run_again
    assert placed.order.order_id == "o-3"
    assert status_in_database(url, "o-3") == "reserved"
    assert sg.get_listing("maotai-sale").sellable == 0
    assert sg.check() == []


def run_again_alone(waiting: list[str]) -> bool:
    return len(waiting) == 1 and "stockguard_place(" in waiting[0]  # not stockguard_place_many(


def wait_until(condition: Callable[[], object], timeout: float = 30) -> bool:
    """Whether ``condition`` held within ``timeout`` seconds (asked every 0.1 s)."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def stranger_role() -> Iterator[str]:
    """A role that may use the store's tables but not read the statistics of the login role
    (``postgres``): sessions that switch to it cannot read their own session's start."""
    role = f"sg_doubt_{secrets.token_hex(4)}"
    admin = postgres_admin()
    admin.execute(f"CREATE ROLE {role}")
    try:
        yield role
    finally:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")


def test_a_joint_placement_cut_off_on_a_session_that_cannot_be_told_is_outcome_unknown(
    proxy: CuttingProxy, stranger_role: str
) -> None:
    """Without its session's start the writer cannot tell its cut-off session from another under
    the same pid, so it cannot make sure the session has ended: it does not run the placement
    again beside what may still run, and says it cannot tell."""
    url = empty_postgres_url()
    upgrade_database(url)
    schema = schema_of(url)
    admin = postgres_admin()
    admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {stranger_role}")
    admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {stranger_role}")
    admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {stranger_role}")
    as_stranger = url.replace("options=", f"options=-crole%3D{stranger_role}%20", 1)
    sg = stockguard.connect(proxy.url(as_stranger) + "&in_doubt_seconds=2")
    try:
        sg.put_item("maotai", "Maotai")
        sg.receive("maotai", 5)
        sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve", hold_seconds=600)
        proxy.arm(b"stockguard_place_many", deliver=True)
        with pytest.raises(OutcomeUnknown):
            sg.place_order("o-1", "alice", [("maotai-sale", 1)])
        assert proxy.cuts == 1
        assert status_in_database(url, "o-1") == "reserved"  # it did land: a refusal would have lied
        again = sg.place_order("o-1", "alice", [("maotai-sale", 1)])
        assert (again.order.order_id, again.created) == ("o-1", False)  # sending it again tells
        assert sg.get_listing("maotai-sale").sellable == 4
        assert sg.check() == []
    finally:
        sg.close()
