"""Key names: every key of one listing shares the hash tag ``{<prefix>:<listing>}``.

A cluster places a key by the hash of its tag alone, so a listing's keys live
on one node and a script may touch them all; different listings spread over
the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ListingKeys:
    state: str
    orders: str
    buyers: str

    @classmethod
    def of(cls, prefix: str, listing_id: str) -> ListingKeys:
        tag = f"{{{prefix}:{listing_id}}}"
        return cls(f"{tag}:state", f"{tag}:orders", f"{tag}:buyers")

    def all(self) -> tuple[str, str, str]:
        return (self.state, self.orders, self.buyers)
