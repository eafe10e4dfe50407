"""Order use cases: place, pay, cancel, ship, read."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from stockguard.domain import rules
from stockguard.domain.errors import (
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    OrderConflict,
    SoldOut,
)
from stockguard.domain.model import (
    Deduction,
    FulfilFrom,
    Holder,
    Listing,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
)
from stockguard.domain.rules import Action
from stockguard.domain.screening import NO_CONTEXT
from stockguard.domain.validation import check_id, check_pairs, check_quantity
from stockguard.service import presale
from stockguard.service.admission import AdmissionGate
from stockguard.service.base import OrderContext, ServiceBase, count_sold, pass_on
from stockguard.service.gated import GatedPlacement
from stockguard.service.sold_out import Proof
from stockguard.stores.base import PlaceRequest, Transaction, quota_used

MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer to a placement: the order, and whether this call created it."""

    order: Order
    created: bool


def parse_lines(lines: Sequence[OrderLine | tuple[str, int]]) -> tuple[OrderLine, ...]:
    """Validate order lines: 1 to 100, valid ids and quantities, each listing once."""
    if isinstance(lines, list | tuple):
        lines = [(ln.listing_id, ln.quantity) if isinstance(ln, OrderLine) else ln for ln in lines]
    parsed = tuple(
        OrderLine(check_id(listing_id, "listing_id"), check_quantity(quantity, "quantity"))
        for listing_id, quantity in check_pairs(lines, "lines", limit=MAX_LINES)
    )
    if len({line.listing_id for line in parsed}) != len(parsed):
        raise InvalidInput("each listing may appear on one line only; merge the lines")
    return parsed


