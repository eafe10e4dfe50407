"""PostgreSQL: placements and order-id lookups read by key, whatever the tables held when their
plans were made.

PL/pgSQL keeps each statement's plan for the session, and a prepared
statement keeps its plan for the connection. A plan made on a new
store, while ``orders`` and ``event_streams`` were nearly empty, may read them
whole (a sequential scan, or a whole index feeding a hash join); kept for the
rest of a sale, every batch would then read every order placed before it. The
plans actually run, and the rows each of their nodes read, come from the
server itself (``auto_explain`` with ``ANALYZE``, nested statements included).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
import pytest

import stockguard
from conftest import empty_postgres_url
from stockguard.bootstrap import upgrade_database
from stockguard.domain.model import OrderLine
from stockguard.stores.base import PlaceRequest
from stockguard.stores.sql.lookups import OrderLookups
from stockguard.stores.sql.transaction import place_many

BATCH = 64
BATCHES_BEFORE = 20  # 1,280 orders placed on the session's cached plans before they are read
GROWING = ("orders", "order_lines", "movements", "events", "event_streams")  # rows per order
_ACTUAL = re.compile(r"actual time=[\d.]+\.\.[\d.]+ rows=([\d.]+) loops=(\d+)")
_REMOVED = re.compile(r"Rows Removed by (?:Filter|Index Recheck|Join Filter): (\d+)")


def _batch(number: int) -> list[PlaceRequest]:
    """A batch of plain new orders, one bottle each."""
    now, bottle = datetime.now(UTC), (OrderLine("sale", 1),)
    return [PlaceRequest(f"o-{number}-{n}", f"b-{number}-{n}", bottle, now) for n in range(BATCH)]


def _no_autovacuum(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """Autovacuum's analysis of a table makes sessions plan again: during the test it would
    hide a plan that reads whole tables."""
    for table in GROWING:
        connection.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")


def _explained(connection: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """From now on, the plan of every statement ``connection`` runs, with the rows each node read."""
    plans: list[str] = []
    connection.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    try:
        connection.execute("LOAD 'auto_explain'")
    except psycopg.Error as error:
        pytest.fail(f"reading the plans run needs auto_explain (contrib) and a superuser: {error}")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_analyze = on"):
        connection.execute(f"SET auto_explain.{setting}")
    connection.execute("SET auto_explain.log_level = notice")
    return plans


def _rows_read(plan: str) -> list[tuple[str, int]]:
    """(node, rows it read) for every node of ``plan`` that reads one of the growing tables:
    the rows it returned and those it read and dropped, over all its loops."""
    lines = plan.splitlines()
    found: list[tuple[str, int]] = []
    for at, line in enumerate(lines):
        actual = _ACTUAL.search(line)
        if actual is None or not any(f" on {table} " in line for table in GROWING):
            continue
        rows, loops = float(actual[1]), int(actual[2])
        removed = 0
        for detail in lines[at + 1 :]:
            if detail.lstrip().startswith("->") or _ACTUAL.search(detail):
                break  # the next node (a condition's JSON operators are not one)
            if (dropped := _REMOVED.search(detail)) is not None:
                removed += int(dropped[1])
        found.append((line.strip(), round((rows + removed) * loops)))
    return found


def test_a_batch_of_placements_reads_growing_tables_by_key_after_the_store_filled() -> None:
    url = empty_postgres_url()
    upgrade_database(url)
    sg = stockguard.connect(url)
    sg.put_item("bottle", "Bottle")
    sg.receive("bottle", BATCH * (BATCHES_BEFORE + 1))
    sg.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=600, per_buyer_limit=2)
    sg.close()

    with psycopg.connect(url, autocommit=True) as writer:
        _no_autovacuum(writer)
        for number in range(BATCHES_BEFORE):  # plans made while the tables were small are kept
            place_many(writer.cursor(), _batch(number))  # as the store's writer decides a batch
        plans = _explained(writer)
        decided = place_many(writer.cursor(), _batch(BATCHES_BEFORE))

    assert [outcome["outcome"] for outcome in decided] == ["reserved"] * BATCH
    reads = [read for plan in plans for read in _rows_read(plan)]
    tables_read = {node.split(" on ")[1].split()[0] for node, _ in reads}
    assert tables_read >= {"orders", "order_lines", "event_streams"}, "the check saw too little"
    # By key, a batch reads its own orders and streams (and the item's and listing's): about
    # BATCH rows a node. The tables hold more than 20 times that by now.
    whole = [f"{rows} rows: {node}" for node, rows in reads if rows > 2 * BATCH + 8]
    assert not whole, "a batch read a growing table whole:\n" + "\n".join(whole)


def test_order_id_lookups_read_orders_by_key_after_the_store_filled() -> None:
    """A sold-out sale's refusals each look their order id up (``stores/sql/lookups.py``)."""
    url = empty_postgres_url()
    upgrade_database(url)
    with psycopg.connect(url, autocommit=True) as lookups:
        _no_autovacuum(lookups)
        # More runs than psycopg waits for before preparing a statement (5), and than the
        # server plans a prepared statement afresh before it may keep a generic plan (5).
        for n in range(20):
            assert OrderLookups.look_up(lookups, [f"early-{n}"]) == set()
        lookups.execute(
            "INSERT INTO orders (order_id, buyer_id, deduction, status, created_at, updated_at, lines, "
            "allocations) SELECT 'o-' || n, 'b-' || n, 'reserve', 'cancelled', 0, 0, '[]', '[]' "
            "FROM generate_series(1, 5000) AS n"
        )
        plans = _explained(lookups)
        found = OrderLookups.look_up(lookups, ["o-7", "o-4999", "nobody"])

    assert found == {"o-7", "o-4999"}
    reads = [read for plan in plans for read in _rows_read(plan)]
    assert reads, "the lookup's plan read no orders: nothing was checked"
    whole = [f"{rows} rows: {node}" for node, rows in reads if rows > 10]
    assert not whole, "a lookup of 3 order ids read the orders whole:\n" + "\n".join(whole)


# What PostgreSQL 15 printed for the lookup before it was planned on each run (abridged).
_WHOLE_SCAN = """Query Text: SELECT order_id FROM orders WHERE order_id = ANY($1)
Seq Scan on orders  (cost=0.00..11.80 rows=9 width=146) (actual time=0.023..0.808 rows=2 loops=1)
  Filter: ((order_id)::text = ANY ($1))
  Rows Removed by Filter: 4998"""
_BY_KEY = """Query Text: SELECT o.lines FROM orders o WHERE o.order_id = ANY($1) AND o.lines->>0 IS NOT NULL
Index Scan using orders_pkey on orders o  (cost=0.29..8.31 rows=1) (actual time=0.01..0.02 rows=3 loops=2)
  Index Cond: ((order_id)::text = ANY ($1))
  Filter: ((lines ->> 0) IS NOT NULL)
  Rows Removed by Filter: 1
->  Seq Scan on events  (cost=0.00..1.00 rows=1 width=8) (actual time=0.01..0.01 rows=1.50 loops=2)"""


def test_the_rows_a_plan_read_count_what_its_filters_dropped() -> None:
    assert _rows_read(_WHOLE_SCAN) == [(_WHOLE_SCAN.splitlines()[1], 5000)]
    # A condition's JSON operators (->, ->>) do not end a node; fractional rows (PostgreSQL 18).
    assert [rows for _, rows in _rows_read(_BY_KEY)] == [8, 3]
