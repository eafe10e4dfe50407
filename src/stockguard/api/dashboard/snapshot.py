"""What the dashboard polls: the overview of the store and the service's counters, as JSON."""

from __future__ import annotations

from typing import Any

from stockguard.api.metrics import counter_totals
from stockguard.domain.events import iso
from stockguard.service import Overview, Stockguard
from stockguard.service.overview import ListingOverview

# The outcomes the page charts; any other code is still listed with its total.
OUTCOMES = ("created", "sold_out", "limit_exceeded", "not_eligible", "rate_limited")


def snapshot(guard: Stockguard) -> dict[str, Any]:
    view = guard.overview()
    outcomes = {key[0]: int(n) for key, n in counter_totals("stockguard_orders", "outcome").items()}
    refusals = counter_totals("stockguard_refusals", "code", "rule")
    expired = counter_totals("stockguard_holds_expired").get((), 0.0)
    return {
        "at": iso(view.at),
        "listings": [_listing(item) for item in view.listings],
        # Totals since the service started; the page turns them into rates.
        "outcomes": {outcome: outcomes.get(outcome, 0) for outcome in OUTCOMES} | outcomes,
        "refusals_by_rule": [
            {"code": code, "rule": rule, "count": int(n)} for (code, rule), n in sorted(refusals.items())
        ],
        "holds_expired": int(expired),
        **_holds(view),
        "levels": [
            {
                "sku": lv.sku,
                "warehouse": lv.warehouse,
                "on_hand": lv.on_hand,
                "reserved": lv.reserved,
                "committed": lv.committed,
                "safety": lv.safety,
                "available": lv.available,
                "incoming": lv.incoming,
                "presold": lv.presold,
            }
            for lv in view.levels
        ],
        "shortages": [
            {"sku": s.sku, "warehouse": s.warehouse, "short_by": s.short_by} for s in view.shortages
        ],
        "draws": [
            {"draw_id": draw_id, "standing": standing, "entries": n}
            for (draw_id, standing), n in sorted(view.draws.items())
        ],
    }


def _listing(item: ListingOverview) -> dict[str, Any]:
    listing = item.stock.listing
    return {
        "listing_id": listing.listing_id,
        "title": listing.title,
        "deduction": listing.deduction.value,
        "sellable": item.stock.sellable,
        "held": item.held,
        "taken": item.taken,
        "quota_left": item.stock.quota_left,
    }


def _holds(view: Overview) -> dict[str, Any]:
    return {
        "expiring": [
            {"listing_id": e.listing_id, "minute": e.minute, "units": e.units} for e in view.expiring
        ],
        "soonest": [
            {
                "order_id": line.order_id,
                "listing_id": line.listing_id,
                "quantity": line.quantity,
                "expires_at": None if line.expires_at is None else iso(line.expires_at),
            }
            for line in view.soonest
        ],
    }
