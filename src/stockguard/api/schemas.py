"""Request and response bodies of API v1 (../shared/API-v1.md), with the contract's limits.

Requests refuse unknown fields and coerce nothing: ``"2"`` or ``2.0`` is not a
quantity. The same rules are checked again by the domain, so the library and
the API refuse alike.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from stockguard.domain.draws import Draw, Entry, entries_digest
from stockguard.domain.model import ItemStock, Level, ListingStock, Order
from stockguard.domain.validation import MAX_QUANTITY
from stockguard.service import BuyerRecord, DrawReport

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
IpText = Annotated[str, StringConstraints(min_length=2, max_length=45)]  # parsed by the domain
Address = Annotated[str, StringConstraints(min_length=1, max_length=500)]


def _time_text(value: object) -> object:
    """Times come as ISO 8601 text: pydantic would also read a number as seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 time with a time zone, as text")
    return value


Moment = Annotated[
    AwareDatetime, BeforeValidator(_time_text), Field(description="ISO 8601 with a time zone.")
]


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


class ScreeningIn(Request):
    """Who may buy: every rule left out (or false) is not asked. A buyer fails with 403 `not_eligible`."""

    min_account_age_days: Count | None = Field(None, description="Days since the account was opened.")
    min_paid_orders: Count | None = None
    min_active_days_90d: Annotated[int, Field(strict=True, ge=0, le=90)] | None = None
    min_membership_days: Count | None = Field(None, description="Days since the membership began.")
    phone_verified: StrictBool = False


class ScreeningOut(BaseModel):
    min_account_age_days: int | None
    min_paid_orders: int | None
    min_active_days_90d: int | None
    min_membership_days: int | None
    phone_verified: bool


class PresaleIn(Request):
    arrives_by: Moment = Field(description="Only shipments expected at or before this are sold ahead.")
    share_percent: Annotated[int, Field(strict=True, ge=1, le=100)] = Field(
        description="At most this share of their units is sold ahead."
    )


class ListingIn(Request):
    title: Text
    components: Annotated[list[ComponentIn], Field(min_length=1, max_length=50)]
    deduction: Literal["order", "payment", "reserve"]
    hold_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)] = 900
    per_buyer_limit: Quantity | None = None
    quota: Count | None = None
    screening: ScreeningIn | None = None
    per_device_limit: Quantity | None = Field(None, description="Its orders must then name `device_id`.")
    per_address_limit: Quantity | None = Field(None, description="Its orders must then name `address`.")
    quota_period: Literal["day", "week", "month", "year"] | None = Field(
        None, description="The quota starts again each period (UTC calendar); null: for all time."
    )
    warehouse_choice: Literal["priority", "most_available"] = Field(
        "priority", description="Holds take from the lowest priority number first, or the fullest warehouse."
    )
    presale: PresaleIn | None = Field(
        None, description="Once stock on hand is gone, sell ahead a share of incoming shipments."
    )


class LineIn(Request):
    listing_id: Id
    quantity: Quantity


class OrderIn(Request):
    order_id: Id
    buyer_id: Id
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]
    device_id: Id | None = Field(None, description="The buyer's device, as the shop identifies it.")
    ip: IpText | None = Field(None, description="The buyer's IP address (rate limits per IP count it).")
    address: Address | None = Field(None, description="The delivery address; only a keyed hash is kept.")
    warehouses: Annotated[list[Id], Field(min_length=1, max_length=20)] | None = Field(
        None, description="Take stock only from these warehouses, first choice first (e.g. nearest)."
    )


