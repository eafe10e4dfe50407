"""Change events under racing writers: two stores (two connections, two writers) on one database."""

from __future__ import annotations

import threading
from typing import Any

from stockguard import Stockguard, StreamKind, open_store

BOTTLE, BOX = "maotai-500ml", "gift-box"


def data(sg: Stockguard, kind: StreamKind, key: str) -> list[dict[str, Any]]:
    events = sg.events(kind, key, limit=1000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gap-free, in order"
    return [dict(e.data) for e in events]


def sellable(sg: Stockguard, listing_id: str) -> list[int]:
    return [d["sellable"] for d in data(sg, StreamKind.LISTING, listing_id)]


def test_racing_writers_keep_each_stream_gap_free_and_its_last_event_true(shared_store_url: str) -> None:
    """Two stores (two connections, two writers) race on a bundle's two items: whatever the
    interleaving, each stream is numbered without gaps and its last event tells the final state."""
    stores = [open_store(shared_store_url) for _ in range(2)]
    guards = [Stockguard(store) for store in stores]
    try:
        first = guards[0]
        first.put_item(BOTTLE, "Maotai 500 ml")
        first.put_item(BOX, "Gift box")
        first.receive(BOTTLE, 200)
        first.receive(BOX, 200)
        first.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "order")
        first.put_listing("box", "Gift box", [(BOX, 1)], "order")
        first.put_listing("gift-set", "Maotai in a gift box", [(BOTTLE, 1), (BOX, 1)], "order")

        def buy(guard: Stockguard, listing_id: str, worker: int) -> None:
            for n in range(40):
                guard.place_order(f"{listing_id}-{worker}-{n}", f"b-{worker}-{n}", [(listing_id, 1)])

        threads = [
            threading.Thread(target=buy, args=(guard, listing_id, worker))
            for worker, (guard, listing_id) in enumerate(
                [(guards[0], "bottle"), (guards[1], "box"), (guards[0], "box"), (guards[1], "bottle")]
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        for listing_id in ("bottle", "box", "gift-set"):
            assert sellable(first, listing_id)[-1] == first.get_listing(listing_id).sellable == 120
        for sku in (BOTTLE, BOX):
            events = data(first, StreamKind.ITEM, sku)
            assert events[-1]["reserved"] == 80
            # One event per commit: holds that share a group commit share an event.
            assert 2 <= len(events) <= 1 + 80
        assert sellable(first, "gift-set") == sorted(sellable(first, "gift-set"), reverse=True)
    finally:
        for guard in guards:
            guard.close()
