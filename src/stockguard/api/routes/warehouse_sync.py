"""Counts from warehouse systems."""

from __future__ import annotations

from fastapi import APIRouter

from stockguard.api.deps import AdminOnly, Guard
from stockguard.api.routes.common import problems
from stockguard.api.supply_schemas import WarehouseSyncIn, WarehouseSyncOut, sync_out

router = APIRouter(prefix="/v1/warehouse-sync", tags=["items"])


@router.post("", response_model=WarehouseSyncOut, dependencies=[AdminOnly], responses=problems(403, 404, 413))
def sync_counts(body: WarehouseSyncIn, guard: Guard) -> WarehouseSyncOut:
    """Absolute counts from a warehouse system, all applied or none. Each moves on_hand by the
    difference between the count and what the ledger says on_hand was at its `as_of`, so goods
    moved and holds made after the count stay; a count whose `sequence` is not newer than the
    last one applied for its item and warehouse is ignored (late or repeated)."""
    return sync_out(guard.sync_counts([count.count() for count in body.counts]))
