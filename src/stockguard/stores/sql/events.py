"""The SQL transaction's outbox: change events, their streams, the relay's lease (tables in ``tables.py``)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stockguard.domain.events import Event, EventType, NewEvent
from stockguard.stores.base import Changes
from stockguard.stores.sql.buyers_draws import dt, ts

_EVENT_COLUMNS = "id, stream, seq, type, at, data"
# Each stream's sequence moves on by the number of events added to it; the
# returned value is the last one given out.
_NEXT_SEQ = (
    "INSERT INTO event_streams (stream, seq, last) VALUES {values} "
    "ON CONFLICT (stream) DO UPDATE SET seq = event_streams.seq + excluded.seq, last = excluded.last "
    "RETURNING stream, seq"
)
_INSERT_EVENT = (
    "INSERT INTO events (stream, seq, type, at, data, published) "
    "VALUES (:stream, :seq, :type, :at, :data, :published)"
)
# Streams exist before their first event, so their rows can be locked (a new order's is its own).
_ENSURE_STREAM = (
    "INSERT INTO event_streams (stream, seq, last) VALUES (:stream, 0, '{}') ON CONFLICT DO NOTHING"
)


class EventsOutbox:
    """Mixed into ``SqlTransaction``, which supplies the statement helpers and the lock clauses."""

    _for_update: str
    _stream_order: str  # the collation streams are locked in (PostgreSQL: "C", as stockguard_emit)
    changes: Changes

    if TYPE_CHECKING:  # supplied by SqlTransaction

        def _one(self, sql: str, params: Mapping[str, Any]) -> Any: ...
        def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]: ...
        def _write(self, sql: str, params: Mapping[str, Any]) -> None: ...
        def _execute_many(self, sql: str, params: list[dict[str, Any]]) -> None: ...
        def _write_returning(self, sql: str, params: Mapping[str, Any]) -> Any: ...
        def _write_returning_all(self, sql: str, params: Mapping[str, Any]) -> list[Any]: ...

    def _ensure_stream(self, stream: str) -> None:
        self._write(_ENSURE_STREAM, {"stream": stream})

    def lock_streams(self, streams: Collection[str]) -> dict[str, dict[str, Any]]:
        if not streams:
            return {}
        names = {f"s{i}": stream for i, stream in enumerate(sorted(streams))}
        rows = self._all(
            f"SELECT stream, last FROM event_streams WHERE stream IN ({', '.join(':' + n for n in names)}) "
            f"ORDER BY stream{self._stream_order}{self._for_update}",
            names,
        )
        return {stream: json.loads(last) for stream, last in rows}

    def append_events(self, events: list[NewEvent], at: datetime) -> None:
        if not events:
            return
        # Each event's data is encoded once: a stream's last event is also its `last` value.
        encoded = [json.dumps(event.data, separators=(",", ":")) for event in events]
        per_stream: dict[str, list[int]] = {}  # stream -> its events' positions in `events`
        for position, event in enumerate(events):
            per_stream.setdefault(event.stream, []).append(position)
        # One statement moves every stream on, in the order the streams were locked in.
        streams = sorted(per_stream)
        params: dict[str, Any] = {}
        for i, stream in enumerate(streams):
            mine = per_stream[stream]
            params[f"s{i}"], params[f"n{i}"], params[f"l{i}"] = stream, len(mine), encoded[mine[-1]]
        values = ", ".join(f"(:s{i}, :n{i}, :l{i})" for i in range(len(streams)))
        moved = self._write_returning_all(_NEXT_SEQ.format(values=values), params)
        next_seq = {stream: int(seq) - len(per_stream[stream]) + 1 for stream, seq in moved}
        written_at = ts(at)
        rows: list[dict[str, Any]] = []
        for event, data in zip(events, encoded, strict=True):
            seq = next_seq[event.stream]
            next_seq[event.stream] = seq + 1
            rows.append(
                {
                    "stream": event.stream,
                    "seq": seq,
                    "type": event.type.value,
                    "at": written_at,
                    "data": data,
                    "published": False,
                }
            )
        self._execute_many(_INSERT_EVENT, rows)

    def events_after(self, stream: str, seq: int, limit: int) -> list[Event]:
        rows = self._all(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream = :stream AND seq > :seq "
            "ORDER BY seq LIMIT :limit",
            {"stream": stream, "seq": seq, "limit": limit},
        )
        return [_event(row) for row in rows]

    def unpublished_events(self, limit: int) -> list[Event]:
        rows = self._all(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE published = :no ORDER BY id LIMIT :limit",
            {"no": False, "limit": limit},
        )
        return [_event(row) for row in rows]

    def mark_published(self, positions: Collection[int]) -> None:
        if positions:
            self._execute_many(
                "UPDATE events SET published = :yes WHERE id = :id",
                [{"yes": True, "id": position} for position in positions],
            )

    def prune_events(self, before: datetime, *, unpublished_too: bool) -> None:
        which = "" if unpublished_too else " AND published = :yes"
        self._write(f"DELETE FROM events WHERE at < :before{which}", {"before": ts(before), "yes": True})

    def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        row = self._write_returning(
            "INSERT INTO relay_leases (name, holder, until) VALUES (:name, :holder, :until) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
            "WHERE relay_leases.holder = excluded.holder OR relay_leases.until < :now RETURNING holder",
            {"name": name, "holder": holder, "until": ts(until), "now": ts(now)},
        )
        return row is not None

    def lease_exists(self, name: str) -> bool:
        return self._one("SELECT 1 FROM relay_leases WHERE name = :name", {"name": name}) is not None


def _event(row: Any) -> Event:
    position, stream, seq, kind, at, data = row
    return Event(int(position), stream, int(seq), EventType(kind), dt(at), json.loads(data))
