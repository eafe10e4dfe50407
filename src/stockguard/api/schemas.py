"""Request and response bodies of API v1 (../shared/API-v1.md), with the contract's limits.

Requests refuse unknown fields and coerce nothing: ``"2"`` or ``2.0`` is not a
quantity. The same rules are checked again by the domain, so the library and
the API refuse alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stockguard.domain.model import ItemStock, Level, ListingStock, Order
from stockguard.domain.validation import MAX_QUANTITY

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemIn(Request):
    name: Text
    safety: Count = 0


class ReceiptIn(Request):
    quantity: Quantity
    warehouse: Id = "main"
    reference: Text | None = None


class AdjustmentIn(Request):
    warehouse: Id = "main"
    counted: Count
    reason: Text


class ComponentIn(Request):
    sku: Id
    quantity: Quantity


class ListingIn(Request):
    title: Text
    components: Annotated[list[ComponentIn], Field(min_length=1, max_length=50)]
    deduction: Literal["order", "payment", "reserve"]
    hold_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)] = 900
    per_buyer_limit: Quantity | None = None
    quota: Count | None = None


class LineIn(Request):
    listing_id: Id
    quantity: Quantity


class OrderIn(Request):
    order_id: Id
    buyer_id: Id
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]


class LevelOut(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    committed: int
    safety: int
    available: int
    incoming: int


class ItemOut(BaseModel):
    sku: str
    name: str
    on_hand: int
    reserved: int
    committed: int
    safety: int
    available: int
    incoming: int
    warehouses: list[LevelOut]


class CountOut(ItemOut):
    short_by: int = Field(description="Units promised beyond what the count allows; 0 when none.")


class ComponentOut(BaseModel):
    sku: str
    quantity: int


class ListingOut(BaseModel):
    listing_id: str
    title: str
    components: list[ComponentOut]
    deduction: Literal["order", "payment", "reserve"]
    hold_seconds: int
    per_buyer_limit: int | None
    quota: int | None
    sellable: int
    sold: int


class LineOut(BaseModel):
    listing_id: str
    quantity: int


class AllocationOut(BaseModel):
    sku: str
    warehouse: str
    quantity: int


class OrderOut(BaseModel):
    order_id: str
    buyer_id: str
    status: Literal["placed", "reserved", "paid", "shipped", "cancelled", "expired"]
    deduction: Literal["order", "payment", "reserve"]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    lines: list[LineOut]
    allocations: list[AllocationOut] = Field(description="Where the stock is held or was taken from.")


class HealthOut(BaseModel):
    status: Literal["ok"]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[str] | None = None


def _level(level: Level) -> LevelOut:
    return LevelOut(
        warehouse=level.warehouse,
        on_hand=level.on_hand,
        reserved=level.reserved,
        committed=level.committed,
        safety=level.safety,
        available=level.available,
        incoming=level.incoming,
    )


def item_out(stock: ItemStock) -> ItemOut:
    levels = [_level(level) for level in stock.levels]
    return ItemOut(
        sku=stock.item.sku,
        name=stock.item.name,
        on_hand=sum(lv.on_hand for lv in levels),
        reserved=sum(lv.reserved for lv in levels),
        committed=sum(lv.committed for lv in levels),
        safety=sum(lv.safety for lv in levels),
        available=sum(lv.available for lv in levels),
        incoming=sum(lv.incoming for lv in levels),
        warehouses=levels,
    )


def listing_out(stock: ListingStock) -> ListingOut:
    listing = stock.listing
    return ListingOut(
        listing_id=listing.listing_id,
        title=listing.title,
        components=[ComponentOut(sku=c.sku, quantity=c.quantity) for c in listing.components],
        deduction=listing.deduction.value,
        hold_seconds=listing.hold_seconds,
        per_buyer_limit=listing.per_buyer_limit,
        quota=listing.quota,
        sellable=stock.sellable,
        sold=stock.sold,
    )


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        status=order.status.value,
        deduction=order.deduction.value,
        expires_at=order.expires_at,
        created_at=order.created_at,
        updated_at=order.updated_at,
        lines=[LineOut(listing_id=ln.listing_id, quantity=ln.quantity) for ln in order.lines],
        allocations=[
            AllocationOut(sku=a.sku, warehouse=a.warehouse, quantity=a.quantity) for a in order.allocations
        ],
    )
