"""POST /v1/warehouse-sync over HTTP: late, repeated and out-of-order counts, shortages, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from e2e.server import JSON, assert_problem, body, make_item, make_listing, order_body


def count(sku: str, counted: int, sequence: int, as_of: datetime | None = None) -> JSON:
    taken = as_of or datetime.now(UTC)
    return {
        "sku": sku,
        "warehouse": "main",
        "counted": counted,
        "as_of": taken.isoformat(),
        "sequence": sequence,
    }


def level(admin: httpx.Client, sku: str, warehouse: str = "main") -> JSON:
    levels = body(admin.get(f"/v1/items/{sku}"), 200)["warehouses"]
    found: JSON = next(lv for lv in levels if lv["warehouse"] == warehouse)
    return found


def sync(admin: httpx.Client, *counts: JSON) -> JSON:
    return body(admin.post("/v1/warehouse-sync", json={"counts": list(counts)}), 200)


def test_counts_arriving_late_twice_and_out_of_order_never_overwrite_a_newer_one(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    before_receipt = datetime.now(UTC)
    listing_id = make_listing(admin, 20, "reserve")
    sku = body(admin.get(f"/v1/listings/{listing_id}"), 200)["components"][0]["sku"]
    first_count, second_count = datetime.now(UTC), datetime.now(UTC) + timedelta(milliseconds=1)
    # A hold made after the shelves were counted: it stays whatever the counts say.
    body(storefront.post("/v1/orders", json=order_body(listing_id, 4)), 201)

    newest = count(sku, 18, sequence=3, as_of=second_count)
    report = sync(admin, newest, count(sku, 19, sequence=2, as_of=first_count))
    assert [(a["sequence"], a["adjustment"], a["on_hand"]) for a in report["applied"]] == [
        (2, -1, 19),
        (3, -1, 18),
    ]

    late = sync(admin, count(sku, 25, sequence=1, as_of=before_receipt), newest)
    assert late["applied"] == []
    assert [(i["sequence"], i["reason"]) for i in late["ignored"]] == [
        (1, "count 3 of this item and warehouse was applied already"),
        (3, "count 3 of this item and warehouse was applied already"),
    ]
    stock = level(admin, sku)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (18, 4, 14)
    movements = body(admin.get("/v1/movements", params={"sku": sku}), 200)
    counts = [m for m in movements["movements"] if m["reason"] == "count"]
    assert [(m["delta"], m["reference"]) for m in counts] == [
        (-1, "warehouse count main#2"),
        (-1, "warehouse count main#3"),
    ]


def test_a_short_count_is_reported_and_stops_sales(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 5, "reserve")
    sku = body(admin.get(f"/v1/listings/{listing_id}"), 200)["components"][0]["sku"]
    body(storefront.post("/v1/orders", json=order_body(listing_id, 4)), 201)
    report = sync(admin, count(sku, 2, sequence=1))
    assert report["shortages"] == [{"sku": sku, "warehouse": "main", "short_by": 2}]
    assert_problem(storefront.post("/v1/orders", json=order_body(listing_id)), 409, "sold_out")


def test_a_batch_with_one_bad_count_changes_nothing_and_only_admins_sync(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    sku = make_item(admin, 10)
    good = count(sku, 3, sequence=1)
    unknown = count("no-such-sku-anywhere", 3, sequence=1)
    assert_problem(admin.post("/v1/warehouse-sync", json={"counts": [good, unknown]}), 404, "not_found")
    for bad in (
        {**good, "counted": -1},
        {**good, "as_of": 1700000000},
        {**good, "as_of": "2026-01-01T00:00:00"},
        {**good, "sequence": "1"},
        {**good, "extra": True},
        {**good, "as_of": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    ):
        assert_problem(admin.post("/v1/warehouse-sync", json={"counts": [good, bad]}), 422, "invalid")
    assert_problem(admin.post("/v1/warehouse-sync", json={"counts": []}), 422, "invalid")
    assert_problem(storefront.post("/v1/warehouse-sync", json={"counts": [good]}), 403, "forbidden")
    assert level(admin, sku)["on_hand"] == 10
