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
from stockguard.domain.errors import (
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    OrderConflict,
    SoldOut,
    StockguardError,
    Unavailable,
    UnknownItem,
    UnknownListing,
    UnknownOrder,
    UnknownShipment,
)
from stockguard.domain.model import (
    Allocation,
    Component,
    Counter,
    Deduction,
    Drift,
    Item,
    ItemStock,
    Level,
    Listing,
    ListingStock,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
    Shipment,
    Warehouse,
)
from stockguard.service import CountResult, Placement, Saved, Shortage, Stockguard

__all__ = [
    "Allocation",
    "Component",
    "CountResult",
    "Counter",
    "Deduction",
    "Drift",
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
    "NotFound",
    "Order",
    "OrderConflict",
    "OrderLine",
    "OrderStatus",
    "Placement",
    "Reason",
    "Saved",
    "Shipment",
    "Shortage",
    "SoldOut",
    "Stockguard",
    "StockguardError",
    "Unavailable",
    "UnknownItem",
    "UnknownListing",
    "UnknownOrder",
    "UnknownShipment",
    "Warehouse",
    "connect",
    "open_store",
]
