"""Counts from warehouse systems: absolute numbers in, differences applied (``domain.counts``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from stockguard.domain.counts import AppliedCount, WarehouseCount, adjustment, is_newer
from stockguard.domain.errors import InvalidInput
from stockguard.domain.model import Counter, Movement, Reason
from stockguard.domain.validation import check_id, check_quantity
from stockguard.service.base import ServiceBase
from stockguard.service.catalog import Shortage, ensure_level
from stockguard.stores.base import Transaction

MAX_COUNTS = 1000
ON_HAND = Counter.ON_HAND


@dataclass(frozen=True, slots=True)
class CountApplied:
    count: WarehouseCount
    adjustment: int  # how much on_hand moved (0: the ledger already agreed)
    on_hand: int  # after the adjustment


@dataclass(frozen=True, slots=True)
class CountIgnored:
    count: WarehouseCount
    newer_sequence: int  # the sequence of the count already applied, equal or newer


@dataclass(frozen=True, slots=True)
class SyncReport:
    applied: tuple[CountApplied, ...]
    ignored: tuple[CountIgnored, ...]
    shortages: tuple[Shortage, ...]  # of the counted items, after the batch


class WarehouseSyncService(ServiceBase):
    def sync_counts(self, counts: Sequence[WarehouseCount]) -> SyncReport:
        """Apply a batch of warehouse counts, all or nothing, in the order of their sequences.

        A count not newer than the last one applied to its item and warehouse is
        ignored (a late or repeated message); every other moves on_hand by the
        difference between the count and what the ledger says on_hand was at its
        ``as_of``. Shortages of the counted items are reported, and stop their sales.
        """
        now = self.clock()
        batch = sorted(_valid(counts, now), key=lambda c: (c.sku, c.warehouse, c.sequence))
        return self.store.atomic(lambda tx: self._sync(tx, batch, now))

    def _sync(self, tx: Transaction, batch: list[WarehouseCount], now: datetime) -> SyncReport:
        self._sweep(tx, now)
        items = {sku: self._item(tx, sku) for sku in sorted({c.sku for c in batch})}
        tx.levels(items)  # lock the counted items' stock in sku order, like every writer
        applied: list[CountApplied] = []
        ignored: list[CountIgnored] = []
        for count in batch:
            level = ensure_level(tx, items[count.sku], count.warehouse, now)
            last = tx.applied_count(count.sku, count.warehouse)
            if last is not None and not is_newer(count, last):
                ignored.append(CountIgnored(count, last.sequence))
                continue
            moved = tx.on_hand_moved_since(count.sku, count.warehouse, count.as_of)
            delta = adjustment(count.counted, level.on_hand, moved)
            if delta:
                # Dated at the count's as_of: it corrects the shelves as they were then, so a later
                # count's "moved since" leaves it out instead of counting it twice.
                reference = f"warehouse count {count.warehouse}#{count.sequence}"
                correction = Movement(
                    count.sku, count.warehouse, ON_HAND, delta, Reason.COUNT, count.as_of, reference=reference
                )
                tx.record([correction])
            tx.put_applied_count(
                count.sku, count.warehouse, AppliedCount(count.sequence, count.as_of, count.counted, now)
            )
            applied.append(CountApplied(count, delta, level.on_hand + delta))
        levels = tx.levels(items)
        shortages = tuple(
            Shortage(lv.sku, lv.warehouse, lv.short_by)
            for sku in sorted(levels)
            for lv in sorted(levels[sku], key=lambda lv: lv.warehouse)
            if lv.short
        )
        return SyncReport(tuple(applied), tuple(ignored), shortages)


def _valid(counts: Sequence[WarehouseCount], now: datetime) -> list[WarehouseCount]:
    if not isinstance(counts, list | tuple) or not 1 <= len(counts) <= MAX_COUNTS:
        raise InvalidInput(f"counts must be a list of 1 to {MAX_COUNTS} counts")
    seen: set[tuple[str, str, int]] = set()
    for count in counts:
        check_id(count.sku, "sku")
        check_id(count.warehouse, "warehouse")
        check_quantity(count.counted, "counted", minimum=0)
        check_quantity(count.sequence, "sequence", minimum=0)
        if not isinstance(count.as_of, datetime) or count.as_of.tzinfo is None:
            raise InvalidInput("as_of needs a time zone")
        if count.as_of > now:
            raise InvalidInput("as_of is in the future: a count tells what was on the shelves")
        key = (count.sku, count.warehouse, count.sequence)
        if key in seen:
            raise InvalidInput(f"count {count.warehouse}#{count.sequence} of {count.sku!r} appears twice")
        seen.add(key)
    return list(counts)
