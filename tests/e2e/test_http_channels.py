"""Channel quotas and warehouse choice over HTTP: what is left of a period's quota, the fullest
warehouse first, and orders that name the warehouses they may ship from."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from e2e.server import assert_problem, body, make_item, order_body, uid


def test_a_channel_quota_shows_what_is_left_and_when_it_starts_again(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    sku = make_item(admin, 100)
    listing_id = uid("channel")
    document = {
        "title": "Maotai, one channel",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": "order",
        "quota": 3,
        "quota_period": "year",
    }
    listing = body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)
    next_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert (listing["quota_left"], listing["sellable"], listing["quota_period"]) == (3, 3, "year")
    assert datetime.fromisoformat(listing["quota_resets_at"]) == next_year

    body(storefront.post("/v1/orders", json=order_body(listing_id, 3)), 201)
    assert body(admin.get(f"/v1/listings/{listing_id}"), 200)["quota_left"] == 0
    refused = assert_problem(storefront.post("/v1/orders", json=order_body(listing_id)), 409, "sold_out")
    assert "quota" in refused["detail"]
    no_quota = {**document, "quota": None}
    assert_problem(admin.put(f"/v1/listings/{listing_id}", json=no_quota), 422, "invalid")
    assert_problem(
        admin.put(f"/v1/listings/{listing_id}", json={**document, "quota_period": "decade"}), 422, "invalid"
    )


def test_holds_take_from_the_fullest_warehouse_or_from_those_the_order_names(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    sku = make_item(admin, 0)
    near, far = uid("near"), uid("far")
    body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": 2, "warehouse": near}), 200)
    body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": 9, "warehouse": far}), 200)
    listing_id = uid("listing")
    document = {
        "title": "Maotai",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": "reserve",
        "warehouse_choice": "most_available",
    }
    assert (
        body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)["warehouse_choice"]
        == "most_available"
    )

    fullest = body(storefront.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    assert [(a["warehouse"], a["quantity"]) for a in fullest["allocations"]] == [(far, 2)]
    nearest = body(
        storefront.post("/v1/orders", json={**order_body(listing_id, 2), "warehouses": [near]}), 201
    )
    assert [(a["warehouse"], a["quantity"]) for a in nearest["allocations"]] == [(near, 2)]
    assert nearest["warehouses"] == [near]
    assert_problem(
        storefront.post("/v1/orders", json={**order_body(listing_id, 1), "warehouses": [near]}),
        409,
        "sold_out",
    )
    for bad in ([], [near, near], ["bad name!"], "far"):
        assert_problem(
            storefront.post("/v1/orders", json={**order_body(listing_id, 1), "warehouses": bad}),
            422,
            "invalid",
        )
