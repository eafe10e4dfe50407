"""Catalog and stock use cases: warehouses, items, listings, goods in, counts, incoming."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from stockguard.domain import rules
from stockguard.domain.errors import InvalidInput, UnknownShipment
from stockguard.domain.model import (
    Component,
    Counter,
    Deduction,
    Item,
    ItemStock,
    Level,
    Listing,
    ListingStock,
    Movement,
    Presale,
    QuotaPeriod,
    Reason,
    Shipment,
    Warehouse,
    WarehouseChoice,
)
from stockguard.domain.quotas import period_end
from stockguard.domain.screening import Screening
from stockguard.domain.validation import check_id, check_pairs, check_quantity, check_text
from stockguard.service import presale
from stockguard.service.base import ServiceBase
from stockguard.service.presale import ArrivalReport, ShipmentIssue
from stockguard.stores.base import Transaction, quota_used

DEFAULT_WAREHOUSE = "main"
ON_HAND, INCOMING = Counter.ON_HAND, Counter.INCOMING
MAX_COMPONENTS = 50
MAX_HOLD_SECONDS = 86_400


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Saved(Generic[T]):
    """The answer to a create-or-replace: the value, and whether this call created it."""

    value: T
    created: bool


@dataclass(frozen=True, slots=True)
class CountResult:
    """A stock count: the item after it, and how many units it is short by (0 if none)."""

    stock: ItemStock
    short_by: int


@dataclass(frozen=True, slots=True)
class Shortage:
    sku: str
    warehouse: str
    short_by: int  # units promised (reserved + committed) beyond on_hand - safety


class CatalogService(ServiceBase):
    # -- warehouses
    def put_warehouse(self, name: str, priority: int = 100) -> Warehouse:
        """Create or change a warehouse; holds take from lower priority numbers first."""
        check_id(name, "warehouse")
        check_quantity(priority, "priority", minimum=0)
        warehouse = Warehouse(name, priority)
        self.store.atomic(lambda tx: tx.put_warehouse(warehouse))
        return warehouse

    # -- items
    def put_item(self, sku: str, name: str, safety: int = 0) -> Saved[ItemStock]:
        """Create or rename an item; ``safety`` units are kept back in each of its warehouses."""
        check_id(sku, "sku")
        check_text(name, "name")
        check_quantity(safety, "safety", minimum=0)
        now = self.clock()

        def work(tx: Transaction) -> Saved[ItemStock]:
            existing = tx.item(sku)
            item = Item(sku, name, safety)
            tx.put_item(item)
            if existing is not None and existing.safety != safety:
                levels = tx.levels([sku]).get(sku, [])
                changes = [_safety_change(level, safety, now) for level in levels]
                tx.record([change for change in changes if change.delta])
            return Saved(self._item_stock(tx, item), created=existing is None)

        return self.store.atomic(work)

    def get_item(self, sku: str) -> ItemStock:
        check_id(sku, "sku")
        self._sweep_if_due()
        with self.store.read() as tx:
            return self._item_stock(tx, self._item(tx, sku))

    def receive(
        self, sku: str, quantity: int, warehouse: str = DEFAULT_WAREHOUSE, reference: str | None = None
    ) -> ItemStock:
        """Goods arrived in a warehouse: on_hand goes up."""
        check_id(sku, "sku")
        check_quantity(quantity, "quantity")
        check_id(warehouse, "warehouse")
        if reference is not None:
            check_text(reference, "reference")
        now = self.clock()

        def work(tx: Transaction) -> ItemStock:
            item = self._item(tx, sku)
            ensure_level(tx, item, warehouse, now)
            tx.record([Movement(sku, warehouse, ON_HAND, quantity, Reason.RECEIPT, now, reference=reference)])
            return self._item_stock(tx, item)

        return self.store.atomic(work)

    def count(self, sku: str, counted: int, reason: str, warehouse: str = DEFAULT_WAREHOUSE) -> CountResult:
        """A stock count sets on_hand; a count below what is promised is kept and reported.

        The shortage stops new sales of the item until receipts or cancellations mend it.
        """
        check_id(sku, "sku")
        check_quantity(counted, "counted", minimum=0)
        check_id(warehouse, "warehouse")
        check_text(reason, "reason")
        now = self.clock()

        def work(tx: Transaction) -> CountResult:
            self._sweep(tx, now)
            item = self._item(tx, sku)
            level = ensure_level(tx, item, warehouse, now)
            delta = counted - level.on_hand
            if delta:
                tx.record([Movement(sku, warehouse, ON_HAND, delta, Reason.COUNT, now, reference=reason)])
            stock = self._item_stock(tx, item)
            after = next(lv for lv in stock.levels if lv.warehouse == warehouse)
            return CountResult(stock, short_by=after.short_by)

        return self.store.atomic(work)

    def get_shipment(self, shipment_id: str) -> Shipment:
        check_id(shipment_id, "shipment_id")
        with self.store.read() as tx:
            shipment = tx.shipment(shipment_id)
        if shipment is None:
            raise UnknownShipment(shipment_id)
        return shipment

    def shipment_issues(self) -> list[ShipmentIssue]:
        """Presale orders at risk: shipments past their expected date, and items whose presold units
        pass what is still on its way."""
        self._sweep_if_due()
        now = self.clock()
        with self.store.read() as tx:
            return presale.shipment_issues(tx, now)

    def shortages(self) -> list[Shortage]:
        """Every item and warehouse where more is promised than the stock allows."""
        self._sweep_if_due()
        with self.store.read() as tx:
            return [Shortage(lv.sku, lv.warehouse, lv.short_by) for lv in tx.all_levels() if lv.short]

    # -- incoming shipments
    def expect(
        self,
        shipment_id: str,
        sku: str,
        quantity: int,
        expected_at: datetime,
        warehouse: str = DEFAULT_WAREHOUSE,
    ) -> Shipment:
        """Announce a shipment in transit: incoming goes up until it arrives. Replays change nothing."""
        check_id(shipment_id, "shipment_id")
        check_id(sku, "sku")
        check_quantity(quantity, "quantity")
        check_id(warehouse, "warehouse")
        if not isinstance(expected_at, datetime) or expected_at.tzinfo is None:
            raise InvalidInput("expected_at needs a time zone")
        now = self.clock()
        shipment = Shipment(shipment_id, sku, warehouse, quantity, expected_at)

        def work(tx: Transaction) -> Shipment:
            existing = tx.shipment(shipment_id)
            if existing is not None:
                if (existing.sku, existing.warehouse, existing.quantity) != (sku, warehouse, quantity):
                    raise InvalidInput(f"shipment {shipment_id!r} exists with other contents")
                return existing
            ensure_level(tx, self._item(tx, sku), warehouse, now)
            tx.put_shipment(shipment)
            tx.record(
                [Movement(sku, warehouse, INCOMING, quantity, Reason.INCOMING, now, reference=shipment_id)]
            )
            return shipment

        return self.store.atomic(work)

    def arrive(self, shipment_id: str, received: int | None = None) -> ArrivalReport:
        """An announced shipment arrived with ``received`` units (default: all of them).

        The oldest presale orders of its item and warehouse move onto the stock that is
        now available; the report names them, those still waiting, and those no pending
        shipment covers any more (a short shipment's casualties)."""
        check_id(shipment_id, "shipment_id")
        if received is not None:
            check_quantity(received, "received", minimum=0)
        now = self.clock()

        def work(tx: Transaction) -> ArrivalReport:
            shipment = tx.shipment(shipment_id)
            if shipment is None:
                raise UnknownShipment(shipment_id)
            if shipment.arrived:
                return ArrivalReport(shipment, (), (), ())
            arrived = replace(shipment, received=shipment.quantity if received is None else received)
            sku, warehouse = shipment.sku, shipment.warehouse
            ref = shipment_id
            moves = [
                Movement(sku, warehouse, INCOMING, -shipment.quantity, Reason.ARRIVAL, now, reference=ref),
                Movement(sku, warehouse, ON_HAND, arrived.received or 0, Reason.RECEIPT, now, reference=ref),
            ]
            self._sweep(tx, now)  # presale holds that ran out are not moved
            tx.levels([sku])  # locked before any other level a presale order holds, in sku order
            tx.record([move for move in moves if move.delta])
            tx.put_shipment(arrived)
            return presale.move_presold(tx, arrived, now)

        return self.store.atomic(work)

    # -- listings
    def put_listing(
        self,
        listing_id: str,
        title: str,
        components: Sequence[Component | tuple[str, int]],
        deduction: Deduction | str,
        hold_seconds: int = 900,
        per_buyer_limit: int | None = None,
        quota: int | None = None,
        *,
        screening: Screening | None = None,
        per_device_limit: int | None = None,
        per_address_limit: int | None = None,
        quota_period: QuotaPeriod | str | None = None,
        warehouse_choice: WarehouseChoice | str = WarehouseChoice.PRIORITY,
        presale_terms: Presale | None = None,
    ) -> Saved[ListingStock]:
        """Create or replace a listing. Live orders keep the terms they were placed under.

        ``screening``: who may buy it (``domain.screening``); ``per_device_limit`` and
        ``per_address_limit`` count live and paid orders like ``per_buyer_limit``, and make
        its orders name their device and delivery address. ``quota_period`` (day, week, month,
        year): the quota starts again each period. ``warehouse_choice``: holds take from the
        lowest priority number first, or from the warehouse with the most available units.
        ``presale_terms``: once the stock on hand is gone, sell ahead a share of the shipments
        expected by a cut-off (``domain.presale``)."""
        listing = _valid_listing(
            listing_id, title, components, deduction, hold_seconds, per_buyer_limit, quota
        )
        listing = replace(
            listing,
            screening=_valid_screening(screening),
            per_device_limit=_valid_limit(per_device_limit, "per_device_limit"),
            per_address_limit=_valid_limit(per_address_limit, "per_address_limit"),
            quota_period=_choice(QuotaPeriod, quota_period, "quota_period")
            if quota_period is not None
            else None,
            warehouse_choice=_choice(WarehouseChoice, warehouse_choice, "warehouse_choice"),
            presale=_valid_presale(presale_terms),
        )
        if listing.quota_period is not None and listing.quota is None:
            raise InvalidInput("quota_period needs a quota")
        now = self.clock()

        def work(tx: Transaction) -> Saved[ListingStock]:
            for component in listing.components:
                self._item(tx, component.sku)
            created = tx.listing(listing_id) is None
            tx.put_listing(listing)
            return Saved(listing_stock(tx, listing, now), created)

        saved = self.store.atomic(work)
        if self._gated is not None:
            # A new listing is in the gate before its first buyer, and a changed one (its
            # limit, its components) decides by its new terms from now on.
            self._gated.load_after_change(listing_id)
        return saved

    def get_listing(self, listing_id: str) -> ListingStock:
        check_id(listing_id, "listing_id")
        self._sweep_if_due()
        now = self.clock()
        with self.store.read() as tx:
            return listing_stock(tx, self._listing(tx, listing_id), now)

    def listings(self) -> list[ListingStock]:
        self._sweep_if_due()
        now = self.clock()
        with self.store.read() as tx:
            return [listing_stock(tx, listing, now) for listing in tx.all_listings()]


def listing_stock(tx: Transaction, listing: Listing, now: datetime) -> ListingStock:
    sold, used = tx.sold(listing.listing_id), quota_used(tx, listing, now)
    levels = tx.levels([c.sku for c in listing.components])
    left = None if listing.quota is None else max(0, listing.quota - used)
    resets = None if listing.quota_period is None else period_end(listing.quota_period, now)
    ahead = presale.presale_left(tx, listing, levels, used)
    return ListingStock(listing, rules.sellable(listing, levels, used), sold, left, resets, ahead)


def _valid_presale(terms: Presale | None) -> Presale | None:
    if terms is None:
        return None
    if not isinstance(terms.arrives_by, datetime) or terms.arrives_by.tzinfo is None:
        raise InvalidInput("presale.arrives_by needs a time zone")
    share = terms.share_percent
    if not isinstance(share, int) or isinstance(share, bool) or not 1 <= share <= 100:
        raise InvalidInput("presale.share_percent must be between 1 and 100")
    return terms


E = TypeVar("E", QuotaPeriod, WarehouseChoice)


def _choice(kind: type[E], value: str, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{field} must be one of: {', '.join(k.value for k in kind)}") from None


def _valid_listing(
    listing_id: str,
    title: str,
    components: Sequence[Component | tuple[str, int]],
    deduction: Deduction | str,
    hold_seconds: int,
    per_buyer_limit: int | None,
    quota: int | None,
) -> Listing:
    check_id(listing_id, "listing_id")
    check_text(title, "title")
    if isinstance(components, list | tuple):
        components = [(c.sku, c.quantity) if isinstance(c, Component) else c for c in components]
    parts = tuple(
        Component(check_id(sku, "sku"), check_quantity(quantity, "component quantity"))
        for sku, quantity in check_pairs(components, "components", limit=MAX_COMPONENTS)
    )
    if len({part.sku for part in parts}) != len(parts):
        raise InvalidInput("each sku may appear once among a listing's components")
    try:
        strategy = Deduction(deduction)
    except ValueError:
        raise InvalidInput("deduction must be one of: order, payment, reserve") from None
    check_quantity(hold_seconds, "hold_seconds")
    if hold_seconds > MAX_HOLD_SECONDS:
        raise InvalidInput(f"hold_seconds must be between 1 and {MAX_HOLD_SECONDS}")
    if per_buyer_limit is not None:
        check_quantity(per_buyer_limit, "per_buyer_limit")
    if quota is not None:
        check_quantity(quota, "quota", minimum=0)
    return Listing(listing_id, title, parts, strategy, hold_seconds, per_buyer_limit, quota)


def _valid_limit(limit: int | None, field: str) -> int | None:
    return None if limit is None else check_quantity(limit, field)


def _valid_screening(screening: Screening | None) -> Screening | None:
    """Every threshold a whole number of at least 0 (active days at most 90); nothing asked: None."""
    if screening is None:
        return None
    for field in ("min_account_age_days", "min_paid_orders", "min_active_days_90d", "min_membership_days"):
        value = getattr(screening, field)
        if value is not None:
            check_quantity(value, f"screening.{field}", minimum=0)
    if (screening.min_active_days_90d or 0) > 90:
        raise InvalidInput("screening.min_active_days_90d must be between 0 and 90")
    if not isinstance(screening.phone_verified, bool):
        raise InvalidInput("screening.phone_verified must be true or false")
    return screening if screening.asks_anything else None


def ensure_level(tx: Transaction, item: Item, warehouse: str, now: datetime) -> Level:
    """The item's level in a warehouse, created (with the item's safety stock) on first use."""
    existing = tx.levels([item.sku]).get(item.sku, [])
    for level in existing:
        if level.warehouse == warehouse:
            return level
    if warehouse not in tx.warehouses():
        tx.put_warehouse(Warehouse(warehouse))
    level = Level(item.sku, warehouse)
    tx.add_level(level)
    if item.safety:
        tx.record([_safety_change(level, item.safety, now)])
        level.safety = item.safety
    return level


def _safety_change(level: Level, safety: int, now: datetime) -> Movement:
    return Movement(level.sku, level.warehouse, Counter.SAFETY, safety - level.safety, Reason.SAFETY, now)
