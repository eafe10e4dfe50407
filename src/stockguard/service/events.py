"""Reading the change events, and the relay's side of the outbox (``stores.outbox`` writes them)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from stockguard.domain.errors import InvalidInput
from stockguard.domain.events import Event, StreamKind, stream_of
from stockguard.domain.validation import check_id, check_quantity
from stockguard.service.base import ServiceBase

MAX_EVENTS_PER_READ = 1000
RELAY_LEASE = "relay"
# How long events stay for SSE clients to resume from, unless told otherwise.
DEFAULT_RETENTION = timedelta(days=7)


class EventService(ServiceBase):
    def events(self, kind: StreamKind | str, key: str, after: int = 0, limit: int = 100) -> list[Event]:
        """The events of one listing's, order's or item's stream after sequence ``after``, oldest first."""
        try:
            stream_kind = StreamKind(kind)
        except ValueError:
            raise InvalidInput("kind must be one of: listing, order, item") from None
        check_id(key, f"{stream_kind.value} id")
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 2**62:
            raise InvalidInput("after must be a sequence number of 0 or more")
        check_quantity(limit, "limit")
        limit = min(limit, MAX_EVENTS_PER_READ)
        with self.store.read(consistent=False) as tx:
            return tx.events_after(stream_of(stream_kind, key), after, limit)

    # -- the relay
    def hold_relay_lease(self, holder: str, seconds: float) -> bool:
        """Become (or stay) the one relay that publishes, for ``seconds``; False: another one is."""
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        return self.store.atomic(lambda tx: tx.take_lease(RELAY_LEASE, holder, now, until))

    def unpublished(self, limit: int) -> list[Event]:
        with self.store.read(consistent=False) as tx:
            return tx.unpublished_events(limit)

    def mark_published(self, positions: Collection[int]) -> None:
        self.store.atomic(lambda tx: tx.mark_published(positions))

    def prune_events(self, retention: timedelta = DEFAULT_RETENTION) -> None:
        """Delete events older than ``retention``: only published ones while a relay is in use."""
        before = self.clock() - retention

        self.store.atomic(
            lambda tx: tx.prune_events(before, unpublished_too=not tx.lease_exists(RELAY_LEASE))
        )
