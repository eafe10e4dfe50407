"""Dependencies shared by the routes: the service, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stockguard.api.auth import Role, Tokens
from stockguard.api.problems import ApiError
from stockguard.service import Stockguard

_bearer = HTTPBearer(auto_error=False, description="A storefront or admin token.")


# Async although nothing here awaits: FastAPI runs plain functions on its thread pool,
# a hop every request would pay for nothing.
async def get_guard(request: Request) -> Stockguard:
    guard: Stockguard = request.app.state.guard
    return guard


async def caller_role(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Role:
    tokens: Tokens = request.app.state.tokens
    role = None if credentials is None else tokens.role_of(credentials.credentials)
    if role is None:
        raise ApiError(
            401, "unauthenticated", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    return role


async def admin_role(role: Annotated[Role, Depends(caller_role)]) -> Role:
    if role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "this needs the admin token")
    return role


Guard = Annotated[Stockguard, Depends(get_guard)]
AnyRole = Depends(caller_role)
AdminOnly = Depends(admin_role)
