"""AdmissionPipe: admissions sent on a connection of their own, their answers read later.

The gate client's thread would otherwise wait for Redis to decide each batch
before it could take the next one, and Redis would wait for the thread: on a
hot sale each sat idle a third of the time. Through the pipe the thread sends
a batch while Redis still decides the one before, then reads the older
batch's answers. Redis answers a connection's commands in the order they were
sent, so the answers come in the order of the batches, and each listing's
change count (``seq``) still only grows in what the client reads.

On a cluster a batch is not sent ahead: it is decided when its answers are
asked for, by ``RedisGate.admit_many`` (one pipeline per node), as is a batch
that could not be sent. A call that fails (NOSCRIPT after a restart, a
connection that dropped) is made again through ``RedisGate.settle``; a
dropped connection fails every batch still on it, and the next batch takes a
new one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from stockguard.gate.redis_gate import AdmitRequest, RedisGate, by_listing_of
from stockguard.service.admission import Admission


@dataclass
class _Line:
    """A connection the pipe sends on, while it works, and the pool it goes back to."""

    connection: Any
    pool: redis.ConnectionPool
    working: bool = True

    def give_back(self) -> None:
        self.pool.release(self.connection)


@dataclass
class Sent:
    """A batch on its way: its requests, each listing's indexes, and the line it went on."""

    requests: Sequence[AdmitRequest]
    by_listing: dict[str, list[int]]
    line: _Line | None  # None: not sent (a cluster, or sending failed); asked when read

    @property
    def on_working_line(self) -> bool:
        """False once its answers can only come from asking (again): the client reads such a
        batch before it sends a newer one, so Redis decides the batches in the order taken."""
        return self.line is not None and self.line.working


class AdmissionPipe:
    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        server = gate.single_server()
        self._pool = None if server is None else server.connection_pool  # None: a cluster
        self._line: _Line | None = None
        self._pid = os.getpid()

    def send(self, requests: Sequence[AdmitRequest]) -> Sent:
        by_listing = by_listing_of(requests)
        sent = Sent(requests, by_listing, None)
        if self._pool is None:
            return sent
        commands = [self._gate.admit_command(requests, listing, at) for listing, at in by_listing.items()]
        try:
            line = self._working_line(self._pool)
            line.connection.send_packed_command(line.connection.pack_commands(commands))
            sent.line = line
        except redis.RedisError:  # not sent, or not all of it: the line cannot be trusted
            self._drop_line()
        return sent

    def receive(self, sent: Sent) -> list[Admission | redis.RedisError]:
        """The batch's answers, in the order of its requests (read from the line, or asked)."""
        line = sent.line
        if line is None:
            try:
                return self._gate.admit_many(sent.requests)
            except redis.RedisError as error:  # e.g. no node of a cluster reachable to route by
                return [error] * len(sent.requests)
        answers: list[Admission | redis.RedisError | None] = [None] * len(sent.requests)
        for listing_id, indexes in sent.by_listing.items():
            answered: Any = None
            if line.working:
                try:
                    answered = line.connection.read_response()
                except redis.RedisError:
                    # A call that failed (NOSCRIPT after a restart) is made again on another
                    # connection, so the calls sent after it on this one are made again after
                    # it too (in order: seq only grows); a connection that failed is gone.
                    self._drop_line(line)
            try:
                self._gate.settle(sent.requests, listing_id, indexes, answered, answers)
            except Exception as error:  # an answer not of ADMIT's shape: nothing after it can be read
                self._drop_line(line)
                for i in indexes:
                    answers[i] = redis.RedisError(f"unreadable answer from the gate: {error!r}")
        return [answer for answer in answers if answer is not None]

    def close(self) -> None:
        if self._line is not None and self._pid == os.getpid():
            self._line.give_back()
        self._line = None

    def _working_line(self, pool: redis.ConnectionPool) -> _Line:
        if self._pid != os.getpid():  # a forked child: the connection is the parent's
            self._line, self._pid = None, os.getpid()
        if self._line is None or not self._line.working:
            self._line = _Line(pool.get_connection(), pool)
        return self._line

    def _drop_line(self, line: _Line | None = None) -> None:
        """The line's connection failed: every batch still on it is asked again."""
        line = line or self._line
        if line is None or not line.working:
            return
        line.working = False
        line.connection.disconnect()
        line.give_back()
        if self._line is line:
            self._line = None
