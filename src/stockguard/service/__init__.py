"""The use cases of stockguard, over any Store."""

from stockguard.service.admission import GateDrift
from stockguard.service.audit import AuditService
from stockguard.service.base import Clock, OrderContext, utc_now
from stockguard.service.buyers import BuyerRecord, BuyerService
from stockguard.service.catalog import CatalogService, CountResult, Saved, Shortage
from stockguard.service.draws import Award, DrawReport, DrawService
from stockguard.service.events import EventService
from stockguard.service.orders import Placement
from stockguard.service.overview import Overview, OverviewService
from stockguard.service.warehouse_sync import CountApplied, CountIgnored, SyncReport, WarehouseSyncService


class Stockguard(
    CatalogService,
    DrawService,
    BuyerService,
    AuditService,
    EventService,
    WarehouseSyncService,
    OverviewService,
):
    """The library facade: every use case of stockguard on one store.

    Build one with :func:`stockguard.connect` (a store URL) or directly from a
    Store. Methods are safe to call from many threads; stores decide how
    processes share the data.
    """

    def gate_drift(self) -> list[GateDrift]:
        """Where the flash-sale gate and the store disagree, listing by listing (none without a gate)."""
        if self._gated is None:
            return []
        return [drift for listing_id in self._listing_ids() for drift in self._gated.drift(listing_id)]

    def reconcile_gate(self) -> int:
        """Load every listing's state from the store into the gate; how many were loaded."""
        if self._gated is None:
            return 0
        return sum(self._gated.load(listing_id) for listing_id in self._listing_ids())

    def _listing_ids(self) -> list[str]:
        with self.store.read() as tx:
            return sorted(listing.listing_id for listing in tx.all_listings())

    def close(self) -> None:
        """Stop the gate's threads (if any), then close the store."""
        if self._gated is not None:
            self._gated.close()
        if self._rate_limits is not None:
            self._rate_limits.close()
        self.store.close()


__all__ = [
    "Award",
    "BuyerRecord",
    "Clock",
    "CountApplied",
    "CountIgnored",
    "CountResult",
    "DrawReport",
    "GateDrift",
    "OrderContext",
    "Overview",
    "Placement",
    "Saved",
    "Shortage",
    "Stockguard",
    "SyncReport",
    "utc_now",
]
