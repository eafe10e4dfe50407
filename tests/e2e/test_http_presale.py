"""Presale over HTTP: orders sold ahead of a shipment say so, move onto the stock when it is
received, and a short or late shipment is reported with the orders it affects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from e2e.server import JSON, assert_problem, body, make_item, order_body, uid


def presale_listing(admin: httpx.Client, incoming: int, expected_in: timedelta) -> tuple[str, str, str]:
    """A listing with nothing on hand and one shipment on its way; returns (listing, sku, shipment)."""
    sku = make_item(admin, 0)
    shipment_id = uid("ship")
    expected_at = datetime.now(UTC) + expected_in
    announced = {"sku": sku, "quantity": incoming, "expected_at": expected_at.isoformat()}
    body(admin.put(f"/v1/shipments/{shipment_id}", json=announced), 201)
    body(admin.put(f"/v1/shipments/{shipment_id}", json=announced), 200)
    listing_id = uid("listing")
    document = {
        "title": "Maotai, sold ahead",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": "reserve",
        "presale": {"arrives_by": (datetime.now(UTC) + timedelta(days=30)).isoformat(), "share_percent": 100},
    }
    listing = body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)
    assert (listing["sellable"], listing["presale_left"]) == (0, incoming)
    return listing_id, sku, shipment_id


def test_presale_orders_say_so_and_move_onto_the_stock_when_it_is_received(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id, sku, shipment_id = presale_listing(admin, 5, timedelta(days=7))
    first = body(storefront.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    second = body(storefront.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    assert first["fulfil_from"] == "incoming"
    assert first["expected_at"] is not None
    body(storefront.post(f"/v1/orders/{second['order_id']}/pay"), 200)
    assert_problem(admin.post(f"/v1/orders/{second['order_id']}/ship"), 409, "invalid_transition")
    item: JSON = body(admin.get(f"/v1/items/{sku}"), 200)
    assert (item["on_hand"], item["reserved"], item["presold"], item["incoming"]) == (0, 0, 4, 5)

    arrival = body(admin.post(f"/v1/shipments/{shipment_id}/arrival", json={}), 200)
    assert arrival["moved_orders"] == [first["order_id"], second["order_id"]]
    assert (arrival["waiting_orders"], arrival["uncovered_orders"]) == ([], [])
    item = body(admin.get(f"/v1/items/{sku}"), 200)
    assert (item["on_hand"], item["reserved"], item["committed"], item["presold"]) == (5, 2, 2, 0)
    moved = body(storefront.get(f"/v1/orders/{second['order_id']}"), 200)
    assert (moved["fulfil_from"], moved["expected_at"]) == ("stock", None)
    body(admin.post(f"/v1/orders/{second['order_id']}/ship"), 200)
    assert body(admin.get(f"/v1/shipments/{shipment_id}"), 200)["received"] == 5


def test_a_short_shipment_is_reported_with_the_orders_it_leaves_waiting(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id, sku, shipment_id = presale_listing(admin, 4, timedelta(days=7))
    orders = [
        body(storefront.post("/v1/orders", json=order_body(listing_id, 2)), 201)["order_id"] for _ in range(2)
    ]
    arrival = body(admin.post(f"/v1/shipments/{shipment_id}/arrival", json={"received": 3}), 200)
    assert arrival["shipment"]["received"] == 3
    assert (arrival["moved_orders"], arrival["uncovered_orders"]) == (orders[:1], orders[1:])
    issues = body(storefront.get("/v1/shipments/issues"), 200)["issues"]
    mine = [issue for issue in issues if issue["sku"] == sku]
    assert mine == [
        {
            "kind": "short",
            "sku": sku,
            "warehouse": "main",
            "orders": orders[1:],
            "shipment": None,
            "short_by": 2,
        }
    ]


def test_a_late_shipment_is_reported_with_the_orders_waiting_for_it(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id, sku, shipment_id = presale_listing(admin, 3, timedelta(seconds=1))
    order = body(storefront.post("/v1/orders", json=order_body(listing_id, 1)), 201)
    late: list[JSON] = []
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not late and datetime.now(UTC) < deadline:
        late = [i for i in body(storefront.get("/v1/shipments/issues"), 200)["issues"] if i["sku"] == sku]
    assert [(i["kind"], i["orders"], i["shipment"]["shipment_id"]) for i in late] == [
        ("late", [order["order_id"]], shipment_id)
    ]
    assert_problem(admin.post(f"/v1/shipments/{uid('nope')}/arrival", json={}), 404, "not_found")
    assert_problem(storefront.post(f"/v1/shipments/{shipment_id}/arrival", json={}), 403, "forbidden")
    assert_problem(admin.post(f"/v1/shipments/{shipment_id}/arrival", json={"received": -1}), 422, "invalid")
