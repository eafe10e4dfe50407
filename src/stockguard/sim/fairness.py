"""Who gets the bottles when part of the crowd are scalpers: an open sale, a screened sale, a draw.

The article's scalpers were new accounts (opened days ago, never paid for an
order, barely active, no membership, the phone often unverified), and they were
fast: bots press buy the moment a sale opens, fire several orders from each
account, and run rings of accounts that share a few phones and one drop
address. Real customers have histories; a few of them are new accounts too,
and a few scalper accounts were bought aged, so screening is not one-sided.

One seeded crowd (``make_crowd``: the same seed, the same buyers) meets three
arms, each on its own item and listing with ids carrying a run token:

- ``open``: no screening and no limits: whoever presses buy first gets a bottle;
- ``screened``: the listing's screening, and one unit per buyer, device and address;
- ``draw``: the screened listing sold by lottery, where arriving first buys nothing.

Every figure is read back from the store after the arm (its orders, its draw)
and cross-checked against what the buyers were told.
"""

from __future__ import annotations

import enum
import random
import secrets
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from stockguard import (
    Counter,
    Deduction,
    DrawReport,
    LimitExceeded,
    NotEligible,
    OrderContext,
    OrderStatus,
    Screening,
    SoldOut,
    Stockguard,
    StockguardError,
)
from stockguard.domain import draws as rule
from stockguard.sim.demo import DriftFound
from stockguard.sim.pool import SimulationError, Tick

