"""Writing a unit of work's change events, in its own transaction (the outbox pattern).

Every store calls ``write_events`` as the last step of each unit of work, so
an event is committed exactly when its change is. PostgreSQL's one-step
placement does the same on the server (``stockguard_emit``, migration 0007).

The streams' rows are locked first, in one order, and only then are the
values read: of two transactions changing one bundle's two items, the second
to lock the listing's stream reads the first one's committed change, so the
stream's last event always tells the listing's latest state.
"""

from __future__ import annotations

from datetime import datetime

from stockguard.domain import rules
from stockguard.domain.events import (
    NewEvent,
    StreamKind,
    level_changed,
    listing_changed,
    order_changed,
    stream_of,
)
from stockguard.domain.model import Listing
from stockguard.stores.base import Transaction, quota_used


def write_events(tx: Transaction, at: datetime) -> None:
    changes = tx.changes
    if not changes:
        return
    skus = {sku for sku, _ in changes.levels}
    listings: dict[str, Listing] = {listing.listing_id: listing for listing in tx.listings_with(skus)}
    for listing_id in changes.listings - listings.keys():
        listing = tx.listing(listing_id)
        if listing is not None:
            listings[listing_id] = listing
    streams = (
        {stream_of(StreamKind.ITEM, sku) for sku in skus}
        | {stream_of(StreamKind.ORDER, order_id) for order_id in changes.orders}
        | {stream_of(StreamKind.LISTING, listing_id) for listing_id in listings}
    )
    last = tx.lock_streams(streams)
    components = {c.sku for listing in listings.values() for c in listing.components}
    levels = tx.peek_levels(skus | components)
    events: list[NewEvent] = [
        level_changed(level)
        for sku in sorted(skus)
        for level in sorted(levels.get(sku, []), key=lambda lv: lv.warehouse)
        if (sku, level.warehouse) in changes.levels
    ]
    events += [order_changed(changes.orders[order_id]) for order_id in sorted(changes.orders)]
    for listing_id in sorted(listings):
        listing = listings[listing_id]
        sold, used = tx.sold(listing_id), quota_used(tx, listing, at)
        event = listing_changed(listing, rules.sellable(listing, levels, used), sold, used)
        if last.get(event.stream) != event.data:  # the same values again are no change
            events.append(event)
    tx.append_events(events, at)
