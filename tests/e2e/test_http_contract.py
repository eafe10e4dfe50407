"""API v1 (../shared/API-v1.md) over real HTTP against ``stockguard serve``: every endpoint,
every error code the service has today, and the promise that a refused request changes nothing.

Each refusal is checked twice: its problem+json shape (type, title, status,
detail, code, and ``errors`` for ``invalid``), and the state of every resource
it touched, read before and after. The shared server's client hook fails any
test that meets a 5xx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from e2e.server import (
    JSON,
    Server,
    assert_problem,
    body,
    make_item,
    make_listing,
    order_body,
    sellable,
    uid,
)

MAX_BODY = 64 * 1024
ITEM_FIELDS = {
    "sku",
    "name",
    "on_hand",
    "reserved",
    "committed",
    "safety",
    "available",
    "incoming",
    "warehouses",
}
LEVEL_FIELDS = {"warehouse", "on_hand", "reserved", "committed", "safety", "available", "incoming"}
LISTING_FIELDS = {
    "listing_id",
    "title",
    "components",
    "deduction",
    "hold_seconds",
    "per_buyer_limit",
    "quota",
    "sellable",
    "sold",
}
ORDER_FIELDS = {"order_id", "buyer_id", "status", "expires_at", "lines"}
Payload = bytes | JSON | list[JSON] | str | None  # raw bytes are sent as they are, the rest as JSON


# -- helpers


def _state(client: httpx.Client, path: str) -> tuple[int, Any]:
    response = client.get(path)
    return response.status_code, response.json()


@contextmanager
def unchanged(client: httpx.Client, *paths: str) -> Iterator[None]:
    """Assert that the resources at ``paths`` read the same (status and body) before and after."""
    before = [_state(client, path) for path in paths]
    yield
    after = [_state(client, path) for path in paths]
    assert after == before


def item(client: httpx.Client, sku: str) -> JSON:
    return body(client.get(f"/v1/items/{sku}"), 200)


def listing(client: httpx.Client, listing_id: str) -> JSON:
    return body(client.get(f"/v1/listings/{listing_id}"), 200)


def order(client: httpx.Client, order_id: str) -> JSON:
    return body(client.get(f"/v1/orders/{order_id}"), 200)


def place(client: httpx.Client, document: JSON, status: int = 201) -> JSON:
    return body(client.post("/v1/orders", json=document), status)


def listing_of(sku: str, deduction: str = "order", **terms: Any) -> JSON:
    return {
        "title": "a listing",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": deduction,
        **terms,
    }


def wait_until(condition: Callable[[], bool], seconds: float) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took, fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not true within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass(frozen=True)
class World:
    """Stock shared by the refusal tests of this module; refused requests never change it."""

    sku: str
    listing_id: str
    reserved_order: str
    paid_order: str

    @property
    def paths(self) -> tuple[str, ...]:
        return (
            f"/v1/items/{self.sku}",
            f"/v1/listings/{self.listing_id}",
            f"/v1/orders/{self.reserved_order}",
            f"/v1/orders/{self.paid_order}",
        )


@pytest.fixture(scope="module")
def world(admin: httpx.Client) -> World:
    listing_id = make_listing(admin, 10, "order")
    sku = listing(admin, listing_id)["components"][0]["sku"]
    reserved = place(admin, order_body(listing_id))["order_id"]
    paid = place(admin, order_body(listing_id))["order_id"]
    body(admin.post(f"/v1/orders/{paid}/pay"), 200)
    return World(sku, listing_id, reserved, paid)


# -- operations


def test_healthz_needs_no_token(anonymous: httpx.Client) -> None:
    assert body(anonymous.get("/healthz"), 200) == {"status": "ok"}


def test_openapi_and_docs_are_served(anonymous: httpx.Client) -> None:
    document = body(anonymous.get("/openapi.json"), 200)
    paths = set(document["paths"])
    assert {
        "/v1/items/{sku}",
        "/v1/items/{sku}/receipts",
        "/v1/items/{sku}/adjustments",
        "/v1/listings/{listing_id}",
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/pay",
        "/v1/orders/{order_id}/cancel",
        "/v1/orders/{order_id}/ship",
        "/healthz",
        "/metrics",
    } <= paths
    docs = anonymous.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")


def test_metrics_need_a_token(anonymous: httpx.Client, admin: httpx.Client, storefront: httpx.Client) -> None:
    assert_problem(anonymous.get("/metrics"), 401, "unauthenticated")
    for client in (admin, storefront):
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "stockguard_request_seconds_bucket" in response.text


# -- items


def test_item_create_read_receive_count(admin: httpx.Client) -> None:
    sku = uid("sku")
    created = body(admin.put(f"/v1/items/{sku}", json={"name": "Maotai 500ml"}), 201)
    assert set(created) >= ITEM_FIELDS
    assert created["sku"] == sku
    assert created["name"] == "Maotai 500ml"
    assert (created["on_hand"], created["safety"], created["available"]) == (0, 0, 0)

    updated = body(admin.put(f"/v1/items/{sku}", json={"name": "Maotai 0.5l", "safety": 2}), 200)
    # Safety is kept per warehouse and the top shows totals over warehouses: none yet, so 0.
    assert (updated["name"], updated["warehouses"]) == ("Maotai 0.5l", [])

    received = body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": 10, "reference": "PO-1"}), 200)
    assert (received["on_hand"], received["safety"], received["available"]) == (10, 2, 8)
    body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": 5, "warehouse": "north"}), 200)

    stock = item(admin, sku)
    assert set(stock) >= ITEM_FIELDS
    by_warehouse = {level["warehouse"]: level for level in stock["warehouses"]}
    assert set(by_warehouse) == {"main", "north"}
    for level in by_warehouse.values():
        assert set(level) >= LEVEL_FIELDS
    assert by_warehouse["main"]["on_hand"] == 10
    assert by_warehouse["north"]["on_hand"] == 5
    for total in ("on_hand", "reserved", "committed", "safety", "available", "incoming"):
        assert stock[total] == sum(level[total] for level in stock["warehouses"]), total
    assert stock["on_hand"] == 15

    counted = body(
        admin.post(f"/v1/items/{sku}/adjustments", json={"counted": 7, "reason": "stock count"}), 200
    )
    assert set(counted) >= ITEM_FIELDS
    assert {level["warehouse"]: level["on_hand"] for level in counted["warehouses"]} == {
        "main": 7,
        "north": 5,
    }
    assert counted["on_hand"] == 12
    counted = body(
        admin.post(
            f"/v1/items/{sku}/adjustments", json={"warehouse": "north", "counted": 0, "reason": "broken"}
        ),
        200,
    )
    assert counted["on_hand"] == 7
    stock = item(admin, sku)
    assert stock == {key: counted[key] for key in stock}


def test_longest_ids_are_accepted(admin: httpx.Client) -> None:
    sku = ("sku-" + uid("x") + "_.:" + "A" * 64)[:64]
    assert len(sku) == 64
    assert body(admin.put(f"/v1/items/{sku}", json={"name": "long"}), 201)["sku"] == sku
    assert item(admin, sku)["sku"] == sku


# -- listings


def test_listing_create_read_replace(admin: httpx.Client, storefront: httpx.Client) -> None:
    bottle, glass = make_item(admin, 10), make_item(admin, 9)
    listing_id = uid("gift-box")
    document = {
        "title": "Gift box",
        "components": [{"sku": bottle, "quantity": 1}, {"sku": glass, "quantity": 2}],
        "deduction": "reserve",
    }
    created = body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)
    assert set(created) >= LISTING_FIELDS
    assert created["listing_id"] == listing_id
    assert created["components"] == document["components"]
    assert (created["deduction"], created["hold_seconds"]) == ("reserve", 900)
    assert (created["per_buyer_limit"], created["quota"]) == (None, None)
    assert (created["sellable"], created["sold"]) == (4, 0)  # min(10 / 1, 9 / 2)

    replaced = body(
        admin.put(
            f"/v1/listings/{listing_id}",
            json={**document, "deduction": "payment", "hold_seconds": 60, "per_buyer_limit": 1, "quota": 3},
        ),
        200,
    )
    assert (replaced["deduction"], replaced["hold_seconds"]) == ("payment", 60)
    assert (replaced["per_buyer_limit"], replaced["quota"], replaced["sellable"]) == (1, 3, 3)
    assert listing(storefront, listing_id) == replaced


# -- orders: the happy paths of the three strategies


def test_order_deduction_holds_at_placement_and_ships(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 3, "order")
    sku = listing(admin, listing_id)["components"][0]["sku"]
    placed = place(storefront, order_body(listing_id, 2))
    assert set(placed) >= ORDER_FIELDS
    assert (placed["status"], placed["expires_at"]) == ("reserved", None)
    assert placed["lines"] == [{"listing_id": listing_id, "quantity": 2}]
    assert order(storefront, placed["order_id"]) == placed
    assert (item(admin, sku)["reserved"], sellable(admin, listing_id)) == (2, 1)
    assert listing(admin, listing_id)["sold"] == 2

    paid = body(storefront.post(f"/v1/orders/{placed['order_id']}/pay"), 200)
    assert paid["status"] == "paid"
    stock = item(admin, sku)
    assert (stock["on_hand"], stock["reserved"], stock["committed"]) == (3, 0, 2)

    shipped = body(admin.post(f"/v1/orders/{placed['order_id']}/ship"), 200)
    assert shipped["status"] == "shipped"
    stock = item(admin, sku)
    assert (stock["on_hand"], stock["reserved"], stock["committed"], stock["available"]) == (1, 0, 0, 1)
    assert order(storefront, placed["order_id"])["status"] == "shipped"


def test_payment_deduction_takes_stock_at_payment(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 1, "payment")
    sku = listing(admin, listing_id)["components"][0]["sku"]
    first, second = place(storefront, order_body(listing_id)), place(storefront, order_body(listing_id))
    for placed in (first, second):
        assert (placed["status"], placed["expires_at"]) == ("placed", None)
    assert (item(admin, sku)["reserved"], sellable(admin, listing_id)) == (0, 1)  # nothing held yet

    assert body(storefront.post(f"/v1/orders/{first['order_id']}/pay"), 200)["status"] == "paid"
    assert item(admin, sku)["committed"] == 1
    with unchanged(
        admin, f"/v1/items/{sku}", f"/v1/listings/{listing_id}", f"/v1/orders/{second['order_id']}"
    ):
        assert_problem(storefront.post(f"/v1/orders/{second['order_id']}/pay"), 409, "sold_out")
    assert order(admin, second["order_id"])["status"] == "placed"
    # Nothing is sellable now: a new order is refused at placement already.
    late = order_body(listing_id)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{late['order_id']}"):
        assert_problem(storefront.post("/v1/orders", json=late), 409, "sold_out")


def test_reserve_deduction_sets_expires_at(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 2, "reserve", hold_seconds=600)
    placed = place(storefront, order_body(listing_id))
    assert placed["status"] == "reserved"
    assert placed["expires_at"] is not None
    assert placed["expires_at"].endswith(("Z", "+00:00"))  # ISO 8601 with a time zone
    assert sellable(admin, listing_id) == 1
    paid = body(storefront.post(f"/v1/orders/{placed['order_id']}/pay"), 200)
    assert paid["status"] == "paid"


def test_cancel_returns_the_stock(admin: httpx.Client, storefront: httpx.Client) -> None:
    for deduction in ("order", "reserve"):
        listing_id = make_listing(admin, 1, deduction)
        placed = place(storefront, order_body(listing_id))
        assert sellable(admin, listing_id) == 0
        cancelled = body(storefront.post(f"/v1/orders/{placed['order_id']}/cancel"), 200)
        assert cancelled["status"] == "cancelled"
        assert sellable(admin, listing_id) == 1
        assert listing(admin, listing_id)["sold"] == 0
    # A paid order can still be cancelled before it ships; its committed stock returns.
    listing_id = make_listing(admin, 1, "order")
    placed = place(storefront, order_body(listing_id))
    body(storefront.post(f"/v1/orders/{placed['order_id']}/pay"), 200)
    assert body(storefront.post(f"/v1/orders/{placed['order_id']}/cancel"), 200)["status"] == "cancelled"
    assert sellable(admin, listing_id) == 1


def test_a_bundle_takes_every_component_or_nothing(admin: httpx.Client, storefront: httpx.Client) -> None:
    bottle, glass = make_item(admin, 5), make_item(admin, 3)
    listing_id = uid("bundle")
    document = {
        "title": "bundle",
        "components": [{"sku": bottle, "quantity": 1}, {"sku": glass, "quantity": 2}],
        "deduction": "order",
    }
    body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)
    place(storefront, order_body(listing_id))
    assert (item(admin, bottle)["reserved"], item(admin, glass)["reserved"]) == (1, 2)
    with unchanged(admin, f"/v1/items/{bottle}", f"/v1/items/{glass}", f"/v1/listings/{listing_id}"):
        assert_problem(storefront.post("/v1/orders", json=order_body(listing_id)), 409, "sold_out")


def test_quota_caps_what_a_listing_sells(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 100, "order", quota=2)
    assert sellable(admin, listing_id) == 2
    place(storefront, order_body(listing_id, 2))
    assert sellable(admin, listing_id) == 0
    with unchanged(admin, f"/v1/listings/{listing_id}"):
        assert_problem(storefront.post("/v1/orders", json=order_body(listing_id)), 409, "sold_out")


# -- idempotent replays


def test_placing_the_same_order_again_answers_200_and_changes_nothing(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 5, "reserve")
    document = order_body(listing_id, 2)
    first = place(storefront, document)
    with unchanged(admin, f"/v1/listings/{listing_id}"):
        assert place(storefront, document, 200) == first
        assert place(admin, document, 200) == first
    # The replay answers the order as it is now.
    paid = body(storefront.post(f"/v1/orders/{first['order_id']}/pay"), 200)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{first['order_id']}"):
        replay = place(storefront, document, 200)
    assert replay == paid
    assert replay["status"] == "paid"


def test_paying_cancelling_and_shipping_twice_answer_200(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 5, "order")
    to_pay = place(storefront, order_body(listing_id))["order_id"]
    paid = body(storefront.post(f"/v1/orders/{to_pay}/pay"), 200)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{to_pay}"):
        assert body(storefront.post(f"/v1/orders/{to_pay}/pay"), 200) == paid
    shipped = body(admin.post(f"/v1/orders/{to_pay}/ship"), 200)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{to_pay}"):
        assert body(admin.post(f"/v1/orders/{to_pay}/ship"), 200) == shipped
        assert body(storefront.post(f"/v1/orders/{to_pay}/pay"), 200) == shipped  # paid already, and more

    to_cancel = place(storefront, order_body(listing_id))["order_id"]
    cancelled = body(storefront.post(f"/v1/orders/{to_cancel}/cancel"), 200)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{to_cancel}"):
        assert body(storefront.post(f"/v1/orders/{to_cancel}/cancel"), 200) == cancelled


def test_reusing_an_order_id_with_another_body_is_order_conflict(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id, other = make_listing(admin, 5, "order"), make_listing(admin, 5, "order")
    document = order_body(listing_id)
    place(storefront, document)
    different = [
        {**document, "buyer_id": uid("buyer")},
        {**document, "lines": [{"listing_id": listing_id, "quantity": 2}]},
        {**document, "lines": [{"listing_id": other, "quantity": 1}]},
        {
            **document,
            "lines": [{"listing_id": listing_id, "quantity": 1}, {"listing_id": other, "quantity": 1}],
        },
    ]
    paths = (f"/v1/orders/{document['order_id']}", f"/v1/listings/{listing_id}", f"/v1/listings/{other}")
    for reused in different:
        with unchanged(admin, *paths):
            assert_problem(storefront.post("/v1/orders", json=reused), 409, "order_conflict")


# -- refusals from the rules of selling


def test_sold_out_refuses_the_whole_order(admin: httpx.Client, storefront: httpx.Client) -> None:
    plenty, scarce = make_listing(admin, 5, "order"), make_listing(admin, 1, "order")
    paths = (f"/v1/listings/{plenty}", f"/v1/listings/{scarce}")
    too_many = order_body(scarce, 2)
    with unchanged(admin, *paths, f"/v1/orders/{too_many['order_id']}"):
        assert_problem(storefront.post("/v1/orders", json=too_many), 409, "sold_out")
    both = {
        "order_id": uid("order"),
        "buyer_id": uid("buyer"),
        "lines": [{"listing_id": plenty, "quantity": 1}, {"listing_id": scarce, "quantity": 2}],
    }
    with unchanged(admin, *paths, f"/v1/orders/{both['order_id']}"):
        assert_problem(storefront.post("/v1/orders", json=both), 409, "sold_out")
    # The refused order id stays free: the same id with a body that fits is a new order.
    assert (
        place(storefront, {**both, "lines": [{"listing_id": plenty, "quantity": 1}]})["status"] == "reserved"
    )


def test_per_buyer_limit(admin: httpx.Client, storefront: httpx.Client) -> None:
    listing_id = make_listing(admin, 10, "order", per_buyer_limit=2)
    buyer = uid("buyer")
    first = place(storefront, order_body(listing_id, 1, buyer_id=buyer))["order_id"]
    place(storefront, order_body(listing_id, 1, buyer_id=buyer))
    refused = order_body(listing_id, 1, buyer_id=buyer)
    with unchanged(admin, f"/v1/listings/{listing_id}", f"/v1/orders/{refused['order_id']}"):
        assert_problem(storefront.post("/v1/orders", json=refused), 409, "limit_exceeded")
        too_many_at_once = order_body(listing_id, 3)
        assert_problem(storefront.post("/v1/orders", json=too_many_at_once), 409, "limit_exceeded")
    # Paid orders count; cancelled ones do not.
    body(storefront.post(f"/v1/orders/{first}/pay"), 200)
    assert_problem(
        storefront.post("/v1/orders", json=order_body(listing_id, buyer_id=buyer)), 409, "limit_exceeded"
    )
    body(storefront.post(f"/v1/orders/{first}/cancel"), 200)
    place(storefront, order_body(listing_id, 1, buyer_id=buyer))
    place(storefront, order_body(listing_id, 2))  # another buyer has a limit of their own


def test_transitions_that_do_not_exist_are_invalid_transition(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 10, "order")
    payment_listing = make_listing(admin, 10, "payment")
    cancelled = place(storefront, order_body(listing_id))["order_id"]
    body(storefront.post(f"/v1/orders/{cancelled}/cancel"), 200)
    reserved = place(storefront, order_body(listing_id))["order_id"]
    placed = place(storefront, order_body(payment_listing))["order_id"]
    shipped = place(storefront, order_body(listing_id))["order_id"]
    body(storefront.post(f"/v1/orders/{shipped}/pay"), 200)
    body(admin.post(f"/v1/orders/{shipped}/ship"), 200)

    refusals = [
        (storefront, f"/v1/orders/{cancelled}/pay"),  # paying a cancelled order
        (admin, f"/v1/orders/{cancelled}/ship"),
        (admin, f"/v1/orders/{reserved}/ship"),  # shipping an unpaid one
        (admin, f"/v1/orders/{placed}/ship"),
        (storefront, f"/v1/orders/{shipped}/cancel"),  # the goods left
    ]
    paths = [f"/v1/orders/{o}" for o in (cancelled, reserved, placed, shipped)]
    for client, path in refusals:
        with unchanged(admin, *paths, f"/v1/listings/{listing_id}", f"/v1/listings/{payment_listing}"):
            problem = assert_problem(client.post(path), 409, "invalid_transition")
            assert problem["detail"]


# -- holds that expire


def test_a_one_second_hold_returns_its_unit_within_two_seconds(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 1, "reserve", hold_seconds=1)
    placed_at = time.monotonic()
    placed = place(storefront, order_body(listing_id))
    assert placed["status"] == "reserved"
    assert sellable(storefront, listing_id) == 0
    wait_until(lambda: sellable(storefront, listing_id) == 1, 2.5)
    assert time.monotonic() - placed_at <= 2.0
    assert order(storefront, placed["order_id"])["status"] == "expired"
    assert listing(admin, listing_id)["sold"] == 0


def test_paying_an_expired_hold_takes_stock_again_or_is_expired(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 1, "reserve", hold_seconds=1)
    late = place(storefront, order_body(listing_id))["order_id"]
    wait_until(lambda: sellable(storefront, listing_id) == 1, 3)
    # Stock is left: the late payment takes it again.
    assert body(storefront.post(f"/v1/orders/{late}/pay"), 200)["status"] == "paid"

    other = make_listing(admin, 1, "reserve", hold_seconds=1)
    too_late = place(storefront, order_body(other))["order_id"]
    wait_until(lambda: sellable(storefront, other) == 1, 3)
    winner = place(storefront, order_body(other))["order_id"]  # someone else took the unit
    with unchanged(admin, f"/v1/listings/{other}", f"/v1/orders/{winner}"):
        assert_problem(storefront.post(f"/v1/orders/{too_late}/pay"), 410, "expired")
    assert order(storefront, too_late)["status"] == "expired"
    assert order(storefront, winner)["status"] == "reserved"
    # Expired is an end: cancelling it stops later payments; it is not a 5xx or a silent success.
    assert body(storefront.post(f"/v1/orders/{too_late}/cancel"), 200)["status"] == "cancelled"
    assert_problem(storefront.post(f"/v1/orders/{too_late}/pay"), 409, "invalid_transition")


# -- authentication and roles


def _endpoints(world: World) -> list[tuple[str, str, JSON | None]]:
    return [
        ("PUT", f"/v1/items/{world.sku}", {"name": "renamed", "safety": 1}),
        ("GET", f"/v1/items/{world.sku}", None),
        ("POST", f"/v1/items/{world.sku}/receipts", {"quantity": 5}),
        ("POST", f"/v1/items/{world.sku}/adjustments", {"counted": 0, "reason": "count"}),
        ("PUT", f"/v1/listings/{world.listing_id}", listing_of(world.sku, "payment")),
        ("GET", f"/v1/listings/{world.listing_id}", None),
        ("POST", "/v1/orders", order_body(world.listing_id)),
        ("GET", f"/v1/orders/{world.reserved_order}", None),
        ("POST", f"/v1/orders/{world.reserved_order}/pay", None),
        ("POST", f"/v1/orders/{world.reserved_order}/cancel", None),
        ("POST", f"/v1/orders/{world.paid_order}/ship", None),
        ("GET", "/metrics", None),
    ]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Bearer", "Basic YWRtaW46YWRtaW4=", "not-even-a-scheme"],
    ids=["none", "unknown", "empty", "basic", "garbage"],
)
def test_no_or_unknown_token_is_unauthenticated(
    server: Server, admin: httpx.Client, world: World, authorization: str | None
) -> None:
    client = server.client(None)
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path, document in _endpoints(world):
        with unchanged(admin, *world.paths):
            response = client.request(method, path, json=document, headers=headers)
            assert_problem(response, 401, "unauthenticated")
            assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_a_repeated_header_counts_as_its_first_on_the_order_path_too(
    server: Server, admin: httpx.Client, world: World
) -> None:
    """POST /v1/orders has a lean path of its own: it reads headers as every other route does."""
    client = server.client(None)
    document = json.dumps(order_body(world.listing_id)).encode()
    good, json_type = f"Bearer {server.storefront}", "application/json"
    with unchanged(admin, *world.paths):
        bad_first = [("authorization", "Bearer nope"), ("authorization", good), ("content-type", json_type)]
        assert_problem(client.post("/v1/orders", content=document, headers=bad_first), 401, "unauthenticated")
        text_first = [("authorization", good), ("content-type", "text/plain"), ("content-type", json_type)]
        assert_problem(client.post("/v1/orders", content=document, headers=text_first), 422, "invalid")


def test_a_token_of_the_other_server_or_with_a_suffix_is_refused(
    server: Server, admin: httpx.Client, world: World
) -> None:
    for token in (server.admin + "x", server.admin[:-1], server.storefront.upper()):
        client = server.client(token)
        with unchanged(admin, *world.paths):
            assert_problem(client.get(f"/v1/items/{world.sku}"), 401, "unauthenticated")
            assert_problem(client.put(f"/v1/items/{world.sku}", json={"name": "x"}), 401, "unauthenticated")


def test_storefront_may_not_change_stock_or_listings(
    storefront: httpx.Client, admin: httpx.Client, world: World
) -> None:
    new_sku, new_listing = uid("sku"), uid("listing")
    refused: list[tuple[str, str, JSON | None]] = [
        ("PUT", f"/v1/items/{world.sku}", {"name": "renamed", "safety": 1}),
        ("PUT", f"/v1/items/{new_sku}", {"name": "new"}),
        ("POST", f"/v1/items/{world.sku}/receipts", {"quantity": 5}),
        ("POST", f"/v1/items/{world.sku}/adjustments", {"counted": 0, "reason": "count"}),
        ("PUT", f"/v1/listings/{world.listing_id}", listing_of(world.sku, "payment")),
        ("PUT", f"/v1/listings/{new_listing}", listing_of(world.sku)),
        ("POST", f"/v1/orders/{world.paid_order}/ship", None),
    ]
    paths = (*world.paths, f"/v1/items/{new_sku}", f"/v1/listings/{new_listing}")
    for method, path, document in refused:
        with unchanged(admin, *paths):
            assert_problem(storefront.request(method, path, json=document), 403, "forbidden")


def test_storefront_reads_everything_and_runs_orders(storefront: httpx.Client, admin: httpx.Client) -> None:
    listing_id = make_listing(admin, 5, "order")
    sku = listing(admin, listing_id)["components"][0]["sku"]
    assert item(storefront, sku) == item(admin, sku)
    assert listing(storefront, listing_id) == listing(admin, listing_id)
    paid = place(storefront, order_body(listing_id))["order_id"]
    assert body(storefront.post(f"/v1/orders/{paid}/pay"), 200)["status"] == "paid"
    assert order(storefront, paid) == order(admin, paid)
    cancelled = place(storefront, order_body(listing_id))["order_id"]
    assert body(storefront.post(f"/v1/orders/{cancelled}/cancel"), 200)["status"] == "cancelled"
    assert storefront.get("/metrics").status_code == 200
    # The admin may do everything, orders included.
    by_admin = place(admin, order_body(listing_id))["order_id"]
    assert body(admin.post(f"/v1/orders/{by_admin}/pay"), 200)["status"] == "paid"
    assert body(admin.post(f"/v1/orders/{by_admin}/ship"), 200)["status"] == "shipped"


# -- not found


def test_unknown_things_are_not_found(admin: httpx.Client, storefront: httpx.Client, world: World) -> None:
    sku, listing_id, order_id = uid("nosku"), uid("nolisting"), uid("noorder")
    lookups: list[tuple[httpx.Client, str, str, JSON | None]] = [
        (storefront, "GET", f"/v1/items/{sku}", None),
        (admin, "POST", f"/v1/items/{sku}/receipts", {"quantity": 1}),
        (admin, "POST", f"/v1/items/{sku}/adjustments", {"counted": 1, "reason": "count"}),
        (storefront, "GET", f"/v1/listings/{listing_id}", None),
        (admin, "PUT", f"/v1/listings/{listing_id}", listing_of(sku)),  # a component that does not exist
        (storefront, "GET", f"/v1/orders/{order_id}", None),
        (storefront, "POST", f"/v1/orders/{order_id}/pay", None),
        (storefront, "POST", f"/v1/orders/{order_id}/cancel", None),
        (admin, "POST", f"/v1/orders/{order_id}/ship", None),
        (storefront, "POST", "/v1/orders", order_body(listing_id, order_id=order_id)),
        (
            storefront,
            "POST",
            "/v1/orders",
            {
                "order_id": order_id,
                "buyer_id": uid("buyer"),
                "lines": [
                    {"listing_id": world.listing_id, "quantity": 1},
                    {"listing_id": listing_id, "quantity": 1},
                ],
            },
        ),
    ]
    paths = (*world.paths, f"/v1/items/{sku}", f"/v1/listings/{listing_id}", f"/v1/orders/{order_id}")
    for client, method, path, document in lookups:
        with unchanged(admin, *paths):
            assert_problem(client.request(method, path, json=document), 404, "not_found")


def test_unknown_paths_and_methods_are_problems_too(admin: httpx.Client, world: World) -> None:
    assert_problem(admin.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(admin.get("/v1/orders"), 405, "method_not_allowed")
    with unchanged(admin, *world.paths):
        response = admin.delete(f"/v1/items/{world.sku}")
        assert_problem(response, 405, "method_not_allowed")
        assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "PUT"}


# -- invalid input: 422 with ``errors``, and nothing changed

BAD_IDS = [
    "a b",
    "a!b",
    "a/b%2Fc",
    "é",
    "a%23b",
    "x" * 65,
    "tab%09here",
    "nul%00byte",
    "semi;colon",
    "quote'",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_in_the_path_are_invalid(admin: httpx.Client, world: World, bad: str) -> None:
    targets: list[tuple[str, str, JSON | None]] = [
        ("GET", f"/v1/items/{bad}", None),
        ("PUT", f"/v1/items/{bad}", {"name": "x"}),
        ("POST", f"/v1/items/{bad}/receipts", {"quantity": 1}),
        ("POST", f"/v1/items/{bad}/adjustments", {"counted": 1, "reason": "count"}),
        ("GET", f"/v1/listings/{bad}", None),
        ("PUT", f"/v1/listings/{bad}", listing_of(world.sku)),
        ("GET", f"/v1/orders/{bad}", None),
        ("POST", f"/v1/orders/{bad}/pay", None),
        ("POST", f"/v1/orders/{bad}/cancel", None),
        ("POST", f"/v1/orders/{bad}/ship", None),
    ]
    for method, path, document in targets:
        with unchanged(admin, *world.paths):
            response = admin.request(method, path, json=document)
            if "/" in bad:  # an id with a slash is another path: no such route
                assert_problem(response, 404, "not_found")
            else:
                assert_problem(response, 422, "invalid")


def _item_bodies() -> list[tuple[str, Payload]]:
    return [
        ("missing name", {"safety": 1}),
        ("name not a string", {"name": 5}),
        ("name null", {"name": None}),
        ("safety as string", {"name": "x", "safety": "1"}),
        ("safety as float", {"name": "x", "safety": 1.0}),
        ("safety fractional", {"name": "x", "safety": 1.5}),
        ("safety bool", {"name": "x", "safety": True}),
        ("safety null", {"name": "x", "safety": None}),
        ("safety negative", {"name": "x", "safety": -1}),
        ("safety too big", {"name": "x", "safety": 1_000_000_001}),
        ("safety huge", {"name": "x", "safety": 10**30}),
        ("unknown field", {"name": "x", "colour": "red"}),
        ("sku in the body", {"name": "x", "sku": "other"}),
        ("a list", [{"name": "x"}]),
        ("a string", "x"),
        ("null", None),
    ]


MALFORMED: list[tuple[str, Payload]] = [
    ("empty", b""),
    ("truncated", b'{"name": "x"'),
    ("not json", b"name=x"),
    ("single quotes", b"{'name': 'x'}"),
    ("trailing comma", b'{"name": "x",}'),
    ("not utf-8", b'{"name": "\xff\xfe"}'),
    ("binary", b"\x00\x01\x02\xff"),
    ("nested deep", b"[" * 20_000 + b"]" * 20_000),
    ("objects nested deep", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("nan", b'{"name": "x", "safety": NaN}'),
    ("infinity", b'{"name": "x", "safety": Infinity}'),
    ("huge exponent", b'{"name": "x", "safety": 1e400}'),
    ("two documents", b'{"name": "x"} {"name": "y"}'),
]


def _send(client: httpx.Client, method: str, path: str, payload: Payload) -> httpx.Response:
    if isinstance(payload, bytes):
        return client.request(method, path, content=payload, headers={"Content-Type": "application/json"})
    return client.request(method, path, json=payload)


@pytest.mark.parametrize(
    ("case", "payload"), _item_bodies() + MALFORMED, ids=lambda v: v if isinstance(v, str) else ""
)
def test_invalid_item_bodies(admin: httpx.Client, world: World, case: str, payload: Payload) -> None:
    new_sku = uid("sku")
    with unchanged(admin, *world.paths, f"/v1/items/{new_sku}"):
        assert_problem(_send(admin, "PUT", f"/v1/items/{world.sku}", payload), 422, "invalid")
        assert_problem(_send(admin, "PUT", f"/v1/items/{new_sku}", payload), 422, "invalid")


INVALID_RECEIPTS: list[JSON] = [
    {},
    {"quantity": 0},
    {"quantity": -5},
    {"quantity": 1_000_000_001},
    {"quantity": "5"},
    {"quantity": 5.0},
    {"quantity": 5.5},
    {"quantity": None},
    {"quantity": [5]},
    {"quantity": 5, "warehouse": "no spaces"},
    {"quantity": 5, "warehouse": ""},
    {"quantity": 5, "warehouse": "w" * 65},
    {"quantity": 5, "warehouse": 7},
    {"quantity": 5, "reference": 12},
    {"quantity": 5, "extra": True},
]
INVALID_ADJUSTMENTS: list[JSON] = [
    {"reason": "count"},
    {"counted": 1},
    {"counted": -1, "reason": "count"},
    {"counted": 1_000_000_001, "reason": "count"},
    {"counted": "1", "reason": "count"},
    {"counted": 1.0, "reason": "count"},
    {"counted": 1, "reason": None},
    {"counted": 1, "reason": "count", "warehouse": "bad warehouse"},
    {"counted": 1, "reason": "count", "delta": 3},
]


@pytest.mark.parametrize("payload", INVALID_RECEIPTS, ids=str)
def test_invalid_receipts(admin: httpx.Client, world: World, payload: JSON) -> None:
    with unchanged(admin, *world.paths):
        assert_problem(admin.post(f"/v1/items/{world.sku}/receipts", json=payload), 422, "invalid")


@pytest.mark.parametrize("payload", INVALID_ADJUSTMENTS, ids=str)
def test_invalid_adjustments(admin: httpx.Client, world: World, payload: JSON) -> None:
    with unchanged(admin, *world.paths):
        assert_problem(admin.post(f"/v1/items/{world.sku}/adjustments", json=payload), 422, "invalid")


def _invalid_listings(sku: str) -> list[JSON]:
    good = listing_of(sku)
    without = {key: value for key, value in good.items() if key != "components"}
    return [
        without,
        {key: value for key, value in good.items() if key != "title"},
        {key: value for key, value in good.items() if key != "deduction"},
        {**good, "deduction": "whenever"},
        {**good, "deduction": None},
        {**good, "components": "sku"},
        {**good, "components": [{"sku": sku}]},
        {**good, "components": [{"sku": sku, "quantity": 0}]},
        {**good, "components": [{"sku": sku, "quantity": "1"}]},
        {**good, "components": [{"sku": sku, "quantity": 1.0}]},
        {**good, "components": [{"sku": "bad sku", "quantity": 1}]},
        {**good, "components": [{"sku": "s" * 65, "quantity": 1}]},
        {**good, "components": [{"sku": sku, "quantity": 1, "warehouse": "main"}]},
        {**good, "hold_seconds": 0},
        {**good, "hold_seconds": 86_401},
        {**good, "hold_seconds": "900"},
        {**good, "hold_seconds": 900.0},
        {**good, "per_buyer_limit": 0},
        {**good, "per_buyer_limit": "2"},
        {**good, "quota": -1},
        {**good, "quota": 1.5},
        {**good, "sellable": 10},
    ]


def test_invalid_listings(admin: httpx.Client, world: World) -> None:
    new_listing = uid("listing")
    for payload in _invalid_listings(world.sku):
        with unchanged(admin, *world.paths, f"/v1/listings/{new_listing}"):
            for listing_id in (world.listing_id, new_listing):
                response = admin.put(f"/v1/listings/{listing_id}", json=payload)
                assert_problem(response, 422, "invalid")


def _invalid_orders(listing_id: str) -> list[JSON]:
    good = order_body(listing_id)
    line = good["lines"][0]
    return [
        {key: value for key, value in good.items() if key != "order_id"},
        {key: value for key, value in good.items() if key != "buyer_id"},
        {key: value for key, value in good.items() if key != "lines"},
        {**good, "order_id": ""},
        {**good, "order_id": "o" * 65},
        {**good, "order_id": "has space"},
        {**good, "order_id": 12345},
        {**good, "buyer_id": "b" * 65},
        {**good, "buyer_id": "bad/buyer"},
        {**good, "buyer_id": None},
        {**good, "lines": []},
        {**good, "lines": line},
        {**good, "lines": [{**line, "quantity": 0}]},
        {**good, "lines": [{**line, "quantity": -1}]},
        {**good, "lines": [{**line, "quantity": 1_000_000_001}]},
        {**good, "lines": [{**line, "quantity": "1"}]},
        {**good, "lines": [{**line, "quantity": 1.0}]},
        {**good, "lines": [{**line, "quantity": True}]},
        {**good, "lines": [{"listing_id": listing_id}]},
        {**good, "lines": [{**line, "listing_id": "bad listing"}]},
        {**good, "lines": [{**line, "price": 100}]},
        {**good, "status": "paid"},
    ]


def test_invalid_orders(admin: httpx.Client, storefront: httpx.Client, world: World) -> None:
    for payload in _invalid_orders(world.listing_id):
        order_id = payload.get("order_id")
        extra = (f"/v1/orders/{order_id}",) if isinstance(order_id, str) and 0 < len(order_id) <= 64 else ()
        with unchanged(admin, *world.paths, *extra):
            assert_problem(storefront.post("/v1/orders", json=payload), 422, "invalid")
    for name, raw in MALFORMED:
        with unchanged(admin, *world.paths):
            response = _send(storefront, "POST", "/v1/orders", raw)
            assert response.status_code == 422, name
            assert_problem(response, 422, "invalid")


def test_invalid_problems_say_what_is_wrong(admin: httpx.Client, world: World) -> None:
    problem = assert_problem(
        admin.post(f"/v1/items/{world.sku}/receipts", json={"quantity": "5", "warehouse": "bad one"}),
        422,
        "invalid",
    )
    assert len(problem["errors"]) == 2
    assert any("quantity" in error for error in problem["errors"])
    assert any("warehouse" in error for error in problem["errors"])
    problem = assert_problem(_send(admin, "PUT", f"/v1/items/{world.sku}", b'{"name": '), 422, "invalid")
    assert "JSON" in problem["detail"]


# -- bodies over 64 KiB


def _padded(document: bytes, size: int) -> bytes:
    """``document`` followed by JSON whitespace up to ``size`` bytes: still valid JSON."""
    assert len(document) <= size
    return document + b" " * (size - len(document))


def _chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_bodies_over_64_kib_are_payload_too_large(
    admin: httpx.Client, storefront: httpx.Client, world: World
) -> None:
    sku = uid("sku")
    item_json = b'{"name": "big"}'
    order_id = uid("order")
    order_json = b'{"order_id": "%s", "buyer_id": "b", "lines": [{"listing_id": "%s", "quantity": 1}]}' % (
        order_id.encode(),
        world.listing_id.encode(),
    )
    headers = {"Content-Type": "application/json"}
    paths = (*world.paths, f"/v1/items/{sku}", f"/v1/orders/{order_id}")
    for size in (MAX_BODY + 1, 10 * MAX_BODY):
        with unchanged(admin, *paths):
            # Declared with Content-Length.
            response = admin.put(f"/v1/items/{sku}", content=_padded(item_json, size), headers=headers)
            assert_problem(response, 413, "payload_too_large")
            response = storefront.post("/v1/orders", content=_padded(order_json, size), headers=headers)
            assert_problem(response, 413, "payload_too_large")
            # Streamed with chunked transfer encoding: no Content-Length to trust.
            response = admin.put(
                f"/v1/items/{sku}", content=_chunks(_padded(item_json, size)), headers=headers
            )
            assert "content-length" not in response.request.headers
            assert_problem(response, 413, "payload_too_large")
            response = storefront.post(
                "/v1/orders", content=_chunks(_padded(order_json, size)), headers=headers
            )
            assert_problem(response, 413, "payload_too_large")
            response = storefront.post(f"/v1/orders/{world.reserved_order}/pay", content=b"x" * size)
            assert_problem(response, 413, "payload_too_large")


def test_a_body_of_exactly_64_kib_is_accepted(admin: httpx.Client, world: World) -> None:
    sku = uid("sku")
    headers = {"Content-Type": "application/json"}
    body(admin.put(f"/v1/items/{sku}", content=_padded(b'{"name": "fits"}', MAX_BODY), headers=headers), 201)
    streamed = _chunks(_padded(b'{"name": "fits too"}', MAX_BODY))
    assert body(admin.put(f"/v1/items/{sku}", content=streamed, headers=headers), 200)["name"] == "fits too"
