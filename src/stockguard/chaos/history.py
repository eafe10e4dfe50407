"""The history of a run: every request a load driver sent, with when it started and ended and what
came back, kept in memory and, line by line, in a JSON-lines file.

A call that got no answer (the connection was refused or reset, the request timed out) has
``status`` None: it may or may not have taken effect, and the checker treats it so, as it does
a 503 ``outcome_unknown`` (the database went away while the call's change was committed).
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

# The problem code of an answer that does not know whether the call took effect.
OUTCOME_UNKNOWN = "outcome_unknown"


class Op(enum.StrEnum):
    PLACE = "place"  # POST /v1/orders
    PAY = "pay"  # POST /v1/orders/{id}/pay
    CANCEL = "cancel"  # POST /v1/orders/{id}/cancel
    RECEIVE = "receive"  # POST /v1/items/{sku}/receipts
    COUNT = "count"  # POST /v1/items/{sku}/adjustments


@dataclass(frozen=True, slots=True)
class Call:
    op: Op
    target: str  # the order id, or the SKU of a receipt or count
    start: float  # seconds since the epoch, when the request was sent
    end: float  # when its answer (or its failure) came
    status: int | None  # None: no answer, the outcome is unknown
    code: str | None = None  # the problem's code, for a refusal
    listing_id: str | None = None  # PLACE: the one line's listing
    quantity: int = 0  # PLACE: units ordered; RECEIVE: units received; COUNT: units counted
    order_status: str | None = None  # the order's status in the answer
    expires_at: float | None = None  # PLACE: when the answered hold runs out
    via: str = ""  # which service process was asked

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """Answered with an error: the contract promises it changed nothing."""
        return self.status is not None and self.status >= 400 and self.code != OUTCOME_UNKNOWN

    @property
    def in_doubt(self) -> bool:
        """No answer, or an answer that the outcome is unknown: it may or may not have taken effect."""
        return self.status is None or self.code == OUTCOME_UNKNOWN

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "", 0)} | {
            "op": self.op.value,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class SaleTerms:
    """What the checker must know of the sale: each listing's components, and the hold time."""

    components: dict[str, list[tuple[str, int]]]  # listing id -> [(sku, units per order unit)]
    hold_seconds: float
    skus: list[str] = field(default_factory=list)

    def units_by_sku(self, listing_id: str, quantity: int) -> dict[str, int]:
        return {sku: per * quantity for sku, per in self.components[listing_id]}


class History:
    """Calls in the order they ended; safe to add to from many threads or tasks."""

    def __init__(self, terms: SaleTerms, path: Path | None = None) -> None:
        self.terms = terms
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path is not None:
            self._file = path.open("w")
            header = {"components": terms.components, "hold_seconds": terms.hold_seconds, "skus": terms.skus}
            self._file.write(json.dumps({"terms": header}) + "\n")

    def add(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
            if self._file is not None:
                self._file.write(json.dumps(call.as_json()) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self._calls)

    @classmethod
    def load(cls, path: Path) -> History:
        with path.open() as lines:
            terms_line = json.loads(next(lines))["terms"]
            components = {k: [(sku, per) for sku, per in v] for k, v in terms_line["components"].items()}
            history = cls(SaleTerms(components, terms_line["hold_seconds"], terms_line["skus"]))
            for call in _calls(lines):
                history.add(call)
        return history


def _calls(lines: Iterable[str]) -> Iterator[Call]:
    for line in lines:
        fields = json.loads(line)
        fields["op"] = Op(fields["op"])
        yield Call(**fields)
