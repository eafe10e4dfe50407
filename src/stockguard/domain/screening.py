"""Who may buy scarce stock: buyer profiles, a listing's screening rules, operators' verdicts.

The article's scalpers had telltale traits: an account opened days ago, no
shopping history, barely active. A listing's ``Screening`` names the traits a
buyer must not have; ``screen`` answers every rule the buyer fails, in words a
shop's support team can read to the customer. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BuyerProfile:
    """What the shop knows of a buyer's account, as it last told us."""

    buyer_id: str
    registered_at: datetime
    paid_orders: int = 0
    active_days_90d: int = 0  # days with activity in the last 90
    member_since: datetime | None = None  # None: not a member
    last_active_at: datetime | None = None
    phone_verified: bool = False


class Verdict(enum.StrEnum):
    """An operator's explicit decision on a buyer; it wins over every screening rule."""

    ALLOW = "allow"  # passes every screening (a known customer on a new account, say)
    DENY = "deny"  # refused by every screened listing (a known scalper)


@dataclass(frozen=True, slots=True)
class Override:
    buyer_id: str
    verdict: Verdict
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Screening:
    """The traits a listing asks of its buyers; None (or False) leaves a rule out."""

    min_account_age_days: int | None = None
    min_paid_orders: int | None = None
    min_active_days_90d: int | None = None
    min_membership_days: int | None = None
    phone_verified: bool = False

    @property
    def asks_anything(self) -> bool:
        return self != Screening()


@dataclass(frozen=True, slots=True)
class Failure:
    """One rule a buyer failed: its name (for metrics) and a sentence for people."""

    rule: str
    reason: str


def _days(since: datetime, now: datetime) -> int:
    return max(0, (now - since).days)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def screen(
    screening: Screening, profile: BuyerProfile | None, override: Override | None, now: datetime
) -> list[Failure]:
    """Every rule of ``screening`` the buyer fails (empty: eligible).

    An operator's verdict decides alone. A buyer the shop never described
    cannot pass a listing that asks anything: there is nothing to check.
    """
    if override is not None:
        if override.verdict is Verdict.ALLOW:
            return []
        return [Failure("denied", f"this account may not buy restricted products ({override.reason})")]
    if not screening.asks_anything:
        return []
    if profile is None:
        return [
            Failure("no_profile", "the shop has not shared this account's profile, so it cannot be checked")
        ]
    return [failure for check in _CHECKS if (failure := check(screening, profile, now)) is not None]


def _account_age(screening: Screening, profile: BuyerProfile, now: datetime) -> Failure | None:
    wanted = screening.min_account_age_days
    age = _days(profile.registered_at, now)
    if wanted is None or age >= wanted:
        return None
    return Failure(
        "account_age",
        f"the account was opened {_plural(age, 'day')} ago; "
        f"this product needs an account at least {_plural(wanted, 'day')} old",
    )


def _paid_orders(screening: Screening, profile: BuyerProfile, _: datetime) -> Failure | None:
    wanted = screening.min_paid_orders
    if wanted is None or profile.paid_orders >= wanted:
        return None
    return Failure(
        "paid_orders",
        f"the account has {_plural(profile.paid_orders, 'paid order')}; "
        f"this product needs at least {_plural(wanted, 'paid order')}",
    )


def _activity(screening: Screening, profile: BuyerProfile, _: datetime) -> Failure | None:
    wanted = screening.min_active_days_90d
    if wanted is None or profile.active_days_90d >= wanted:
        return None
    return Failure(
        "active_days",
        f"the account was active on {_plural(profile.active_days_90d, 'day')} of the last 90; "
        f"this product needs at least {wanted}",
    )


def _membership(screening: Screening, profile: BuyerProfile, now: datetime) -> Failure | None:
    wanted = screening.min_membership_days
    if wanted is None:
        return None
    if profile.member_since is None:
        return Failure(
            "membership",
            f"the account has no membership; this product needs a membership of at least "
            f"{_plural(wanted, 'day')}",
        )
    days = _days(profile.member_since, now)
    if days >= wanted:
        return None
    return Failure(
        "membership",
        f"the membership began {_plural(days, 'day')} ago; "
        f"this product needs a membership of at least {_plural(wanted, 'day')}",
    )


def _phone(screening: Screening, profile: BuyerProfile, _: datetime) -> Failure | None:
    if not screening.phone_verified or profile.phone_verified:
        return None
    return Failure("phone_verified", "the account's phone number is not verified; this product needs one")


_CHECKS = (_account_age, _paid_orders, _activity, _membership, _phone)


@dataclass(frozen=True, slots=True)
class BuyerContext:
    """What the shop knows of the request: the device, the IP and the delivery address.

    The address is kept only as ``address_hash`` (``hash_address``): enough to
    count orders shipping to one place, useless for reading where that is.
    """

    device_id: str | None = None
    ip: str | None = None
    address_hash: str | None = None
    # The warehouses the order may take stock from, first choice first (e.g. nearest to
    # the buyer); empty: any, as the listing allocates.
    warehouses: tuple[str, ...] = ()


NO_CONTEXT = BuyerContext()


def normal_address(address: str) -> str:
    """One spelling per address: case, spacing and punctuation runs don't make a new one."""
    kept = "".join(ch if ch.isalnum() else " " for ch in address.casefold())
    return " ".join(kept.split())


def hash_address(key: bytes, address: str) -> str:
    """A keyed hash (HMAC-SHA-256) of the normalised address, as hex.

    Keyed, so that a copy of the database alone cannot be searched for a known
    address by hashing guesses.
    """
    return hmac.new(key, normal_address(address).encode(), hashlib.sha256).hexdigest()
