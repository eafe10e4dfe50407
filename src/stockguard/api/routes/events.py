"""Change events as server-sent events, for storefront pages and caches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from stockguard.api.deps import AnyRole, Guard
from stockguard.api.event_hub import EventHub
from stockguard.api.routes.common import problems
from stockguard.api.schemas import ID_PATTERN
from stockguard.domain.errors import InvalidInput
from stockguard.domain.events import EventType, StreamKind

router = APIRouter(prefix="/v1/events", tags=["events"])

# Each event of the stream (OpenAPI 3.1 has no itemSchema: tools read ``schema`` per event).
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data", "event", "id"],
    "properties": {
        "id": {"type": "string", "description": "The event's sequence number in its stream."},
        "event": {"type": "string", "enum": [t.value for t in EventType]},
        "data": {"type": "string", "description": "The event as JSON: type, stream, seq, time, data."},
    },
}
StreamId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
KEEP_ALIVE_S = 15


@router.get(
    "",
    dependencies=[AnyRole],
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
            "description": "Events as `id: <seq>`, `event: <type>`, `data: <JSON message>`, "
            "then each new one as it is committed (a comment every 15 s keeps the connection alive).",
        },
        **problems(404),
    },
)
async def follow_events(
    request: Request,
    guard: Guard,
    listing_id: StreamId = None,
    order_id: StreamId = None,
    sku: StreamId = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this sequence number.")] = None,
    last_event_id: Annotated[
        str | None, Header(max_length=20, description="Resume after this sequence (sent by browsers).")
    ] = None,
) -> EventSourceResponse:
    """Follow one listing's, order's or item's events (exactly one of `listing_id`, `order_id`,
    `sku`), from the start of what is retained, or after `Last-Event-ID` (or `after`)."""
    chosen = [(kind, key) for kind, key in _selectors(listing_id, order_id, sku) if key is not None]
    if len(chosen) != 1:
        raise InvalidInput("name exactly one of listing_id, order_id or sku")
    kind, key = chosen[0]
    resume = after if after is not None else _sequence(last_event_id)
    await _must_exist(guard, kind, key)
    hub: EventHub = request.app.state.event_hub

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for event in hub.follow(kind, key, resume):
            yield ServerSentEvent(data=_json(event.message()), event=event.type.value, id=str(event.seq))

    return EventSourceResponse(stream(), ping=KEEP_ALIVE_S)


def _selectors(
    listing_id: str | None, order_id: str | None, sku: str | None
) -> list[tuple[StreamKind, str | None]]:
    return [(StreamKind.LISTING, listing_id), (StreamKind.ORDER, order_id), (StreamKind.ITEM, sku)]


def _sequence(last_event_id: str | None) -> int:
    if last_event_id is None or not last_event_id.strip():
        return 0
    if not last_event_id.strip().isdigit():
        raise InvalidInput("Last-Event-ID must be a sequence number this stream sent")
    return int(last_event_id)


async def _must_exist(guard: Guard, kind: StreamKind, key: str) -> None:
    """An unknown listing, order or item answers 404 rather than a stream that stays silent."""
    lookup: Any = {
        StreamKind.LISTING: guard.get_listing,
        StreamKind.ORDER: guard.get_order,
        StreamKind.ITEM: guard.get_item,
    }[kind]
    await asyncio.to_thread(lookup, key)


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
