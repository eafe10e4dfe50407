"""Opening the gate: one Redis or a Redis Cluster, told apart by asking the server."""

from __future__ import annotations

import logging
from typing import Any

import redis

from stockguard.gate.client import GateClient
from stockguard.gate.redis_gate import DEFAULT_PREFIX, RedisGate

log = logging.getLogger("stockguard.gate")
MAX_CONNECTIONS = 10_000


def redis_client(url: str) -> Any:
    """A client for ``url``: a ``RedisCluster`` when the server there is a cluster node (any
    one node is enough; the client finds the others), else a plain ``Redis``."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        # redis-py 8 caps a pool at 100 connections and then raises instead of waiting; every
        # thread that asks the gate at once needs one (the pool keeps them for reuse).
        "max_connections": MAX_CONNECTIONS,
    }
    single = redis.Redis.from_url(url, **options)
    try:
        clustered = single.info("cluster").get("cluster_enabled") == 1
    except redis.RedisError:
        single.close()
        raise
    if not clustered:
        return single
    single.close()
    return redis.RedisCluster.from_url(url, **options)


def persistence(client: Any) -> str:
    """Redis's persistence settings, as reported at start-up (the gate relies on none of them:
    an order is acknowledged only once the SQL store committed it)."""
    try:
        settings = client.config_get("appendonly") | client.config_get("save")
    except redis.RedisError as error:  # managed Redis may forbid CONFIG
        return f"unknown ({error})"
    return f"appendonly={settings.get('appendonly')!r} save={settings.get('save')!r}"


def open_gate(url: str, prefix: str = DEFAULT_PREFIX) -> GateClient:
    client = redis_client(url)
    kind = "cluster" if isinstance(client, redis.RedisCluster) else "server"
    log.info(
        "gate on a Redis %s; its persistence: %s. Acknowledgements wait for the SQL commit and "
        "rely on no Redis persistence: a Redis that comes back empty or old is reloaded from the store.",
        kind,
        persistence(client),
    )
    return GateClient(RedisGate(client, prefix))
