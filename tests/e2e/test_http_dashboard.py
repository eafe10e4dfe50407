"""The dashboard over plain HTTP, against the real server: who gets in and how, what the page is
made of, and what its data says about a sale. The browser tests (test_dashboard_browser.py) watch
the page itself."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from e2e.server import (
    Server,
    assert_problem,
    body,
    make_listing,
    order_body,
    running_server,
    stockguard_command,
    uid,
)
from stockguard.api.dashboard import session

COOKIE = session.COOKIE


def log_in(server: Server, token: str) -> httpx.Response:
    client = server.client(None, follow_redirects=False)
    return client.post("/dashboard/login", data={"token": token})


def session_cookie(response: httpx.Response) -> str:
    cookie = SimpleCookie(response.headers["set-cookie"])
    return cookie[COOKIE].value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its holds, levels and counters are these tests' alone."""
    with running_server(tmp_path_factory.mktemp("dashboard-server")) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    return server.client(server.admin)


@pytest.fixture(scope="module")
def anonymous(server: Server) -> httpx.Client:
    return server.client(None)


@pytest.fixture(scope="module")
def logged_in(server: Server) -> httpx.Client:
    """A client holding the dashboard's session cookie (sent by hand: httpx keeps Secure cookies
    for HTTPS only, where browsers also keep them for localhost)."""
    cookie = session_cookie(log_in(server, server.admin))
    return server.client(None, headers={"Cookie": f"{COOKIE}={cookie}"}, follow_redirects=False)


def test_the_page_sends_a_visitor_without_a_session_to_the_login_form(anonymous: httpx.Client) -> None:
    response = anonymous.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"
    form = anonymous.get("/dashboard/login")
    assert form.status_code == 200
    assert 'name="token" type="password"' in form.text
    assert 'method="post"' in form.text


def test_the_admin_token_opens_a_session_kept_in_a_secure_http_only_cookie(server: Server) -> None:
    response = log_in(server, server.admin)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"  # the token never goes into a URL
    cookie = SimpleCookie(response.headers["set-cookie"])[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/dashboard"
    assert int(cookie["max-age"]) == 12 * 3600
    assert server.admin not in response.headers["set-cookie"]  # the cookie proves the token, holds none


@pytest.mark.parametrize("who", ["storefront", "wrong", "empty"])
def test_any_other_token_is_refused_and_gets_no_session(server: Server, who: str) -> None:
    token = {"storefront": server.storefront, "wrong": "not-the-token", "empty": ""}[who]
    response = log_in(server, token)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "That is not the admin token." in response.text


def test_a_form_posted_from_another_site_is_refused(server: Server) -> None:
    client = server.client(None, follow_redirects=False)
    response = client.post(
        "/dashboard/login", data={"token": server.admin}, headers={"Origin": "https://evil.example"}
    )
    assert_problem(response, 403, "forbidden")
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "cookie",
    ["", "garbage", "99999999999.0000", "1.abc", "forged"],
)
def test_a_missing_forged_or_expired_session_reads_nothing(server: Server, cookie: str) -> None:
    if cookie == "forged":  # signed with another key
        cookie = session.issue("some-other-admin-token", 3600)
    if cookie == "1.abc":  # long expired
        cookie = f"1.{session.issue(server.admin, 3600).split('.')[1]}"
    client = server.client(None, headers={"Cookie": f"{COOKIE}={cookie}"}, follow_redirects=False)
    assert_problem(client.get("/dashboard/data"), 401, "unauthenticated")
    assert_problem(client.get("/dashboard/orders/o-1"), 401, "unauthenticated")
    assert client.get("/dashboard").status_code == 303


def test_a_bearer_token_does_not_stand_in_for_the_session(server: Server) -> None:
    client = server.client(server.admin)
    assert_problem(client.get("/dashboard/data"), 401, "unauthenticated")


def test_a_session_expires_and_a_changed_admin_token_ends_it() -> None:
    cookie = session.issue("admin-token", 60, now=1_000_000)
    assert session.is_valid(cookie, "admin-token", now=1_000_059)
    assert not session.is_valid(cookie, "admin-token", now=1_000_060)
    assert not session.is_valid(cookie, "new-admin-token", now=1_000_001)
    expires, signature = cookie.split(".")
    assert not session.is_valid(f"{int(expires) + 3600}.{signature}", "admin-token", now=1_000_001)


