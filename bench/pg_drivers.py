"""psycopg 3 against asyncpg on the statements stockguard's PostgreSQL store sends.

The store talks to PostgreSQL from threads of its own (the writer, the
order-id lookups, readers), each on one connection, one statement at a time.
So this measures, per driver, one connection sending the same statement again
and again, as those threads do: a bare round trip (``SELECT 1``), the
order-id lookup (``= ANY`` of 64 ids) and a batch decision's payload (64
orders as one jsonb parameter, echoed back). psycopg runs synchronously, as
the store uses it; asyncpg runs in an event loop of its own, its best case
(the store would add a hop from its threads into that loop on every call).

Usage::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python bench/pg_drivers.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--calls 5000] [--runs 5] [--json-out bench/results/pg-drivers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from rich.console import Console
from rich.table import Table

IDS = [f"order-{n}" for n in range(64)]
BATCH = json.dumps([[f"order-{n}", f"buyer-{n}", [["hot", 1]], 1.0e9 + n] for n in range(64)])
SETUP = "CREATE TEMP TABLE orders (order_id text PRIMARY KEY)"
FILL = "INSERT INTO orders SELECT 'order-' || n FROM generate_series(0, 10000, 2) n"

# name -> (psycopg statement and params, asyncpg statement and params)
CASES: dict[str, tuple[tuple[str, tuple[Any, ...]], tuple[str, tuple[Any, ...]]]] = {
    "round trip (SELECT 1)": (("SELECT 1", ()), ("SELECT 1", ())),
    "order-id lookup, 64 ids": (
        ("SELECT order_id FROM orders WHERE order_id = ANY(%s)", (IDS,)),
        ("SELECT order_id FROM orders WHERE order_id = ANY($1)", (IDS,)),
    ),
    "64 orders as one jsonb": (
        ("SELECT jsonb_array_length(CAST(%s AS jsonb))", (BATCH,)),
        ("SELECT jsonb_array_length(CAST($1 AS jsonb))", (BATCH,)),
    ),
}


def psycopg_rate(url: str, statement: str, params: tuple[Any, ...], calls: int) -> float:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SETUP)
        connection.execute(FILL)
        cursor = connection.cursor()
        started = time.perf_counter()
        for _ in range(calls):
            cursor.execute(statement, params)
            cursor.fetchall()
        return calls / (time.perf_counter() - started)


async def _asyncpg_rate(url: str, statement: str, params: tuple[Any, ...], calls: int) -> float:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SETUP)
        await connection.execute(FILL)
        prepared = await connection.prepare(statement)
        fetch: Callable[..., Awaitable[Any]] = prepared.fetch
        started = time.perf_counter()
        for _ in range(calls):
            await fetch(*params)
        return calls / (time.perf_counter() - started)
    finally:
        await connection.close()


def asyncpg_rate(url: str, statement: str, params: tuple[Any, ...], calls: int) -> float:
    return asyncio.run(_asyncpg_rate(url, statement, params, calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json-out", type=Path, default=Path("pg-drivers.json"))
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for name, (with_psycopg, with_asyncpg) in CASES.items():
        results[name] = {"psycopg": [], "asyncpg": []}
        for _ in range(args.runs):  # interleaved, so both meet the same machine
            results[name]["psycopg"].append(psycopg_rate(args.url, *with_psycopg, args.calls))
            results[name]["asyncpg"].append(asyncpg_rate(args.url, *with_asyncpg, args.calls))
    table = Table(title=f"calls per second, one connection, median of {args.runs} runs of {args.calls:,}")
    for column in ("statement", "psycopg 3 (sync)", "asyncpg (own loop)", "asyncpg / psycopg"):
        table.add_column(column, justify="left" if column == "statement" else "right")
    summary = {}
    for name, rates in results.items():
        ours, theirs = statistics.median(rates["psycopg"]), statistics.median(rates["asyncpg"])
        summary[name] = {"psycopg": ours, "asyncpg": theirs, "runs": rates}
        table.add_row(name, f"{ours:,.0f}", f"{theirs:,.0f}", f"{theirs / ours:.2f}")
    Console().print(table)
    versions = {"psycopg": psycopg.__version__, "asyncpg": asyncpg.__version__}
    report = {"versions": versions, "calls": args.calls, "cases": summary}
    args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
