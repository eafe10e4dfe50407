"""What every use case shares: the store, the clock, and a few loaders."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from stockguard.domain import rules
from stockguard.domain.draws import Draw
from stockguard.domain.errors import (
    InvalidInput,
    NotEligible,
    UnknownDraw,
    UnknownItem,
    UnknownListing,
    UnknownOrder,
)
from stockguard.domain.model import (
    Item,
    ItemStock,
    Listing,
    Order,
    OrderStatus,
    Reason,
)
from stockguard.domain.quotas import period_start
from stockguard.domain.screening import NO_CONTEXT, BuyerContext, Failure, Screening, hash_address, screen
from stockguard.domain.validation import check_id, check_ip, check_text
from stockguard.service.sold_out import SoldOutBoard
from stockguard.stores.base import Store, Transaction

if TYPE_CHECKING:
    from stockguard.service.gated import GatedPlacement
    from stockguard.service.rate_limits import RateLimits

Clock = Callable[[], datetime]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


# How many expired holds one sweep releases in one transaction: enough to
# catch up quickly, small enough that the write lock is never held for long.
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What a shop may tell about an order's buyer beyond their id: device, IP, delivery address.

    The address itself is never kept: the service stores a keyed hash of it.
    """

    device_id: str | None = None
    ip: str | None = None
    address: str | None = None
    # Take stock only from these warehouses, first choice first (e.g. nearest to the buyer).
    warehouses: Sequence[str] | None = None


