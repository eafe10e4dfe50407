"""The ledger: every movement of stock, oldest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from stockguard.api.deps import AnyRole, Guard
from stockguard.api.routes.common import problems
from stockguard.api.schemas import ID_PATTERN
from stockguard.domain.events import iso
from stockguard.domain.model import Movement

router = APIRouter(prefix="/v1/movements", tags=["ledger"])
Filter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]


class MovementOut(BaseModel):
    sku: str
    warehouse: str
    counter: str
    delta: int
    reason: str
    at: str = Field(description="ISO 8601, UTC.")
    order_id: str | None
    reference: str | None


class MovementsOut(BaseModel):
    movements: list[MovementOut]


@router.get("", response_model=MovementsOut, dependencies=[AnyRole], responses=problems())
def movements(
    guard: Guard,
    sku: Filter = None,
    order_id: Filter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> MovementsOut:
    """Ledger rows of one item or one order (or all), oldest first, at most `limit`."""
    rows = guard.movements(order_id=order_id, sku=sku, limit=limit)
    return MovementsOut(movements=[movement_out(m) for m in rows])


def movement_out(m: Movement) -> MovementOut:
    return MovementOut(
        sku=m.sku,
        warehouse=m.warehouse,
        counter=m.counter.value,
        delta=m.delta,
        reason=m.reason.value,
        at=iso(m.at),
        order_id=m.order_id,
        reference=m.reference,
    )
