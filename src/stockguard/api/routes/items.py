"""Items (back-end goods): create, read, goods in, stock counts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.routes.common import Sku, problems
from stockguard.api.schemas import AdjustmentIn, CountOut, ItemIn, ItemOut, ReceiptIn, item_out

router = APIRouter(prefix="/v1/items", tags=["items"])


@router.put(
    "/{sku}",
    response_model=ItemOut,
    dependencies=[AdminOnly],
    responses={201: {"model": ItemOut, "description": "Created."}, **problems(403, 413)},
)
def put_item(sku: Sku, body: ItemIn, guard: Guard, response: Response) -> ItemOut:
    """Create an item (201) or change its name and safety stock (200)."""
    saved = guard.put_item(sku, body.name, body.safety)
    response.status_code = 201 if saved.created else 200
    return item_out(saved.value)


@router.get("/{sku}", response_model=ItemOut, dependencies=[AnyRole], responses=problems(404))
def get_item(sku: Sku, guard: Guard) -> ItemOut:
    """The item's stock: totals over warehouses, and each warehouse."""
    return item_out(guard.get_item(sku))


@router.post(
    "/{sku}/receipts", response_model=ItemOut, dependencies=[AdminOnly], responses=problems(403, 404, 413)
)
def receive(sku: Sku, body: ReceiptIn, guard: Guard) -> ItemOut:
    """Goods arrived in a warehouse: on_hand goes up."""
    return item_out(guard.receive(sku, body.quantity, body.warehouse, body.reference))


@router.post(
    "/{sku}/adjustments", response_model=CountOut, dependencies=[AdminOnly], responses=problems(403, 404, 413)
)
def adjust(sku: Sku, body: AdjustmentIn, guard: Guard) -> CountOut:
    """A stock count sets on_hand. A count below what is promised is kept, reported in
    ``short_by``, and stops new sales of the item until mended."""
    result = guard.count(sku, body.counted, body.reason, body.warehouse)
    return CountOut(**item_out(result.stock).model_dump(), short_by=result.short_by)
