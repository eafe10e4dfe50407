"""Draw use cases: set up a lottery for scarce stock, take entries, run it, replace unpaid winners.

The rule that picks winners is in ``domain.draws``; here it meets the store.
A winner's order is a hold for the draw's payment window, placed by the same
code as every order (screening, limits, stock). When a winner's hold expires
or is cancelled, the transaction that ends it also gives the unit to the next
buyer on the waiting list, so a unit is passed on exactly once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from stockguard.domain import draws as rule
from stockguard.domain.draws import Draw, DrawState, Entry, Published
from stockguard.domain.errors import (
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotEligible,
    SoldOut,
)
from stockguard.domain.model import LIVE_OR_PAID, Order, OrderLine, OrderStatus
from stockguard.domain.screening import NO_CONTEXT, BuyerContext
from stockguard.domain.validation import check_id, check_moment, check_quantity
from stockguard.service.base import OrderContext
from stockguard.service.catalog import MAX_HOLD_SECONDS, Saved
from stockguard.service.orders import OrderService
from stockguard.stores.base import PlaceRequest, Transaction

# How many waiting entries one promotion looks at before it reads the next page.
WAITING_PAGE = 50


@dataclass(frozen=True, slots=True)
class Award:
    """A drawn entry and what became of it."""

    entry: Entry
    status: OrderStatus | None = None  # of its order; None while waiting or passed over


@dataclass(frozen=True, slots=True)
class DrawReport:
    draw: Draw
    state: DrawState
    entries: int
    winners: tuple[Award, ...]  # entries given an order, by rank (paid, waiting for payment, or lapsed)
    waiting: tuple[Entry, ...]  # drawn, in line for a unit, by rank
    passed_over: tuple[Entry, ...]  # drawn, but refused a unit (screening, limits), by rank

    @property
    def seed(self) -> str | None:
        """Revealed by the run, never before."""
        return self.draw.seed if self.draw.drawn_at is not None else None

    def published(self, entries: Sequence[str]) -> Published:
        """The public record of the draw, with its entered buyers: what ``domain.draws.verify`` checks."""
        ranked = [*(award.entry for award in self.winners), *self.waiting, *self.passed_over]
        return Published(
            self.draw.commitment,
            self.seed,
            self.draw.units,
            tuple(entries),
            {entry.buyer_id: entry.rank or 0 for entry in ranked},
            frozenset(award.entry.buyer_id for award in self.winners),
            frozenset(entry.buyer_id for entry in self.waiting),
        )


class DrawService(OrderService):
    def put_draw(
        self,
        draw_id: str,
        listing_id: str,
        units: int,
        opens_at: datetime,
        closes_at: datetime,
        payment_seconds: int = 900,
    ) -> Saved[DrawReport]:
        """Create a draw (a fresh secret seed, its commitment published at once), or change one
        nobody entered yet. The same terms again change nothing."""
        check_id(draw_id, "draw_id")
        check_id(listing_id, "listing_id")
        check_quantity(units, "units")
        check_moment(opens_at, "opens_at")
        check_moment(closes_at, "closes_at")
        check_quantity(payment_seconds, "payment_seconds")
        if payment_seconds > MAX_HOLD_SECONDS:
            raise InvalidInput(f"payment_seconds must be at most {MAX_HOLD_SECONDS}")
        if closes_at <= opens_at:
            raise InvalidInput("closes_at must come after opens_at")
        now = self.clock()
        seed = secrets.token_hex(32)
        wanted = Draw(
            draw_id, listing_id, units, opens_at, closes_at, payment_seconds, seed, rule.commitment(seed), now
        )

        def work(tx: Transaction) -> Saved[DrawReport]:
            self._listing(tx, listing_id)
            existing = tx.draw(draw_id)
            if existing is None:
                tx.put_draw(wanted)
                return Saved(_report(tx, wanted, now), created=True)
            if existing.same_terms(wanted):
                return Saved(_report(tx, existing, now), created=False)
            if existing.drawn_at is not None or tx.entry_count(draw_id) > 0:
                raise InvalidTransition(f"draw {draw_id!r} has entries: its terms can no longer change")
            changed = replace(
                wanted, seed=existing.seed, commitment=existing.commitment, created_at=existing.created_at
            )
            tx.put_draw(changed)
            return Saved(_report(tx, changed, now), created=False)

        return self.store.atomic(work)

    def enter_draw(self, draw_id: str, buyer_id: str, context: OrderContext | None = None) -> Saved[Entry]:
        """Enter a buyer while registration is open: one entry per buyer, device and address,
        and only for buyers the listing's screening lets buy. Entering again answers the entry."""
        check_id(draw_id, "draw_id")
        check_id(buyer_id, "buyer_id")
        known = NO_CONTEXT if context is None else self._buyer_context(context)
        now = self.clock()

        def work(tx: Transaction) -> Saved[Entry]:
            draw = self._draw(tx, draw_id)  # locked: entries of one draw take turns
            existing = tx.entry(draw_id, buyer_id)
            if existing is not None:
                return Saved(existing, created=False)
            _check_open(draw, now)
            screening = self._listing(tx, draw.listing_id).screening
            if screening is not None:
                self._screen(tx, buyer_id, [screening], now)
            sharing = tx.entry_sharing(draw_id, known.device_id, known.address_hash)
            if sharing is not None:
                same_device = known.device_id is not None and sharing.device_id == known.device_id
                what = "device" if same_device else "delivery address"
                raise LimitExceeded(f"this {what} already entered draw {draw_id!r}: one entry per {what}")
            entry = Entry(
                draw_id, buyer_id, tx.entry_count(draw_id) + 1, now, known.device_id, known.address_hash
            )
            tx.put_entry(entry)
            return Saved(entry, created=True)

        return self.store.atomic(work)

    def run_draw(self, draw_id: str) -> DrawReport:
        """After registration closed: reveal the seed, rank the entries, hold a unit for each winner.
        Running a drawn draw again answers it as it is."""
        check_id(draw_id, "draw_id")
        now = self.clock()
        holds: list[Order] = []

        def work(tx: Transaction) -> DrawReport:
            draw = self._draw(tx, draw_id)
            if draw.drawn_at is not None:
                return _report(tx, draw, now)
            if draw.state(now) is not DrawState.CLOSED:
                raise InvalidTransition(
                    f"draw {draw_id!r} takes entries until {draw.closes_at.isoformat()}; run it after that"
                )
            entries = {entry.buyer_id: entry for entry in tx.entries(draw_id)}
            for rank, buyer_id in enumerate(rule.ranking(draw.seed, list(entries)), start=1):
                tx.put_entry(replace(entries[buyer_id], rank=rank))
            drawn = replace(draw, drawn_at=now)
            tx.put_draw(drawn)
            holds.extend(self._award(tx, drawn, drawn.units, now))
            return _report(tx, drawn, now)

        report = self.store.atomic(work)
        if self._gated is not None:
            for order in holds:  # told after the commit, like a payment that took stock again
                self._gated.held_again(order)
        return report

    def get_draw(self, draw_id: str) -> DrawReport:
        check_id(draw_id, "draw_id")
        self._sweep_if_due()  # unpaid winners are replaced before anyone reads the list
        now = self.clock()
        with self.store.read() as tx:
            return _report(tx, self._draw(tx, draw_id), now)

    def published_draw(self, draw_id: str) -> Published:
        """The draw's public record, as ``GET /v1/draws/{id}`` and its ``/entries`` publish it."""
        report = self.get_draw(draw_id)
        return report.published(self.draw_entries(draw_id)[1])

    def draw_standings(self) -> dict[tuple[str, str], int]:
        """How many entries of each draw stand where: won and holding (reserved), paid, lapsed
        (expired, cancelled), waiting, passed over, or entered and not drawn yet."""
        self._sweep_if_due()
        with self.store.read() as tx:
            return tx.draw_standings()

    def draw_entries(self, draw_id: str) -> tuple[Draw, list[str]]:
        """The draw and its entered buyers in arrival order: what anyone needs to recompute it."""
        check_id(draw_id, "draw_id")
        with self.store.read() as tx:
            return self._draw(tx, draw_id), [entry.buyer_id for entry in tx.entries(draw_id)]

    # -- promotion
    def _ended(self, tx: Transaction, order: Order, now: datetime) -> None:
        super()._ended(tx, order, now)
        if order.status not in LIVE_OR_PAID:
            return  # a lapsed winner cancelled: its unit was passed on when it lapsed
        entry = tx.entry_of_order(order.order_id)
        if entry is None:
            return
        # The winner's unit is free: the next on the waiting list gets it, in this transaction.
        for held in self._award(tx, self._draw(tx, entry.draw_id), 1, now):
            if self._gated is not None:
                # Told before the commit, as ending the order was: should the transaction
                # fail, the gate counts a unit the store does not hold, and the store refuses it.
                self._gated.held_again(held)

    def _award(self, tx: Transaction, draw: Draw, units: int, now: datetime) -> list[Order]:
        """Give ``units`` units to waiting entries, by rank, while stock and the list last."""
        held: list[Order] = []
        while len(held) < units:
            waiting = tx.waiting(draw.draw_id, WAITING_PAGE)
            if not waiting:
                break
            for entry in waiting[: units - len(held)]:
                try:
                    order = self._hold_for(tx, draw, entry, now)
                except SoldOut:
                    return held  # no stock left to give: the rest keep waiting
                if order is not None:
                    held.append(order)
        return held

    def _hold_for(self, tx: Transaction, draw: Draw, entry: Entry, now: datetime) -> Order | None:
        """The winner's hold, or None when the entry was passed over (SoldOut: no stock is left)."""
        request = PlaceRequest(
            rule.winner_order_id(draw.draw_id, entry.buyer_id),
            entry.buyer_id,
            (OrderLine(draw.listing_id, 1),),
            now,
            BuyerContext(entry.device_id, None, entry.address_hash),
        )
        try:
            order = self._new_order(tx, request, hold_until=now + timedelta(seconds=draw.payment_seconds))
        except (NotEligible, LimitExceeded, InvalidInput) as refusal:
            tx.put_entry(replace(entry, passed_over=refusal.detail[:200]))
            return None
        tx.put_entry(replace(entry, order_id=order.order_id))
        return order


def _check_open(draw: Draw, now: datetime) -> None:
    state = draw.state(now)
    if state is DrawState.SCHEDULED:
        raise InvalidTransition(f"draw {draw.draw_id!r} opens for entries at {draw.opens_at.isoformat()}")
    if state is not DrawState.OPEN:
        raise InvalidTransition(f"draw {draw.draw_id!r} closed for entries at {draw.closes_at.isoformat()}")


def _status(tx: Transaction, entry: Entry) -> OrderStatus | None:
    order = None if entry.order_id is None else tx.order(entry.order_id)
    return None if order is None else order.status


def _report(tx: Transaction, draw: Draw, now: datetime) -> DrawReport:
    entries = tx.entries(draw.draw_id)
    ranked = sorted((e for e in entries if e.rank is not None), key=lambda e: e.rank or 0)
    return DrawReport(
        draw,
        draw.state(now),
        len(entries),
        tuple(Award(e, _status(tx, e)) for e in ranked if e.order_id is not None),
        tuple(e for e in ranked if e.order_id is None and e.passed_over is None),
        tuple(e for e in ranked if e.passed_over is not None),
    )
