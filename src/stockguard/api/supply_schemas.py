"""Bodies of the supply side: warehouse counts (POST /v1/warehouse-sync) and incoming shipments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from stockguard.api.schemas import Count, Id, Moment, Quantity, Request
from stockguard.domain.counts import WarehouseCount
from stockguard.domain.model import Shipment
from stockguard.service import SyncReport
from stockguard.service.presale import ArrivalReport, ShipmentIssue
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


# -- incoming shipments
class ShipmentIn(Request):
    sku: Id
    warehouse: Id = "main"
    quantity: Quantity
    expected_at: Moment


class ArrivalIn(Request):
    received: Count | None = Field(None, description="Units that arrived; null: all announced.")


class ShipmentOut(BaseModel):
    shipment_id: str
    sku: str
    warehouse: str
    quantity: int
    expected_at: datetime
    received: int | None = Field(description="Null until it arrives.")


class ArrivalOut(BaseModel):
    shipment: ShipmentOut
    moved_orders: list[str] = Field(description="Presale orders now held on the stock that arrived.")
    waiting_orders: list[str] = Field(description="Presale orders of this item and warehouse still waiting.")
    uncovered_orders: list[str] = Field(description="Of those, the ones no pending shipment covers.")


class ShipmentIssueOut(BaseModel):
    kind: Literal["late", "short"]
    sku: str
    warehouse: str
    orders: list[str] = Field(description="The presale orders it puts at risk.")
    shipment: ShipmentOut | None = Field(description="The late shipment.")
    short_by: int = Field(description="Presold units no pending shipment covers.")


class ShipmentIssuesOut(BaseModel):
    issues: list[ShipmentIssueOut]


def shipment_out(shipment: Shipment) -> ShipmentOut:
    return ShipmentOut(
        shipment_id=shipment.shipment_id,
        sku=shipment.sku,
        warehouse=shipment.warehouse,
        quantity=shipment.quantity,
        expected_at=shipment.expected_at,
        received=shipment.received,
    )


def arrival_out(report: ArrivalReport) -> ArrivalOut:
    return ArrivalOut(
        shipment=shipment_out(report.shipment),
        moved_orders=list(report.moved),
        waiting_orders=list(report.waiting),
        uncovered_orders=list(report.uncovered),
    )


def issues_out(issues: list[ShipmentIssue]) -> ShipmentIssuesOut:
    return ShipmentIssuesOut(
        issues=[
            ShipmentIssueOut(
                kind="late" if issue.kind == "late" else "short",
                sku=issue.sku,
                warehouse=issue.warehouse,
                orders=list(issue.orders),
                shipment=None if issue.shipment is None else shipment_out(issue.shipment),
                short_by=issue.short_by,
            )
            for issue in issues
        ]
    )
