"""Placement behind an admission gate: the gate answers the flood, the store decides the rest.

For a single-line order the gate is asked first (``service.admission``):

- ``limit``: refused at once, the store never sees the buyer.
- ``sold_out``: the gate has no tokens. A standing sold-out proof refuses at
  once; else one read of the store tells: nothing left proves the listing
  sold out (every process is told, and refuses from memory), units left mean
  the gate fell behind (a restock, a hold that ended) and gets tokens again.
- ``admitted``: the store places the order by its own rules, so a gate that is
  ahead of the store (restored from an old snapshot, or behind a sale on a
  listing sharing its items) cannot oversell: the store refuses, and the gate
  learns (tokens capped, the order forgotten).
- ``replay``: the store answers the order as it is.
- ``unloaded``, or no answer: the listing is loaded from the store in the
  background, and meanwhile the order takes the path without a gate.

A gate order's end (cancel, expiry) gives its tokens back to the gate.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

from stockguard.domain import rules
from stockguard.domain.errors import LimitExceeded, OutcomeUnknown, SoldOut, StockguardError
from stockguard.domain.model import Listing, LiveLine, Order
from stockguard.service import presale
from stockguard.service.admission import Admission, AdmissionGate, Decision, GateDrift
from stockguard.service.base import pass_on
from stockguard.service.sold_out import Proof
from stockguard.stores.base import PlaceRequest, quota_used

if TYPE_CHECKING:
    from stockguard.service.orders import OrderService, Placement

log = logging.getLogger("stockguard.gate")

# How long another process's sold-out announcement refuses buyers here without a
# look at the gate. It is bounded because the announcement and a restock travel
# different roads and may arrive in either order; after it, this process asks
# the gate (and, when the gate has nothing, reads the store) for itself.
ANNOUNCED_SOLD_OUT_TRUST = timedelta(seconds=1)


class GatedPlacement:
    def __init__(self, orders: OrderService, gate: AdmissionGate) -> None:
        self._orders = orders
        self._gate = gate
        self._loading: set[str] = set()
        self._loads: dict[str, int] = {}  # listing -> loads done by this process
        self._loading_lock = threading.Lock()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stockguard-gate-load")
        gate.on_sold_out_elsewhere(self._sold_out_elsewhere)
        # Starts the store's change watch now: an announcement heard before it is listening
        # could not be trusted (there would be no version to hold it to).
        orders.store.stock_version()

    def placing(self, request: PlaceRequest) -> Future[Placement]:
        refused = self._orders.refused_from_memory(request)
        if refused is not None:
            return refused
        answer: Future[Placement] = Future()
        self._ask(request, answer, again=False)
        return answer

    def ended(self, order: Order) -> None:
        """An order ended: what it held is sellable again, so its tokens come back to the gate;
        an order that held nothing (under `payment`, or expired before) is only forgotten."""
        for line in order.lines:
            if order.holds_stock:
                self._gate.release(line.listing_id, order.order_id)
            else:
                self._gate.forget(line.listing_id, order.order_id)

    def held_again(self, order: Order) -> None:
        """An expired order was paid and took stock again: the gate counts it again (and takes
        its tokens), as an admission of the same order would."""
        for line in order.lines:
            self._gate.admit(line.listing_id, order.order_id, order.buyer_id, line.quantity, _ignored)

    def close(self) -> None:
        self._loader.shutdown(wait=True)
        self._gate.close()

    # -- the answers
    def _ask(self, request: PlaceRequest, answer: Future[Placement], *, again: bool) -> None:
        line = request.lines[0]
        # Loads done before asking: an answer of "unloaded" calls for a load only when no
        # load was done since, which would otherwise replace admissions made after it.
        loads = self._loads.get(line.listing_id, 0)
        self._gate.admit(
            line.listing_id,
            request.order_id,
            request.buyer_id,
            line.quantity,
            lambda decision: self._decided(decision, request, answer, again=again, loads=loads),
        )

    def _decided(
        self,
        decision: Admission | None,
        request: PlaceRequest,
        answer: Future[Placement],
        *,
        again: bool,
        loads: int,
    ) -> None:
        try:
            if decision is None or decision.decision is Decision.UNLOADED:
                # Loaded once this order is decided, so the load sees it. Orders decided
                # meanwhile by other requests may be missed: the store still holds them to
                # the limit, and `stockguard gate reconcile` counts them in again.
                listing_id = request.lines[0].listing_id
                placing = self._orders.placing_in_store(request)
                placing.add_done_callback(lambda _: self._load_soon(listing_id, loads))
                pass_on(placing, answer)
            elif decision.decision is Decision.ADMITTED:
                placed = self._orders.submit(request)
                placed.add_done_callback(lambda settled: self._placed(settled, request, answer))
            elif decision.decision is Decision.REPLAY:
                pass_on(self._orders.submit(request), answer)
            elif decision.decision is Decision.LIMIT:
                line = request.lines[0]
                used, limit = decision.used or 0, decision.limit or 0
                raise LimitExceeded.buyer(request.buyer_id, line.listing_id, used, limit)
            else:
                self._no_tokens(request, answer, again=again)
        except StockguardError as refusal:
            answer.set_exception(refusal)

    def _placed(self, settled: Future[Placement], request: PlaceRequest, answer: Future[Placement]) -> None:
        """The store decided an admitted order; the gate learns what it did not know."""
        listing_id, order_id = request.lines[0].listing_id, request.order_id
        error = settled.exception()
        if isinstance(error, SoldOut):
            # The gate let through more than the store had: it is ahead of the store.
            self._gate.forget(listing_id, order_id)
            self._gate.cap_tokens(listing_id, 0)
        elif isinstance(error, OutcomeUnknown):
            # The order may be in the store: its tokens stay taken, which can only keep the gate
            # behind the store (`stockguard gate reconcile` loads it from the store again), never ahead.
            pass
        elif error is not None or not _own_order(settled.result(), request):
            # Refused for another reason, or an order placed before the gate knew it.
            self._gate.release(listing_id, order_id)
        pass_on(settled, answer)

    def _no_tokens(self, request: PlaceRequest, answer: Future[Placement], *, again: bool) -> None:
        orders, listing_id = self._orders, request.lines[0].listing_id
        refused = orders.refused_from_memory(request)
        if refused is not None:
            pass_on(refused, answer)
            return
        try:
            # The version is taken before the read: a proof it leaves dies with any later change.
            sellable = orders.refuse_if_read_proves_sold_out(request, orders.store.stock_version())
        except SoldOut:
            self._gate.announce_sold_out(listing_id)
            raise
        if sellable is not None:
            self._gate.raise_tokens(listing_id, sellable[listing_id])
            if not again:
                self._ask(request, answer, again=True)
                return
        pass_on(orders.submit(request), answer)

    def _sold_out_elsewhere(self, listing_id: str) -> None:
        version = self._orders.store.stock_version()
        if version is not None:
            until = self._orders.clock() + ANNOUNCED_SOLD_OUT_TRUST
            self._orders._sold_out.prove(listing_id, Proof(version, 0, until))

    # -- loading
    def _load_soon(self, listing_id: str, loads: int) -> None:
        with self._loading_lock:
            if listing_id in self._loading or self._loads.get(listing_id, 0) > loads:
                return
            self._loading.add(listing_id)
        self._loader.submit(self._load, listing_id, loads)

    def _load(self, listing_id: str, loads: int) -> None:
        try:
            if self._loads.get(listing_id, 0) == loads:
                self.load(listing_id)
        except Exception as error:  # the next order that finds the gate unloaded tries again
            log.warning("loading the gate for listing %r failed: %s", listing_id, error)
        finally:
            with self._loading_lock:
                self._loading.discard(listing_id)

    def load_after_change(self, listing_id: str) -> None:
        """Load a listing the catalog just changed; without Redis, its first buyer loads it."""
        try:
            self.load(listing_id)
        except Exception as error:
            log.warning("the gate could not load changed listing %r now: %s", listing_id, error)

    def load(self, listing_id: str) -> bool:
        """Give the gate the store's state of a listing now; False for an unknown listing."""
        seen = self._store_view(listing_id)
        if seen is None:
            return False
        listing, sellable, live = seen
        self._gate.load(listing_id, sellable, listing.per_buyer_limit, live)
        with self._loading_lock:
            self._loads[listing_id] = self._loads.get(listing_id, 0) + 1
        return True

    def drift(self, listing_id: str) -> list[GateDrift]:
        """Where the gate and the store disagree about a loaded listing (none while it is unloaded:
        it is loaded on demand). Meaningful when no sale runs: an order in flight differs too.
        After a Redis lost or restored from a backup, orders that the store decided while the
        gate was being loaded may be missing from it, until ``stockguard gate reconcile``."""
        state = self._gate.state(listing_id)
        seen = self._store_view(listing_id)
        if state is None or seen is None:
            return []
        listing, sellable, live = seen
        store_orders = {line.order_id: (line.buyer_id, line.quantity) for line in live}
        store_buyers: dict[str, int] = {}
        for line in live:
            store_buyers[line.buyer_id] = store_buyers.get(line.buyer_id, 0) + line.quantity
        found: list[GateDrift] = []

        def differs(what: str, gate: object, store: object) -> None:
            if gate != store:
                found.append(GateDrift(listing_id, what, str(gate), str(store)))

        if state.tokens > sellable:
            # More tokens than units: harmless (the store refuses the extra buyers) but drift.
            # Fewer is how a gate stands after a restock: its next sold-out answer reads the
            # store and catches up.
            differs("tokens", state.tokens, sellable)
        differs("limit", state.limit, listing.per_buyer_limit or 0)
        for order_id in sorted(state.orders.keys() ^ store_orders.keys()):
            differs(f"order {order_id}", state.orders.get(order_id, "-"), store_orders.get(order_id, "-"))
        if state.limit:
            for buyer in sorted(state.buyers.keys() | store_buyers.keys()):
                differs(f"buyer {buyer}", state.buyers.get(buyer, 0), store_buyers.get(buyer, 0))
        return found

    def _store_view(self, listing_id: str) -> tuple[Listing, int, list[LiveLine]] | None:
        """The listing, its sellable units and its live lines, in one snapshot of the store."""
        with self._orders.store.read() as tx:
            listing = tx.listing(listing_id)
            if listing is None:
                return None
            levels = tx.levels([component.sku for component in listing.components])
            used = quota_used(tx, listing, self._orders.clock())
            # The gate's tokens count every unit the listing may still sell, ahead of shipments too.
            ahead = presale.presale_left(tx, listing, levels, used) or 0
            sellable = rules.sellable(listing, levels, used) + ahead
            return listing, sellable, tx.live_lines(listing_id)


def _ignored(_: Admission | None) -> None:
    """The answer to an admission made only to count an order in the gate."""


def _own_order(placement: Placement, request: PlaceRequest) -> bool:
    """The order was placed by this request: created now, or found by running the request again
    after the answer to its first run was lost (that run placed it: it bears this request's moment).
    An order placed by an earlier request, before the gate knew of it, was already left out of
    the tokens the gate loaded from the store."""
    return placement.created or placement.order.created_at == request.now
