"""The HTTP app: FastAPI over the Stockguard service. Thin: routes translate and call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles

from stockguard.api import problems, runtime
from stockguard.api.auth import Tokens, address_key, load_or_create
from stockguard.api.bridge import LoopBridge
from stockguard.api.dashboard import routes as dashboard
from stockguard.api.event_hub import EventHub
from stockguard.api.fast_orders import PATH, FastPlacement
from stockguard.api.middleware import AccessLog, BodyLimit
from stockguard.api.routes import (
    buyers,
    draws,
    events,
    items,
    listings,
    movements,
    ops,
    orders,
    shipments,
    warehouse_sync,
)
from stockguard.api.settings import Settings
from stockguard.api.sweeper import Sweeper
from stockguard.bootstrap import connect
from stockguard.service import Stockguard
from stockguard.stores.sql.store import SqlStore


def tokens_for(settings: Settings) -> Tokens:
    """Tokens from the settings, else the ones kept in the data folder (created on first start)."""
    if settings.admin_token is not None and settings.storefront_token is not None:
        return Tokens(settings.admin_token.get_secret_value(), settings.storefront_token.get_secret_value())
    if settings.admin_token is not None or settings.storefront_token is not None:
        raise ValueError("set both STOCKGUARD_ADMIN_TOKEN and STOCKGUARD_STOREFRONT_TOKEN, or neither")
    tokens, _ = load_or_create(settings.data_dir)
    return tokens


def create_app(settings: Settings | None = None, guard: Stockguard | None = None) -> FastAPI:
    """Build the app; ``stockguard serve`` runs it on uvicorn, tests may pass their own service."""
    settings = settings or Settings()
    tokens = tokens_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = guard or connect(
            settings.db_url,
            redis_url=settings.redis,
            redis_prefix=settings.redis_prefix,
            address_key=settings.address_key_bytes() or address_key(settings.data_dir),
            rate_per_buyer=settings.rate_per_buyer,
            rate_per_ip=settings.rate_per_ip,
        )
        app.state.guard = service
        app.state.bridge = LoopBridge(asyncio.get_running_loop())
        app.state.event_hub = hub = EventHub(service)
        sweeper = Sweeper(service, settings.sweep_interval, timedelta(hours=settings.event_retention_hours))
        sweeper.start()
        runtime.settle_after_start(sqlite_writer=_writes_to_sqlite(service))
        try:
            yield
        finally:
            await hub.close()
            sweeper.stop()
            if guard is None:
                service.close()

    app = FastAPI(
        title="stockguard",
        version="1.0.0",
        summary="Inventory deduction that never oversells.",
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.tokens = tokens
    app.state.settings = settings
    problems.install(app)
    for module in (items, listings, orders, buyers, draws, events, shipments, warehouse_sync, movements, ops):
        app.include_router(module.router)
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC), name="dashboard-static")
    # Innermost, inside the access log and the body limit.
    app.add_middleware(FastPlacement, route=_route(orders.router, "POST", PATH))
    app.add_middleware(AccessLog)
    app.add_middleware(BodyLimit)
    logging.getLogger("stockguard").setLevel(settings.log_level.upper())
    return app


def _writes_to_sqlite(service: Stockguard) -> bool:
    store = service.store
    return isinstance(store, SqlStore) and store.engine.dialect.name == "sqlite"


def _route(router: APIRouter, method: str, path: str) -> BaseRoute:
    for route in router.routes:
        if getattr(route, "path", None) == path and method in (getattr(route, "methods", None) or ()):
            return route
    raise LookupError(f"no route {method} {path}")