class OrderService(ServiceBase):
    def place_order(
        self, order_id: str, buyer_id: str, lines: Sequence[OrderLine | tuple[str, int]]
    ) -> Placement:
        """Place an order: all lines get stock (or pass the check, under `payment`) or none does.

        The order id is the idempotency key: the same body again returns the order
        as it is now; a different body under the same id raises OrderConflict.
        """
        return self.placing(order_id, buyer_id, lines).result()

    def placing(
        self,
        order_id: str,
        buyer_id: str,
        lines: Sequence[OrderLine | tuple[str, int]],
        context: OrderContext | None = None,
    ) -> Future[Placement]:
        """``place_order`` for callers that must not block (an event loop): bad input, and a
        refusal known without waiting (a sold-out listing, a rate limit), raise here; every
        other answer arrives through the future once decided and committed."""
        check_id(order_id, "order_id")
        check_id(buyer_id, "buyer_id")
        parsed = parse_lines(lines)
        known = NO_CONTEXT if context is None else self._buyer_context(context)
        if self._rate_limits is not None:
            self._rate_limits.check(buyer_id, known.ip)
        request = PlaceRequest(order_id, buyer_id, parsed, self.clock(), known)
        if self._gated is not None and len(parsed) == 1:
            return self._gated.placing(request)
        return self.placing_in_store(request)

    def use_gate(self, gate: AdmissionGate) -> None:
        """Put an admission gate in front of the store for single-line orders (``service.gated``)."""
        self._gated = GatedPlacement(self, gate)

    def placing_in_store(self, request: PlaceRequest) -> Future[Placement]:
        """The placement without a gate: refused from memory or by a read when sold out, else written."""
        refused = self.refused_from_memory(request)
        if refused is not None:
            return refused
        if self._sold_out.suspects_any(line.listing_id for line in request.lines):
            # The version is taken before the read: a proof it leaves dies with any later change.
            self.refuse_if_read_proves_sold_out(request, self.store.stock_version())
        return self.submit(request)

    def refused_from_memory(self, request: PlaceRequest) -> Future[Placement] | None:
        """The refusal of a standing sold-out proof (a replay still gets its order), or None."""
        if not self._sold_out.suspects_any(line.listing_id for line in request.lines):
            return None
        refused = self._sold_out.refusing(request.lines, self.store.stock_version(), request.now)
        return None if refused is None else self.refuse_unless_replayed(request, refused)

    def submit(self, request: PlaceRequest) -> Future[Placement]:
        """Queue the placement on the store's write path."""
        # A store's one-step placement keeps no device, IP or address: orders carrying them
        # are decided by the service's own code.
        one_step = request if request.context is NO_CONTEXT else None
        future = self.store.submit(lambda tx: self._place(tx, request), placing=one_step)
        future.add_done_callback(lambda done: self._learn_sold_out(done, request))
        return future

    def _learn_sold_out(self, done: Future[Placement], request: PlaceRequest) -> None:
        if done.cancelled():
            return  # the caller stopped listening; the outcome tells nothing here
        if isinstance(done.exception(), SoldOut):
            self._sold_out.suspect(line.listing_id for line in request.lines)
        else:
            self._sold_out.clear(line.listing_id for line in request.lines)

    def refuse_unless_replayed(self, request: PlaceRequest, refused: OrderLine) -> Future[Placement]:
        """A standing proof refuses the order, unless its id is a replay, which answers with its order.

        One lookup of the order id. A store that answers it at once (a local
        file) gets the refusal raised here; one across the network answers it
        from a thread of its own, and the refusal comes through the future.
        """
        refusal = SoldOut(f"listing {refused.listing_id!r} is sold out")
        exists = self.store.order_exists(request.order_id)
        if exists.done():
            if exists.result():
                return self.submit(request)
            raise refusal
        answer: Future[Placement] = Future()

        def on_lookup(looked_up: Future[bool]) -> None:
            error = looked_up.exception()
            if error is not None:
                answer.set_exception(error)
            elif looked_up.result():
                pass_on(self.submit(request), answer)
            else:
                answer.set_exception(refusal)

        exists.add_done_callback(on_lookup)
        return answer

    def refuse_if_read_proves_sold_out(
        self, request: PlaceRequest, version: Hashable | None
    ) -> dict[str, int] | None:
        """Raise SoldOut when a read alone proves the order cannot get stock, and leave a proof.

        The refusal is as true as a locked one: at the moment of the read the
        stock was not there. Anything that could change the answer (a replay of
        a placed order, holds waiting to expire, an unknown listing) goes on to
        the write path instead. Answers the units found sellable per listing
        (None: the read could not tell).
        """
        lines, now = request.lines, request.now
        with self.store.read() as tx:
            if tx.order(request.order_id) is not None or tx.has_due(now):
                return None
            until = tx.next_expiry()
            sellable: dict[str, int] = {}
            for line in lines:
                listing = tx.listing(line.listing_id)
                if listing is None:
                    return None
                levels = tx.levels([c.sku for c in listing.components])
                used = quota_used(tx, listing, now)
                # An order takes all its units on hand, or all ahead of a shipment: the larger wins.
                ahead = presale.presale_left(tx, listing, levels, used) or 0
                sellable[line.listing_id] = max(rules.sellable(listing, levels, used), ahead)
        refused = next((line for line in lines if sellable[line.listing_id] < line.quantity), None)
        if refused is None:
            self._sold_out.clear(sellable)
            return sellable
        if version is not None:
            for listing_id, units in sellable.items():
                self._sold_out.prove(listing_id, Proof(version, units, until))
        raise SoldOut(f"listing {refused.listing_id!r} is sold out")

    def _place(self, tx: Transaction, request: PlaceRequest) -> Placement:
        # A store that can decide a plain new order in one step does (PostgreSQL: one round trip).
        at_once = tx.place_at_once(request)
        if at_once is not None:
            return Placement(at_once, created=True)
        order_id, buyer_id, lines, now = request.order_id, request.buyer_id, request.lines, request.now
        existing = tx.order(order_id)
        if existing is not None:
            if (existing.buyer_id, existing.lines, existing.context) != (buyer_id, lines, request.context):
                raise OrderConflict(f"order {order_id!r} exists with a different body")
            return Placement(self._expired_if_due(tx, existing, now), created=False)
        # Holds that ran out release their stock, limits and quota before anything is decided.
        self._sweep(tx, now)
        return Placement(self._new_order(tx, request), created=True)

    def _new_order(
        self, tx: Transaction, request: PlaceRequest, *, hold_until: datetime | None = None
    ) -> Order:
        """Decide and write a new order by every rule; ``hold_until`` makes it a hold until then
        whatever the listing's deduction (a draw's winner)."""
        order_id, buyer_id, lines, now = request.order_id, request.buyer_id, request.lines, request.now
        listings = {line.listing_id: self._listing(tx, line.listing_id) for line in lines}
        deduction = Deduction.RESERVE if hold_until is not None else _one_deduction(listings.values())
        screened = [listing.screening for listing in listings.values() if listing.screening is not None]
        if screened:
            self._screen(tx, buyer_id, screened, now)
        need = rules.required_units(lines, listings)
        # Lock the items' stock first (in sku order, in stores with row locks):
        # from here on, one placement at a time decides for these items, so the
        # limit and quota reads below cannot race another placement.
        levels = tx.levels(need)
        order = Order(
            order_id, buyer_id, lines, deduction, OrderStatus.PLACED, now, now, context=request.context
        )
        _check_limits(tx, order, listings)
        _check_quotas(tx, lines, listings, now)
        # Under `payment` nothing is held, but an order that could not be paid now is refused now.
        found = presale.allocate(tx, need, levels, listings, order)
        if deduction is Deduction.PAYMENT:
            tx.insert_order(order)
            return order
        expires_at = hold_until
        if deduction is Deduction.RESERVE and expires_at is None:
            expires_at = now + timedelta(seconds=min(listing.hold_seconds for listing in listings.values()))
        order = replace(
            order,
            status=OrderStatus.RESERVED,
            expires_at=expires_at,
            allocations=found.allocations,
            fulfil_from=found.source,
            expected_at=found.expected_at,
        )
        tx.insert_order(order)
        tx.record(rules.hold_movements(found.allocations, order_id, now, found.source))
        count_sold(tx, order, 1, listings)
        return order

    def pay(self, order_id: str) -> Order:
        """Pay: commit the hold, or take the stock now.

        Under `payment` deduction, and for an order whose hold expired, the stock
        is taken at payment in one atomic step; when none is left the payment is
        refused (SoldOut, or HoldExpired after an expiry) and nothing is taken.
        """
        check_id(order_id, "order_id")
        now = self.clock()
        before: list[OrderStatus] = []  # the order's status when the payment began
        outcome = self.store.atomic(lambda tx: self._pay(tx, order_id, now, before))
        if isinstance(outcome, HoldExpired):
            raise outcome
        if self._gated is not None and before[-1] is OrderStatus.EXPIRED:
            # Told after the commit: the gate then counts the order again, as the store does.
            self._gated.held_again(outcome)
        return outcome

    def _pay(
        self, tx: Transaction, order_id: str, now: datetime, before: list[OrderStatus]
    ) -> Order | HoldExpired:
        # Payment may take stock: holds that ran out must not stand in the way.
        # The order is read after the sweep, which may have expired it.
        self._sweep(tx, now)
        order = self._expired_if_due(tx, self._order(tx, order_id), now)
        before.append(order.status)
        if rules.is_replay(order, Action.PAY):
            return order
        rules.check_transition(order, Action.PAY)
        if order.status is OrderStatus.RESERVED:
            tx.record(rules.commit_movements(order, now))
            paid = replace(order, status=OrderStatus.PAID, updated_at=now)
            tx.update_order(paid)
            return paid
        try:
            return self._take_at_payment(tx, order, now)
        except (SoldOut, LimitExceeded) as no_stock:
            if order.status is OrderStatus.PLACED:
                raise
            # Returned, not raised, so the transaction commits the expiry itself.
            return HoldExpired(
                f"the hold of order {order_id!r} expired and cannot be taken again: {no_stock.detail}"
            )

    def _take_at_payment(self, tx: Transaction, order: Order, now: datetime) -> Order:
        listings = {ln.listing_id: self._listing(tx, ln.listing_id) for ln in order.lines}
        need = rules.required_units(order.lines, listings)
        levels = tx.levels(need)  # locked before the limit and quota reads, as in placement
        if order.status is OrderStatus.EXPIRED:
            # An expired order stopped counting against the limits; paying makes it count again.
            _check_limits(tx, order, listings)
        _check_quotas(tx, order.lines, listings, now)
        found = presale.allocate(tx, need, levels, listings, order)
        tx.record(rules.take_movements(found.allocations, order.order_id, now, found.source))
        paid = replace(
            order,
            status=OrderStatus.PAID,
            updated_at=now,
            allocations=found.allocations,
            expires_at=None,
            fulfil_from=found.source,
            expected_at=found.expected_at,
        )
        tx.update_order(paid)
        count_sold(tx, paid, 1, listings)
        return paid

    def cancel(self, order_id: str) -> Order:
        """Cancel an unshipped order; whatever it holds or took goes back to stock."""
        return self._end(order_id, Action.CANCEL)

    def ship(self, order_id: str) -> Order:
        """The paid goods left the warehouse: on_hand and committed go down."""
        return self._end(order_id, Action.SHIP)

    def _end(self, order_id: str, action: Action) -> Order:
        check_id(order_id, "order_id")
        now = self.clock()
        return self.store.atomic(lambda tx: self._end_in(tx, order_id, action, now))

    def _end_in(self, tx: Transaction, order_id: str, action: Action, now: datetime) -> Order:
        order = self._expired_if_due(tx, self._order(tx, order_id), now)
        if rules.is_replay(order, action):
            return order
        rules.check_transition(order, action)
        if action is Action.SHIP and order.fulfil_from is FulfilFrom.INCOMING:
            raise InvalidTransition(f"cannot ship order {order_id!r}: its goods have not arrived yet")
        if action is Action.SHIP:
            tx.record(rules.ship_movements(order, now))
        else:
            tx.record(rules.return_movements(order, Reason.CANCEL, now))
            if order.holds_stock:  # an expired or placed order holds nothing to give back
                count_sold(tx, order, -1)
            self._ended(tx, order, now)
        ended = replace(order, status=rules.TARGET[action], updated_at=now)
        tx.update_order(ended)
        return ended

    def get_order(self, order_id: str) -> Order:
        check_id(order_id, "order_id")
        now = self.clock()
        with self.store.read() as tx:
            order = self._order(tx, order_id)
        if rules.is_due(order, now):
            self.expire_due()
            with self.store.read() as tx:
                order = self._order(tx, order_id)
        return order

    # -- helpers
    def _expired_if_due(self, tx: Transaction, order: Order, now: datetime) -> Order:
        """Expiry holds on every read: a due hold is released before anything else."""
        if rules.is_due(order, now):
            return self._expire(tx, order, now)
        return order


