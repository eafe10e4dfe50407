"""Brokers for the event tests: a NATS JetStream server of the test's own (to kill and start
again), the local RabbitMQ, and consumers that read what the relay published.

Without ``nats-server`` on the PATH or RabbitMQ at ``STOCKGUARD_TEST_AMQP`` (default
amqp://guest:guest@127.0.0.1:5672/) the tests that need them are skipped, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from stockguard.chaos.services import free_port

AMQP_URL = os.environ.get("STOCKGUARD_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@dataclass
class NatsServer:
    """``nats-server -js`` on a free port, its JetStream files in a folder of the test's own."""

    port: int
    store: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @classmethod
    def start_new(cls, folder: Path) -> NatsServer:
        if shutil.which("nats-server") is None:
            missing("nats-server is not on the PATH (Debian package nats-server)")
        folder.mkdir(parents=True, exist_ok=True)
        server = cls(free_port(), folder / "jetstream", folder / "nats.log")
        server.start()
        return server

    def start(self) -> None:
        command = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nats-server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """``kill -9``: no goodbye to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def read_jetstream(url: str, stream: str = "STOCKGUARD") -> list[dict[str, Any]]:
    """Every message the JetStream stream holds, in its order, as the relay's JSON documents."""

    async def read() -> list[dict[str, Any]]:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            subscription = await js.pull_subscribe("stockguard.>", stream=stream)
            found: list[dict[str, Any]] = []
            while True:
                try:
                    batch = await subscription.fetch(500, timeout=1)
                except NatsTimeout:
                    return found
                for message in batch:
                    found.append(json.loads(message.data))
                    await message.ack()
        finally:
            await client.close()

    return asyncio.run(read())


def in_order_without_loss(received: list[dict[str, Any]], truth: dict[str, int]) -> None:
    """Each stream in ``truth`` (stream -> last sequence) arrived whole: every sequence from 1,
    repeats allowed (at least once), first arrivals in order."""
    firsts: dict[str, list[int]] = {}
    for message in received:
        seqs = firsts.setdefault(message["stream"], [])
        if message["seq"] not in seqs:
            seqs.append(message["seq"])
    for stream, last in truth.items():
        assert firsts.get(stream) == list(range(1, last + 1)), (stream, firsts.get(stream), last)
