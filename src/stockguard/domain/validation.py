"""Input rules shared by every entry point: ids and quantities.

They live in the domain so the library, the CLI and the HTTP API refuse the
same values with the same words.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import datetime
from itertools import islice

from stockguard.domain.errors import InvalidInput

MAX_QUANTITY = 1_000_000_000
MAX_ID_LENGTH = 64
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a valid identifier, else raise :class:`InvalidInput`."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidInput(
            f"{field} must be 1 to {MAX_ID_LENGTH} characters of A-Z a-z 0-9 _ . : -",
        )
    return value


def check_quantity(value: object, field: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer in ``minimum..MAX_QUANTITY``."""
    # bool is an int subclass; True is not a quantity.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer")
    if not minimum <= value <= MAX_QUANTITY:
        raise InvalidInput(f"{field} must be between {minimum} and {MAX_QUANTITY:,}")
    return value


def check_text(value: object, field: str, *, max_length: int = 200) -> str:
    """Free text such as titles and reasons: a non-blank string of bounded length."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidInput(f"{field} must be non-blank text of at most {max_length} characters")
    return value


def check_pairs(values: object, field: str, *, limit: int) -> list[tuple[object, object]]:
    """1 to ``limit`` (id, quantity) pairs; the values themselves are checked by the caller."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{field} must be a list of (id, quantity) pairs")
    pairs: list[tuple[object, object]] = []
    for value in islice(values, limit + 1):
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise InvalidInput(f"each of {field} must be an (id, quantity) pair")
        pairs.append((value[0], value[1]))
    if not 1 <= len(pairs) <= limit:
        raise InvalidInput(f"{field} must hold 1 to {limit} entries")
    return pairs


def check_ip(value: object, field: str = "ip") -> str:
    """An IPv4 or IPv6 address, returned in its one canonical spelling."""
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise InvalidInput(f"{field} must be an IPv4 or IPv6 address") from None


def check_moment(value: object, field: str) -> datetime:
    """A time with its time zone (a naive time would be read in whatever zone the server is in)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be a time with a time zone")
    return value
