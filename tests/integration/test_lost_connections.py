"""PostgreSQL drops every connection (a restart, a failover): one request may fail, none is half-done.

The server ends every backend of the store (``pg_terminate_backend``), as a
restart would. Whatever was in flight answers ``Unavailable`` with nothing
applied; the requests after it get new connections and succeed.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import pytest

import stockguard
from conftest import empty_postgres_url, postgres_admin
from stockguard import Stockguard, Unavailable
from stockguard.bootstrap import upgrade_database
from stockguard.stores.sql.store import SqlStore
from stockguard.stores.sql.watch import _own_connection


@pytest.fixture
def named_store() -> tuple[Stockguard, str]:
    """A migrated PostgreSQL store whose connections carry a name of their own."""
    name = f"sg-lost-{secrets.token_hex(4)}"
    url = f"{empty_postgres_url()}&application_name={name}"
    upgrade_database(url)
    return stockguard.connect(url), name


def drop_every_connection(name: str) -> int:
    rows = postgres_admin().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
    )
    return len(rows.fetchall())


def first_success(call: Callable[[], Any]) -> Any:
    """The call's result: once it failed as Unavailable at most (its connection was dead)."""
    try:
        return call()
    except Unavailable:
        return call()


@pytest.mark.parametrize("writes_first", [False, True], ids=["read-first", "write-first"])
def test_reads_and_writes_recover_after_the_server_drops_every_connection(
    named_store: tuple[Stockguard, str], writes_first: bool
) -> None:
    sg, name = named_store
    try:
        sg.put_item("maotai", "Maotai")
        sg.receive("maotai", 5)
        sg.put_listing("maotai-sale", "Maotai", [("maotai", 1)], "reserve")
        sg.place_order("o-1", "alice", [("maotai-sale", 1)])
        assert sg.get_listing("maotai-sale").sellable == 4  # the pool holds connections now
        assert drop_every_connection(name) >= 2  # the writer's and the pool's

        if writes_first:
            placed = first_success(lambda: sg.place_order("o-2", "bob", [("maotai-sale", 1)]))
            assert first_success(lambda: sg.get_listing("maotai-sale")).sellable == 3
        else:
            assert first_success(lambda: sg.get_listing("maotai-sale")).sellable == 4
            placed = first_success(lambda: sg.place_order("o-2", "bob", [("maotai-sale", 1)]))
        assert placed.created
        assert sg.get_listing("maotai-sale").sellable == 3
        assert sg.check() == []
    finally:
        sg.store.close()


def liveness(connection: Any) -> dict[str, int]:
    """The TCP liveness settings of a driver connection's socket."""
    sock = socket.socket(fileno=os.dup(connection.fileno()))
    try:
        return {
            "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        }
    finally:
        sock.close()  # the duplicate only


@pytest.mark.parametrize(
    ("query", "idle"), [("", 5), ("&keepalives_idle=30", 30)], ids=["defaults", "operator-set"]
)
def test_every_connection_of_the_store_notices_a_silent_server_within_seconds(query: str, idle: int) -> None:
    """Pooled connections (the writer's, the readers') and the stock listener's own carry TCP
    keepalives and a user timeout: a server gone without a word is found in about 11 s, not after
    the kernel's two hours. A setting in the operator's URL wins."""
    url = empty_postgres_url() + query
    upgrade_database(url)
    store = stockguard.open_store(url)
    assert isinstance(store, SqlStore)
    pooled, listener = store.engine.raw_connection(), _own_connection(store.engine)
    try:
        expected = {"keepalive": 1, "idle": idle, "interval": 2, "count": 3, "user_timeout_ms": 10_000}
        assert liveness(pooled.driver_connection) == expected
        assert liveness(listener) == expected
    finally:
        pooled.close()
        listener.close()
        store.close()
