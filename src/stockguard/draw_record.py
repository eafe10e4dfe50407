"""Reading a draw's published record, from a running service or a saved file, for ``verify-draw``."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from stockguard.domain.draws import Published


class RecordUnreadable(Exception):
    """The record could not be fetched or is not a draw record."""


def fetch(base_url: str, draw_id: str, token: str) -> dict[str, Any]:
    """``GET /v1/draws/{id}`` and its ``/entries``, as one record: ``{"draw": ..., "entries": ...}``."""
    quoted = urllib.parse.quote(draw_id, safe="")
    return {
        "draw": _get(f"{base_url.rstrip('/')}/v1/draws/{quoted}", token),
        "entries": _get(f"{base_url.rstrip('/')}/v1/draws/{quoted}/entries", token),
    }


def load(path: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RecordUnreadable(f"cannot read {path}: {error}") from None
    return record


def published(record: dict[str, Any]) -> Published:
    """The parts of a record the rule is checked against."""
    try:
        draw, entries = record["draw"], record["entries"]
        ranked = [*draw["winners"], *draw["waiting"], *draw["passed_over"]]
        return Published(
            commitment=draw["commitment"],
            seed=draw["seed"],
            units=int(draw["units"]),
            entries=tuple(entries["entries"]),
            ranks={row["buyer_id"]: int(row["rank"]) for row in ranked},
            winners=frozenset(row["buyer_id"] for row in draw["winners"]),
            waiting=frozenset(row["buyer_id"] for row in draw["waiting"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RecordUnreadable(f"not a draw record (missing or wrong {error})") from None


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RecordUnreadable(f"{url} answered {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RecordUnreadable(f"cannot fetch {url}: {error}") from None
