"""The command line, end to end: the real console script in a subprocess, real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import stockguard
from conftest import POSTGRES_SERVER, STORE_KINDS, postgres_admin

STOCKGUARD_ARMS = ("order", "payment", "reserve")
STORE_KINDS_BY_NAME = {kind.name: kind for kind in STORE_KINDS}
FIELDS = {"name", "sold", "oversold", "cancelled", "expired", "unsold", "seconds", "rate"}


def stockguard_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``stockguard`` script (or ``python -m stockguard`` when it is not on disk)."""
    script = shutil.which("stockguard", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "stockguard"]
    # A wide terminal, so Rich never wraps the names the tests look for.
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def demo_json(*args: str) -> list[dict[str, Any]]:
    done = stockguard_cli("demo", "--json", *args)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert set(document) == {"arms"}
    arms: list[dict[str, Any]] = document["arms"]
    return arms


@pytest.mark.slow
def test_stockguard_arms_never_oversell_and_account_for_every_unit(tmp_path: Path) -> None:
    units = 200
    arms = demo_json("--units", str(units), "--buyers", "2000", "--hold-seconds", "1")
    assert [arm["name"] for arm in arms] == ["naive", *STOCKGUARD_ARMS]
    for arm in arms:
        assert set(arm) == FIELDS
        assert arm["sold"] <= units
        assert arm["sold"] + arm["unsold"] == units  # after the naive shop's cancellations, too
        assert arm["seconds"] > 0
        assert arm["rate"] > 0
    for arm in arms[1:]:
        assert arm["oversold"] == 0, arm
    naive = arms[0]
    assert naive["cancelled"] == naive["oversold"]


@pytest.mark.slow
def test_naive_check_then_write_oversells_when_many_pay_for_the_last_bottles() -> None:
    # 5 bottles, 16 buyers paying at the same instant through a 50 ms gateway: all of
    # them read stock > 0 before any of them deducts.
    arms = demo_json(
        "--arm", "naive", "--units", "5", "--buyers", "400", "--pay-share", "1",
        "--workers", "2", "--threads", "8", "--gateway-ms", "50",
    )  # fmt: skip
    (naive,) = arms
    assert naive["oversold"] > 0
    assert naive["cancelled"] == naive["oversold"]
    assert naive["sold"] == 5


