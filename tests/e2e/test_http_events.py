"""Change events over HTTP and through a broker: GET /v1/events (server-sent events, resumable
with Last-Event-ID), and `stockguard relay` publishing to NATS JetStream and RabbitMQ, at least
once and in order per stream, across a relay killed mid-stream and a broker restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokers import AMQP_URL, NatsServer, in_order_without_loss, missing, read_jetstream
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
from stockguard import StreamKind, connect

JSON = dict[str, Any]


def follow(
    client: httpx.Client, params: dict[str, Any], count: int, last_event_id: str | None = None
) -> list[JSON]:
    """The first ``count`` server-sent events of GET /v1/events, parsed."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    found: list[JSON] = []
    timeout = httpx.Timeout(10.0, read=10.0)
    with client.stream("GET", "/v1/events", params=params, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                if not line.startswith(":"):  # a comment: the keep-alive
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                found.append({"id": fields["id"], "event": fields["event"], **json.loads(fields["data"])})
                if len(found) == count:
                    break
            fields = {}
    return found


def test_a_storefront_follows_a_listing_and_resumes_after_its_last_event_id(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 5, "reserve")
    first = body(storefront.post("/v1/orders", json=order_body(listing_id, 2)), 201)
    body(storefront.post(f"/v1/orders/{first['order_id']}/cancel"), 200)

    history = follow(storefront, {"listing_id": listing_id}, 3)
    assert [(e["id"], e["seq"], e["event"]) for e in history] == [
        ("1", 1, "listing.changed"),
        ("2", 2, "listing.changed"),
        ("3", 3, "listing.changed"),
    ]
    assert [e["data"]["sellable"] for e in history] == [5, 3, 5]
    assert {e["stream"] for e in history} == {f"listing:{listing_id}"}

    # A page that saw event 2 reconnects: it gets 3, then what happens while it listens.
    def buy_later() -> None:
        time.sleep(0.5)
        body(storefront.post("/v1/orders", json=order_body(listing_id, 1)), 201)

    buyer = threading.Thread(target=buy_later)
    buyer.start()
    resumed = follow(storefront, {"listing_id": listing_id}, 2, last_event_id="2")
    buyer.join()
    assert [(e["seq"], e["data"]["sellable"]) for e in resumed] == [(3, 5), (4, 4)]
    assert follow(storefront, {"listing_id": listing_id, "after": 3}, 1)[0]["seq"] == 4


def test_an_order_and_an_item_have_streams_of_their_own(
    admin: httpx.Client, storefront: httpx.Client
) -> None:
    listing_id = make_listing(admin, 3, "reserve")
    sku = body(admin.get(f"/v1/listings/{listing_id}"), 200)["components"][0]["sku"]
    order = body(storefront.post("/v1/orders", json=order_body(listing_id)), 201)
    body(storefront.post(f"/v1/orders/{order['order_id']}/pay"), 200)

    changes = follow(storefront, {"order_id": order["order_id"]}, 2)
    assert [e["data"]["status"] for e in changes] == ["reserved", "paid"]
    levels = follow(storefront, {"sku": sku}, 3)
    assert [(e["data"]["reserved"], e["data"]["committed"]) for e in levels] == [(0, 0), (1, 0), (0, 1)]


def test_following_needs_a_token_one_known_stream_and_a_sequence_number(
    admin: httpx.Client, storefront: httpx.Client, anonymous: httpx.Client
) -> None:
    listing_id = make_listing(admin, 1)
    assert_problem(anonymous.get("/v1/events", params={"listing_id": listing_id}), 401, "unauthenticated")
    assert_problem(storefront.get("/v1/events"), 422, "invalid")
    both = {"listing_id": listing_id, "sku": "x"}
    assert_problem(storefront.get("/v1/events", params=both), 422, "invalid")
    assert_problem(storefront.get("/v1/events", params={"listing_id": "bad id!"}), 422, "invalid")
    assert_problem(storefront.get("/v1/events", params={"listing_id": uid("nope")}), 404, "not_found")
    assert_problem(
        storefront.get("/v1/events", params={"listing_id": listing_id}, headers={"Last-Event-ID": "x"}),
        422,
        "invalid",
    )
    assert_problem(
        storefront.get("/v1/events", params={"listing_id": listing_id, "after": -1}), 422, "invalid"
    )


# -- the relay


@contextmanager
def relaying(folder: Path, db: str, broker: str) -> Iterator[subprocess.Popen[bytes]]:
    """`stockguard relay` until the block ends (SIGTERM; it must then stop cleanly)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"relay-{uid('run')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*stockguard_command(), "relay", "--db", db, "--broker", broker], stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0, log.read_text()
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "guest:guest" not in text, "no password in what the relay prints"


def truth(db: str, streams: list[tuple[StreamKind, str]]) -> dict[str, int]:
    """Each stream's last sequence number, read from the store itself."""
    guard = connect(db)
    try:
        return {f"{kind}:{key}": guard.events(kind, key, limit=1000)[-1].seq for kind, key in streams}
    finally:
        guard.close()


def sell(server: Server, listing_id: str, orders: int, *, cancel_every: int = 4) -> list[str]:
    """Orders one after another, every few cancelled; returns their ids."""
    client = server.client(server.storefront)
    placed = []
    for n in range(orders):
        order = body(client.post("/v1/orders", json=order_body(listing_id)), 201)
        placed.append(order["order_id"])
        if n % cancel_every == 0:
            body(client.post(f"/v1/orders/{order['order_id']}/cancel"), 200)
    return placed


def wait_until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_every_event_reaches_jetstream_in_order_across_a_killed_relay_and_a_restarted_broker(
    tmp_path: Path,
) -> None:
    nats_server = NatsServer.start_new(tmp_path / "nats")
    try:
        with running_server(tmp_path / "server") as server:
            db = f"sqlite:///{server.data_dir / 'stockguard.db'}"
            admin = server.client(server.admin)
            listing_id = make_listing(admin, 1000, "reserve")
            sku = body(admin.get(f"/v1/listings/{listing_id}"), 200)["components"][0]["sku"]
            placed: list[str] = []
            with relaying(tmp_path / "relay-a", db, nats_server.url) as first:
                placed += sell(server, listing_id, 40)
                # A second relay waits for the lease; the first dies without a word.
                with relaying(tmp_path / "relay-b", db, nats_server.url):
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
                    placed += sell(server, listing_id, 40)
                    nats_server.kill()  # the broker dies mid-stream and comes back with its files
                    placed += sell(server, listing_id, 40)
                    nats_server.start()
                    placed += sell(server, listing_id, 40)
                    streams = [(StreamKind.LISTING, listing_id), (StreamKind.ITEM, sku)]
                    streams += [(StreamKind.ORDER, order_id) for order_id in placed]
                    expected = truth(db, streams)

                    def all_published() -> bool:
                        guard = connect(db)
                        try:
                            return guard.unpublished(1) == []
                        finally:
                            guard.close()

                    wait_until(all_published, seconds=60)
            received = read_jetstream(nats_server.url)
    finally:
        nats_server.stop()
    # One change per hold and per cancel, each its own commit (one client, one request at a time).
    assert expected[f"listing:{listing_id}"] == 1 + 160 + 40
    in_order_without_loss(received, expected)
    assert received[0]["type"] in {"listing.changed", "item.level_changed"}
    assert set(received[0]) == {"type", "stream", "seq", "time", "data"}


def test_the_relay_publishes_to_rabbitmq_with_confirms(tmp_path: Path) -> None:
    aio_pika = pytest.importorskip("aio_pika")

    async def bind_queue() -> tuple[Any, Any]:
        connection = await aio_pika.connect_robust(AMQP_URL, timeout=5)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "stockguard.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="stockguard.#")
        return connection, queue

    async def drain(queue: Any, expected: dict[str, int]) -> list[JSON]:
        """Messages of the expected streams until each stream's last sequence arrived."""
        found: list[JSON] = []
        last: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while any(last.get(stream, 0) < seq for stream, seq in expected.items()):
            assert time.monotonic() < deadline, (last, expected)
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            document = json.loads(message.body)
            if document["stream"] in expected:
                found.append(document)
                last[document["stream"]] = max(last.get(document["stream"], 0), document["seq"])
        return found

    async def scenario() -> tuple[list[JSON], dict[str, int]]:
        try:
            connection, queue = await bind_queue()
        except Exception as error:
            missing(f"no RabbitMQ at {AMQP_URL}: {error!r}")
            raise
        try:
            with running_server(tmp_path / "server") as server:
                db = f"sqlite:///{server.data_dir / 'stockguard.db'}"
                listing_id = make_listing(server.client(server.admin), 50, "reserve")
                placed = await asyncio.to_thread(sell, server, listing_id, 10)
                streams = [(StreamKind.LISTING, listing_id)] + [(StreamKind.ORDER, o) for o in placed]
                expected = truth(db, streams)
                with relaying(tmp_path / "relay", db, AMQP_URL):
                    received = await drain(queue, expected)
            return received, expected
        finally:
            await connection.close()

    received, expected = asyncio.run(scenario())
    in_order_without_loss(received, expected)
