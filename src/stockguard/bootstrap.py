"""The composition root: from a store URL to a ready Stockguard."""

from __future__ import annotations

import redis

from stockguard.gate.connect import open_gate, redis_client
from stockguard.gate.redis_gate import DEFAULT_PREFIX
from stockguard.service import Clock, Stockguard, utc_now
from stockguard.service.rate_limits import RateLimits
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
    address_key: bytes | None = None,
    rate_per_buyer: str | None = None,
    rate_per_ip: str | None = None,
) -> Stockguard:
    """Open the store at ``url`` (see ``open_store``) and wrap it in the Stockguard facade.

    ``redis_url`` (one Redis, or any node of a Redis Cluster): the flash-sale gate, whose
    keys start with ``redis_prefix`` (one per store sharing a Redis); the rate limits then
    count there too, shared by every process. ``address_key``: the secret delivery addresses
    are hashed with (the same in every process of one store). ``rate_per_buyer`` and
    ``rate_per_ip``: order placements allowed, such as ``"5/second"`` (None: no limit).
    """
    guard = Stockguard(open_store(url), clock, address_key=address_key)
    try:
        if redis_url is not None:
            guard.use_gate(open_gate(redis_url, redis_prefix))
        if rate_per_buyer is not None or rate_per_ip is not None:
            guard.use_rate_limits(_rate_limits(rate_per_buyer, rate_per_ip, redis_url, redis_prefix))
    except Exception:
        guard.close()
        raise
    return guard


def _rate_limits(per_buyer: str | None, per_ip: str | None, redis_url: str | None, prefix: str) -> RateLimits:
    if redis_url is None:
        return RateLimits(per_buyer, per_ip)
    client = redis_client(redis_url)
    clustered = isinstance(client, redis.RedisCluster)
    client.close()
    return RateLimits(per_buyer, per_ip, redis_url, f"{prefix}:rate", cluster=clustered)