class LevelOut(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    committed: int
    safety: int
    available: int
    incoming: int
    presold: int = Field(description="Units of incoming shipments sold ahead (presale).")


class ItemOut(BaseModel):
    sku: str
    name: str
    on_hand: int
    reserved: int
    committed: int
    safety: int
    available: int
    incoming: int
    presold: int = Field(description="Units of incoming shipments sold ahead (presale).")
    warehouses: list[LevelOut]


class CountOut(ItemOut):
    short_by: int = Field(description="Units promised beyond what the count allows; 0 when none.")


class ComponentOut(BaseModel):
    sku: str
    quantity: int


class PresaleOut(BaseModel):
    arrives_by: datetime
    share_percent: int


class ListingOut(BaseModel):
    listing_id: str
    title: str
    components: list[ComponentOut]
    deduction: Literal["order", "payment", "reserve"]
    hold_seconds: int
    per_buyer_limit: int | None
    quota: int | None
    screening: ScreeningOut | None
    per_device_limit: int | None
    per_address_limit: int | None
    quota_period: Literal["day", "week", "month", "year"] | None
    warehouse_choice: Literal["priority", "most_available"]
    sellable: int
    sold: int
    quota_left: int | None = Field(description="What the quota still allows (this period's); null: no quota.")
    presale: PresaleOut | None
    presale_left: int | None = Field(description="Units it may still sell ahead of shipments.")
    quota_resets_at: datetime | None = Field(description="When a quota that starts again does so next.")


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
    device_id: str | None = None
    ip: str | None = None
    address_hash: str | None = Field(None, description="Keyed hash of the delivery address.")
    warehouses: list[str] | None = Field(None, description="The warehouses the order named.")
    fulfil_from: Literal["stock", "incoming"] = Field(
        "stock", description="incoming: sold ahead of a shipment (presale), expected at `expected_at`."
    )
    expected_at: datetime | None = Field(None, description="When presold goods are expected.")


class HealthOut(BaseModel):
    status: Literal["ok"]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[str] | None = None
    reasons: list[str] | None = Field(
        None, description="`not_eligible`: each screening rule the buyer fails."
    )


def _level(level: Level) -> LevelOut:
    return LevelOut(
        warehouse=level.warehouse,
        on_hand=level.on_hand,
        reserved=level.reserved,
        committed=level.committed,
        safety=level.safety,
        available=level.available,
        incoming=level.incoming,
        presold=level.presold,
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
        presold=sum(lv.presold for lv in levels),
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
        screening=None if listing.screening is None else ScreeningOut(**asdict(listing.screening)),
        per_device_limit=listing.per_device_limit,
        per_address_limit=listing.per_address_limit,
        quota_period=None if listing.quota_period is None else listing.quota_period.value,
        warehouse_choice=listing.warehouse_choice.value,
        sellable=stock.sellable,
        sold=stock.sold,
        quota_left=stock.quota_left,
        presale=None
        if listing.presale is None
        else PresaleOut(arrives_by=listing.presale.arrives_by, share_percent=listing.presale.share_percent),
        presale_left=stock.presale_left,
        quota_resets_at=stock.quota_resets_at,
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
        device_id=order.context.device_id,
        ip=order.context.ip,
        address_hash=order.context.address_hash,
        warehouses=list(order.context.warehouses) or None,
        fulfil_from=order.fulfil_from.value,
        expected_at=order.expected_at,
    )


# -- buyers
class BuyerIn(Request):
    registered_at: Moment
    member_since: Moment | None = Field(None, description="When the membership began; null: not a member.")
    paid_orders: Count = 0
    active_days_90d: Annotated[int, Field(strict=True, ge=0, le=90)] = 0
    last_active_at: Moment | None = None
    phone_verified: StrictBool = False


class VerdictIn(Request):
    verdict: Literal["allow", "deny"]
    reason: Text


class VerdictOut(BaseModel):
    verdict: Literal["allow", "deny"]
    reason: str
    at: datetime


class BuyerOut(BaseModel):
    """The profile fields are null when the shop never sent a profile (only a verdict is known)."""

    buyer_id: str
    registered_at: datetime | None = None
    member_since: datetime | None = None
    paid_orders: int | None = None
    active_days_90d: int | None = None
    last_active_at: datetime | None = None
    phone_verified: bool | None = None
    verdict: VerdictOut | None = Field(None, description="An operator's decision; it wins over screening.")


def buyer_out(record: BuyerRecord) -> BuyerOut:
    profile = {} if record.profile is None else asdict(record.profile)
    override = record.override
    verdict = (
        None
        if override is None
        else VerdictOut(verdict=override.verdict.value, reason=override.reason, at=override.at)
    )
    return BuyerOut(**profile | {"buyer_id": record.buyer_id, "verdict": verdict})


# -- draws
class DrawIn(Request):
    listing_id: Id
    units: Quantity = Field(description="Winners: one unit each.")
    opens_at: Moment
    closes_at: Moment
    payment_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)] = Field(
        900, description="How long a winner's hold lasts before the next buyer on the list gets it."
    )


