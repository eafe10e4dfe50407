"""Payments per second on PostgreSQL: the write transactions' path, commit against commit.

Placements of plain new orders are decided together in one statement; payments,
cancellations and expiries run in the writer's transactions (a savepoint per
work, one COMMIT per batch). This measures that path: ``--threads`` callers pay
``--orders`` held orders through ``Stockguard.pay`` on a fresh schema, and the
same again with the code of ``--ref`` (its ``src/``, from git), the two arms
interleaved run by run on the same server. Every run checks that every order is
paid and ``stockguard check`` finds nothing.

Usage::

    .venv/bin/python bench/payments.py --ref <commit> [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--orders 5000] [--threads 32] [--runs 5] [--json-out bench/results/payments-pg.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import code_at  # bench/ is a folder of scripts, not a package

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def child(url: str, orders: int, threads: int) -> dict[str, Any]:
    """One run with whatever ``stockguard`` this process imports; its figures."""
    import stockguard  # the arm's code: PYTHONPATH decides which
    from stockguard.bootstrap import upgrade_database

    schema = f"sg_bench_pay_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
            upgrade_database(scoped)
            guard = stockguard.connect(scoped)
            try:
                guard.put_item("maotai", "Maotai")
                guard.receive("maotai", orders)
                guard.put_listing("sale", "Maotai", [("maotai", 1)], "reserve", hold_seconds=3600)
                ids = [f"o-{n}" for n in range(orders)]
                with ThreadPoolExecutor(threads) as pool:
                    list(
                        pool.map(
                            lambda order_id: guard.place_order(order_id, f"b-{order_id}", [("sale", 1)]), ids
                        )
                    )
                    began = time.perf_counter()
                    paid = list(pool.map(guard.pay, ids))
                    seconds = time.perf_counter() - began
                problems = [str(p) for p in guard.check()]
                all_paid = all(order.status.value == "paid" for order in paid)
            finally:
                guard.store.close()
        finally:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return {
        "payments_per_s": orders / seconds,
        "seconds": seconds,
        "all_paid": all_paid,
        "check": problems,
        "code": str(Path(stockguard.__file__).parent),
    }


def run_arm(code: Path | None, config: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    finished = subprocess.run(
        [sys.executable, __file__, "--child", config.pg, str(config.orders), str(config.threads)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise SystemExit(f"a run failed:\n{finished.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    if not figures["all_paid"] or figures["check"]:
        raise SystemExit(f"a run left the store wrong: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("URL", "ORDERS", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--ref", required="--child" not in sys.argv, help="the commit to compare with")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    config = parser.parse_args()
    if config.child:
        url, orders, threads = config.child
        print(json.dumps(child(url, int(orders), int(threads))))
        return

    arms: dict[str, list[dict[str, Any]]] = {"working tree": [], config.ref: []}
    with code_at(config.ref) as reference:
        for run in range(1, config.runs + 1):
            for name, code in (("working tree", None), (config.ref, reference)):
                figures = run_arm(code, config)
                arms[name].append(figures)
                print(f"run {run} {name}: {figures['payments_per_s']:,.0f} payments/s", file=sys.stderr)

    table = Table(
        title=f"{config.orders:,} payments from {config.threads} threads, medians of {config.runs} runs"
    )
    for column in ("code", "payments/s", "runs"):
        table.add_column(column, justify="left" if column == "code" else "right")
    medians = {name: statistics.median(r["payments_per_s"] for r in runs) for name, runs in arms.items()}
    for name, runs in arms.items():
        table.add_row(name, f"{medians[name]:,.0f}", " ".join(f"{r['payments_per_s']:,.0f}" for r in runs))
    Console().print(table)
    if config.json_out is not None:
        config.json_out.write_text(
            json.dumps(
                {
                    "orders": config.orders,
                    "threads": config.threads,
                    "runs": arms,
                    "medians": medians,
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
