"""Draws: a registration window, then a lottery anyone can recompute (``domain.draws``)."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Response

from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.metrics import DRAW_ENTRIES
from stockguard.api.routes.common import DrawId, problems
from stockguard.api.schemas import (
    DrawEntriesOut,
    DrawIn,
    DrawOut,
    EntryIn,
    EntryOut,
    draw_entries_out,
    draw_out,
    entry_out,
)
from stockguard.domain.errors import StockguardError
from stockguard.service import OrderContext

router = APIRouter(prefix="/v1/draws", tags=["draws"])
decisions = logging.getLogger("stockguard.decisions")


@router.put(
    "/{draw_id}",
    response_model=DrawOut,
    dependencies=[AdminOnly],
    responses={201: {"model": DrawOut, "description": "Created."}, **problems(403, 404, 409, 413)},
)
def put_draw(draw_id: DrawId, body: DrawIn, guard: Guard, response: Response) -> DrawOut:
    """Create a draw (201), publishing the commitment to its secret seed, or change one nobody entered."""
    saved = guard.put_draw(
        draw_id, body.listing_id, body.units, body.opens_at, body.closes_at, body.payment_seconds
    )
    response.status_code = 201 if saved.created else 200
    return draw_out(saved.value)


@router.get("/{draw_id}", response_model=DrawOut, dependencies=[AnyRole], responses=problems(404))
def get_draw(draw_id: DrawId, guard: Guard) -> DrawOut:
    """State, commitment, the seed once drawn, winners and waiting list."""
    return draw_out(guard.get_draw(draw_id))


@router.get(
    "/{draw_id}/entries", response_model=DrawEntriesOut, dependencies=[AnyRole], responses=problems(404)
)
def get_entries(draw_id: DrawId, guard: Guard) -> DrawEntriesOut:
    """The published record of a draw: what ``stockguard verify-draw`` recomputes the winners from."""
    return draw_entries_out(*guard.draw_entries(draw_id))


@router.post(
    "/{draw_id}/entries",
    response_model=EntryOut,
    status_code=201,
    dependencies=[AnyRole],
    responses={
        200: {"model": EntryOut, "description": "The buyer had entered already: their entry."},
        **problems(403, 404, 409, 413),
    },
)
def enter(draw_id: DrawId, body: EntryIn, guard: Guard, response: Response) -> EntryOut:
    """Enter a buyer while registration is open: one entry per buyer, device and delivery address,
    screened by the listing's rules (403 `not_eligible`)."""
    context = OrderContext(body.device_id, body.ip, body.address)
    try:
        saved = guard.enter_draw(draw_id, body.buyer_id, context)
    except StockguardError as refusal:
        _entered(draw_id, body.buyer_id, refusal.code, refusal.detail)
        raise
    _entered(
        draw_id, body.buyer_id, "entered" if saved.created else "replayed", f"entry {saved.value.number}"
    )
    response.status_code = 201 if saved.created else 200
    return entry_out(saved.value)


@router.post(
    "/{draw_id}/run", response_model=DrawOut, dependencies=[AdminOnly], responses=problems(403, 404, 409)
)
def run(draw_id: DrawId, guard: Guard) -> DrawOut:
    """After registration closed: reveal the seed, rank the entries, and hold a unit for each winner
    for the payment window. Running it again answers the draw as it is."""
    report = guard.run_draw(draw_id)
    decisions.info(
        json.dumps(
            {"draw_id": draw_id, "outcome": "drawn", "winners": [a.entry.buyer_id for a in report.winners]}
        )
    )
    return draw_out(report)


def _entered(draw_id: str, buyer_id: str, outcome: str, why: str) -> None:
    DRAW_ENTRIES.labels(outcome).inc()
    decisions.info(json.dumps({"draw_id": draw_id, "buyer_id": buyer_id, "outcome": outcome, "why": why}))
