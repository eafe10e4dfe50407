"""Absolute counts from a warehouse system, applied as differences.

A warehouse counts its shelves at ``as_of`` and numbers its counts
(``sequence``). By the time the count arrives, stockguard may have recorded
goods in and out since ``as_of``; and counts may arrive late, twice, or out of
order. So a count is never written over on_hand: the service takes what its
own ledger says on_hand was at ``as_of``, and moves on_hand by the difference.
Movements after ``as_of`` keep their effect, holds (which never touch on_hand)
stay, and a count whose sequence is not newer than the last one applied for
that item and warehouse changes nothing. The adjustment is dated at the
count's ``as_of``: it corrects the shelves as they were then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WarehouseCount:
    """What a warehouse counted of one item at ``as_of``, its ``sequence``-th count."""

    sku: str
    warehouse: str
    counted: int
    as_of: datetime
    sequence: int


@dataclass(frozen=True, slots=True)
class AppliedCount:
    """The last count applied to one item in one warehouse."""

    sequence: int
    as_of: datetime
    counted: int
    applied_at: datetime


def is_newer(count: WarehouseCount, last: AppliedCount | None) -> bool:
    """Only a count numbered after the last one applied may change anything."""
    return last is None or count.sequence > last.sequence


def adjustment(counted: int, on_hand_now: int, on_hand_moved_since: int) -> int:
    """How much on_hand moves so that it equals the count plus what moved after the count.

    ``on_hand_moved_since``: the sum of on_hand movements recorded after ``as_of``
    (goods received, shipped or written off since the shelves were counted).
    """
    on_hand_at_count = on_hand_now - on_hand_moved_since
    return counted - on_hand_at_count
