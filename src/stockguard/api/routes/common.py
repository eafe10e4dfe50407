"""Path parameters and documented error answers shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from stockguard.api.schemas import ID_PATTERN, ProblemOut


def id_param(description: str) -> Any:
    return Path(min_length=1, max_length=64, pattern=ID_PATTERN, description=description)


Sku = Annotated[str, id_param("The item's SKU.")]
ListingId = Annotated[str, id_param("The listing's id.")]
OrderId = Annotated[str, id_param("The order's id, also its idempotency key.")]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    return {
        status: {"model": ProblemOut, "content": {"application/problem+json": {}}}
        for status in (401, 422, 503, *statuses)
    }
