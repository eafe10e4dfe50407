"""Brokers the relay publishes to: NATS JetStream (the default) and RabbitMQ.

Each message is the event's JSON (``Event.message``) and carries its stream
and sequence number as headers; ``<stream>/<seq>`` is also the message id, so
JetStream drops a repeat inside its duplicate window by itself. ``publish``
returns only once the broker acknowledged every message it was given (a
JetStream PubAck, a RabbitMQ publisher confirm): the relay marks events
published only after that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from stockguard.domain.events import Event

SUBJECT_PREFIX = "stockguard"  # NATS subjects and RabbitMQ routing keys: stockguard.<event type>
DEFAULT_STREAM = "STOCKGUARD"  # the JetStream stream
DEFAULT_EXCHANGE = "stockguard.events"  # the RabbitMQ topic exchange
ACK_TIMEOUT_S = 5.0


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a batch: it stays unpublished and is sent again."""


class Broker(Protocol):
    async def connect(self) -> None: ...
    async def publish(self, events: Sequence[Event]) -> None:
        """Send the events in order; return once the broker acknowledged all, else raise BrokerUnavailable."""
        ...

    async def close(self) -> None: ...


def subject_of(event: Event) -> str:
    return f"{SUBJECT_PREFIX}.{event.type.value}"


def body_of(event: Event) -> bytes:
    return json.dumps(event.message(), separators=(",", ":")).encode()


def headers_of(event: Event) -> dict[str, str]:
    return {
        "Nats-Msg-Id": f"{event.stream}/{event.seq}",
        "Stockguard-Stream": event.stream,
        "Stockguard-Seq": str(event.seq),
    }


class NatsBroker:
    """NATS JetStream: the stream (created when missing) keeps every ``stockguard.>`` subject."""

    def __init__(self, url: str, stream: str = DEFAULT_STREAM) -> None:
        self._url = url
        self._stream = stream
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    async def connect(self) -> None:
        # Reconnects by itself for as long as the relay runs; publishes fail meanwhile.
        self._nc = await nats.connect(
            self._url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2
        )
        self._js = self._nc.jetstream(timeout=ACK_TIMEOUT_S)
        try:
            await self._js.stream_info(self._stream)
        except NotFoundError:
            await self._js.add_stream(name=self._stream, subjects=[f"{SUBJECT_PREFIX}.>"])

    async def publish(self, events: Sequence[Event]) -> None:
        if self._js is None:
            raise BrokerUnavailable("not connected")
        try:
            # Sent one after another on one connection (so in order), acknowledged together.
            acks = [
                await self._js.publish_async(subject_of(e), body_of(e), headers=headers_of(e)) for e in events
            ]
            await asyncio.wait_for(asyncio.gather(*acks), ACK_TIMEOUT_S)
        except Exception as error:  # a timeout, a lost connection, a JetStream error
            raise BrokerUnavailable(f"NATS did not acknowledge: {error!r}") from error

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()


class RabbitBroker:
    """RabbitMQ: persistent messages to a durable topic exchange, with publisher confirms."""

    def __init__(self, url: str, exchange: str = DEFAULT_EXCHANGE) -> None:
        self._url = url
        self._exchange_name = exchange
        self._connection: Any = None
        self._exchange: Any = None

    async def connect(self) -> None:
        import aio_pika  # the rabbitmq extra

        self._connection = await aio_pika.connect_robust(self._url, timeout=5)
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, events: Sequence[Event]) -> None:
        import aio_pika

        if self._exchange is None:
            raise BrokerUnavailable("not connected")
        exchange = self._exchange

        async def one_stream(mine: list[Event]) -> None:
            # Each confirm awaited before the next message of its stream: in order, per stream.
            for e in mine:
                message = aio_pika.Message(
                    body_of(e),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=f"{e.stream}/{e.seq}",
                    headers={"stockguard-stream": e.stream, "stockguard-seq": e.seq},
                )
                await exchange.publish(message, routing_key=subject_of(e), timeout=ACK_TIMEOUT_S)

        per_stream: dict[str, list[Event]] = {}
        for event in events:
            per_stream.setdefault(event.stream, []).append(event)
        try:
            await asyncio.gather(*(one_stream(mine) for mine in per_stream.values()))
        except Exception as error:
            raise BrokerUnavailable(f"RabbitMQ did not confirm: {error!r}") from error

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def broker_for(url: str) -> Broker:
    """``nats://host:4222`` or ``amqp://user:password@host:5672/vhost``."""
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        return NatsBroker(url)
    if scheme in ("amqp", "amqps"):
        return RabbitBroker(url)
    raise ValueError(f"no broker for {scheme!r} URLs: use nats://... or amqp://...")
