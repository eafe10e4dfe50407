"""Incoming shipments: announce, arrive, and the late or short ones with the presale orders they affect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from stockguard.api.deps import AdminOnly, AnyRole, Guard
from stockguard.api.routes.common import id_param, problems
from stockguard.api.supply_schemas import (
    ArrivalIn,
    ArrivalOut,
    ShipmentIn,
    ShipmentIssuesOut,
    ShipmentOut,
    arrival_out,
    issues_out,
    shipment_out,
)
from stockguard.domain.errors import UnknownShipment

router = APIRouter(prefix="/v1/shipments", tags=["items"])
ShipmentId = Annotated[str, id_param("The shipment's id.")]


@router.get("/issues", response_model=ShipmentIssuesOut, dependencies=[AnyRole], responses=problems())
def shipment_issues(guard: Guard) -> ShipmentIssuesOut:
    """Shipments past their expected date, and items whose presold units pass what is still on
    its way, each with the presale orders it puts at risk."""
    return issues_out(guard.shipment_issues())


@router.put(
    "/{shipment_id}",
    response_model=ShipmentOut,
    dependencies=[AdminOnly],
    responses={201: {"model": ShipmentOut, "description": "Announced."}, **problems(403, 404, 413)},
)
def expect(shipment_id: ShipmentId, body: ShipmentIn, guard: Guard, response: Response) -> ShipmentOut:
    """Announce a shipment on its way (201); the same again answers it as it is (200). Its units
    count as incoming, and listings with presale terms may sell a share of them ahead."""
    try:
        guard.get_shipment(shipment_id)
        response.status_code = 200
    except UnknownShipment:
        response.status_code = 201
    return shipment_out(guard.expect(shipment_id, body.sku, body.quantity, body.expected_at, body.warehouse))


@router.get("/{shipment_id}", response_model=ShipmentOut, dependencies=[AnyRole], responses=problems(404))
def get_shipment(shipment_id: ShipmentId, guard: Guard) -> ShipmentOut:
    return shipment_out(guard.get_shipment(shipment_id))


@router.post(
    "/{shipment_id}/arrival",
    response_model=ArrivalOut,
    dependencies=[AdminOnly],
    responses=problems(403, 404, 413),
)
def arrive(shipment_id: ShipmentId, body: ArrivalIn, guard: Guard) -> ArrivalOut:
    """The shipment arrived (with `received` units, default all): the oldest presale orders of its
    item and warehouse move onto the stock; those it leaves without cover are named."""
    return arrival_out(guard.arrive(shipment_id, body.received))
