"""Writing a unit of work's change events, in its own transaction (the outbox pattern).

Every store calls ``write_events`` in the transaction of the changes, last:
the memory store after each unit of work, the SQL store once per group commit
for everything its units of work changed (``writer.py``). So an event is
committed exactly when its change is, and a stream gets one event per commit
with its new values: states inside one transaction were never anyone's to see.
PostgreSQL's one-step placement writes its events on the server
(``stockguard_emit``, migration 0007).

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
from stockguard.stores.base import Changes, Transaction, quota_used


def write_events(tx: Transaction, at: datetime, changes: Changes | None = None) -> None:
    """The events of ``changes`` (default: what ``tx`` itself changed)."""
    changes = tx.changes if changes is None else changes
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
        sold = tx.sold(listing_id)
        used = sold if listing.quota_period is None else quota_used(tx, listing, at)
        event = listing_changed(listing, rules.sellable(listing, levels, used), sold, used)
        if last.get(event.stream) != event.data:  # the same values again are no change
            events.append(event)
    tx.append_events(events, at)
