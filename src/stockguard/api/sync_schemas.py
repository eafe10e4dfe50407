"""Bodies of POST /v1/warehouse-sync."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from stockguard.api.schemas import Count, Id, Moment, Request
from stockguard.domain.counts import WarehouseCount
from stockguard.service import SyncReport
from stockguard.service.warehouse_sync import MAX_COUNTS

Sequence_ = Annotated[
    int, Field(strict=True, ge=0, le=2**62, description="The warehouse's own count number.")
]


class WarehouseCountIn(Request):
    sku: Id
    warehouse: Id
    counted: Count
    as_of: Moment
    sequence: Sequence_

    def count(self) -> WarehouseCount:
        return WarehouseCount(self.sku, self.warehouse, self.counted, self.as_of, self.sequence)


class WarehouseSyncIn(Request):
    counts: Annotated[list[WarehouseCountIn], Field(min_length=1, max_length=MAX_COUNTS)]


class AppliedOut(BaseModel):
    sku: str
    warehouse: str
    sequence: int
    counted: int
    adjustment: int = Field(description="How much on_hand moved (0: the ledger already agreed).")
    on_hand: int


class IgnoredOut(BaseModel):
    sku: str
    warehouse: str
    sequence: int
    reason: str


class ShortageOut(BaseModel):
    sku: str
    warehouse: str
    short_by: int


class WarehouseSyncOut(BaseModel):
    applied: list[AppliedOut]
    ignored: list[IgnoredOut] = Field(description="Counts not newer than one already applied.")
    shortages: list[ShortageOut] = Field(description="Counted items promised beyond their stock.")


def sync_out(report: SyncReport) -> WarehouseSyncOut:
    return WarehouseSyncOut(
        applied=[
            AppliedOut(
                sku=a.count.sku,
                warehouse=a.count.warehouse,
                sequence=a.count.sequence,
                counted=a.count.counted,
                adjustment=a.adjustment,
                on_hand=a.on_hand,
            )
            for a in report.applied
        ],
        ignored=[
            IgnoredOut(
                sku=i.count.sku,
                warehouse=i.count.warehouse,
                sequence=i.count.sequence,
                reason=f"count {i.newer_sequence} of this item and warehouse was applied already",
            )
            for i in report.ignored
        ],
        shortages=[
            ShortageOut(sku=s.sku, warehouse=s.warehouse, short_by=s.short_by) for s in report.shortages
        ],
    )