class EntryIn(Request):
    buyer_id: Id
    device_id: Id | None = None
    ip: IpText | None = None
    address: Address | None = Field(None, description="The delivery address; only a keyed hash is kept.")


class EntryOut(BaseModel):
    draw_id: str
    buyer_id: str
    number: int = Field(description="1, 2, ... in the order entries arrived.")
    entered_at: datetime


class WinnerOut(BaseModel):
    buyer_id: str
    rank: int
    order_id: str
    status: Literal["placed", "reserved", "paid", "shipped", "cancelled", "expired"] | None


class RankedOut(BaseModel):
    buyer_id: str
    rank: int


class PassedOverOut(RankedOut):
    reason: str


class DrawOut(BaseModel):
    draw_id: str
    listing_id: str
    units: int
    opens_at: datetime
    closes_at: datetime
    payment_seconds: int
    state: Literal["scheduled", "open", "closed", "drawn"]
    commitment: str = Field(description="SHA-256 of the seed (its hex text), published at creation.")
    seed: str | None = Field(description="Revealed by the run, never before.")
    drawn_at: datetime | None
    entries: int
    winners: list[WinnerOut] = Field(description="Entries given a unit, by rank: paid, holding or lapsed.")
    waiting: list[RankedOut] = Field(description="In line for a unit a winner does not pay for, by rank.")
    passed_over: list[PassedOverOut] = Field(description="Drawn, but refused a unit (screening, limits).")


class DrawEntriesOut(BaseModel):
    """What anyone needs to recompute a draw (``stockguard verify-draw``)."""

    draw_id: str
    commitment: str
    seed: str | None
    units: int
    entries_digest: str
    entries: list[str] = Field(description="The entered buyer ids, in arrival order.")


def entry_out(entry: Entry) -> EntryOut:
    return EntryOut(
        draw_id=entry.draw_id, buyer_id=entry.buyer_id, number=entry.number, entered_at=entry.entered_at
    )


def draw_out(report: DrawReport) -> DrawOut:
    draw = report.draw
    return DrawOut(
        draw_id=draw.draw_id,
        listing_id=draw.listing_id,
        units=draw.units,
        opens_at=draw.opens_at,
        closes_at=draw.closes_at,
        payment_seconds=draw.payment_seconds,
        state=report.state.value,
        commitment=draw.commitment,
        seed=report.seed,
        drawn_at=draw.drawn_at,
        entries=report.entries,
        winners=[
            WinnerOut(
                buyer_id=a.entry.buyer_id,
                rank=a.entry.rank or 0,
                order_id=a.entry.order_id or "",
                status=None if a.status is None else a.status.value,
            )
            for a in report.winners
        ],
        waiting=[RankedOut(buyer_id=e.buyer_id, rank=e.rank or 0) for e in report.waiting],
        passed_over=[
            PassedOverOut(buyer_id=e.buyer_id, rank=e.rank or 0, reason=e.passed_over or "")
            for e in report.passed_over
        ],
    )


def draw_entries_out(draw: Draw, buyer_ids: list[str]) -> DrawEntriesOut:
    return DrawEntriesOut(
        draw_id=draw.draw_id,
        commitment=draw.commitment,
        seed=draw.seed if draw.drawn_at is not None else None,
        units=draw.units,
        entries_digest=entries_digest(buyer_ids),
        entries=buyer_ids,
    )
