"""Alembic migrations of the SQL schema, run from code (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

SCRIPT_LOCATION = "stockguard.stores.sql:migrations"


def alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def upgrade_to_head(conn: Connection) -> None:
    """Apply every migration not yet applied, inside the caller's transaction."""
    command.upgrade(alembic_config(conn), "head")


class SchemaOutOfDate(RuntimeError):
    """The database's schema is behind this version of stockguard."""


def pending_revision(conn: Connection) -> str | None:
    """The head revision when the database is behind it, else None."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    current = MigrationContext.configure(conn).get_current_revision()
    return None if current == head else head
