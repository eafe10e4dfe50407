"""Operations: health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from stockguard.api.deps import AnyRole, Guard
from stockguard.api.metrics import exposition
from stockguard.api.routes.common import problems
from stockguard.api.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """Alive and serving (no token needed)."""
    return HealthOut(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[AnyRole],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problems(common=(401, 503))},
)
def metrics(guard: Guard) -> Response:
    """Prometheus text format: orders by outcome, holds expired, sellable per listing, latency."""
    return Response(exposition(guard), media_type=CONTENT_TYPE_LATEST)
