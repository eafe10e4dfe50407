"""PostgreSQL: a batch's placement reads by key, whatever the tables held when its plans were made.

PL/pgSQL keeps each statement's plan for the session. A plan made on a new
store, while ``orders`` and ``event_streams`` were nearly empty, may scan them
whole; kept for the rest of a sale, every batch would then read every order
placed before it. The plans actually used are read from the server itself
(``auto_explain``, nested statements included).
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

import stockguard
from conftest import empty_postgres_url
from stockguard.bootstrap import upgrade_database

BATCH = 64
BATCHES_BEFORE = 20  # 1,280 orders placed on the session's cached plans before they are read


def _batch(number: int) -> str:
    """What the writer sends: [order_id, buyer_id, lines, now] per order."""
    now = time.time()
    return json.dumps([[f"o-{number}-{n}", f"b-{number}-{n}", [["sale", 1]], now] for n in range(BATCH)])


def test_a_batch_of_placements_scans_no_growing_table_whole_after_the_store_filled() -> None:
    url = empty_postgres_url()
    upgrade_database(url)
    sg = stockguard.connect(url)
    sg.put_item("bottle", "Bottle")
    sg.receive("bottle", BATCH * (BATCHES_BEFORE + 1))
    sg.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=600)
    sg.close()

    with psycopg.connect(url, autocommit=True) as writer:
        for number in range(BATCHES_BEFORE):  # plans made while the tables were small are kept
            writer.execute("SELECT stockguard_place_many(CAST(%s AS jsonb))", (_batch(number),))
        plans: list[str] = []
        writer.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        try:
            writer.execute("LOAD 'auto_explain'")
        except psycopg.Error as error:
            pytest.fail(f"auto_explain (PostgreSQL's contrib) is needed to read the plans used: {error}")
        for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice"):
            writer.execute(f"SET auto_explain.{setting}")
        row = writer.execute(
            "SELECT stockguard_place_many(CAST(%s AS jsonb))", (_batch(BATCHES_BEFORE),)
        ).fetchone()

    assert row is not None
    assert [outcome["outcome"] for outcome in row[0]] == ["reserved"] * BATCH
    growing = ("orders", "event_streams")
    reading = [plan for plan in plans if any(f" on {table} " in plan for table in growing)]
    assert reading, "no plan of the batch read orders or event_streams: nothing was checked"
    whole = [plan for plan in reading if any(f"Seq Scan on {table} " in plan for table in growing)]
    assert not whole, "a batch scanned a growing table whole:\n" + "\n\n".join(whole)
