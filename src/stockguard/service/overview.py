"""The operator's overview of a sale: one consistent read of what the dashboard shows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from stockguard.domain.model import HeldLine, Level, ListingStock
from stockguard.service.base import ServiceBase
from stockguard.service.catalog import Shortage, listing_stock

# Holds are told apart by the minute they run out in; a hot sale can hold tens of thousands.
MAX_EXPIRING_LINES = 50_000
SOONEST_SHOWN = 10


@dataclass(frozen=True, slots=True)
class ListingOverview:
    stock: ListingStock
    held: int  # units in reserved orders: held, not paid yet

    @property
    def taken(self) -> int:
        """Units paid for (committed or shipped): sold and kept."""
        return self.stock.sold - self.held


@dataclass(frozen=True, slots=True)
class ExpiringUnits:
    """Units of a listing whose holds run out in one minute from now (minute 0: within 60 s)."""

    listing_id: str
    minute: int
    units: int


@dataclass(frozen=True, slots=True)
class Overview:
    at: datetime
    listings: list[ListingOverview]
    expiring: list[ExpiringUnits]  # per listing and minute, over the horizon asked for
    soonest: list[HeldLine]  # the first holds to run out
    levels: list[Level]
    shortages: list[Shortage]
    draws: dict[tuple[str, str], int]  # entries per draw and standing (see draw_standings)


class OverviewService(ServiceBase):
    def overview(self, horizon: timedelta = timedelta(minutes=5)) -> Overview:
        """Every listing's sellable, held and taken units, the holds running out within ``horizon``,
        every item's levels per warehouse, the shortages and the draws, read in one transaction."""
        self._sweep_if_due()
        now = self.clock()
        with self.store.read() as tx:
            held = tx.held_units()
            listings = [
                ListingOverview(listing_stock(tx, listing, now), held.get(listing.listing_id, 0))
                for listing in tx.all_listings()
            ]
            expiring = tx.held_lines(now + horizon, MAX_EXPIRING_LINES)
            levels = tx.all_levels()
            draws = tx.draw_standings()
        listings.sort(key=lambda view: view.stock.listing.listing_id)
        levels.sort(key=lambda level: (level.sku, level.priority, level.warehouse))
        shortages = [Shortage(lv.sku, lv.warehouse, lv.short_by) for lv in levels if lv.short]
        soonest = expiring[:SOONEST_SHOWN]
        return Overview(now, listings, _by_minute(expiring, now), soonest, levels, shortages, draws)


def _by_minute(lines: list[HeldLine], now: datetime) -> list[ExpiringUnits]:
    units: dict[tuple[str, int], int] = defaultdict(int)
    for line in lines:
        assert line.expires_at is not None  # held_lines reads holds that run out
        minute = max(0, int((line.expires_at - now).total_seconds() // 60))
        units[line.listing_id, minute] += line.quantity
    return [ExpiringUnits(listing_id, minute, n) for (listing_id, minute), n in sorted(units.items())]