@pytest.mark.slow
def test_demo_on_a_kept_store_leaves_no_drift(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sale.db'}"
    arms = demo_json(
        "--arm", "reserve", "--units", "50", "--buyers", "500", "--hold-seconds", "1", "--db", url
    )
    assert arms[0]["oversold"] == 0
    checked = stockguard_cli("check", "--db", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no drift" in checked.stdout


@pytest.mark.slow
def test_demo_shares_a_memory_store_between_threads_without_overselling() -> None:
    arms = demo_json(
        "--db", "memory://", "--arm", "order", "--arm", "reserve", "--units", "50", "--buyers", "500"
    )
    assert [arm["name"] for arm in arms] == ["order", "reserve"]
    for arm in arms:
        assert arm["oversold"] == 0
        assert arm["sold"] + arm["unsold"] == 50


def _small_store(path: Path, url: str | None = None) -> str:
    url = url or f"sqlite:///{path}"
    guard = stockguard.connect(url)
    try:
        guard.put_item("maotai-500ml", "Maotai 500 ml")
        guard.receive("maotai-500ml", 10)
        guard.put_listing("maotai", "Maotai", [("maotai-500ml", 1)], "reserve", hold_seconds=900)
        for n in range(3):
            guard.place_order(f"o-{n}", f"buyer-{n}", [("maotai", 1)])
        guard.pay("o-0")
    finally:
        guard.store.close()
    return url


def test_check_says_no_drift_on_a_clean_store(tmp_path: Path) -> None:
    checked = stockguard_cli("check", "--db", _small_store(tmp_path / "clean.db"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no drift" in checked.stdout


def test_check_says_no_drift_on_a_clean_postgresql_store(tmp_path: Path) -> None:
    url = _small_store(tmp_path, STORE_KINDS_BY_NAME["postgresql"].url(tmp_path))
    checked = stockguard_cli("check", "--db", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no drift" in checked.stdout


def test_check_names_a_level_tampered_behind_the_ledgers_back(tmp_path: Path) -> None:
    path = tmp_path / "tampered.db"
    url = _small_store(path)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE levels SET reserved = reserved + 1 WHERE sku = 'maotai-500ml'")
    finally:
        conn.close()
    checked = stockguard_cli("check", "--db", url)
    assert checked.returncode == 1
    assert "reserved of maotai-500ml in main" in checked.stdout
    assert "no drift" not in checked.stdout


def test_check_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    checked = stockguard_cli("check", "--db", f"sqlite:///{missing}")
    assert checked.returncode == 2
    assert not missing.exists()


@pytest.mark.slow
def test_bench_writes_the_median_of_each_case_as_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = stockguard_cli("bench", "--holds", "100", "--runs", "2", "--json-out", str(out))
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert figures["runs"] == 2
    stores = {case["store"] for case in figures["results"]}
    assert stores == {"memory", "sqlite", "naive-sqlite"}
    for case in figures["results"]:
        assert len(case["runs"]) == 2
        assert case["holds_per_second"] > 0
    assert "holds per second" in done.stdout


PG_ARMS = ("select-for-update", "conditional-update", "stockguard", "stockguard-processes")


def _bench_schemas() -> set[str]:
    rows = postgres_admin().execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sg_bench_%'")
    return {str(name) for (name,) in rows.fetchall()}


@pytest.mark.slow
def test_pg_bench_sells_every_unit_once_in_every_arm_and_drops_its_schema() -> None:
    before = _bench_schemas()
    done = stockguard_cli(
        "bench", "--pg", POSTGRES_SERVER, "--units", "200", "--buyers", "2000", "--clients", "8",
        "--runs", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert set(document) == {"arms"}
    arms = document["arms"]
    assert [arm["name"] for arm in arms] == list(PG_ARMS)
    for arm in arms:
        assert {"name", "holds_per_s", "p50_ms", "p99_ms", "oversold"} <= set(arm)
        # Read back from the database: every unit sold once, never more, and the rest refused.
        assert arm["oversold"] == 0, arm
        assert arm["sold"] == 200, arm
        assert arm["refusals"] == 1800, arm
        assert arm["errors"] == 0, arm
        assert arm["consistent"], arm
        assert arm["holds_per_s"] > 0
        assert 0 < arm["p50_ms"] <= arm["p99_ms"]
        assert arm["clients"] == 8
        assert len(arm["runs"]) == 1
    assert _bench_schemas() <= before  # the run's schema is gone


def test_pg_bench_refuses_commits_that_are_not_durable() -> None:
    before = _bench_schemas()
    url = f"{POSTGRES_SERVER}?options=-csynchronous_commit%3Doff"
    done = stockguard_cli("bench", "--pg", url, "--units", "10", "--buyers", "20", "--clients", "2", "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "synchronous_commit is 'off'" in done.stderr
    assert _bench_schemas() <= before


def test_sweep_releases_holds_that_ran_out_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    guard = stockguard.connect(url)
    try:
        guard.put_item("maotai-500ml", "Maotai 500 ml")
        guard.receive("maotai-500ml", 3)
        guard.put_listing("maotai", "Maotai", [("maotai-500ml", 1)], "reserve", hold_seconds=1)
        for n in range(3):
            guard.place_order(f"o-{n}", f"buyer-{n}", [("maotai", 1)])
    finally:
        guard.store.close()
    time.sleep(1.2)

    first = stockguard_cli("sweep", "--db", url)
    again = stockguard_cli("sweep", "--db", url)

    assert first.returncode == 0, first.stderr
    assert "released 3 expired holds" in first.stdout
    assert "released 0 expired holds" in again.stdout
    guard = stockguard.connect(url)
    try:
        assert guard.get_item("maotai-500ml").total(stockguard.Counter.RESERVED) == 0
        assert (
            len([m for m in guard.movements(sku="maotai-500ml") if m.reason is stockguard.Reason.EXPIRE]) == 3
        )
    finally:
        guard.store.close()
