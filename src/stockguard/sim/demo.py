"""The article's flash sale, for real: the same crowd through the naive shop and each strategy.

Arms run one after another on their own item and listing (ids carry a run
token, so a store can hold several runs). Every figure reported is read back
from the shop after the sale (its tables, or stockguard's counters and
ledger) and cross-checked against what the buyers were told.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from stockguard import Counter, Deduction, Drift, Reason, Stockguard
from stockguard.bootstrap import MEMORY_URL
from stockguard.sim.buyers import Crowd, Outcome
from stockguard.sim.checkout import Job
from stockguard.sim.naive import settle, stock_listing
from stockguard.sim.pool import SaleRun, SimulationError, Tick, WorkerPool, run_in_process

NAIVE = "naive"
ARMS = (NAIVE, Deduction.ORDER.value, Deduction.PAYMENT.value, Deduction.RESERVE.value)
_ALL_ROWS = 1_000_000_000  # ledger rows to read back: all of them


@dataclass(frozen=True, slots=True)
class DemoConfig:
    units: int = 10_000
    buyers: int = 100_000
    workers: int = 2  # OS processes serving buyers
    threads: int = 32  # buyer threads in each process
    pay_share: float = 0.8
    hold_seconds: int = 2
    gateway_ms: float = 10.0
    seed: int = 1
    sweep_seconds: float = 0.5  # how often the sweeper releases due holds during a sale
    arms: tuple[str, ...] = ARMS

    @property
    def crowd(self) -> Crowd:
        return Crowd(self.buyers, self.pay_share, self.gateway_ms, self.seed)


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm's outcome, in units (or orders, one unit each)."""

    name: str
    sold: int  # units paid for and kept
    oversold: int  # paid orders beyond the stock
    cancelled: int  # orders cancelled for lack of stock; payments refused under stockguard
    expired: int  # units whose hold expired and went back on sale
    unsold: int  # units not paid for when the sale was over (free, or locked by unpaid orders)
    seconds: float  # wall time of the sale, first buyer to last
    rate: float  # buyers served per second

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class DriftFound(SimulationError):
    """stockguard's ``check`` found counters that disagree with the ledger after an arm."""

    def __init__(self, arm: str, drifts: Sequence[Drift]) -> None:
        super().__init__(f"check found {len(drifts)} differences after the {arm} arm")
        self.arm = arm
        self.drifts = list(drifts)


class DemoView(Protocol):
    """Where the demo shows its progress and results (a terminal, or nothing)."""

    def sale(self, name: str, total: int) -> AbstractContextManager[Tick]: ...
    def arm_done(self, result: ArmResult) -> None: ...


RunSale = Callable[[Job, Tick], SaleRun]


def run_demo(
    config: DemoConfig, guard: Stockguard, url: str, workdir: Path, view: DemoView
) -> list[ArmResult]:
    """Run every arm of ``config``; ``guard`` is the facade on ``url`` used for setup, sweeping and checks."""
    token = secrets.token_hex(3)
    results: list[ArmResult] = []
    # A memory store lives in this process, so without the naive arm no worker process is needed.
    processes = 0 if url == MEMORY_URL and NAIVE not in config.arms else config.workers
    with WorkerPool(processes) as pool:

        def on_store(job: Job, tick: Tick) -> SaleRun:
            if url == MEMORY_URL:
                return run_in_process(job, guard, tick)
            return pool.run(job, tick)

        for arm in config.arms:
            if arm == NAIVE:
                path = str(workdir / "naive.db")
                result = naive_arm(config, path, token, pool.run, view)
            else:
                result = guarded_arm(config, Deduction(arm), guard, url, token, on_store, view)
            results.append(result)
            view.arm_done(result)
    return results


def naive_arm(config: DemoConfig, path: str, token: str, run: RunSale, view: DemoView) -> ArmResult:
    """The article's shop: deduct at payment with check-then-write, then cancel what was oversold."""
    listing_id = f"maotai-naive-{token}"
    stock_listing(path, listing_id, config.units)
    job = Job("naive", path, listing_id, f"naive-{token}", config.crowd, config.threads)
    with view.sale("naive: check, pay, then deduct", config.buyers) as tick:
        sale = run(job, tick)
    settled = settle(path, listing_id)
    if settled.paid != sale.count(Outcome.PAID):
        raise SimulationError(f"naive shop holds {settled.paid} paid orders, buyers were told {sale}")
    return _result(
        NAIVE,
        sale,
        sold=settled.paid - settled.cancelled,
        oversold=settled.oversold,
        cancelled=settled.cancelled,
        expired=0,
        unsold=settled.unsold,
    )


def guarded_arm(
    config: DemoConfig,
    strategy: Deduction,
    guard: Stockguard,
    url: str,
    token: str,
    run: RunSale,
    view: DemoView,
) -> ArmResult:
    """The same crowd through stockguard under one strategy; fails loudly if ``check`` finds drift."""
    sku = listing_id = f"maotai-{strategy.value}-{token}"
    guard.put_item(sku, "Maotai 500 ml")
    guard.receive(sku, config.units, reference=f"demo {token}")
    guard.put_listing(
        listing_id, f"Maotai flash sale ({strategy.value})", [(sku, 1)], strategy, config.hold_seconds
    )
    job = Job("stockguard", url, listing_id, f"{strategy.value}-{token}", config.crowd, config.threads)
    with view.sale(f"{strategy.value}: stockguard", config.buyers) as tick:
        sale = run(job, _sweeping(guard, config.sweep_seconds, tick))
    if strategy is Deduction.RESERVE:
        _let_holds_run_out(guard, sku, config.hold_seconds)
    drifts = guard.check()
    if drifts:
        raise DriftFound(strategy.value, drifts)
    stock = guard.get_item(sku)
    paid = sale.count(Outcome.PAID)
    committed = stock.total(Counter.COMMITTED)
    if committed != paid:
        raise SimulationError(f"{strategy.value}: {committed} units committed, buyers were told {paid} paid")
    return _result(
        strategy.value,
        sale,
        sold=committed,
        oversold=max(0, paid - config.units),
        cancelled=sale.count(Outcome.PAYMENT_REFUSED),
        expired=expired_units(guard, sku),
        unsold=stock.total(Counter.ON_HAND) - committed - stock.total(Counter.SAFETY),
    )


def _sweeping(guard: Stockguard, every: float, tick: Tick) -> Tick:
    """A progress tick that also runs the expiry sweeper, releasing due holds every ``every`` seconds."""
    last = time.monotonic()

    def sweep_and_tick(done: int) -> None:
        nonlocal last
        tick(done)
        if time.monotonic() - last >= every:
            guard.expire_due()
            last = time.monotonic()

    return sweep_and_tick


def _let_holds_run_out(guard: Stockguard, sku: str, hold_seconds: int) -> None:
    """After the sale, wait out the holds still live (placed in its last seconds) and sweep them once."""
    if guard.get_item(sku).total(Counter.RESERVED):
        time.sleep(hold_seconds + 0.05)
    guard.expire_due()


def expired_units(guard: Stockguard, sku: str) -> int:
    """Units the ledger shows returned from holds by expiry."""
    return sum(
        -m.delta
        for m in guard.movements(sku=sku, limit=_ALL_ROWS)
        if m.reason is Reason.EXPIRE and m.counter is Counter.RESERVED
    )


def _result(name: str, sale: SaleRun, **units: int) -> ArmResult:
    served = sum(sale.outcomes.values())
    rate = served / sale.seconds if sale.seconds > 0 else 0.0
    return ArmResult(name, seconds=round(sale.seconds, 3), rate=round(rate, 1), **units)
