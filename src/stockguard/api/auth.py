"""The two roles of the API and their bearer tokens.

Tokens come from the environment (``STOCKGUARD_ADMIN_TOKEN``,
``STOCKGUARD_STOREFRONT_TOKEN``); when neither is set, the first start creates
both in the data folder (owner-only permissions) and later starts reuse them.
They are compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKENS_FILE = "tokens.json"


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything
    STOREFRONT = "storefront"  # orders, buyers and every GET


@dataclass(frozen=True, slots=True)
class Tokens:
    admin: str
    storefront: str

    def role_of(self, presented: str) -> Role | None:
        """The role a presented token grants, compared in constant time against both."""
        given = presented.encode()
        is_admin = hmac.compare_digest(given, self.admin.encode())
        is_storefront = hmac.compare_digest(given, self.storefront.encode())
        if is_admin:
            return Role.ADMIN
        if is_storefront:
            return Role.STOREFRONT
        return None


def load(data_dir: Path) -> Tokens:
    """The tokens kept in ``data_dir`` (FileNotFoundError: none kept there)."""
    stored = json.loads((data_dir / TOKENS_FILE).read_text())
    return Tokens(stored["admin"], stored["storefront"])


def load_or_create(data_dir: Path) -> tuple[Tokens, bool]:
    """The tokens kept in ``data_dir``, created (owner-only) on first use; True when just created."""
    path = data_dir / TOKENS_FILE
    if path.exists():
        return load(data_dir), False
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens = Tokens(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    # O_EXCL: when two processes start at once, one creates and the other reads.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create(data_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump({"admin": tokens.admin, "storefront": tokens.storefront}, handle)
    return tokens, True


ADDRESS_KEY_FILE = "address.key"


def address_key(data_dir: Path) -> bytes:
    """The secret delivery addresses are hashed with, kept in ``data_dir`` (owner-only), created on
    first use. Every process of one store must hash with the same key: a service spread over
    machines sets ``STOCKGUARD_ADDRESS_KEY`` instead."""
    path = data_dir / ADDRESS_KEY_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process just created it
        return address_key(data_dir)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key
