"""What every suite shares: a clock the test moves by hand, and every store.

``STORE_KINDS`` is the one list of backends. Each kind knows how to make a
fresh, empty store URL in a directory and how to break its stored counters
behind stockguard's back (so the tests can prove that ``check`` notices). The
contract suite, the stateful suite and the concurrency suite run once per
kind; a new backend is added by appending a kind. PostgreSQL runs each test in
a schema of its own on the local server (``STOCKGUARD_TEST_POSTGRES``).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

# Redis fixtures (the suite's own cluster, a server to kill), for every suite.
from redis_servers import cluster, own_redis  # noqa: F401
from stockguard import (
    Counter,
    Item,
    Level,
    Listing,
    Movement,
    Order,
    Shipment,
    Stockguard,
    Warehouse,
    open_store,
)
from stockguard.bootstrap import upgrade_database
from stockguard.stores.base import MovementFilter, Store
from stockguard.stores.memory import MemoryStore
from stockguard.stores.sql.store import SqlStore

# A start time with microseconds, so every store has to keep them.
START = datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when a test says so; always timezone-aware UTC."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


TamperLevel = Callable[[Store, str, str, Counter, int], None]
TamperSold = Callable[[Store, str, int], None]


@dataclass(frozen=True, slots=True)
class StoreKind:
    """One backend the suites run against."""

    name: str
    url: Callable[[Path], str]  # the URL of a fresh, empty store kept in this directory
    tamper_level: TamperLevel  # add a delta to one stored counter, bypassing the ledger
    tamper_sold: TamperSold  # add a delta to a listing's stored sold units
    persistent: bool  # whether a store opened again from the URL sees the same data

    def __str__(self) -> str:
        return self.name


def _tamper_memory_level(store: Store, sku: str, warehouse: str, counter: Counter, delta: int) -> None:
    assert isinstance(store, MemoryStore)
    level = store._data.levels[sku][warehouse]
    setattr(level, counter.value, level.get(counter) + delta)


def _tamper_memory_sold(store: Store, listing_id: str, delta: int) -> None:
    assert isinstance(store, MemoryStore)
    store._data.sold[listing_id] += delta


def _tamper_sql_level(store: Store, sku: str, warehouse: str, counter: Counter, delta: int) -> None:
    assert isinstance(store, SqlStore)
    column = counter.value  # an enum value, never user input
    with store.engine.begin() as conn:
        done = conn.execute(
            text(f"UPDATE levels SET {column} = {column} + :delta WHERE sku = :sku AND warehouse = :wh"),
            {"delta": delta, "sku": sku, "wh": warehouse},
        )
        assert done.rowcount == 1


def _tamper_sql_sold(store: Store, listing_id: str, delta: int) -> None:
    assert isinstance(store, SqlStore)
    with store.engine.begin() as conn:
        done = conn.execute(
            text("UPDATE listings SET sold = sold + :delta WHERE listing_id = :id"),
            {"delta": delta, "id": listing_id},
        )
        assert done.rowcount == 1


_SQLITE_TEMPLATE: list[Path] = []


def _fresh_sqlite_url(directory: Path) -> str:
    """A copy of an empty, migrated database: migrating once per process keeps each test fast.

    The first store of each process still runs every migration on an empty file.
    """
    if not _SQLITE_TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="stockguard-template-")) / "template.db"
        SqlStore(f"sqlite:///{template}").close()
        atexit.register(shutil.rmtree, template.parent, True)
        _SQLITE_TEMPLATE.append(template)
    target = directory / "stock.db"
    shutil.copyfile(_SQLITE_TEMPLATE[0], target)
    return f"sqlite:///{target}"


POSTGRES_SERVER = os.environ.get("STOCKGUARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_SCHEMA_PREFIX = f"sg_test_{os.getpid()}_{secrets.token_hex(3)}"
_schemas: list[str] = []


def _fresh_postgres_url(_directory: Path) -> str:
    """A fresh, migrated schema in the local PostgreSQL per test, dropped when the test process ends.

    Without a server the PostgreSQL runs are skipped, except under CI (``CI=true``),
    where a missing service is a failure.
    """
    url = empty_postgres_url()
    upgrade_database(url)
    return url


def empty_postgres_url() -> str:
    """A new schema with no tables, as an operator's database before ``stockguard db upgrade``."""
    admin = _postgres_admin()
    schema = f"{_SCHEMA_PREFIX}_{len(_schemas)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    _schemas.append(schema)
    return f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"


