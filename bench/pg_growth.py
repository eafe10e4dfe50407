"""Does a sale slow down as it sells? Holds per second on PostgreSQL, stretch by stretch.

One connection calls ``stockguard_place_many`` through the store's own ``place_many``
(batches of ``--batch`` plain new orders of one ``reserve`` listing) on a
fresh, migrated schema that starts empty, as a new store's first sale does.
The holds per second of each stretch of ``--per-stretch`` batches show
whether a batch's cost grows with the orders placed before it (a plan that
reads a growing table whole). Each run checks that every order was reserved
and that ``stockguard check`` finds nothing. Prints a table, writes JSON::

    .venv/bin/python bench/pg_growth.py [--pg postgresql://postgres@127.0.0.1:5432/test] [--runs 3]
        [--revision head] [--stretches 6] [--per-stretch 50] [--batch 64]
        [--json-out bench/results/pg-growth.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from alembic import command
from rich.console import Console
from rich.table import Table

import stockguard
from stockguard.bootstrap import upgrade_database
from stockguard.domain.model import OrderLine
from stockguard.stores.base import PlaceRequest
from stockguard.stores.sql.migrations import alembic_config
from stockguard.stores.sql.store import SqlStore
from stockguard.stores.sql.transaction import place_many

ROOT = Path(__file__).resolve().parent.parent


def one_run(server: str, revision: str, stretches: int, per_stretch: int, batch: int) -> list[float]:
    """Holds per second of each stretch, on a schema of its own (dropped afterwards) whose
    functions are those of migration ``revision``."""
    schema = f"sg_growth_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            joiner = "&" if "?" in server else "?"
            url = f"{server}{joiner}options=-csearch_path%3D{schema}"
            upgrade_database(url)
            units = stretches * per_stretch * batch
            sg = stockguard.connect(url)
            sg.put_item("bottle", "Bottle")
            sg.receive("bottle", units)
            sg.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=3600)
            sg.close()
            if revision != "head":
                store = SqlStore(url)
                with store.engine.begin() as conn:
                    command.downgrade(alembic_config(conn), revision)
                store.close()
            rates = _place(url, stretches, per_stretch, batch)
            upgrade_database(url)  # the check reads the schema of this version
            checked = subprocess.run(
                [sys.executable, "-m", "stockguard", "check", "--db", url], capture_output=True, text=True
            )
            if checked.returncode != 0:
                raise SystemExit(f"stockguard check failed:\n{checked.stdout}{checked.stderr}")
            return rates
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _place(url: str, stretches: int, per_stretch: int, batch: int) -> list[float]:
    rates: list[float] = []
    with psycopg.connect(url, autocommit=True) as writer:
        number = 0
        for _ in range(stretches):
            started = time.perf_counter()
            for _ in range(per_stretch):
                now = datetime.now(UTC)
                requests = [
                    PlaceRequest(f"o-{number}-{n}", f"b-{number}-{n}", (OrderLine("sale", 1),), now)
                    for n in range(batch)
                ]
                decided = place_many(writer.cursor(), requests)  # as the store's writer decides a batch
                if any(outcome["outcome"] != "reserved" for outcome in decided):
                    raise SystemExit(f"batch {number} was not all reserved: {decided}")
                number += 1
            rates.append(per_stretch * batch / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--revision", default="head", help="measure the functions of this migration")
    parser.add_argument("--stretches", type=int, default=6)
    parser.add_argument("--per-stretch", type=int, default=50, help="batches per stretch")
    parser.add_argument("--batch", type=int, default=64, help="orders per batch")
    parser.add_argument("--json-out", type=Path, default=Path("pg-growth.json"))
    args = parser.parse_args()

    shape = (args.stretches, args.per_stretch, args.batch)
    runs = [one_run(args.pg, args.revision, *shape) for _ in range(args.runs)]
    medians = [statistics.median(run[k] for run in runs) for k in range(args.stretches)]
    orders = args.per_stretch * args.batch
    table = Table(title=f"stockguard_place_many at {args.revision}: holds/s (median of {args.runs})")
    table.add_column("orders placed before")
    table.add_column("holds/s", justify="right")
    table.add_column("runs", justify="right")
    for k, median in enumerate(medians):
        each = " ".join(f"{run[k]:,.0f}" for run in runs)
        table.add_row(f"{k * orders:,} to {(k + 1) * orders:,}", f"{median:,.0f}", each)
    Console().print(table)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    args.json_out.write_text(
        json.dumps(
            {
                "benchmark": "pg_growth",
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "commit": commit.stdout.strip(),
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "settings": {k: v for k, v in vars(args).items() if k not in ("json_out", "pg")},
                "orders_per_stretch": orders,
                "runs": runs,
                "medians": medians,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
