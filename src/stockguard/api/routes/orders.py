"""Orders: place, read, pay, cancel, ship. Placement is the hot path: keep it thin."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request, Response

from stockguard.api.bridge import LoopBridge
from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.metrics import orders_with, refusals_by
from stockguard.api.problems import from_domain
from stockguard.api.routes.common import OrderId, problems
from stockguard.api.schemas import OrderIn, OrderOut, order_out
from stockguard.domain.errors import StockguardError
from stockguard.service import OrderContext, Stockguard

router = APIRouter(prefix="/v1/orders", tags=["orders"])
decisions = logging.getLogger("stockguard.decisions")


@router.post(
    "",
    response_model=OrderOut,
    status_code=201,
    dependencies=[AnyRole],
    responses={
        200: {"model": OrderOut, "description": "A replay: the order as it is now."},
        **problems(403, 404, 409, 413, 429),
    },
)
async def place_order(body: OrderIn, request: Request) -> Response:
    """Place an order: every line gets its stock, or none does. The order id is the idempotency key.

    The common case never gets here: ``fast_orders.FastPlacement`` answers it
    with the same ``place``; this route answers the rest (and documents them all).
    """
    return await place(request.app.state.guard, request.app.state.bridge, body)


async def place(guard: Stockguard, bridge: LoopBridge, body: OrderIn) -> Response:
    """The placement and its answer: shared by the route and by ``fast_orders.FastPlacement``."""
    lines = [(line.listing_id, line.quantity) for line in body.lines]
    try:
        # The event loop never waits on the store: the write runs in the store's
        # writer (batched with other requests) and the loop awaits its future.
        context = None
        if body.device_id is not None or body.ip is not None or body.address is not None or body.warehouses:
            context = OrderContext(body.device_id, body.ip, body.address, body.warehouses)
        placing = guard.placing(body.order_id, body.buyer_id, lines, context)
        # Answered already (a refusal from memory or a local lookup): no trip through the loop.
        placement = placing.result() if placing.done() else await bridge.wait(placing)
    except StockguardError as refusal:
        # The frames in its traceback hold the refusal: a cycle that only the garbage collector
        # would free, made by every refused order of a sold-out sale. Nothing reads it here.
        refusal.__traceback__ = None
        _decided(body, refusal.code, refusal.detail)
        for rule in refusal.rules:
            refusals_by(refusal.code, rule).inc()
        return from_domain(refusal)
    _decided(body, "created" if placement.created else "replayed", placement.order.status.value)
    # Serialised here, once: FastAPI would validate the returned model a second time.
    return Response(
        order_out(placement.order).model_dump_json(),
        status_code=201 if placement.created else 200,
        media_type="application/json",
    )


@router.get("/{order_id}", response_model=OrderOut, dependencies=[AnyRole], responses=problems(404))
def get_order(order_id: OrderId, guard: Guard) -> OrderOut:
    return order_out(guard.get_order(order_id))


@router.post(
    "/{order_id}/pay", response_model=OrderOut, dependencies=[AnyRole], responses=problems(404, 409, 410, 413)
)
def pay(order_id: OrderId, guard: Guard) -> OrderOut:
    """Pay: commit the hold, or take the stock now (`payment` deduction, or after the hold expired)."""
    return order_out(guard.pay(order_id))


@router.post(
    "/{order_id}/cancel", response_model=OrderOut, dependencies=[AnyRole], responses=problems(404, 409, 413)
)
def cancel(order_id: OrderId, guard: Guard) -> OrderOut:
    """Cancel an unshipped order; its stock returns."""
    return order_out(guard.cancel(order_id))


@router.post(
    "/{order_id}/ship",
    response_model=OrderOut,
    dependencies=[AdminOnly],
    responses=problems(403, 404, 409, 413),
)
def ship(order_id: OrderId, guard: Guard) -> OrderOut:
    """The paid goods left the warehouse: on_hand and committed go down."""
    return order_out(guard.ship(order_id))


def _decided(body: OrderIn, outcome: str, why: str) -> None:
    orders_with(outcome).inc()
    if decisions.isEnabledFor(logging.INFO):
        lines = [[line.listing_id, line.quantity] for line in body.lines]
        record = {"order_id": body.order_id, "buyer_id": body.buyer_id, "lines": lines, "outcome": outcome}
        decisions.info(json.dumps(record | {"why": why}))
