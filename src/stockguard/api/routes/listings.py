"""Listings (front-end products)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.routes.common import ListingId, problems
from stockguard.api.schemas import ListingIn, ListingOut, listing_out
from stockguard.domain.model import Presale
from stockguard.domain.screening import Screening

router = APIRouter(prefix="/v1/listings", tags=["listings"])


@router.put(
    "/{listing_id}",
    response_model=ListingOut,
    dependencies=[AdminOnly],
    responses={201: {"model": ListingOut, "description": "Created."}, **problems(403, 404, 413)},
)
def put_listing(listing_id: ListingId, body: ListingIn, guard: Guard, response: Response) -> ListingOut:
    """Create (201) or replace (200) a listing; live orders keep the terms they were placed under."""
    saved = guard.put_listing(
        listing_id,
        body.title,
        [(c.sku, c.quantity) for c in body.components],
        body.deduction,
        body.hold_seconds,
        body.per_buyer_limit,
        body.quota,
        screening=None if body.screening is None else Screening(**body.screening.model_dump()),
        per_device_limit=body.per_device_limit,
        per_address_limit=body.per_address_limit,
        quota_period=body.quota_period,
        warehouse_choice=body.warehouse_choice,
        presale_terms=None
        if body.presale is None
        else Presale(body.presale.arrives_by, body.presale.share_percent),
    )
    response.status_code = 201 if saved.created else 200
    return listing_out(saved.value)


@router.get("/{listing_id}", response_model=ListingOut, dependencies=[AnyRole], responses=problems(404))
def get_listing(listing_id: ListingId, guard: Guard) -> ListingOut:
    """The listing, with what it may still sell (derived from item stock) and what it sold."""
    return listing_out(guard.get_listing(listing_id))
