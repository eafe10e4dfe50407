"""Errors as ``application/problem+json``: the one place that maps exceptions to the API's codes."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockguard.domain.errors import (
    HoldExpired,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotEligible,
    NotFound,
    OrderConflict,
    OutcomeUnknown,
    RateLimited,
    SoldOut,
    StockguardError,
    Unavailable,
)

PROBLEM_JSON = "application/problem+json"

STATUS_OF: dict[type[StockguardError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    SoldOut: 409,
    LimitExceeded: 409,
    OrderConflict: 409,
    InvalidTransition: 409,
    HoldExpired: 410,
    NotEligible: 403,
    RateLimited: 429,
    Unavailable: 503,
    OutcomeUnknown: 503,
}

# Codes of HTTP-level refusals that do not come from the domain.
_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal decided by the HTTP layer itself (authentication, roles, body size)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://stockguard.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(error: StockguardError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 500


def from_domain(error: StockguardError) -> JSONResponse:
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(error, InvalidInput):
        extra["errors"] = error.errors
    elif isinstance(error, NotEligible):
        extra["reasons"] = error.reasons
    elif isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after)}
    elif isinstance(error, Unavailable | OutcomeUnknown):
        headers = {"Retry-After": "1"}
    return problem(status_of(error), error.code, error.detail, headers, **extra)


def _validation_errors(error: RequestValidationError) -> list[str]:
    messages = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            messages.append(f"the body is not valid JSON (near character {item['loc'][-1]})")
            continue
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        messages.append(f"{where}: {item.get('msg', 'invalid')}")
    return messages


UNREADABLE_BODY = "the body is not valid JSON (not UTF-8 text, or nested too deeply)"


def _allowed_methods(request: Request) -> str | None:
    """Every method the requested path answers. FastAPI keeps one route per method, so the 405 of
    the route that matched the path names that route's methods only; the OpenAPI paths name all."""
    template = getattr(request.scope.get("route"), "path_format", None)
    operations = request.app.openapi().get("paths", {}).get(template)
    if not operations:
        return None
    methods = {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Route every error the app can meet to a problem+json answer."""

    @app.exception_handler(StockguardError)
    async def _domain(_: Request, error: StockguardError) -> JSONResponse:
        return from_domain(error)

    @app.exception_handler(ApiError)
    async def _api(_: Request, error: ApiError) -> JSONResponse:
        return problem(error.status, error.code, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        messages = _validation_errors(error)
        return problem(422, "invalid", "; ".join(messages[:3]), errors=messages)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:
            # FastAPI's answer to a body json.loads cannot even decode: the contract says 422 invalid.
            return problem(422, "invalid", UNREADABLE_BODY, errors=[UNREADABLE_BODY])
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        code = _HTTP_CODES.get(error.status_code, "error")
        return problem(error.status_code, code, str(error.detail), headers or None)
