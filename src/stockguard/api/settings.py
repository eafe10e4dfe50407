"""Service settings: command-line options, else ``STOCKGUARD_*`` environment variables, else defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("stockguard-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKGUARD_", extra="ignore")

    data_dir: Path = DATA_DIR
    db: str | None = None  # default: a SQLite file in data_dir
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    admin_token: SecretStr | None = None
    storefront_token: SecretStr | None = None
    sweep_interval: float = Field(default=0.2, gt=0, le=60)  # seconds between expiry sweeps
    log_level: str = "info"

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data_dir / 'stockguard.db').resolve()}"
