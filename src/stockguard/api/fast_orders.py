"""POST /v1/orders without FastAPI's request machinery: the hot path, kept lean.

Every order of a flash sale comes through this one route, and FastAPI's
generic handling (routing, dependency solving, body parsing into Python
objects and validating those, the exception middleware) costs more than the
placement itself. This middleware answers the common case directly: a JSON
body that validates as ``OrderIn`` (pydantic reads the bytes itself) and a
valid bearer token, placed by the same ``place`` function the FastAPI route
calls. Anything else (a missing or wrong token, another content type, bad
JSON, a validation error) goes on to the app with the body replayed, so those
answers come from the same code as on every other route, and the route stays
what ``/openapi.json`` documents.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from stockguard.api.auth import Tokens
from stockguard.api.middleware import replaying
from stockguard.api.routes.orders import place
from stockguard.api.schemas import OrderIn

PATH = "/v1/orders"


class FastPlacement:
    def __init__(self, app: ASGIApp, route: BaseRoute) -> None:
        self.app = app
        self.route = route  # the FastAPI route of POST /v1/orders, which the access log names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        order = self._parse(scope, body)
        if order is None:
            await self.app(scope, replaying(body, receive), send)
            return
        scope["route"] = self.route
        state = scope["app"].state
        response = await place(state.guard, state.bridge, order)
        await response(scope, receive, send)

    @staticmethod
    def _parse(scope: Scope, body: bytes) -> OrderIn | None:
        """The order, when the request is the common case this path answers; else None.

        Admits only what the FastAPI route would accept too (a JSON body, a
        ``Bearer`` token read as ``HTTPBearer`` reads it, first header wins).
        """
        headers = Headers(scope=scope)
        if headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        tokens: Tokens = scope["app"].state.tokens
        if scheme.lower() != "bearer" or not token or tokens.role_of(token) is None:
            return None
        try:
            return OrderIn.model_validate_json(body)
        except ValidationError:
            return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
