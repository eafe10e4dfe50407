"""The SQL transaction's reads of live holds, for the operator's overview (tables in ``tables.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stockguard.domain.model import HeldLine
from stockguard.stores.sql.buyers_draws import dt, ts

# Both start from the (status, expires_at) index: only reserved orders are read, however many
# orders a store has kept.
_HELD_UNITS = (
    "SELECT ol.listing_id, SUM(ol.quantity) FROM orders o JOIN order_lines ol ON ol.order_id = o.order_id "
    "WHERE o.status = 'reserved' GROUP BY ol.listing_id"
)
_HELD_LINES = (
    "SELECT o.order_id, ol.listing_id, ol.quantity, o.expires_at "
    "FROM orders o JOIN order_lines ol ON ol.order_id = o.order_id "
    "WHERE o.status = 'reserved' AND o.expires_at <= :until "
    "ORDER BY o.expires_at, o.order_id, ol.listing_id LIMIT :limit"
)


class HoldReads:
    """Mixed into ``SqlTransaction``, which supplies the statement helpers."""

    if TYPE_CHECKING:  # supplied by SqlTransaction

        def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]: ...

    def held_units(self) -> dict[str, int]:
        return {listing_id: int(units) for listing_id, units in self._all(_HELD_UNITS)}

    def held_lines(self, expiring_by: datetime, limit: int) -> list[HeldLine]:
        rows = self._all(_HELD_LINES, {"until": ts(expiring_by), "limit": limit})
        return [HeldLine(r[0], r[1], int(r[2]), dt(r[3])) for r in rows]
