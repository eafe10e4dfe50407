"""The use cases of stockguard, over any Store."""

from stockguard.service.audit import AuditService
from stockguard.service.base import Clock, utc_now
from stockguard.service.catalog import CatalogService, CountResult, Saved, Shortage
from stockguard.service.orders import OrderService, Placement


class Stockguard(CatalogService, OrderService, AuditService):
    """The library facade: every use case of stockguard on one store.

    Build one with :func:`stockguard.connect` (a store URL) or directly from a
    Store. Methods are safe to call from many threads; stores decide how
    processes share the data.
    """

    def close(self) -> None:
        """Stop the gate's threads (if any), then close the store."""
        if self._gated is not None:
            self._gated.close()
        self.store.close()


__all__ = ["Clock", "CountResult", "Placement", "Saved", "Shortage", "Stockguard", "utc_now"]