def _one_deduction(listings: Iterable[Listing]) -> Deduction:
    kinds = {listing.deduction for listing in listings}
    if len(kinds) > 1:
        raise InvalidInput("all lines of an order must use the same deduction strategy")
    return kinds.pop()


def _check_limits(tx: Transaction, order: Order, listings: Mapping[str, Listing]) -> None:
    """The listings' limits per buyer, device and delivery address, each counting the live and
    paid units of whoever the order counts for. An order must name the device and the address
    a limit counts them by."""
    for line in order.lines:
        listing = listings[line.listing_id]
        for holder in Holder:
            limit = listing.limit_of(holder)
            if limit is None:
                continue
            who = order.holder(holder)
            if who is None:
                field = "device_id" if holder is Holder.DEVICE else "address"
                raise InvalidInput(f"listing {line.listing_id!r} limits orders per {holder}: send {field}")
            used = tx.units_held(holder, who, line.listing_id)
            if used + line.quantity > limit:
                raise LimitExceeded.of(holder, who, line.listing_id, used, limit)


def _check_quotas(
    tx: Transaction, lines: Iterable[OrderLine], listings: Mapping[str, Listing], now: datetime
) -> None:
    for line in lines:
        listing = listings[line.listing_id]
        if listing.quota is not None and quota_used(tx, listing, now) + line.quantity > listing.quota:
            raise SoldOut.quota(line.listing_id, listing.quota)
