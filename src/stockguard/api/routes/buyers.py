"""Buyers: the profiles screening reads, and operators' verdicts that win over it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.routes.common import BuyerId, problems
from stockguard.api.schemas import BuyerIn, BuyerOut, VerdictIn, buyer_out

router = APIRouter(prefix="/v1/buyers", tags=["buyers"])


@router.put(
    "/{buyer_id}",
    response_model=BuyerOut,
    dependencies=[AnyRole],
    responses={201: {"model": BuyerOut, "description": "Created."}, **problems(413)},
)
def put_buyer(buyer_id: BuyerId, body: BuyerIn, guard: Guard, response: Response) -> BuyerOut:
    """Create (201) or replace (200) what the shop knows of a buyer's account."""
    record, created = guard.put_buyer(
        buyer_id,
        body.registered_at,
        paid_orders=body.paid_orders,
        active_days_90d=body.active_days_90d,
        member_since=body.member_since,
        last_active_at=body.last_active_at,
        phone_verified=body.phone_verified,
    )
    response.status_code = 201 if created else 200
    return buyer_out(record)


@router.get("/{buyer_id}", response_model=BuyerOut, dependencies=[AnyRole], responses=problems(404))
def get_buyer(buyer_id: BuyerId, guard: Guard) -> BuyerOut:
    return buyer_out(guard.get_buyer(buyer_id))


@router.put(
    "/{buyer_id}/verdict",
    response_model=BuyerOut,
    dependencies=[AdminOnly],
    responses=problems(403, 413),
)
def put_verdict(buyer_id: BuyerId, body: VerdictIn, guard: Guard) -> BuyerOut:
    """Allow or deny the buyer on every screened listing and draw, whatever the rules say."""
    return buyer_out(guard.set_verdict(buyer_id, body.verdict, body.reason))


@router.delete(
    "/{buyer_id}/verdict", response_model=BuyerOut, dependencies=[AdminOnly], responses=problems(403, 404)
)
def delete_verdict(buyer_id: BuyerId, guard: Guard) -> BuyerOut:
    """Remove the operator's verdict: the screening rules decide again."""
    return buyer_out(guard.clear_verdict(buyer_id))