def test_logging_out_clears_the_cookie(logged_in: httpx.Client) -> None:
    response = logged_in.post("/dashboard/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"
    cleared = SimpleCookie(response.headers["set-cookie"])[COOKIE]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append(value)


def test_the_page_loads_everything_from_the_service_itself(logged_in: httpx.Client) -> None:
    page = logged_in.get("/dashboard")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assets = _Assets()
    assets.feed(page.text)
    scripts_and_styles = [url for url in assets.urls if url.endswith((".js", ".css"))]
    assert len(scripts_and_styles) == 4  # uPlot's script and style, the dashboard's own
    for url in assets.urls:
        assert url.startswith(("/dashboard/", "data:")), url
    for url in scripts_and_styles:
        asset = logged_in.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    script = logged_in.get("/dashboard/static/dashboard.js").text
    assert not re.search(r"https?://", script), "the page's script fetches nothing from elsewhere"


def test_the_dashboard_is_no_part_of_the_public_api(anonymous: httpx.Client) -> None:
    paths = body(anonymous.get("/openapi.json"), 200)["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]


def test_the_data_tells_a_sale_as_the_store_has_it(admin: httpx.Client, logged_in: httpx.Client) -> None:
    listing_id = make_listing(admin, 5, "reserve", hold_seconds=120, per_buyer_limit=2)
    before = body(logged_in.get("/dashboard/data"), 200)["outcomes"]
    buyer = uid("buyer")
    first = body(admin.post("/v1/orders", json=order_body(listing_id, 2, buyer_id=buyer)), 201)
    assert_problem(
        admin.post("/v1/orders", json=order_body(listing_id, 1, buyer_id=buyer)), 409, "limit_exceeded"
    )
    paid = body(admin.post("/v1/orders", json=order_body(listing_id, 1)), 201)
    body(admin.post(f"/v1/orders/{paid['order_id']}/pay"), 200)
    body(admin.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    assert_problem(admin.post("/v1/orders", json=order_body(listing_id, 1)), 409, "sold_out")

    data = body(logged_in.get("/dashboard/data"), 200)
    listing = next(item for item in data["listings"] if item["listing_id"] == listing_id)
    assert (listing["sellable"], listing["held"], listing["taken"]) == (0, 4, 1)
    assert listing["deduction"] == "reserve"
    outcomes = data["outcomes"]
    assert outcomes["created"] - before["created"] == 3
    assert outcomes["limit_exceeded"] - before["limit_exceeded"] == 1
    assert outcomes["sold_out"] - before["sold_out"] == 1
    assert {"not_eligible", "rate_limited"} <= set(outcomes)
    held = [hold for hold in data["soonest"] if hold["order_id"] == first["order_id"]]
    assert held == [
        {
            "order_id": first["order_id"],
            "listing_id": listing_id,
            "quantity": 2,
            "expires_at": first["expires_at"],
        }
    ]
    assert data["expiring"] == [{"listing_id": listing_id, "minute": 1, "units": 4}]
    sku = body(admin.get(f"/v1/listings/{listing_id}"), 200)["components"][0]["sku"]
    level = next(lv for lv in data["levels"] if lv["sku"] == sku)
    assert (level["on_hand"], level["reserved"], level["committed"], level["available"]) == (5, 4, 1, 0)
    assert data["shortages"] == []


def test_an_order_search_shows_the_order_and_its_ledger_movements(
    admin: httpx.Client, logged_in: httpx.Client
) -> None:
    listing_id = make_listing(admin, 3, "reserve")
    order = body(admin.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    body(admin.post(f"/v1/orders/{order['order_id']}/pay"), 200)

    found = body(logged_in.get(f"/dashboard/orders/{order['order_id']}"), 200)
    assert found["order"]["status"] == "paid"
    moves = [(m["counter"], m["delta"], m["reason"]) for m in found["movements"]]
    assert moves == [("reserved", 2, "hold"), ("reserved", -2, "commit"), ("committed", 2, "commit")]
    assert_problem(logged_in.get(f"/dashboard/orders/{uid('nobody')}"), 404, "not_found")
    assert_problem(logged_in.get("/dashboard/orders/bad%20id"), 422, "invalid")


def test_with_two_workers_the_outcomes_add_up_every_workers_orders(server_two_workers: Server) -> None:
    server = server_two_workers
    cookie = session_cookie(log_in(server, server.admin))
    dashboard = server.client(None, headers={"Cookie": f"{COOKIE}={cookie}"})
    admin = server.client(server.admin)
    listing_id = make_listing(admin, 10, "order")
    before = body(dashboard.get("/dashboard/data"), 200)["outcomes"]
    # New connections, so the kernel hands them to both workers.
    for _ in range(12):
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as fresh:
            fresh.post("/v1/orders", json=order_body(listing_id, 1))
    after = body(dashboard.get("/dashboard/data"), 200)["outcomes"]
    assert after["created"] - before["created"] == 10
    assert after["sold_out"] - before["sold_out"] == 2


def test_a_live_sale_with_a_wrong_token_stops_before_selling_and_says_why(
    server: Server, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*stockguard_command(), "demo", "--live", "--url", server.url, "--token", server.storefront],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250"},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "the live sale failed" in done.stderr
    assert "forbidden" in done.stderr


def test_a_live_sale_without_a_token_asks_for_one(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "STOCKGUARD_ADMIN_TOKEN"}
    done = subprocess.run(
        [*stockguard_command(), "demo", "--live"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no stockguard-data here
        env={**env, "COLUMNS": "250"},
        check=False,
    )
    assert done.returncode == 2
    assert "pass the service's admin token" in done.stderr
