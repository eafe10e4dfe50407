"""Draws: scarce stock sold by lottery, with a rule anyone can recompute.

How a draw is fair, step by step:

1. When the draw is created the service picks a secret ``seed`` (32 random
   bytes, written as 64 hex digits) and publishes ``commitment =
   SHA-256(seed)`` (of the hex text): from then on the seed cannot change
   unnoticed.
2. Buyers enter during the registration window, one entry per buyer.
3. The run reveals the seed. ``entries_digest = SHA-256(the entered buyer ids,
   sorted, one per line)``; each entry's ticket is ``SHA-256(seed ":"
   entries_digest ":" buyer_id)``; the ranking orders entries by ticket (then
   buyer id). The first ``units`` entries win one unit each; the others wait
   in ranking order and are promoted, one by one, when a winner does not pay.

Because every ticket depends on the whole entry list, adding or removing an
entry after the fact reshuffles everyone: the published list is the one that
was drawn from. ``stockguard verify-draw`` recomputes all of it from the
published record.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


class DrawState(enum.StrEnum):
    SCHEDULED = "scheduled"  # the registration window has not opened yet
    OPEN = "open"  # buyers may enter
    CLOSED = "closed"  # the window closed; the draw may run
    DRAWN = "drawn"  # winners picked and the seed revealed; unpaid winners are replaced


@dataclass(frozen=True, slots=True)
class Draw:
    draw_id: str
    listing_id: str
    units: int  # winners: one unit each
    opens_at: datetime
    closes_at: datetime
    payment_seconds: int  # how long a winner's hold lasts
    seed: str  # secret until the run
    commitment: str
    created_at: datetime
    drawn_at: datetime | None = None

    def state(self, now: datetime) -> DrawState:
        if self.drawn_at is not None:
            return DrawState.DRAWN
        if now < self.opens_at:
            return DrawState.SCHEDULED
        if now < self.closes_at:
            return DrawState.OPEN
        return DrawState.CLOSED

    def same_terms(self, other: Draw) -> bool:
        """Whether ``other`` sets this draw up the same way (its seed aside)."""
        return (self.listing_id, self.units, self.opens_at, self.closes_at, self.payment_seconds) == (
            other.listing_id,
            other.units,
            other.opens_at,
            other.closes_at,
            other.payment_seconds,
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One buyer's entry; after the run its rank, and the order it won (if it won one yet)."""

    draw_id: str
    buyer_id: str
    number: int  # 1, 2, ... in the order entries arrived
    entered_at: datetime
    device_id: str | None = None
    address_hash: str | None = None
    rank: int | None = None  # 1 = first drawn
    order_id: str | None = None  # the winner's reserve order
    passed_over: str | None = None  # why a drawn entry could not be given its unit


# Where an entry stands, besides the status of the order it won: drawn and in line for a
# unit, drawn and refused one (screening, limits), or not drawn yet.
WAITING, PASSED_OVER, ENTERED = "waiting", "passed_over", "entered"


def standing(entry: Entry, order_status: str | None) -> str:
    """An entry's standing: the status of its order (reserved, paid, expired, ...), else one of the above."""
    if entry.order_id is not None:
        return order_status or ENTERED
    if entry.passed_over is not None:
        return PASSED_OVER
    return WAITING if entry.rank is not None else ENTERED


def commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def entries_digest(buyer_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(buyer_ids)).encode()).hexdigest()


def ticket(seed: str, digest: str, buyer_id: str) -> str:
    return hashlib.sha256(f"{seed}:{digest}:{buyer_id}".encode()).hexdigest()


def ranking(seed: str, buyer_ids: Sequence[str]) -> list[str]:
    """The entered buyers in drawn order: the first ``units`` win, the rest wait in this order."""
    digest = entries_digest(buyer_ids)
    return sorted(buyer_ids, key=lambda buyer_id: (ticket(seed, digest, buyer_id), buyer_id))


def winner_order_id(draw_id: str, buyer_id: str) -> str:
    """The id of the order a drawn buyer gets: the same on every run of the rule, and a valid id."""
    return "draw-" + hashlib.sha256(f"{draw_id}\n{buyer_id}".encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Published:
    """A draw as the service publishes it: enough for anyone to recompute who won."""

    commitment: str
    seed: str | None  # None until the run
    units: int
    entries: tuple[str, ...]  # entered buyer ids, in arrival order
    ranks: dict[str, int]  # the published rank of each drawn buyer
    winners: frozenset[str]  # buyers given a unit (first winners and those promoted)
    waiting: frozenset[str]  # buyers still in line


def verify(record: Published) -> list[str]:
    """Every way the published record breaks the rule (empty: the draw was fair)."""
    if record.seed is None:
        return ["the draw has not run: its seed is not revealed yet"]
    problems: list[str] = []
    if commitment(record.seed) != record.commitment:
        problems.append("the revealed seed does not match the commitment published at creation")
    if len(set(record.entries)) != len(record.entries):
        problems.append("a buyer appears more than once among the entries")
    expected = {buyer_id: rank for rank, buyer_id in enumerate(ranking(record.seed, record.entries), start=1)}
    if set(record.ranks) != set(expected):
        problems.append("the drawn buyers are not the entered buyers")
    wrong = sorted(b for b in record.ranks if b in expected and record.ranks[b] != expected[b])
    if wrong:
        problems.append(f"{len(wrong)} buyers have another rank than the rule gives, e.g. {wrong[0]!r}")
    if len(record.winners) > len(record.ranks):
        problems.append("more winners than drawn buyers")
    last_winner = max((expected.get(b, 0) for b in record.winners), default=0)
    jumped = sorted(b for b in record.waiting if expected.get(b, 0) < last_winner)
    if jumped:
        problems.append(f"{len(jumped)} waiting buyers rank above a winner, e.g. {jumped[0]!r}")
    return problems