OPEN, SCREENED, DRAW = "open", "screened", "draw"
FAIRNESS_ARMS = (OPEN, SCREENED, DRAW)
# The screening of the screened and draw arms: what the article's scalper accounts lack.
SCREENING = Screening(min_account_age_days=30, min_paid_orders=1, min_active_days_90d=5)
# The draw's registration window, on a clock the demo moves by hand: nothing waits for it.
DRAW_WINDOW = timedelta(seconds=1)
_TICK_EVERY = 50  # attempts between progress updates

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    units: int = 200  # bottles on sale in each arm
    buyers: int = 5_000  # accounts in the crowd, scalpers included
    scalper_share: float = 0.3  # share of the accounts that are scalpers'
    seed: int = 1  # which crowd: the same seed, the same buyers
    threads: int = 32  # buyer threads placing orders and entering the draw
    orders_per_scalper: int = 2  # a bot fires several orders from each account
    scalper_head_start: float = 0.1  # every bot order lands in this first share of the sale
    farmed_share: float = 0.01  # scalper accounts bought aged, with a history: they pass screening
    new_customer_share: float = 0.05  # real customers on new accounts: screening refuses them too
    hold_seconds: int = 900  # a reserve hold and a draw winner's payment window: nothing lapses
    screening: Screening = SCREENING

    def __post_init__(self) -> None:
        if self.units < 1 or self.buyers < 1 or self.threads < 1 or self.orders_per_scalper < 1:
            raise ValueError("units, buyers, threads and orders_per_scalper must be at least 1")
        shares = (self.scalper_share, self.scalper_head_start, self.farmed_share, self.new_customer_share)
        if not all(0.0 <= share <= 1.0 for share in shares):
            raise ValueError("shares must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class Shopper:
    """One account of the crowd: what the shop knows of it, and how it behaves in a sale."""

    buyer_id: str
    scalper: bool
    registered_days: int  # days since the account was opened
    paid_orders: int
    active_days_90d: int
    member_days: int | None  # None: not a member
    phone_verified: bool
    device_id: str
    address: str
    orders: int  # orders it places in the open and screened sales
    arrival: float  # 0 to 1: when in the sale its orders land


@dataclass(frozen=True, slots=True)
class FairnessResult:
    """One arm: who got the units (as the store holds them) and who was refused (as buyers were told)."""

    name: str
    units: int  # bottles on sale
    sold_to_scalpers: int
    sold_to_customers: int
    scalper_share_of_units: float  # of the units sold, the share scalpers got (0 to 1)
    refused_not_eligible: int  # orders (or draw entries) the screening refused
    refused_limit: int  # orders (or draw entries) a buyer, device or address limit refused
    seconds: float  # wall time of the sale (or of the entries and the run)
    listing_id: str
    draw_id: str | None = None

    @property
    def sold(self) -> int:
        return self.sold_to_scalpers + self.sold_to_customers

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class FairnessView(Protocol):
    """Where the arms show their progress (a terminal, or nothing)."""

    def sale(self, name: str, total: int) -> AbstractContextManager[Tick]: ...


class HandClock:
    """A clock that stands still until told to move.

    The draw arm runs on it, so that registration opens, takes every entry and
    closes without the demo sleeping through a window of real time.
    """

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> None:
        self._now += by


class Answer(enum.StrEnum):
    """What one order or draw entry was told."""

    TAKEN = "taken"  # the order holds a unit, or the entry is in the draw
    NOT_ELIGIBLE = "not_eligible"
    LIMIT = "limit"
    SOLD_OUT = "sold_out"


# -- the crowd


def make_crowd(config: FairnessConfig, token: str) -> list[Shopper]:
    """The crowd in arrival order, the same for the same seed (ids aside, which carry ``token``).

    Ids are dealt at random, so an id says nothing of who owns it.
    """
    rng = random.Random(config.seed)
    ids = [f"fair-{token}-{n:06d}" for n in range(config.buyers)]
    rng.shuffle(ids)
    scalpers = round(config.buyers * config.scalper_share)
    crowd = _scalper_rings(rng, config, ids[:scalpers]) + [
        _customer(rng, config, buyer_id) for buyer_id in ids[scalpers:]
    ]
    return sorted(crowd, key=lambda shopper: (shopper.arrival, shopper.buyer_id))


def _scalper_rings(rng: random.Random, config: FairnessConfig, ids: Sequence[str]) -> list[Shopper]:
    """Scalper accounts in rings of 4 to 12: each ring's bots share one to three phones and one drop
    address, which is what per-device and per-address limits catch."""
    shoppers: list[Shopper] = []
    start = ring = 0
    while start < len(ids):
        members = ids[start : start + rng.randint(4, 12)]
        phones = [f"{members[0]}-phone{n}" for n in range(rng.randint(1, 3))]
        address = f"Unit {ring + 1}, {rng.randint(1, 400)} Depot Road"
        shoppers += [_scalper(rng, config, buyer_id, rng.choice(phones), address) for buyer_id in members]
        start += len(members)
        ring += 1
    return shoppers


def _scalper(rng: random.Random, config: FairnessConfig, buyer_id: str, phone: str, address: str) -> Shopper:
    """The article's scalper account: days old, nothing paid, barely active; a few are bought aged."""
    arrival = rng.random() * config.scalper_head_start
    if rng.random() < config.farmed_share:
        age, paid, active, verified = rng.randint(180, 900), rng.randint(1, 3), rng.randint(5, 10), True
    else:
        age, paid, active, verified = rng.randint(1, 7), 0, rng.randint(0, 2), rng.random() < 0.3
    return Shopper(
        buyer_id, True, age, paid, active, None, verified, phone, address, config.orders_per_scalper, arrival
    )


def _customer(rng: random.Random, config: FairnessConfig, buyer_id: str) -> Shopper:
    """A real customer: months or years of orders and visits, a member half the time, one phone and
    one home; a few opened their account days ago, and a few old ones rarely visit or never paid."""
    arrival = rng.random()
    phone, home = f"{buyer_id}-phone", f"{rng.randint(1, 300)} Orchard Lane, flat {buyer_id}"
    if rng.random() < config.new_customer_share:
        age, paid, active, member = rng.randint(1, 20), 0, rng.randint(1, 4), None
        verified = rng.random() < 0.6
    else:
        age, paid, active = rng.randint(60, 3000), rng.randint(0, 40), rng.randint(2, 60)
        member = rng.randint(1, age) if rng.random() < 0.5 else None
        verified = rng.random() < 0.9
    return Shopper(buyer_id, False, age, paid, active, member, verified, phone, home, 1, arrival)


def _register(guard: Stockguard, crowd: Sequence[Shopper], threads: int, view: FairnessView) -> None:
    """Tell the service every buyer's profile before the sales, as a shop keeps it informed."""
    now = guard.clock()

    def put(shopper: Shopper) -> Answer:
        member = shopper.member_days
        guard.put_buyer(
            shopper.buyer_id,
            now - timedelta(days=shopper.registered_days),
            paid_orders=shopper.paid_orders,
            active_days_90d=shopper.active_days_90d,
            member_since=None if member is None else now - timedelta(days=member),
            phone_verified=shopper.phone_verified,
        )
        return Answer.TAKEN

    with view.sale("fairness: buyer profiles", len(crowd)) as tick:
        _serve(crowd, put, threads, tick)


# -- running the arms


def run_fairness(config: FairnessConfig, guard: Stockguard, view: FairnessView) -> list[FairnessResult]:
    """The same crowd through an open sale, a screened sale and a draw, on ``guard``'s store.

    The draw runs on a second facade over the same store with a clock of its own
    (``HandClock``); it has no admission gate, so ``guard`` should have none either.
    """
    token = secrets.token_hex(3)
    crowd = make_crowd(config, token)
    _register(guard, crowd, config.threads, view)
    return [
        _sale_arm(OPEN, config, guard, crowd, token, view),
        _sale_arm(SCREENED, config, guard, crowd, token, view),
        _draw_arm(config, guard, crowd, token, view),
    ]


def _stock(guard: Stockguard, arm: str, token: str, config: FairnessConfig) -> str:
    """A fresh item holding ``units`` bottles, and its listing (same id); every arm but the open
    one screens its buyers and sells one unit per buyer, device and address."""
    sku = f"maotai-fair-{arm}-{token}"
    guard.put_item(sku, "Maotai 500 ml")
    guard.receive(sku, config.units, reference=f"fairness {token}")
    limit = None if arm == OPEN else 1
    guard.put_listing(
        sku,
        f"Maotai ({arm} sale)",
        [(sku, 1)],
        Deduction.RESERVE,
        config.hold_seconds,
        per_buyer_limit=limit,
        screening=None if arm == OPEN else config.screening,
        per_device_limit=limit,
        per_address_limit=limit,
    )
    return sku


def _sale_arm(
    arm: str,
    config: FairnessConfig,
    guard: Stockguard,
    crowd: Sequence[Shopper],
    token: str,
    view: FairnessView,
) -> FairnessResult:
    """Every order of the crowd in arrival order, from many threads: bots first, several each."""
    listing_id = _stock(guard, arm, token, config)
    attempts = [(s, f"{arm}-{s.buyer_id}-{n}") for s in crowd for n in range(s.orders)]
    with view.sale(f"fairness {arm}: orders", len(attempts)) as tick:
        started = time.monotonic()
        answers = _serve(attempts, _placer(guard, listing_id), config.threads, tick)
        seconds = time.monotonic() - started
    told = {
        order_id: s.buyer_id for (s, order_id), a in zip(attempts, answers, strict=True) if a is Answer.TAKEN
    }
    holders = _holders(guard, arm, listing_id, config.units, told)
    return _result(arm, config, listing_id, holders, crowd, answers, seconds)


def _placer(guard: Stockguard, listing_id: str) -> Callable[[tuple[Shopper, str]], Answer]:
    def place(attempt: tuple[Shopper, str]) -> Answer:
        shopper, order_id = attempt
        context = OrderContext(device_id=shopper.device_id, address=shopper.address)
        try:
            # A refusal known without waiting (sold out) raises from `placing` itself.
            guard.placing(order_id, shopper.buyer_id, [(listing_id, 1)], context).result()
        except NotEligible:
            return Answer.NOT_ELIGIBLE
        except LimitExceeded:
            return Answer.LIMIT
        except SoldOut:
            return Answer.SOLD_OUT
        return Answer.TAKEN

    return place


def _draw_arm(
    config: FairnessConfig, guard: Stockguard, crowd: Sequence[Shopper], token: str, view: FairnessView
) -> FairnessResult:
    """Everybody enters while registration is open (bots first, which no longer buys anything),
    then the draw runs; its winners hold the units."""
    listing_id = _stock(guard, DRAW, token, config)
    clock = HandClock(guard.clock())
    draws = Stockguard(guard.store, clock.now)  # shares guard's store: never closed here
    draw_id = f"fair-draw-{token}"
    opens = clock.now()
    draws.put_draw(draw_id, listing_id, config.units, opens, opens + DRAW_WINDOW, config.hold_seconds)
    with view.sale("fairness draw: entries", len(crowd)) as tick:
        started = time.monotonic()
        answers = _serve(crowd, _enterer(draws, draw_id), config.threads, tick)
        clock.advance(DRAW_WINDOW)
        ran = draws.run_draw(draw_id)
        seconds = time.monotonic() - started
    entered = {s.buyer_id for s, a in zip(crowd, answers, strict=True) if a is Answer.TAKEN}
    told = _winners(guard, draw_id, entered, ran)
    holders = _holders(guard, DRAW, listing_id, config.units, told)
    return _result(DRAW, config, listing_id, holders, crowd, answers, seconds, draw_id)


def _enterer(draws: Stockguard, draw_id: str) -> Callable[[Shopper], Answer]:
    def enter(shopper: Shopper) -> Answer:
        context = OrderContext(device_id=shopper.device_id, address=shopper.address)
        try:
            draws.enter_draw(draw_id, shopper.buyer_id, context)
        except NotEligible:
            return Answer.NOT_ELIGIBLE
        except LimitExceeded:
            return Answer.LIMIT
        return Answer.TAKEN

    return enter


def _serve(attempts: Sequence[A], act: Callable[[A], Answer], threads: int, tick: Tick) -> list[Answer]:
    """``act`` on every attempt from ``threads`` threads; each thread takes the next attempt in line,
    so they reach the service roughly in arrival order. An answer nobody expects stops the arm."""
    lock = threading.Lock()
    done = 0

    def one(attempt: A) -> Answer:
        nonlocal done
        try:
            answer = act(attempt)
        except StockguardError as error:
            raise SimulationError(f"a buyer got an unexpected answer: {error!r}") from error
        with lock:
            done += 1
            if done % _TICK_EVERY == 0 or done == len(attempts):
                tick(done)
        return answer

    with ThreadPoolExecutor(threads, thread_name_prefix="fairness") as pool:
        return list(pool.map(one, attempts))


# -- reading the outcome back


def _holders(guard: Stockguard, arm: str, listing_id: str, units: int, told: dict[str, str]) -> list[str]:
    """The buyer of every unit sold, one per unit, read from the store's orders.

    ``told`` maps the orders buyers were told they got to those buyers. The
    listing's sold units and the item's reserved counter (both kept by the
    store, and held to the orders by ``check``) prove no other order holds one.
    """
    holders: list[str] = []
    for order_id, buyer_id in told.items():
        order = guard.get_order(order_id)
        if order.buyer_id != buyer_id or order.status is not OrderStatus.RESERVED:
            raise SimulationError(f"{arm}: order {order_id} is {order.status} for {order.buyer_id}")
        holders += [order.buyer_id] * sum(line.quantity for line in order.lines)
    drifts = guard.check()
    if drifts:
        raise DriftFound(f"fairness {arm}", drifts)
    sold = guard.get_listing(listing_id).sold
    reserved = guard.get_item(listing_id).total(Counter.RESERVED)
    if not sold == reserved == len(holders) or sold > units:
        raise SimulationError(
            f"{arm}: the store counts {sold} units sold and {reserved} reserved of {units}; "
            f"buyers were told {len(holders)}"
        )
    return holders


def _winners(guard: Stockguard, draw_id: str, entered: set[str], ran: DrawReport) -> dict[str, str]:
    """The winners' orders and buyers, as the store keeps the draw, once the published record
    verifies by the rule anyone can recompute and agrees with the entries buyers were told of."""
    report = guard.get_draw(draw_id)
    entries = guard.draw_entries(draw_id)[1]
    problems = rule.verify(report.published(entries))
    if set(entries) != entered or len(entries) != len(entered):
        problems.append(f"the draw holds {len(entries)} entries, buyers were told {len(entered)}")
    if report.winners != ran.winners or len(report.winners) > report.draw.units:
        problems.append(f"{len(report.winners)} winners read back, {len(ran.winners)} drawn")
    if problems:
        raise SimulationError(f"draw {draw_id}: " + "; ".join(problems))
    return {a.entry.order_id: a.entry.buyer_id for a in report.winners if a.entry.order_id is not None}


def _result(
    arm: str,
    config: FairnessConfig,
    listing_id: str,
    holders: Sequence[str],
    crowd: Sequence[Shopper],
    answers: Sequence[Answer],
    seconds: float,
    draw_id: str | None = None,
) -> FairnessResult:
    scalpers = {shopper.buyer_id for shopper in crowd if shopper.scalper}
    to_scalpers = sum(1 for buyer_id in holders if buyer_id in scalpers)
    told = Tally(answers)
    return FairnessResult(
        arm,
        config.units,
        to_scalpers,
        len(holders) - to_scalpers,
        round(to_scalpers / len(holders), 4) if holders else 0.0,
        told[Answer.NOT_ELIGIBLE],
        told[Answer.LIMIT],
        round(seconds, 3),
        listing_id,
        draw_id,
    )
