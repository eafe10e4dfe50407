"""The Alembic migrations build exactly the schema the code declares, and upgrading is safe to repeat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

import stockguard
from conftest import empty_postgres_url
from stockguard.bootstrap import upgrade_database
from stockguard.domain.errors import SoldOut
from stockguard.stores.sql.migrations import SchemaOutOfDate, alembic_config, pending_revision
from stockguard.stores.sql.store import SqlStore
from stockguard.stores.sql.tables import metadata


def test_migrated_database_matches_the_declared_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stock.db'}"
    SqlStore(url).close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
            assert differences == []
            assert pending_revision(conn) is None
    finally:
        engine.dispose()


def test_opening_a_store_again_applies_nothing_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stock.db'}"
    for _ in range(3):
        SqlStore(url).close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert pending_revision(conn) is None
    finally:
        engine.dispose()


def test_a_postgres_schema_behind_the_code_is_refused_until_db_upgrade() -> None:
    url = empty_postgres_url()
    with pytest.raises(SchemaOutOfDate, match="stockguard db upgrade"):
        SqlStore(url)

    upgraded = subprocess.run(
        [str(Path(sys.executable).parent / "stockguard"), "db", "upgrade", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert upgraded.returncode == 0, upgraded.stderr
    store = SqlStore(url)
    try:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def test_serve_refuses_to_start_on_an_out_of_date_schema(tmp_path: Path) -> None:
    url = empty_postgres_url()
    served = subprocess.run(
        [str(Path(sys.executable).parent / "stockguard"), "serve", "--db", url, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "STOCKGUARD_ADMIN_TOKEN": "a" * 32, "STOCKGUARD_STOREFRONT_TOKEN": "s" * 32},
    )
    assert served.returncode == 2
    assert "stockguard db upgrade" in " ".join(served.stderr.split())


def test_every_postgres_migration_can_be_undone_and_applied_again() -> None:
    """Down to an empty schema (functions, triggers and tables gone), then up again to a store
    that sells: a migration's downgrade is what an operator runs when an upgrade must be rolled back."""
    url = empty_postgres_url()
    upgrade_database(url)
    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with store.engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                    "AND relkind = 'r' AND relname <> 'alembic_version'"
                )
            ).scalar_one()
            functions = conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace")
            ).scalar_one()
    finally:
        store.close()
    assert (left, functions) == (0, 0)

    upgrade_database(url)
    sg = stockguard.connect(url)
    try:
        sg.put_item("bottle", "Bottle")
        sg.receive("bottle", 3)
        sg.put_listing("sale", "Sale", [("bottle", 1)], "reserve", hold_seconds=600)
        placing = [sg.placing(f"o-{n}", f"b-{n}", [("sale", 1)]) for n in range(4)]
        outcomes = []
        for future in placing:
            try:
                outcomes.append(future.result().order.status.value)
            except SoldOut:
                outcomes.append("sold_out")
    finally:
        sg.close()
    assert sorted(outcomes) == ["reserved", "reserved", "reserved", "sold_out"]
