"""``/dashboard``: the login form, the page, and the JSON the page polls, behind the admin token.

The token is typed into a form once and never travels in a URL; what the browser keeps is a
session cookie (``session.py``), HTTP-only, SameSite=Strict and Secure. None of these routes are
part of the public API, so they stay out of ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from stockguard.api.auth import Role, Tokens
from stockguard.api.dashboard import session
from stockguard.api.dashboard.snapshot import snapshot
from stockguard.api.deps import Guard
from stockguard.api.problems import ApiError
from stockguard.api.routes.common import OrderId
from stockguard.api.routes.movements import movement_out
from stockguard.api.schemas import order_out
from stockguard.api.settings import Settings

STATIC = Path(__file__).parent / "static"
LOGIN_FIELD = "token"
MAX_LOGIN_BODY = 4096

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_pages = Environment(
    loader=PackageLoader("stockguard.api.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
)
# Scripts and styles come from this service only; nothing inline, no frames.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _admin_token(request: Request) -> str:
    tokens: Tokens = request.app.state.tokens
    return tokens.admin


def _logged_in(request: Request) -> bool:
    return session.is_valid(request.cookies.get(session.COOKIE), _admin_token(request))


async def dashboard_session(request: Request) -> None:
    if not _logged_in(request):
        raise ApiError(401, "unauthenticated", "log in at /dashboard/login first")


Session = Depends(dashboard_session)


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _pages.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


@router.get("")
async def dashboard(request: Request) -> Response:
    if not _logged_in(request):
        return RedirectResponse("/dashboard/login", status_code=303, headers=_HEADERS)
    return _page("dashboard.html")


@router.get("/login")
async def login_form(request: Request) -> Response:
    if _logged_in(request):
        return RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
    return _page("login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    _same_origin(request)
    body = await request.body()
    presented = _form_field(body, LOGIN_FIELD)
    tokens: Tokens = request.app.state.tokens
    if presented is None or tokens.role_of(presented) is not Role.ADMIN:
        return _page("login.html", status=401, refused=True)
    settings: Settings = request.app.state.settings
    lifetime = settings.dashboard_session_hours * 3600
    response = RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
    response.set_cookie(
        session.COOKIE,
        session.issue(tokens.admin, lifetime),
        max_age=int(lifetime),
        path="/dashboard",
        secure=settings.dashboard_secure_cookie,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    response = RedirectResponse("/dashboard/login", status_code=303, headers=_HEADERS)
    response.delete_cookie(session.COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


@router.get("/data", dependencies=[Session])
def data(guard: Guard) -> JSONResponse:
    return JSONResponse(snapshot(guard), headers=_HEADERS)


@router.get("/orders/{order_id}", dependencies=[Session])
def order(guard: Guard, order_id: OrderId) -> JSONResponse:
    found = guard.get_order(order_id)
    moves = guard.movements(order_id=order_id)
    body = {
        "order": order_out(found).model_dump(mode="json"),
        "movements": [movement_out(m).model_dump(mode="json") for m in moves],
    }
    return JSONResponse(body, headers=_HEADERS)


def _form_field(body: bytes, name: str) -> str | None:
    if len(body) > MAX_LOGIN_BODY:
        return None
    try:
        values = parse_qs(body.decode(), max_num_fields=4).get(name)
    except (UnicodeDecodeError, ValueError):
        return None
    return values[0] if values else None


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site (a browser always says where a POST comes from)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "forbidden", "this form may only be sent from the dashboard itself")
