"""Service settings: command-line options, else ``STOCKGUARD_*`` environment variables, else defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("stockguard-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKGUARD_", extra="ignore")

    data_dir: Path = DATA_DIR
    db: str | None = None  # default: a SQLite file in data_dir
    # The flash-sale gate: a Redis URL (one server, or any node of a Redis Cluster). None: no gate.
    redis: str | None = None
    redis_prefix: str = "sg"  # the gate's keys start with it: one prefix per store sharing a Redis
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    admin_token: SecretStr | None = None
    storefront_token: SecretStr | None = None
    # The secret delivery addresses are hashed with (any text). None: a key kept in data_dir.
    address_key: SecretStr | None = None
    # Order placements allowed per buyer and per IP, such as "5/second" or "30 per minute"
    # (several joined by ";"); counted in Redis when `redis` is set, else in each process.
    rate_per_buyer: str | None = None
    rate_per_ip: str | None = None
    sweep_interval: float = Field(default=0.2, gt=0, le=60)  # seconds between expiry sweeps
    # How long change events stay for SSE clients to resume from (with a relay: once published).
    event_retention_hours: float = Field(default=168.0, gt=0)
    log_level: str = "info"
    # The dashboard's login lasts this long. Its cookie is marked Secure: browsers keep it over
    # HTTPS and on localhost only. Turn that off only behind a network you trust.
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    dashboard_secure_cookie: bool = True
    # The event loop. uvloop is a little faster per request, but its libuv (1.45 and
    # later) accepts one new connection per loop iteration: under a flash sale's
    # load, newly connecting buyers then wait seconds in the kernel's accept queue.
    # asyncio accepts every waiting connection each iteration. See docs/benchmarks.md.
    loop: Literal["asyncio", "uvloop"] = "asyncio"
    # FastAPI's native OpenTelemetry (traces, metrics and logs to the global providers).
    # Off unless asked for: /metrics is the service's own, and even unconfigured,
    # FastAPI looks up the providers on every request (about 6 % of an order's time).
    opentelemetry: bool = False

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data_dir / 'stockguard.db').resolve()}"

    def address_key_bytes(self) -> bytes | None:
        """The configured address key, or None (the caller then keeps one in data_dir)."""
        return None if self.address_key is None else self.address_key.get_secret_value().encode()
