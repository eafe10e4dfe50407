"""The scalper arms of ``stockguard demo``: one seeded crowd, a share of it scalpers' bots, through an
open sale, a screened sale and a draw on a real SQLite store, and what each arm let them take.

The crowd is sold out in every arm (50 bottles, 1,000 buyers), so each figure is
a real contest for the stock. Outcomes are read from the store, independently
of the figures the simulator reports.
"""

from __future__ import annotations

import json
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

import stockguard
from stockguard import Stockguard
from stockguard.cli import app
from stockguard.domain import draws as rule
from stockguard.domain.screening import screen
from stockguard.sim.fairness import (
    DRAW,
    FAIRNESS_ARMS,
    OPEN,
    SCREENED,
    FairnessConfig,
    FairnessResult,
    Shopper,
    make_crowd,
    run_fairness,
)
from stockguard.sim.pool import Tick

UNITS = 50
CONFIG = FairnessConfig(units=UNITS, buyers=1_000, scalper_share=0.4, seed=7, threads=16)


class Silent:
    """A view that shows nothing."""

    @contextmanager
    def sale(self, name: str, total: int) -> Iterator[Tick]:
        yield lambda done: None


@dataclass(frozen=True)
class Run:
    guard: Stockguard
    arms: dict[str, FairnessResult]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One run of the three arms, shared by the tests that read its outcome."""
    path = tmp_path_factory.mktemp("fairness") / "s.db"
    guard = stockguard.connect(f"sqlite:///{path}")
    try:
        results = run_fairness(CONFIG, guard, Silent())
        yield Run(guard, {result.name: result for result in results})
    finally:
        guard.close()


def holders(guard: Stockguard, listing_id: str) -> list[str]:
    """The buyer of every unit of the listing held or paid for, read from the store's order lines."""
    with guard.store.read() as tx:
        lines = tx.live_lines(listing_id)
    return [line.buyer_id for line in lines for _ in range(line.quantity)]


def test_the_three_arms_run_in_order_each_selling_out_to_the_crowd(run: Run) -> None:
    assert list(run.arms) == list(FAIRNESS_ARMS)
    for result in run.arms.values():
        assert result.units == UNITS
        assert result.sold == UNITS  # the crowd outnumbers the bottles twenty to one
        assert len(holders(run.guard, result.listing_id)) == result.sold
        assert result.seconds > 0


def test_in_an_open_sale_the_fast_scalpers_get_a_clear_majority_of_the_units(run: Run) -> None:
    open_sale = run.arms[OPEN]
    scalpers = {s.buyer_id for s in crowd_of(run) if s.scalper}
    taken = sum(1 for buyer_id in holders(run.guard, open_sale.listing_id) if buyer_id in scalpers)
    assert taken == open_sale.sold_to_scalpers
    assert open_sale.scalper_share_of_units > 0.75  # 40 % of the accounts, first in line
    assert (open_sale.refused_not_eligible, open_sale.refused_limit) == (0, 0)


def test_screening_leaves_scalpers_only_the_units_their_few_passing_accounts_get(run: Run) -> None:
    screened = run.arms[SCREENED]
    now = run.guard.clock()

    def passes(buyer_id: str) -> bool:
        return screen(CONFIG.screening, run.guard.get_buyer(buyer_id).profile, None, now) == []

    # The bought aged accounts pass the rules; a ring of them ships to one address.
    passing = {s.address for s in crowd_of(run) if s.scalper and passes(s.buyer_id)}
    assert screened.sold_to_scalpers <= len(passing)
    assert screened.scalper_share_of_units < run.arms[OPEN].scalper_share_of_units / 5
    assert screened.refused_not_eligible > 0
    # Every unit went to a buyer the rules let buy, at most one per buyer, device and address.
    orders = [run.guard.get_order(order_id) for order_id in order_ids(run.guard, screened.listing_id)]
    assert all(passes(order.buyer_id) for order in orders)
    buyers = Tally(order.buyer_id for order in orders)
    devices = Tally(order.context.device_id for order in orders)
    addresses = Tally(order.context.address_hash for order in orders)
    assert max(buyers.values()) == max(devices.values()) == max(addresses.values()) == 1


def test_a_draw_awards_no_more_units_than_it_has_and_its_winners_head_the_ranking(run: Run) -> None:
    drawn = run.arms[DRAW]
    assert drawn.draw_id is not None
    report = run.guard.get_draw(drawn.draw_id)
    _, entries = run.guard.draw_entries(drawn.draw_id)
    assert report.seed is not None
    winners = [award.entry.buyer_id for award in report.winners]
    assert len(winners) == UNITS < len(entries)
    assert winners == rule.ranking(report.seed, entries)[:UNITS]
    assert sorted(winners) == sorted(holders(run.guard, drawn.listing_id))
    assert drawn.scalper_share_of_units < run.arms[OPEN].scalper_share_of_units / 5


def test_the_ledger_and_the_counters_agree_after_every_arm(run: Run) -> None:
    assert run.guard.check() == []


def test_the_same_seed_gives_the_same_crowd_with_scalpers_on_new_accounts() -> None:
    crowd = make_crowd(CONFIG, "t1")
    assert crowd == make_crowd(CONFIG, "t1")
    assert crowd != make_crowd(FairnessConfig(units=UNITS, buyers=1_000, scalper_share=0.4, seed=8), "t1")
    scalpers = [s for s in crowd if s.scalper]
    assert len(scalpers) == 400
    fresh = [s for s in scalpers if s.registered_days < 30 and s.paid_orders == 0 and s.active_days_90d <= 2]
    assert len(fresh) >= 0.95 * len(scalpers)
    assert max(s.arrival for s in scalpers) < CONFIG.scalper_head_start  # the bots press buy first
    customers = [s for s in crowd if not s.scalper]
    assert sum(1 for s in customers if s.registered_days >= 60) >= 0.9 * len(customers)


def test_demo_with_scalpers_reports_the_three_arms_in_its_json() -> None:
    args = ["demo", "--units", "20", "--buyers", "200", "--scalpers", "0.4", "--arm", "order", "--json"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert set(document) == {"arms", "fairness"}
    assert [arm["name"] for arm in document["arms"]] == ["order"]
    fairness = document["fairness"]
    assert [arm["name"] for arm in fairness] == list(FAIRNESS_ARMS)
    for arm in fairness:
        assert arm["units"] == 20
        assert arm["sold_to_scalpers"] + arm["sold_to_customers"] <= 20
        assert 0.0 <= arm["scalper_share_of_units"] <= 1.0


# -- helpers reading the run


def crowd_of(run: Run) -> list[Shopper]:
    """The crowd of the run, rebuilt from its seed and the run token its listing ids carry."""
    token = run.arms[OPEN].listing_id.rsplit("-", 1)[1]
    return make_crowd(CONFIG, token)


def order_ids(guard: Stockguard, listing_id: str) -> list[str]:
    with guard.store.read() as tx:
        return [line.order_id for line in tx.live_lines(listing_id)]
