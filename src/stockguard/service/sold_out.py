"""Sold-out refusals off the write path: what this process has proved sold out, and on what.

Once a listing is sold out, every further buyer of a flash sale would queue
for the write lock only to be refused. So a listing the writer refused becomes
a *suspect*: its next buyers are checked by a read instead. A read that finds
it sold out leaves a *proof*: the units it found sellable, the store's stock
version at the time (``Store.stock_version``: it changes whenever stock may
have come back) and the moment the first live hold runs out (which may give
stock back without anybody writing). While the version is the same and that
moment has not come, the proof refuses buyers without reading stock at all.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime

from stockguard.domain.model import OrderLine


@dataclass(frozen=True, slots=True)
class Proof:
    version: Hashable
    sellable: int
    until: datetime | None  # the first live hold's end; None: no hold is live


class SoldOutBoard:
    def __init__(self) -> None:
        self._suspects: set[str] = set()
        self._proofs: dict[str, Proof] = {}

    def suspects_any(self, listing_ids: Iterable[str]) -> bool:
        return not self._suspects.isdisjoint(listing_ids)

    def suspect(self, listing_ids: Iterable[str]) -> None:
        self._suspects.update(listing_ids)

    def clear(self, listing_ids: Iterable[str]) -> None:
        for listing_id in listing_ids:
            self._suspects.discard(listing_id)
            self._proofs.pop(listing_id, None)

    def prove(self, listing_id: str, proof: Proof) -> None:
        self._suspects.add(listing_id)  # a proved listing is a suspect: its buyers look for the proof
        self._proofs[listing_id] = proof

    def refusing(
        self, lines: Iterable[OrderLine], version: Hashable | None, now: datetime
    ) -> OrderLine | None:
        """The first line a standing proof refuses, if any."""
        if version is None:
            return None
        for line in lines:
            proof = self._proofs.get(line.listing_id)
            if (
                proof is not None
                and proof.version == version
                and (proof.until is None or now < proof.until)
                and line.quantity > proof.sellable
            ):
                return line
        return None
