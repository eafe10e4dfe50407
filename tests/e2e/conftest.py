"""The servers the HTTP tests share: one process with one worker, one with two workers.

Each starts once per test session (per xdist worker) on first use. Every test
makes its own items, listings and orders with fresh ids, so tests sharing a
server never see each other's stock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.register_assert_rewrite("e2e.server")

from e2e.server import Server, running_server  # noqa: E402  (after the rewrite hook)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server-1-worker")) as running:
        yield running


@pytest.fixture(scope="session")
def server_two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server-2-workers"), workers=2) as running:
        yield running


@pytest.fixture(scope="session")
def admin(server: Server) -> httpx.Client:
    return server.client(server.admin)


@pytest.fixture(scope="session")
def storefront(server: Server) -> httpx.Client:
    return server.client(server.storefront)


@pytest.fixture(scope="session")
def anonymous(server: Server) -> httpx.Client:
    return server.client(None)
