"""Order use cases: place, pay, cancel, ship, read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from stockguard.domain import rules
from stockguard.domain.errors import (
    HoldExpired,
    InvalidInput,
    LimitExceeded,
    OrderConflict,
    SoldOut,
)
from stockguard.domain.model import (
    Allocation,
    Deduction,
    Listing,
    Order,
    OrderLine,
    OrderStatus,
    Reason,
)
from stockguard.domain.rules import Action
from stockguard.domain.validation import check_id, check_quantity
from stockguard.service.base import ServiceBase, count_sold
from stockguard.stores.base import Transaction

MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer to a placement: the order, and whether this call created it."""

    order: Order
    created: bool


def parse_lines(lines: Iterable[OrderLine | tuple[str, int]]) -> tuple[OrderLine, ...]:
    """Validate order lines: 1 to 100, valid ids and quantities, each listing once."""
    parsed = tuple(line if isinstance(line, OrderLine) else OrderLine(*line) for line in lines)
    if not 1 <= len(parsed) <= MAX_LINES:
        raise InvalidInput(f"an order needs 1 to {MAX_LINES} lines")
    seen: set[str] = set()
    for line in parsed:
        check_id(line.listing_id, "listing_id")
        check_quantity(line.quantity, "quantity")
        if line.listing_id in seen:
            raise InvalidInput(f"listing {line.listing_id!r} appears on two lines; merge them")
        seen.add(line.listing_id)
    return parsed


class OrderService(ServiceBase):
    def place_order(
        self, order_id: str, buyer_id: str, lines: Iterable[OrderLine | tuple[str, int]]
    ) -> Placement:
        """Place an order: all lines get stock (or pass the check, under `payment`) or none does.

        The order id is the idempotency key: the same body again returns the order
        as it is now; a different body under the same id raises OrderConflict.
        """
        check_id(order_id, "order_id")
        check_id(buyer_id, "buyer_id")
        parsed = parse_lines(lines)
        now = self.clock()
        with self.store.write() as tx:
            existing = tx.order(order_id)
            if existing is not None:
                if existing.buyer_id != buyer_id or existing.lines != parsed:
                    raise OrderConflict(f"order {order_id!r} exists with a different body")
                return Placement(self._expired_if_due(tx, existing, now), created=False)
            listings = {line.listing_id: self._listing(tx, line.listing_id) for line in parsed}
            deduction = _one_deduction(listings.values())
            _check_limits(tx, buyer_id, parsed, listings)
            _check_quotas(tx, parsed, listings)
            order = Order(
                order_id, buyer_id, parsed, deduction, OrderStatus.PLACED, created_at=now, updated_at=now
            )
            if deduction is Deduction.PAYMENT:
                # Nothing is held, but an order that could not be paid now is refused now.
                self._allocate(tx, parsed, listings, now)
                tx.insert_order(order)
                return Placement(order, created=True)
            allocations = self._allocate(tx, parsed, listings, now)
            expires_at = None
            if deduction is Deduction.RESERVE:
                hold = min(listing.hold_seconds for listing in listings.values())
                expires_at = now + timedelta(seconds=hold)
            order = replace(
                order, status=OrderStatus.RESERVED, allocations=allocations, expires_at=expires_at
            )
            tx.insert_order(order)
            tx.record(rules.hold_movements(allocations, order_id, now))
            count_sold(tx, order, 1)
            return Placement(order, created=True)

    def pay(self, order_id: str) -> Order:
        """Pay: commit the hold, or take the stock now.

        Under `payment` deduction, and for an order whose hold expired, the stock
        is taken at payment in one atomic step; when none is left the payment is
        refused (SoldOut, or HoldExpired after an expiry) and nothing is taken.
        """
        check_id(order_id, "order_id")
        now = self.clock()
        refusal: HoldExpired | None = None
        with self.store.write() as tx:
            order = self._expired_if_due(tx, self._order(tx, order_id), now)
            if rules.is_replay(order, Action.PAY):
                return order
            rules.check_transition(order, Action.PAY)
            if order.status is OrderStatus.RESERVED:
                tx.record(rules.commit_movements(order.allocations, order_id, now))
                paid = replace(order, status=OrderStatus.PAID, updated_at=now)
                tx.update_order(paid)
                return paid
            try:
                return self._take_at_payment(tx, order, now)
            except (SoldOut, LimitExceeded) as no_stock:
                if order.status is OrderStatus.PLACED:
                    raise
                # Leave the transaction normally so the expiry itself is kept.
                refusal = HoldExpired(
                    f"the hold of order {order_id!r} expired and cannot be taken again: {no_stock.detail}"
                )
        raise refusal

    def _take_at_payment(self, tx: Transaction, order: Order, now: datetime) -> Order:
        listings = {ln.listing_id: self._listing(tx, ln.listing_id) for ln in order.lines}
        if order.status is OrderStatus.EXPIRED:
            # An expired order stopped counting against the limit; paying makes it count again.
            _check_limits(tx, order.buyer_id, order.lines, listings)
        _check_quotas(tx, order.lines, listings)
        allocations = self._allocate(tx, order.lines, listings, now)
        tx.record(rules.take_movements(allocations, order.order_id, now))
        paid = replace(
            order, status=OrderStatus.PAID, updated_at=now, allocations=allocations, expires_at=None
        )
        tx.update_order(paid)
        count_sold(tx, paid, 1)
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
        with self.store.write() as tx:
            order = self._expired_if_due(tx, self._order(tx, order_id), now)
            if order.status is OrderStatus.EXPIRED and action is Action.CANCEL:
                # An expired order already gave its stock back: nothing left to cancel.
                return order
            if rules.is_replay(order, action):
                return order
            rules.check_transition(order, action)
            if action is Action.SHIP:
                tx.record(rules.ship_movements(order, now))
            else:
                tx.record(rules.return_movements(order, Reason.CANCEL, now))
                if order.holds_stock:
                    count_sold(tx, order, -1)
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

    def _allocate(
        self,
        tx: Transaction,
        lines: Sequence[OrderLine],
        listings: Mapping[str, Listing],
        now: datetime,
    ) -> tuple[Allocation, ...]:
        need = rules.required_units(lines, listings)
        priorities = {name: wh.priority for name, wh in tx.warehouses().items()}
        try:
            return rules.allocate(need, tx.levels(need), priorities)
        except SoldOut:
            # Holds that ran out but were not swept yet must not block a sale.
            if not self._sweep(tx, now):
                raise
            return rules.allocate(need, tx.levels(need), priorities)


def _one_deduction(listings: Iterable[Listing]) -> Deduction:
    kinds = {listing.deduction for listing in listings}
    if len(kinds) > 1:
        raise InvalidInput("all lines of an order must use the same deduction strategy")
    return kinds.pop()


def _check_limits(
    tx: Transaction, buyer_id: str, lines: Iterable[OrderLine], listings: Mapping[str, Listing]
) -> None:
    for line in lines:
        limit = listings[line.listing_id].per_buyer_limit
        if limit is None:
            continue
        used = tx.buyer_units(buyer_id, line.listing_id)
        if used + line.quantity > limit:
            raise LimitExceeded(
                f"buyer {buyer_id!r} has {used} of listing {line.listing_id!r}; the limit is {limit}"
            )


def _check_quotas(tx: Transaction, lines: Iterable[OrderLine], listings: Mapping[str, Listing]) -> None:
    for line in lines:
        quota = listings[line.listing_id].quota
        if quota is not None and tx.sold(line.listing_id) + line.quantity > quota:
            raise SoldOut(f"listing {line.listing_id!r} has used its quota of {quota}")
