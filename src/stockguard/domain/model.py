"""The stock model: plain data, no I/O.

Times are timezone-aware ``datetime`` values passed in by the caller; the
domain never reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime

from stockguard.domain.screening import NO_CONTEXT, BuyerContext, Screening


class Deduction(enum.StrEnum):
    """When a listing's stock is taken (DOMAIN.md, the three strategies)."""

    ORDER = "order"  # held at placement, no time limit
    PAYMENT = "payment"  # nothing held at placement; taken atomically at payment
    RESERVE = "reserve"  # held at placement for hold_seconds, committed at payment


class OrderStatus(enum.StrEnum):
    PLACED = "placed"  # accepted under `payment` deduction; holds nothing yet
    RESERVED = "reserved"  # stock is held (may expire under `reserve`)
    PAID = "paid"  # stock is committed to the buyer
    SHIPPED = "shipped"  # the goods left the warehouse; final
    CANCELLED = "cancelled"  # ended by the shop or buyer; stock returned; final
    EXPIRED = "expired"  # a `reserve` hold ran out; stock returned; may still be paid


class Holder(enum.StrEnum):
    """Whose live and paid units a listing's limits count."""

    BUYER = "buyer"  # per_buyer_limit
    DEVICE = "device"  # per_device_limit: the order's device_id
    ADDRESS = "address"  # per_address_limit: the keyed hash of the order's delivery address


class WarehouseChoice(enum.StrEnum):
    """Which warehouses a listing's holds take stock from first (an order naming warehouses overrides it)."""

    PRIORITY = "priority"  # lower priority numbers first, then by name
    MOST_AVAILABLE = "most_available"  # the warehouse with the most available units first


class QuotaPeriod(enum.StrEnum):
    """How often a listing's quota starts again (calendar periods in UTC)."""

    DAY = "day"
    WEEK = "week"  # from Monday 00:00
    MONTH = "month"
    YEAR = "year"


class Counter(enum.StrEnum):
    """The stock counters of one item in one warehouse."""

    ON_HAND = "on_hand"
    RESERVED = "reserved"
    COMMITTED = "committed"
    SAFETY = "safety"
    INCOMING = "incoming"
    PRESOLD = "presold"  # units of incoming shipments sold ahead (domain.presale); never on hand


class FulfilFrom(enum.StrEnum):
    """Where an order's units come from."""

    STOCK = "stock"  # units on hand (reserved or committed)
    INCOMING = "incoming"  # units of shipments still on their way (presold)


class Reason(enum.StrEnum):
    """Why a movement happened."""

    RECEIPT = "receipt"  # goods arrived
    COUNT = "count"  # a stock count corrected on_hand
    SAFETY = "safety"  # the safety stock was changed
    HOLD = "hold"  # an order took stock
    COMMIT = "commit"  # a held unit was paid for
    CANCEL = "cancel"  # an order was cancelled and gave its stock back
    EXPIRE = "expire"  # a hold ran out and gave its stock back
    SHIP = "ship"  # paid goods left the warehouse
    INCOMING = "incoming"  # a shipment was announced
    ARRIVAL = "arrival"  # an announced shipment arrived (or was written off)


@dataclass(frozen=True, slots=True)
class Warehouse:
    name: str
    priority: int = 100  # lower numbers are allocated from first


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    safety: int = 0  # safety stock kept back in each warehouse that stocks the item


@dataclass(slots=True)
class Level:
    """One item's counters in one warehouse."""

    sku: str
    warehouse: str
    on_hand: int = 0
    reserved: int = 0
    committed: int = 0
    safety: int = 0
    incoming: int = 0
    presold: int = 0
    # The warehouse's allocation priority, read with the level so allocation
    # needs no second lookup; not a counter, never in the ledger.
    priority: int = 100

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.committed - self.safety

    @property
    def short_by(self) -> int:
        """Units that must arrive before this level keeps every promise (0 when it does).

        Only a level that promised something can be short: an empty warehouse
        below its safety stock broke no promise.
        """
        if self.reserved + self.committed == 0:
            return 0
        return max(0, -self.available)

    @property
    def short(self) -> bool:
        """More is promised than the count allows: new sales of the item stop."""
        return self.short_by > 0

    def get(self, counter: Counter) -> int:
        value: int = getattr(self, counter.value)
        return value

    def apply(self, movement: Movement) -> None:
        setattr(self, movement.counter.value, self.get(movement.counter) + movement.delta)

    def copy(self) -> Level:
        return replace(self)


