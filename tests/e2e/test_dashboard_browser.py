"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright): log in, watch
a live sale sent by ``stockguard demo --live`` move the charts and counters to the store's final
figures, and look an order up. Screenshots land in ``test-artifacts/dashboard/``.

Nothing here reaches beyond 127.0.0.1: Chromium starts with its background networking off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from brokers import missing
from e2e.server import Server, body, running_server, stockguard_command

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HISTORY_KEY = "stockguard-dashboard-history-v1"
SALE = {"units": 40, "buyers": 240, "rate": 80, "hold_seconds": 2}
SETTLE_SECONDS = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, so its counters tell this module's sale and nothing else."""
    with running_server(tmp_path_factory.mktemp("dashboard-browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        missing("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    opened = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def log_in(page: Page, token: str) -> None:
    page.goto("/dashboard")
    expect(page).to_have_url(f"{page.url.split('/dashboard')[0]}/dashboard/login")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_a_wrong_token_is_refused_and_leaves_no_cookie(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    log_in(page, server.storefront)
    expect(page.locator("#login-error")).to_have_text("That is not the admin token.")
    assert page.url.endswith("/dashboard/login")
    assert context.cookies() == []
    page.goto("/dashboard")
    assert page.url.endswith("/dashboard/login")


def test_the_admin_token_logs_in_without_showing_it_anywhere(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    log_in(page, server.admin)
    expect(page.locator("#status")).to_have_text("live")
    assert page.url.endswith("/dashboard")
    [cookie] = context.cookies()
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert server.admin not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # out of reach of the page's scripts


def run_live_sale(server: Server) -> dict[str, Any]:
    command = [
        *stockguard_command(),
        "demo",
        "--live",
        "--url",
        server.url,
        "--json",
        *(part for key, value in SALE.items() for part in (f"--{key.replace('_', '-')}", str(value))),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "STOCKGUARD_ADMIN_TOKEN": server.admin},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def settled(admin: httpx.Client, listing_id: str, paid: int) -> dict[str, Any]:
    """The listing once every unpaid hold has run out: only paid bottles are sold."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        listing = body(admin.get(f"/v1/listings/{listing_id}"), 200)
        if listing["sold"] == paid or time.monotonic() > deadline:
            return listing
        time.sleep(0.2)


def tile_value(page: Page, listing_id: str, key: str) -> str:
    return (
        page.locator(f'[data-listing-id="{listing_id}"] .tile.{key} .value').get_attribute("data-value") or ""
    )


def test_a_live_sale_moves_the_charts_and_counters_to_the_stores_final_figures(
    context: BrowserContext, server: Server
) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, server.admin)
    expect(page.locator("#status")).to_have_text("live")

    sale = run_live_sale(server)
    listing_id, units, paid = sale["listing_id"], SALE["units"], sale["paid"]
    assert sale["oversold"] == 0
    assert 0 < paid <= units
    admin = server.client(server.admin)
    final = settled(admin, listing_id, paid)
    assert (final["sold"], final["sellable"]) == (paid, units - paid)

    card = page.locator(f'[data-listing-id="{listing_id}"]')
    expect(card.locator("h3")).to_have_text(f"Maotai flash sale {listing_id.removeprefix('maotai-')}")
    expect(card.locator(".tile.sellable .value")).to_have_attribute("data-value", str(units - paid))
    expect(card.locator(".tile.held .value")).to_have_attribute("data-value", "0")
    expect(card.locator(".tile.taken .value")).to_have_attribute("data-value", str(paid))
    for outcome in ("created", "sold_out", "limit_exceeded", "not_eligible"):
        tile = page.locator(f'[data-outcome="{outcome}"] .sub')
        expect(tile).to_have_attribute("data-total", str(sale["outcomes"].get(outcome, 0)))
    expect(page.locator(f'#levels tr[data-sku="{listing_id}"] td').nth(3)).to_have_attribute(
        "data-value", "0"
    )
    expect(page.locator("#no-shortages")).to_be_visible()
    # Scalper-like accounts fail both screening rules: each rule counts every one of them.
    for rule in ("account_age", "paid_orders"):
        row = page.locator("#rules tbody tr", has_text=rule)
        expect(row.locator("td").nth(2)).to_have_attribute(
            "data-value", str(sale["outcomes"]["not_eligible"])
        )

    # The charts moved: the sellable line came down from where the page first saw it, and the
    # rate of created orders rose above zero while buyers arrived.
    history = page.evaluate(f"JSON.parse(sessionStorage.getItem('{HISTORY_KEY}'))")
    times, sellable, held, taken = history["listings"][listing_id]
    assert len(times) >= 5
    assert max(sellable) > min(sellable)
    assert sellable[-1] == units - paid
    assert taken[-1] == paid
    assert max(held) > 0
    created_rates = history["rates"][1]
    assert max(created_rates) > 0
    assert card.locator("canvas").first.bounding_box() is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "sale-desktop.png", full_page=True)

    # The same page on a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=ARTIFACTS / "sale-phone.png", full_page=True)
    assert errors == []


def test_an_order_search_shows_the_orders_ledger_movements(context: BrowserContext, server: Server) -> None:
    admin = server.client(server.admin)
    sku = "search-bottle"
    body(admin.put(f"/v1/items/{sku}", json={"name": "Bottle"}), 201)
    body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": 5}), 200)
    listing = {"title": "Bottle", "components": [{"sku": sku, "quantity": 1}], "deduction": "reserve"}
    body(admin.put("/v1/listings/search-bottle", json=listing), 201)
    order = {
        "order_id": "order-to-find",
        "buyer_id": "b-1",
        "lines": [{"listing_id": "search-bottle", "quantity": 2}],
    }
    body(admin.post("/v1/orders", json=order), 201)
    body(admin.post("/v1/orders/order-to-find/pay"), 200)

    page = context.new_page()
    log_in(page, server.admin)
    page.fill("#order-id", "order-to-find")
    page.click("#order-search button")
    facts = page.locator("#order-facts dd")
    expect(facts.nth(0)).to_have_text("order-to-find")
    expect(facts.nth(1)).to_have_text("paid")
    rows = page.locator("#order-movements tbody tr")
    expect(rows).to_have_count(3)
    changes = [
        rows.nth(i).locator("td").nth(3).inner_text() + rows.nth(i).locator("td").nth(4).inner_text()
        for i in range(3)
    ]
    assert changes == ["reserved2", "reserved-2", "committed2"]

    page.fill("#order-id", "no-such-order")
    page.click("#order-search button")
    expect(page.locator("#order-result .error")).to_have_text("No order no-such-order.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "order-search.png", full_page=True)
