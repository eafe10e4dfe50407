"""The composition root: from a store URL to a ready Stockguard."""

from __future__ import annotations

from stockguard.gate.connect import open_gate
from stockguard.gate.redis_gate import DEFAULT_PREFIX
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


def connect(
    url: str = MEMORY_URL,
    clock: Clock = utc_now,
    *,
    redis_url: str | None = None,
    redis_prefix: str = DEFAULT_PREFIX,
) -> Stockguard:
    """Open the store at ``url`` (see ``open_store``) and wrap it in the Stockguard facade;
    with ``redis_url`` (one Redis, or any node of a Redis Cluster), behind the flash-sale gate,
    whose keys start with ``redis_prefix`` (one per store sharing a Redis)."""
    guard = Stockguard(open_store(url), clock)
    if redis_url is not None:
        try:
            guard.use_gate(open_gate(redis_url, redis_prefix))
        except Exception:
            guard.close()
            raise
    return guard