class ServiceBase:
    def __init__(self, store: Store, clock: Clock = utc_now, *, address_key: bytes | None = None) -> None:
        """``address_key``: the secret delivery addresses are hashed with. Every process sharing a
        store needs the same one; without it, a random key that lives as long as this object."""
        self.store = store
        self.clock = clock
        store.use_clock(clock)
        # Listings this process saw sold out: their buyers are refused off the write path.
        self._sold_out = SoldOutBoard()
        self._gated: GatedPlacement | None = None
        self._rate_limits: RateLimits | None = None
        self._address_key = address_key if address_key is not None else secrets.token_bytes(32)

    def use_rate_limits(self, limits: RateLimits) -> None:
        """Count order placements per buyer and per IP; None of either limit set: no counting at all."""
        self._rate_limits = limits if limits.enabled else None

    def _buyer_context(self, context: OrderContext) -> BuyerContext:
        """Validate what the shop told about the buyer, and hash the address."""
        device_id = None if context.device_id is None else check_id(context.device_id, "device_id")
        ip = None if context.ip is None else check_ip(context.ip)
        address = None if context.address is None else check_text(context.address, "address", max_length=500)
        warehouses = _named_warehouses(context.warehouses)
        if (device_id, ip, address, warehouses) == (None, None, None, ()):
            return NO_CONTEXT
        address_hash = None if address is None else hash_address(self._address_key, address)
        return BuyerContext(device_id, ip, address_hash, warehouses)

    def _screen(self, tx: Transaction, buyer_id: str, screenings: Iterable[Screening], now: datetime) -> None:
        """Raise NotEligible naming every rule of these screenings the buyer fails."""
        profile, override = tx.buyer(buyer_id), tx.override(buyer_id)
        failures: dict[str, Failure] = {}
        for screening in screenings:
            for failure in screen(screening, profile, override, now):
                failures.setdefault(failure.reason, failure)
        if failures:
            found = list(failures.values())
            raise NotEligible(
                f"buyer {buyer_id!r} may not buy this: " + "; ".join(f.reason for f in found),
                [f.reason for f in found],
                [f.rule for f in found],
            )

    # -- loaders used inside transactions
    @staticmethod
    def _item(tx: Transaction, sku: str) -> Item:
        item = tx.item(sku)
        if item is None:
            raise UnknownItem(sku)
        return item

    @staticmethod
    def _listing(tx: Transaction, listing_id: str) -> Listing:
        listing = tx.listing(listing_id)
        if listing is None:
            raise UnknownListing(listing_id)
        return listing

    @staticmethod
    def _order(tx: Transaction, order_id: str) -> Order:
        order = tx.order(order_id)
        if order is None:
            raise UnknownOrder(order_id)
        return order

    @staticmethod
    def _draw(tx: Transaction, draw_id: str) -> Draw:
        draw = tx.draw(draw_id)
        if draw is None:
            raise UnknownDraw(draw_id)
        return draw

    @staticmethod
    def _item_stock(tx: Transaction, item: Item) -> ItemStock:
        levels = tx.levels([item.sku]).get(item.sku, [])
        return ItemStock(item, tuple(sorted(levels, key=lambda lv: lv.warehouse)))

    # -- expiry, shared by the sweeper and by every read that must not see a stale hold
    def _expire(self, tx: Transaction, order: Order, now: datetime) -> Order:
        tx.record(rules.return_movements(order, Reason.EXPIRE, now))
        expired = replace(order, status=OrderStatus.EXPIRED, updated_at=now)
        tx.update_order(expired)
        count_sold(tx, order, -1)
        self._ended(tx, order, now)
        return expired

    def _ended(self, tx: Transaction, order: Order, now: datetime) -> None:
        """``order`` (as it was) stopped counting, expired or cancelled, in the transaction that
        ended it: a gate in front of the store hears of it (draws also pass its unit on here).
        Told before the commit: should the transaction fail after all, the gate counts the
        order as ended while the store still holds it, which the store's own checks make safe."""
        if self._gated is not None:
            self._gated.ended(order)

    def _sweep(self, tx: Transaction, now: datetime) -> int:
        due = tx.due_orders(now, SWEEP_BATCH)
        if due:
            # Lock the stock they give back in sku order, like every other writer.
            tx.levels({a.sku for order in due for a in order.allocations})
        for order in due:
            self._expire(tx, order, now)
        return len(due)

    def expire_due(self) -> int:
        """Release every hold whose time ran out; returns how many. Safe to run anywhere, any time."""
        released = 0
        while True:
            now = self.clock()
            count = self.store.atomic(lambda tx: self._sweep(tx, now))  # noqa: B023 (runs now)
            released += count
            if count < SWEEP_BATCH:
                return released

    def _sweep_if_due(self) -> None:
        """Make reads honest: release due holds before reporting stock."""
        now = self.clock()
        with self.store.read() as tx:
            due = tx.has_due(now)
        if due:
            self.expire_due()


def count_sold(
    tx: Transaction, order: Order, sign: int, listings: Mapping[str, Listing] | None = None
) -> None:
    """Keep each listing's sold units (and, for a quota that starts again, the units of the
    order's period) in step when an order starts or stops holding stock."""
    for line in order.lines:
        tx.add_sold(line.listing_id, sign * line.quantity)
        listing = listings[line.listing_id] if listings is not None else tx.listing(line.listing_id)
        if listing is not None and listing.quota_period is not None:
            start = period_start(listing.quota_period, order.created_at)
            tx.add_period_units(line.listing_id, start, sign * line.quantity)


MAX_NAMED_WAREHOUSES = 20


def _named_warehouses(warehouses: Sequence[str] | None) -> tuple[str, ...]:
    if warehouses is None:
        return ()
    if not isinstance(warehouses, list | tuple) or not 1 <= len(warehouses) <= MAX_NAMED_WAREHOUSES:
        raise InvalidInput(f"warehouses must list 1 to {MAX_NAMED_WAREHOUSES} warehouses")
    named = tuple(check_id(name, "warehouse") for name in warehouses)
    if len(set(named)) != len(named):
        raise InvalidInput("each warehouse may be named once")
    return named


def pass_on(source: Future[T], target: Future[T]) -> None:
    """Settle ``target`` as ``source`` settles."""

    def copy(done: Future[T]) -> None:
        error = done.exception()
        if error is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)