_ADMIN: list[psycopg.Connection[tuple[object, ...]]] = []


def postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the test server (skipped without one, except under CI)."""
    return _postgres_admin()


def _postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    if not _ADMIN:
        try:
            conninfo = make_url(POSTGRES_SERVER).set(drivername="postgresql")
            admin = psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True)
        except psycopg.OperationalError as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required under CI and unreachable: {error}")
            pytest.skip(f"no PostgreSQL server at {POSTGRES_SERVER}")
        _ADMIN.append(admin)
        atexit.register(_drop_schemas)
    return _ADMIN[0]


def _drop_schemas() -> None:
    for schema in _schemas:
        _ADMIN[0].execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    _ADMIN[0].close()


STORE_KINDS: list[StoreKind] = [
    StoreKind(
        "memory",
        url=lambda _directory: "memory://",
        tamper_level=_tamper_memory_level,
        tamper_sold=_tamper_memory_sold,
        persistent=False,
    ),
    StoreKind(
        "sqlite",
        url=_fresh_sqlite_url,
        tamper_level=_tamper_sql_level,
        tamper_sold=_tamper_sql_sold,
        persistent=True,
    ),
    StoreKind(
        "postgresql",
        url=_fresh_postgres_url,
        tamper_level=_tamper_sql_level,
        tamper_sold=_tamper_sql_sold,
        persistent=True,
    ),
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a store keeps, read without side effects (no sweep): for before/after comparisons."""

    ledger: tuple[Movement, ...]
    levels: tuple[Level, ...]
    orders: tuple[Order, ...]
    listings: tuple[tuple[Listing, int], ...]
    items: tuple[Item | None, ...]
    warehouses: tuple[Warehouse, ...]
    shipments: tuple[Shipment, ...]


def snapshot(store: Store, skus: tuple[str, ...] = (), shipment_ids: tuple[str, ...] = ()) -> Snapshot:
    with store.read() as tx:
        return Snapshot(
            ledger=tuple(tx.movements(MovementFilter(limit=1_000_000))),
            levels=tuple(sorted(tx.all_levels(), key=lambda lv: (lv.sku, lv.warehouse))),
            orders=tuple(sorted(tx.all_orders(), key=lambda o: o.order_id)),
            listings=tuple(
                (listing, tx.sold(listing.listing_id))
                for listing in sorted(tx.all_listings(), key=lambda ls: ls.listing_id)
            ),
            items=tuple(tx.item(sku) for sku in skus),
            warehouses=tuple(sorted(tx.warehouses().values(), key=lambda w: w.name)),
            shipments=tuple(
                shipment for shipment_id in shipment_ids if (shipment := tx.shipment(shipment_id)) is not None
            ),
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORE_KINDS, ids=str)
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    kind: StoreKind = request.param
    return kind


@pytest.fixture
def store_url(store_kind: StoreKind, tmp_path: Path) -> str:
    """A fresh store per test; every SQLite test gets its own file in its tmp_path."""
    return store_kind.url(tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sg(store: Store, clock: FakeClock) -> Stockguard:
    return Stockguard(store, clock=clock.now)


@pytest.fixture(params=[kind for kind in STORE_KINDS if kind.persistent], ids=str)
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store that several processes can open: the backends concurrency tests race on."""
    kind: StoreKind = request.param
    return kind.url(tmp_path)
