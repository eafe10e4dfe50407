"""The Alembic migrations build exactly the schema the code declares, and upgrading is safe to repeat."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from stockguard.stores.sql.migrations import pending_revision
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
