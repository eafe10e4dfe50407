"""PostgreSQL drops every connection (a restart, a failover): one request may fail, none is half-done.

The server ends every backend of the store (``pg_terminate_backend``), as a
restart would. Whatever was in flight answers ``Unavailable`` with nothing
applied; the requests after it get new connections and succeed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

import stockguard
from conftest import empty_postgres_url, postgres_admin
from stockguard import Stockguard, Unavailable
from stockguard.bootstrap import upgrade_database


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
