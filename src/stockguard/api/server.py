"""Starting the service: settings, first-start tokens, then uvicorn with its workers."""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from typing import Any

import uvicorn
from rich.console import Console

from stockguard.api.auth import load_or_create
from stockguard.api.protocol import NoDelayHttp
from stockguard.api.settings import Settings
from stockguard.bootstrap import connect

APP = "stockguard.api.app:create_app"


def run(overrides: dict[str, Any], console: Console) -> None:
    """Serve until interrupted. Workers are fresh processes that read their settings from the environment."""
    settings = Settings(**overrides)
    for key, value in overrides.items():
        os.environ[f"STOCKGUARD_{key.upper()}"] = str(value)
    if settings.admin_token is None and settings.storefront_token is None:
        tokens, created = load_or_create(settings.data_dir)
        if created:
            # Printed once, on the first start, and never logged.
            console.print(f"admin token:      {tokens.admin}")
            console.print(f"storefront token: {tokens.storefront}")
            console.print(f"(kept in {settings.data_dir / 'tokens.json'}, readable by its owner only)")
    # Migrate (SQLite) once, before workers race to open the store; reach the gate's Redis
    # and report its persistence settings once.
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    connect(
        settings.db_url,
        redis_url=settings.redis,
        redis_prefix=settings.redis_prefix,
        rate_per_buyer=settings.rate_per_buyer,  # a limit that does not parse stops the start here
        rate_per_ip=settings.rate_per_ip,
    ).close()
    if settings.workers > 1:
        # Each worker writes its counters to files that /metrics adds up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stockguard-metrics-")
    uvicorn.run(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop=settings.loop if importlib.util.find_spec(settings.loop) else "asyncio",
        http=NoDelayHttp,
        log_level=settings.log_level,
        access_log=False,  # stockguard's own access log leaves out headers (and so tokens)
    )
