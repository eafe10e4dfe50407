"""Path parameters and documented error answers shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from stockguard.api.problems import PROBLEM_JSON
from stockguard.api.schemas import ID_PATTERN, ProblemOut


def id_param(description: str) -> Any:
    return Path(min_length=1, max_length=64, pattern=ID_PATTERN, description=description)


Sku = Annotated[str, id_param("The item's SKU.")]
ListingId = Annotated[str, id_param("The listing's id.")]
OrderId = Annotated[str, id_param("The order's id, also its idempotency key.")]
BuyerId = Annotated[str, id_param("The buyer's id, as the shop knows them.")]
DrawId = Annotated[str, id_param("The draw's id.")]

# Inline rather than ``"model": ProblemOut``: FastAPI would put a model under ``application/json``,
# a media type these answers never have.
_PROBLEM_SCHEMA = ProblemOut.model_json_schema(mode="serialization")


# What a client must know of an answer beyond its code.
_DESCRIPTIONS = {
    503: (
        "A store the request needs is down. `unavailable`: nothing was changed. `outcome_unknown`: "
        "the database went away while the change was being committed and could not be asked whether "
        "it was; read it back, or send the same order, payment or cancellation again (idempotent)."
    ),
}


def problems(*statuses: int, common: tuple[int, ...] = (401, 422, 503)) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    return {
        status: {"content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
        | ({"description": _DESCRIPTIONS[status]} if status in _DESCRIPTIONS else {})
        for status in (*common, *statuses)
    }
