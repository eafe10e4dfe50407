"""Checks a run's history and the store it left against stockguard's promises (DOMAIN.md).

1. At no moment could the acknowledged holds of an item exceed its stock: from the history
   (holds counted from their answer until they could first have ended, stock counted as soon as
   it could have arrived), and again from the ledger, replayed movement by movement.
2. Every order answered 201 exists in the store, with its lines and a status its answers allow;
   no order whose every placement was refused (4xx, 503) exists.
3. Every hold ended exactly once: per order, the ledger's reserved and committed units never go
   below zero or above what the order holds, and end where its status says.
4. ``stockguard check`` finds no drift.
5. A failure is told as 503 (``unavailable``, or ``outcome_unknown``), never as another 5xx.

A call that got no answer, or was answered ``outcome_unknown``, may or may not have taken
effect; the checks allow both.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict
from dataclasses import dataclass, field

from stockguard.chaos.history import Call, History, Op
from stockguard.domain.model import Counter, Movement, Order, OrderStatus, Reason
from stockguard.service import Stockguard
from stockguard.stores.base import MovementFilter

ALL_ROWS = 1_000_000_000
MAX_LISTED = 20  # violations kept per rule; the count is always whole


@dataclass(slots=True)
class Report:
    calls: int = 0
    answered: int = 0
    unknown: int = 0  # calls with no answer
    outcomes: Tally[str] = field(default_factory=Tally)  # "place 201", "pay 410 expired", ...
    acknowledged_orders: int = 0
    lost_orders: int = 0  # answered 201, missing from the store
    oversold_units: int = 0  # the most units ever promised beyond stock, history or ledger
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    violation_counts: Tally[str] = field(default_factory=Tally)

    @property
    def clean(self) -> bool:
        return not self.violation_counts

    def violate(self, rule: str, detail: str) -> None:
        self.violation_counts[rule] += 1
        if len(self.violations[rule]) < MAX_LISTED:
            self.violations[rule].append(detail)

    def as_json(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "answered": self.answered,
            "unknown": self.unknown,
            "outcomes": dict(sorted(self.outcomes.items())),
            "acknowledged_orders": self.acknowledged_orders,
            "lost_orders": self.lost_orders,
            "oversold_units": self.oversold_units,
            "clean": self.clean,
            "violations": {rule: list(found) for rule, found in self.violations.items()},
            "violation_counts": dict(self.violation_counts),
        }


def check_run(history: History, guard: Stockguard) -> Report:
    """Every promise, from the history and the store as the run left it (holds already ended)."""
    calls = history.calls
    report = Report(calls=len(calls))
    for call in calls:
        report.answered += call.answered
        report.unknown += not call.answered
        if call.status is not None and call.status >= 500 and call.status != 503:
            report.violate("only 503 for a failure", f"{call.op.value} {call.target} answered {call.status}")
        report.outcomes[
            f"{call.op.value} {call.status or 'no answer'}{' ' + call.code if call.code else ''}"
        ] += 1
    by_order: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.op in (Op.PLACE, Op.PAY, Op.CANCEL):
            by_order[call.target].append(call)
    with guard.store.read() as tx:
        orders = {order.order_id: order for order in tx.all_orders()}
        movements = tx.movements(MovementFilter(limit=ALL_ROWS))
        safety = {sku: item.safety for sku in history.terms.skus if (item := tx.item(sku)) is not None}
    _acknowledged_holds_within_stock(history, by_order, safety, report)
    _orders_as_answered(by_order, orders, guard.clock().timestamp(), report)
    _holds_end_once(orders, movements, report)
    _ledger_never_oversold(movements, report)
    for drift in guard.check():
        report.violate("check", str(drift))
    return report


# -- 1. no oversell, from the history


def _acknowledged_holds_within_stock(
    history: History, by_order: dict[str, list[Call]], safety: dict[str, int], report: Report
) -> None:
    """Sweep the run's timeline: stock rises as soon as a receipt or count could have landed; a
    hold counts from its answer until the first moment it could have ended."""
    # (time, then stock before releases before holds at the same moment, sku, units)
    timeline: list[tuple[float, int, str, int]] = []
    for call in history.calls:
        if call.op in (Op.RECEIVE, Op.COUNT) and not call.refused:
            timeline.append(
                (call.start, _STOCK if call.op is Op.RECEIVE else _COUNT, call.target, call.quantity)
            )
    for calls in by_order.values():
        for start, end, listing_id, quantity in _held_intervals(calls):
            for sku, units in history.terms.units_by_sku(listing_id, quantity).items():
                timeline.append((start, _HOLD, sku, units))
                timeline.append((end, _RELEASE, sku, units))
    stock: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for _moment, kind, sku, units in sorted(timeline):
        if kind == _STOCK:
            stock[sku] += units
        elif kind == _COUNT:
            stock[sku] = max(stock[sku], units)  # a count may have set on_hand to what it counted
        elif kind == _RELEASE:
            held[sku] -= units
        else:
            held[sku] += units
            excess = held[sku] - (stock[sku] - safety.get(sku, 0))
            if excess > 0:
                report.oversold_units = max(report.oversold_units, excess)
                report.violate(
                    "acknowledged holds within stock", f"{sku}: {held[sku]} held, stock {stock[sku]}"
                )


_STOCK, _COUNT, _RELEASE, _HOLD = range(4)


def _held_intervals(calls: list[Call]) -> list[tuple[float, float, str, int]]:
    """When an order's stock was surely held: from its 201 until a cancel could have started,
    its hold ran out (unless paid in time), and again after a payment that took stock anew."""
    placed = next((c for c in calls if c.op is Op.PLACE and c.status == 201), None)
    if placed is None or placed.listing_id is None:
        return []
    cancels = [c.start for c in calls if c.op is Op.CANCEL and not c.refused]
    cancelled_at = min(cancels, default=float("inf"))
    payments = [c for c in calls if c.op is Op.PAY and c.acknowledged]
    deadline = placed.expires_at if placed.expires_at is not None else float("inf")
    in_time = [p for p in payments if p.start < deadline]
    first_end = cancelled_at if in_time else min(cancelled_at, deadline)
    intervals = [(placed.end, max(placed.end, first_end), placed.listing_id, placed.quantity)]
    late = [p for p in payments if p.start >= deadline]
    if not in_time and late and late[0].end < cancelled_at:
        intervals.append((late[0].end, cancelled_at, placed.listing_id, placed.quantity))
    return intervals


# -- 2. acknowledged orders are there, refused ones are not


def _orders_as_answered(
    by_order: dict[str, list[Call]], orders: dict[str, Order], now: float, report: Report
) -> None:
    for order_id, calls in by_order.items():
        placements = [c for c in calls if c.op is Op.PLACE]
        order = orders.get(order_id)
        if any(c.status == 201 for c in placements):
            report.acknowledged_orders += 1
            if order is None:
                report.lost_orders += 1
                report.violate("acknowledged orders exist", f"{order_id} was answered 201 and is gone")
                continue
            placed = next(c for c in placements if c.status == 201)
            lines = [(line.listing_id, line.quantity) for line in order.lines]
            if lines != [(placed.listing_id, placed.quantity)]:
                report.violate("acknowledged orders exist", f"{order_id} has lines {lines}")
            allowed = _allowed_statuses(calls)
            answered_end = any(c.op in (Op.PAY, Op.CANCEL) and c.acknowledged for c in calls)
            if not answered_end and (order.expires_at is None or order.expires_at.timestamp() > now):
                allowed.add(OrderStatus.RESERVED)  # still holding: nothing has ended it yet
            if order.status not in allowed:
                report.violate(
                    "status as answered",
                    f"{order_id} is {order.status.value}; its answers allow "
                    f"{sorted(status.value for status in allowed)}",
                )
        elif order is not None and placements and all(c.refused for c in placements):
            report.violate("refused orders absent", f"{order_id}: every placement refused, yet it exists")


def _allowed_statuses(calls: list[Call]) -> set[OrderStatus]:
    """Where an order may end once its hold has run out, by what its calls were answered."""
    if any(c.op is Op.CANCEL and c.acknowledged for c in calls):
        return {OrderStatus.CANCELLED}
    allowed = {OrderStatus.EXPIRED}
    if any(c.op is Op.PAY and not c.refused for c in calls):
        allowed.add(OrderStatus.PAID)
    if any(c.op is Op.CANCEL and c.in_doubt for c in calls):
        allowed.add(OrderStatus.CANCELLED)
    if any(c.op is Op.PAY and c.acknowledged for c in calls):
        allowed.discard(OrderStatus.EXPIRED)  # a paid order never expires
        if any(c.op is Op.CANCEL and c.in_doubt for c in calls):
            allowed.add(OrderStatus.CANCELLED)
    return allowed


# -- 3. every hold ends exactly once


def _holds_end_once(orders: dict[str, Order], movements: list[Movement], report: Report) -> None:
    running: dict[tuple[str, str, str, Counter], int] = defaultdict(int)
    for m in movements:
        if m.order_id is None or m.counter not in (Counter.RESERVED, Counter.COMMITTED):
            continue
        key = (m.order_id, m.sku, m.warehouse, m.counter)
        running[key] += m.delta
        order = orders.get(m.order_id)
        most = 0 if order is None else sum(a.quantity for a in order.allocations if a.sku == m.sku)
        if not 0 <= running[key] <= most:
            report.violate(
                "holds end once",
                f"{m.order_id}: {m.counter.value} of {m.sku}@{m.warehouse} went to {running[key]} "
                f"({m.reason.value})",
            )
    per_order: dict[str, dict[Counter, int]] = defaultdict(lambda: defaultdict(int))
    for (order_id, _sku, _warehouse, counter), units in running.items():
        per_order[order_id][counter] += units
    for order in orders.values():
        units = sum(a.quantity for a in order.allocations)
        expected = _expected_ledger(order.status, units)
        found = (per_order[order.order_id][Counter.RESERVED], per_order[order.order_id][Counter.COMMITTED])
        if found != expected:
            report.violate(
                "holds end once",
                f"{order.order_id} is {order.status.value} with {found[0]} reserved and {found[1]} "
                "committed in the ledger",
            )


def _expected_ledger(status: OrderStatus, units: int) -> tuple[int, int]:
    """What an order's ledger rows add up to, by its status: (reserved, committed)."""
    if status is OrderStatus.RESERVED:
        return units, 0
    if status is OrderStatus.PAID:
        return 0, units
    return 0, 0  # placed (nothing held yet), or ended: shipped, cancelled, expired


# -- 1 again, from the ledger


def _ledger_never_oversold(movements: list[Movement], report: Report) -> None:
    """Replay the ledger in order: every hold and payment left reserved + committed within stock
    (the ledger carries the safety counter itself)."""
    levels: dict[tuple[str, str], dict[Counter, int]] = defaultdict(lambda: defaultdict(int))
    for m in movements:
        level = levels[m.sku, m.warehouse]
        level[m.counter] += m.delta
        if m.reason in (Reason.HOLD, Reason.COMMIT) and m.delta > 0:
            promised = level[Counter.RESERVED] + level[Counter.COMMITTED]
            limit = level[Counter.ON_HAND] - level[Counter.SAFETY]
            if promised > limit:
                report.oversold_units = max(report.oversold_units, promised - limit)
                report.violate(
                    "ledger never oversold",
                    f"{m.sku}@{m.warehouse}: {promised} promised, {limit} to promise ({m.order_id})",
                )
