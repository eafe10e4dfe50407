"""Redis for the test suites: the local server, a cluster of the suite's own, a server to kill.

Without Redis at ``STOCKGUARD_TEST_REDIS`` (default 127.0.0.1:6379) the tests
that need it are skipped, except under CI (``CI=true``), where that is a
failure. The cluster and the killable server need ``redis-server`` and
``redis-cli`` on the PATH, with the same rule.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_cluster import LocalCluster, LocalRedis

# Racing tests ask from hundreds of threads at once (redis-py 8 caps a pool at 100 by default).
MAX_CONNECTIONS = 10_000
REDIS_URL = os.environ.get("STOCKGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def single_redis() -> Any:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, max_connections=MAX_CONNECTIONS)
    try:
        client.ping()
    except redis.ConnectionError as error:
        missing(f"no Redis at {REDIS_URL}: {error}")
    return client


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        started = LocalCluster.start(Path(tmp_path_factory.mktemp("redis-cluster")))
    except RuntimeError as error:
        missing(f"a local Redis Cluster: {error}")
        raise
    yield started
    started.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A redis-server of this test's own, to kill and start again."""
    try:
        server = LocalRedis.start(tmp_path / "redis")
    except RuntimeError as error:
        missing(f"a redis-server to kill: {error}")
        raise
    yield server
    server.stop()
