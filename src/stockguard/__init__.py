"""stockguard: inventory deduction that never oversells.

>>> import stockguard
>>> sg = stockguard.connect("memory://")
>>> _ = sg.put_item("maotai-500ml", "Maotai 500 ml")
>>> _ = sg.receive("maotai-500ml", 2)
>>> _ = sg.put_listing("maotai", "Maotai", [("maotai-500ml", 1)], "reserve", hold_seconds=900)
>>> sg.place_order("o-1", "alice", [("maotai", 1)]).order.status.value
'reserved'
"""

from stockguard.bootstrap import connect, open_store
from stockguard.domain.counts import WarehouseCount
from stockguard.domain.draws import Draw, DrawState, Entry
from stockguard.domain.errors import (
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotEligible,
    NotFound,
    OrderConflict,
    RateLimited,
    SoldOut,
    StockguardError,
    Unavailable,
    UnknownBuyer,
    UnknownDraw,
    UnknownItem,
    UnknownListing,
    UnknownOrder,
    UnknownShipment,
)
from stockguard.domain.events import Event, EventType, StreamKind
from stockguard.domain.model import (
    Allocation,
    Component,
    Counter,
    Deduction,
    Drift,
    FulfilFrom,
    Item,
    ItemStock,
    Level,
    Listing,
    ListingStock,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Presale,
    QuotaPeriod,
    Reason,
    Shipment,
    Warehouse,
    WarehouseChoice,
)
from stockguard.domain.screening import BuyerProfile, Screening, Verdict
from stockguard.service import (
    BuyerRecord,
    CountResult,
    DrawReport,
    OrderContext,
    Placement,
    Saved,
    Shortage,
    Stockguard,
)

__all__ = [
    "Allocation",
    "BuyerProfile",
    "BuyerRecord",
    "Component",
    "CountResult",
    "Counter",
    "Deduction",
    "Draw",
    "DrawReport",
    "DrawState",
    "Drift",
    "Entry",
    "Event",
    "EventType",
    "FulfilFrom",
    "HoldExpired",
    "InvalidInput",
    "InvalidTransition",
    "Item",
    "ItemStock",
    "Level",
    "LimitExceeded",
    "Listing",
    "ListingStock",
    "Movement",
    "NotEligible",
    "NotFound",
    "Order",
    "OrderConflict",
    "OrderContext",
    "OrderLine",
    "OrderStatus",
    "Placement",
    "Presale",
    "QuotaPeriod",
    "RateLimited",
    "Reason",
    "Saved",
    "Screening",
    "Shipment",
    "Shortage",
    "SoldOut",
    "Stockguard",
    "StockguardError",
    "StreamKind",
    "Unavailable",
    "UnknownBuyer",
    "UnknownDraw",
    "UnknownItem",
    "UnknownListing",
    "UnknownOrder",
    "UnknownShipment",
    "Verdict",
    "Warehouse",
    "WarehouseChoice",
    "WarehouseCount",
    "connect",
    "open_store",
]
