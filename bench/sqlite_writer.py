"""Where a hold's time goes in the SQLite writer: holds/s, and the time of each statement per hold.

Places ``--holds`` holds on one ``reserve`` listing of a fresh SQLite store
without waiting between them (``Stockguard.placing``), so the writer thread
runs them in full batches as under load, and times every statement the
writer's transactions run, by its text. Prints a table and writes JSON::

    .venv/bin/python bench/sqlite_writer.py --holds 6000 --runs 3 --json-out bench/results/sqlite-writer.json

The statement timing wraps the writer's cursor, so holds/s here are a little
below an untimed run's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import stockguard
from stockguard.stores.sql import writer

SHOWN_CHARACTERS = 80


def one_run(holds: int) -> tuple[float, dict[str, float], Counter[str]]:
    """(holds/s, seconds per statement text, runs per statement text)"""
    spent: dict[str, float] = {}
    runs: Counter[str] = Counter()
    plain_execute, plain_many = writer._BatchCursor.execute, writer._BatchCursor.executemany

    def timed_execute(cursor: Any, sql: str, params: Any = None, /) -> Any:
        started = time.perf_counter()
        try:
            return plain_execute(cursor, sql, params)
        finally:
            key = sql[:SHOWN_CHARACTERS]
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
            runs[key] += 1

    def timed_many(cursor: Any, sql: str, params: Any, /) -> Any:
        started = time.perf_counter()
        try:
            return plain_many(cursor, sql, params)
        finally:
            key = "(many) " + sql[:SHOWN_CHARACTERS]
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
            runs[key] += 1

    with tempfile.TemporaryDirectory() as folder:
        sg = stockguard.connect(f"sqlite:///{Path(folder) / 'stock.db'}")
        sg.put_item("bottle", "Bottle")
        sg.receive("bottle", holds)
        sg.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=600)
        writer._BatchCursor.execute, writer._BatchCursor.executemany = timed_execute, timed_many  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            placed = [sg.placing(f"o-{n}", f"buyer-{n}", [("sale", 1)]) for n in range(holds)]
            for future in placed:
                future.result()
            rate = holds / (time.perf_counter() - started)
        finally:
            writer._BatchCursor.execute, writer._BatchCursor.executemany = plain_execute, plain_many  # type: ignore[method-assign]
            sg.close()
    return rate, spent, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-out", type=Path, default=Path("sqlite-writer.json"))
    args = parser.parse_args()
    rates: list[float] = []
    per_hold: dict[str, list[float]] = {}
    runs_of: dict[str, int] = {}
    for _ in range(args.runs):
        rate, spent, runs = one_run(args.holds)
        rates.append(rate)
        for sql, seconds in spent.items():
            per_hold.setdefault(sql, []).append(seconds / args.holds * 1e6)
            runs_of[sql] = runs[sql]
    table = Table(title=f"SQLite writer: {statistics.median(rates):,.0f} holds/s (median of {args.runs})")
    table.add_column("µs per hold (median)", justify="right")
    table.add_column("runs per run", justify="right")
    table.add_column("statement")
    medians = {sql: statistics.median(values) for sql, values in per_hold.items()}
    for sql, micros in sorted(medians.items(), key=lambda kv: -kv[1]):
        table.add_row(f"{micros:.1f}", f"{runs_of[sql]:,}", sql)
    table.add_row(f"{sum(medians.values()):.1f}", "", "all statements")
    Console().print(table)
    args.json_out.write_text(
        json.dumps(
            {
                "holds": args.holds,
                "holds_per_second": rates,
                "median_holds_per_second": statistics.median(rates),
                "microseconds_per_hold": medians,
            },
            indent=2,
        )
    )
    print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