@dataclass(frozen=True, slots=True)
class Component:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Presale:
    """A listing's terms for selling incoming stock once the stock on hand is gone."""

    arrives_by: datetime  # only shipments expected at or before this count
    share_percent: int  # at most this share of their units may be sold ahead (1..100)


@dataclass(frozen=True, slots=True)
class Listing:
    listing_id: str
    title: str
    components: tuple[Component, ...]
    deduction: Deduction
    hold_seconds: int = 900
    per_buyer_limit: int | None = None
    quota: int | None = None
    # Who may buy (None: anyone), and limits counted per device and per delivery address.
    screening: Screening | None = None
    per_device_limit: int | None = None
    per_address_limit: int | None = None
    # None: the quota counts for all time.
    quota_period: QuotaPeriod | None = None
    warehouse_choice: WarehouseChoice = WarehouseChoice.PRIORITY
    presale: Presale | None = None

    def limit_of(self, holder: Holder) -> int | None:
        if holder is Holder.BUYER:
            return self.per_buyer_limit
        return self.per_device_limit if holder is Holder.DEVICE else self.per_address_limit


@dataclass(frozen=True, slots=True)
class OrderLine:
    listing_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units of one item an order holds in one warehouse."""

    sku: str
    warehouse: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    buyer_id: str
    lines: tuple[OrderLine, ...]
    deduction: Deduction
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    allocations: tuple[Allocation, ...] = ()
    context: BuyerContext = NO_CONTEXT
    fulfil_from: FulfilFrom = FulfilFrom.STOCK
    expected_at: datetime | None = None  # when presold goods are expected to arrive

    def holder(self, holder: Holder) -> str | None:
        """Who the order counts for under a limit (None: the order did not say)."""
        if holder is Holder.BUYER:
            return self.buyer_id
        return self.context.device_id if holder is Holder.DEVICE else self.context.address_hash

    @property
    def holds_stock(self) -> bool:
        return self.status in HOLDING_STATUSES


@dataclass(frozen=True, slots=True)
class HeldLine:
    """A line of a reserved order: units held for a buyer who has not paid yet."""

    order_id: str
    listing_id: str
    quantity: int
    expires_at: datetime | None  # None: held until paid or cancelled (`order` deduction)


@dataclass(frozen=True, slots=True)
class LiveLine:
    """A line of an order that counts against its buyer's limit."""

    order_id: str
    buyer_id: str
    quantity: int


# Orders in these states count against per-buyer limits.
LIVE_OR_PAID = frozenset({OrderStatus.PLACED, OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED})
# Orders in these states hold (reserved) or have taken (committed, shipped) stock,
# so their units count as sold for the listing and its quota.
HOLDING_STATUSES = frozenset({OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED})


@dataclass(frozen=True, slots=True)
class Movement:
    """One append-only ledger row."""

    sku: str
    warehouse: str
    counter: Counter
    delta: int
    reason: Reason
    at: datetime
    order_id: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Shipment:
    """Stock announced as incoming to a warehouse."""

    shipment_id: str
    sku: str
    warehouse: str
    quantity: int
    expected_at: datetime
    received: int | None = None  # None until it arrives

    @property
    def arrived(self) -> bool:
        return self.received is not None


@dataclass(frozen=True, slots=True)
class Drift:
    """A difference `check` found between a stored value and what it should be."""

    what: str
    stored: int
    expected: int

    def __str__(self) -> str:
        return f"{self.what}: stored {self.stored}, expected {self.expected}"


@dataclass(frozen=True, slots=True)
class ItemStock:
    """An item with its levels, as reported to users."""

    item: Item
    levels: tuple[Level, ...] = field(default=())

    def total(self, counter: Counter) -> int:
        return sum(level.get(counter) for level in self.levels)

    @property
    def available(self) -> int:
        return sum(level.available for level in self.levels)

    @property
    def short(self) -> bool:
        return any(level.short for level in self.levels)


@dataclass(frozen=True, slots=True)
class ListingStock:
    """A listing with its derived sellable quantity and units sold."""

    listing: Listing
    sellable: int
    sold: int
    quota_left: int | None = None  # None: no quota
    quota_resets_at: datetime | None = None  # when a quota that starts again does so next
    presale_left: int | None = None  # units it may still sell ahead of incoming shipments
