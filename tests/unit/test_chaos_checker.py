"""The chaos checker catches each broken promise it is there to catch, and passes a run that keeps
them all. Histories are written by hand beside a memory store driven through the library."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import FakeClock
from stockguard import Counter, Reason, Stockguard, open_store
from stockguard.chaos.checker import Report, check_run
from stockguard.chaos.history import Call, History, Op, SaleTerms
from stockguard.domain.model import Movement

BOTTLE, LISTING = "bottle", "single"
TERMS = SaleTerms({LISTING: [(BOTTLE, 1)]}, hold_seconds=60, skus=[BOTTLE])


@pytest.fixture
def guard(clock: FakeClock) -> Stockguard:
    sg = Stockguard(open_store("memory://"), clock.now)
    sg.put_item(BOTTLE, "Bottle")
    sg.put_listing(LISTING, "Bottle", [(BOTTLE, 1)], "reserve", hold_seconds=60)
    return sg


class Run:
    """Calls made through the library and written down as the traffic driver would."""

    def __init__(self, guard: Stockguard, clock: FakeClock) -> None:
        self.guard, self.clock, self.history = guard, clock, History(TERMS)

    def now(self) -> float:
        self.clock.advance(0.01)
        return self.clock.now().timestamp()

    def receive(self, units: int) -> None:
        start = self.now()
        self.guard.receive(BOTTLE, units)
        self.history.add(Call(Op.RECEIVE, BOTTLE, start, self.now(), 200, quantity=units))

    def place(self, order_id: str, quantity: int = 1, *, status: int = 201) -> None:
        start = self.now()
        expires = None
        if status == 201:
            order = self.guard.place_order(order_id, "buyer", [(LISTING, quantity)]).order
            expires = order.expires_at.timestamp() if order.expires_at else None
        self.history.add(
            Call(
                Op.PLACE,
                order_id,
                start,
                self.now(),
                status,
                listing_id=LISTING,
                quantity=quantity,
                expires_at=expires,
            )
        )

    def act(self, op: Op, order_id: str, *, status: int = 200, really: bool = True) -> None:
        start = self.now()
        if really:
            (self.guard.pay if op is Op.PAY else self.guard.cancel)(order_id)
        self.history.add(Call(op, order_id, start, self.now(), status))

    def check(self) -> Report:
        return check_run(self.history, self.guard)


@pytest.fixture
def run(guard: Stockguard, clock: FakeClock) -> Run:
    return Run(guard, clock)


def test_a_run_that_keeps_every_promise_is_clean(run: Run) -> None:
    run.receive(3)
    run.place("o-1")
    run.place("o-2", 2)
    run.act(Op.PAY, "o-1")
    run.act(Op.CANCEL, "o-2")
    run.place("o-3", 2)
    run.place("o-4", status=409)
    run.clock.advance(61)
    run.guard.expire_due()
    report = run.check()
    assert report.clean, report.as_json()
    assert (report.acknowledged_orders, report.lost_orders, report.oversold_units) == (3, 0, 0)
    assert report.outcomes["place 201"] == 3


def test_an_acknowledged_order_missing_from_the_store_is_lost(run: Run) -> None:
    run.receive(3)
    run.place("o-1")
    run.history.add(Call(Op.PLACE, "o-ghost", run.now(), run.now(), 201, listing_id=LISTING, quantity=1))
    report = run.check()
    assert report.lost_orders == 1
    assert report.violation_counts["acknowledged orders exist"] == 1


def test_an_order_whose_every_placement_was_refused_must_not_exist(run: Run) -> None:
    run.receive(3)
    run.guard.place_order("o-1", "buyer", [(LISTING, 1)])
    run.history.add(
        Call(Op.PLACE, "o-1", run.now(), run.now(), 503, code="unavailable", listing_id=LISTING, quantity=1)
    )
    assert run.check().violation_counts["refused orders absent"] == 1


def test_a_failure_told_as_500_is_caught(run: Run) -> None:
    run.receive(1)
    run.history.add(Call(Op.PLACE, "o-1", run.now(), run.now(), 500, listing_id=LISTING, quantity=1))
    assert run.check().violation_counts["only 503 for a failure"] == 1


def test_an_order_with_no_answer_may_or_may_not_exist(run: Run) -> None:
    run.receive(3)
    run.guard.place_order("o-1", "buyer", [(LISTING, 1)])
    run.history.add(Call(Op.PLACE, "o-1", run.now(), run.now(), None, listing_id=LISTING, quantity=1))
    run.history.add(Call(Op.PLACE, "o-2", run.now(), run.now(), None, listing_id=LISTING, quantity=1))
    assert run.check().clean


def test_more_acknowledged_holds_than_stock_is_oversold(run: Run) -> None:
    run.receive(2)
    run.place("o-1", 2)
    # Told 201 for two more bottles than there are: the history proves it, whatever the store says.
    run.history.add(
        Call(
            Op.PLACE,
            "o-2",
            run.now(),
            run.now(),
            201,
            listing_id=LISTING,
            quantity=2,
            expires_at=run.now() + 60,
        )
    )
    report = run.check()
    assert report.oversold_units == 2
    assert report.violation_counts["acknowledged holds within stock"] == 1


def test_stock_counts_from_when_its_receipt_could_have_landed(run: Run) -> None:
    run.receive(1)
    run.place("o-1")
    in_flight = Call(Op.RECEIVE, BOTTLE, run.now(), run.now() + 5, None, quantity=1)  # no answer
    run.guard.receive(BOTTLE, 1)
    run.history.add(in_flight)
    run.place("o-2")
    assert run.check().clean


def test_a_status_the_answers_do_not_allow_is_caught(run: Run) -> None:
    run.receive(2)
    run.place("o-1")
    run.act(Op.PAY, "o-1", really=True)
    run.history.add(Call(Op.CANCEL, "o-1", run.now(), run.now(), 200))  # told cancelled; it is paid
    assert run.check().violation_counts["status as answered"] == 1


def test_an_order_told_cancelled_that_still_holds_is_caught(run: Run) -> None:
    run.receive(2)
    run.place("o-1")
    run.act(Op.CANCEL, "o-1", really=False)  # answered 200, never done
    report = run.check()
    assert report.violation_counts["status as answered"] == 1
    assert "o-1 is reserved" in report.violations["status as answered"][0]


def test_a_hold_released_twice_is_caught_in_the_ledger(run: Run, guard: Stockguard) -> None:
    run.receive(3)
    run.place("o-1", 2)
    run.act(Op.CANCEL, "o-1")
    twice = Movement(BOTTLE, "main", Counter.RESERVED, -2, Reason.CANCEL, datetime.now(UTC), "o-1")
    guard.store.atomic(lambda tx: tx.record([twice]))
    report = run.check()
    assert report.violation_counts["holds end once"] >= 1
    assert report.violation_counts["check"] >= 1  # reserved no longer matches the live orders


def test_a_hold_beyond_stock_in_the_ledger_is_caught(run: Run, guard: Stockguard) -> None:
    run.receive(1)
    run.place("o-1")
    beyond = Movement(BOTTLE, "main", Counter.RESERVED, 1, Reason.HOLD, datetime.now(UTC), "o-1")
    guard.store.atomic(lambda tx: tx.record([beyond]))
    report = run.check()
    assert report.violation_counts["ledger never oversold"] == 1
    assert report.oversold_units == 1


def test_a_history_survives_its_file(run: Run, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "history.jsonl"
    written = History(TERMS, path)
    for call in [
        Call(Op.RECEIVE, BOTTLE, 1.0, 2.0, 200, quantity=3),
        Call(Op.PLACE, "o-1", 2.0, 3.0, None, listing_id=LISTING, quantity=1),
    ]:
        written.add(call)
    written.close()
    read = History.load(path)
    assert read.calls == written.calls
    assert read.terms == TERMS
