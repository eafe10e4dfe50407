"""The composition root: from a store URL to a ready Stockguard."""

from __future__ import annotations

from stockguard.service import Clock, Stockguard, utc_now
from stockguard.stores.base import Store
from stockguard.stores.memory import MemoryStore
from stockguard.stores.sql.store import SqlStore

MEMORY_URL = "memory://"


def open_store(url: str) -> Store:
    """``memory://`` for a store in this process, or a SQLAlchemy URL such as ``sqlite:///stock.db``
    or ``postgresql://user@host/db`` (whose schema ``stockguard db upgrade`` keeps current)."""
    if url == MEMORY_URL:
        return MemoryStore()
    return SqlStore(url)


def upgrade_database(url: str) -> None:
    """Apply every pending schema migration to the SQL database at ``url``."""
    SqlStore(url, upgrade=True).close()


def connect(url: str = MEMORY_URL, clock: Clock = utc_now) -> Stockguard:
    """Open the store at ``url`` (see ``open_store``) and wrap it in the Stockguard facade."""
    return Stockguard(open_store(url), clock)
