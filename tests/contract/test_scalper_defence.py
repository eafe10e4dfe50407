"""Keeping scarce stock for real customers, proved once per store: screening, operators'
verdicts, device and address limits, and draws with their waiting lists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from conftest import FakeClock
from stockguard import (
    Counter,
    DrawState,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotEligible,
    OrderConflict,
    OrderContext,
    OrderStatus,
    Screening,
    Stockguard,
)
from stockguard.domain import draws as rule
from stockguard.stores.base import Store

BOTTLE = "maotai-500ml"
STRICT = Screening(
    min_account_age_days=30,
    min_paid_orders=1,
    min_active_days_90d=10,
    min_membership_days=7,
    phone_verified=True,
)


@pytest.fixture(autouse=True)
def _ledger_agrees_after_every_scenario(sg: Stockguard) -> Iterator[None]:
    yield
    assert sg.check() == []


def bottles(sg: Stockguard, units: int, **terms: object) -> None:
    sg.put_item(BOTTLE, "Maotai 500 ml")
    sg.receive(BOTTLE, units)
    sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], terms.pop("deduction", "reserve"), **terms)  # type: ignore[arg-type]


def customer(sg: Stockguard, clock: FakeClock, buyer_id: str) -> None:
    """A real customer: an old, active, verified member who paid before."""
    now = clock.now()
    sg.put_buyer(
        buyer_id,
        now - timedelta(days=800),
        paid_orders=12,
        active_days_90d=40,
        member_since=now - timedelta(days=700),
        phone_verified=True,
    )


def scalper(sg: Stockguard, clock: FakeClock, buyer_id: str) -> None:
    """The article's scalper: opened days ago, never paid, barely active, no membership."""
    sg.put_buyer(buyer_id, clock.now() - timedelta(days=3), active_days_90d=1)


def reserved(sg: Stockguard) -> int:
    return sg.get_item(BOTTLE).total(Counter.RESERVED)


# -- screening


def test_a_scalper_is_refused_with_every_failed_rule_in_words_and_nothing_changes(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 5, screening=STRICT)
    scalper(sg, clock, "new-account")
    with pytest.raises(NotEligible) as refused:
        sg.place_order("o1", "new-account", [("bottle", 1)])
    assert refused.value.rules == (
        "account_age",
        "paid_orders",
        "active_days",
        "membership",
        "phone_verified",
    )
    assert refused.value.reasons[0] == (
        "the account was opened 3 days ago; this product needs an account at least 30 days old"
    )
    assert "0 paid orders" in refused.value.reasons[1]
    assert sg.get_listing("bottle").sellable == 5
    assert reserved(sg) == 0


def test_a_customer_meeting_every_rule_gets_the_bottle(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5, screening=STRICT)
    customer(sg, clock, "regular")
    assert sg.place_order("o1", "regular", [("bottle", 1)]).order.status is OrderStatus.RESERVED
    assert sg.get_listing("bottle").sellable == 4


def test_a_buyer_the_shop_never_described_cannot_pass_a_screened_listing(sg: Stockguard) -> None:
    bottles(sg, 5, screening=Screening(phone_verified=True))
    with pytest.raises(NotEligible) as refused:
        sg.place_order("o1", "stranger", [("bottle", 1)])
    assert refused.value.rules == ("no_profile",)


def test_an_unscreened_listing_sells_to_anyone(sg: Stockguard) -> None:
    bottles(sg, 5)
    assert sg.place_order("o1", "stranger", [("bottle", 1)]).created


def test_an_operators_verdict_wins_over_the_rules_both_ways(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5, screening=STRICT)
    scalper(sg, clock, "vouched-for")
    customer(sg, clock, "known-scalper")
    sg.set_verdict("vouched-for", "allow", "long-time customer on a new account")
    sg.set_verdict("known-scalper", "deny", "resold bottles last year")
    assert sg.place_order("o1", "vouched-for", [("bottle", 1)]).created
    with pytest.raises(NotEligible) as refused:
        sg.place_order("o2", "known-scalper", [("bottle", 1)])
    assert refused.value.rules == ("denied",)
    assert "resold bottles last year" in refused.value.reasons[0]
    sg.clear_verdict("known-scalper")
    assert sg.place_order("o3", "known-scalper", [("bottle", 1)]).created


def test_a_profile_update_counts_from_the_next_order(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5, screening=Screening(min_paid_orders=1))
    sg.put_buyer("b1", clock.now() - timedelta(days=100))
    with pytest.raises(NotEligible):
        sg.place_order("o1", "b1", [("bottle", 1)])
    sg.put_buyer("b1", clock.now() - timedelta(days=100), paid_orders=1)
    assert sg.place_order("o1", "b1", [("bottle", 1)]).created


def test_bad_profiles_and_screenings_are_refused_and_change_nothing(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5)
    with pytest.raises(InvalidInput):
        sg.put_buyer("b1", clock.now() + timedelta(days=1))  # registered in the future
    with pytest.raises(InvalidInput):
        sg.put_buyer("b1", clock.now(), active_days_90d=91)
    with pytest.raises(InvalidInput):
        sg.put_listing("bottle", "Maotai", [(BOTTLE, 1)], "reserve", screening=Screening(min_paid_orders=-1))
    with pytest.raises(InvalidInput):
        sg.set_verdict("b1", "maybe", "unsure")
    assert sg.get_listing("bottle").listing.screening is None
    with pytest.raises(Exception, match="unknown buyer"):
        sg.get_buyer("b1")


# -- limits beyond the buyer


def test_a_device_gets_at_most_its_limit_whatever_accounts_it_uses(sg: Stockguard) -> None:
    bottles(sg, 10, per_device_limit=2)
    phone = OrderContext(device_id="phone-1")
    sg.placing("o1", "acct-1", [("bottle", 1)], phone).result()
    sg.placing("o2", "acct-2", [("bottle", 1)], phone).result()
    with pytest.raises(LimitExceeded, match="per device is 2"):
        sg.placing("o3", "acct-3", [("bottle", 1)], phone).result()
    assert sg.placing("o4", "acct-3", [("bottle", 1)], OrderContext(device_id="phone-2")).result().created


def test_an_address_gets_at_most_its_limit_however_it_is_spelled(sg: Stockguard) -> None:
    bottles(sg, 10, per_address_limit=1)
    sg.placing("o1", "acct-1", [("bottle", 1)], OrderContext(address="12 Harbour Road, Flat 3")).result()
    with pytest.raises(LimitExceeded, match="per address is 1"):
        sg.placing("o2", "acct-2", [("bottle", 1)], OrderContext(address="12  HARBOUR road flat 3")).result()
    assert sg.get_listing("bottle").sellable == 9


def test_an_ended_order_gives_its_device_budget_back(sg: Stockguard) -> None:
    bottles(sg, 10, per_device_limit=1)
    phone = OrderContext(device_id="phone-1")
    sg.placing("o1", "acct-1", [("bottle", 1)], phone).result()
    sg.cancel("o1")
    assert sg.placing("o2", "acct-2", [("bottle", 1)], phone).result().created


def test_a_listing_limited_per_device_or_address_needs_them_on_every_order(sg: Stockguard) -> None:
    bottles(sg, 10, per_device_limit=1, per_address_limit=1)
    with pytest.raises(InvalidInput, match="send device_id"):
        sg.place_order("o1", "acct-1", [("bottle", 1)])
    with pytest.raises(InvalidInput, match="send address"):
        sg.placing("o1", "acct-1", [("bottle", 1)], OrderContext(device_id="d1")).result()
    assert sg.get_listing("bottle").sellable == 10


def test_only_a_keyed_hash_of_the_address_is_kept(sg: Stockguard, store: Store) -> None:
    bottles(sg, 10)
    context = OrderContext(device_id="d1", ip="2001:db8::1", address="12 Harbour Road")
    order = sg.placing("o1", "acct-1", [("bottle", 1)], context).result().order
    with store.read() as tx:
        stored = tx.order("o1")
    assert stored is not None
    assert stored.context == order.context
    assert stored.context.ip == "2001:db8::1"
    assert stored.context.address_hash is not None
    assert "harbour" not in stored.context.address_hash.lower()
    assert len(stored.context.address_hash) == 64


def test_a_replay_must_carry_the_same_context(sg: Stockguard) -> None:
    bottles(sg, 10)
    context = OrderContext(device_id="d1", address="12 Harbour Road")
    sg.placing("o1", "acct-1", [("bottle", 1)], context).result()
    assert not sg.placing("o1", "acct-1", [("bottle", 1)], context).result().created
    with pytest.raises(OrderConflict):
        sg.placing("o1", "acct-1", [("bottle", 1)], OrderContext(device_id="d2")).result()


def test_bad_context_is_refused(sg: Stockguard) -> None:
    bottles(sg, 10)
    for context in (
        OrderContext(ip="999.1.1.1"),
        OrderContext(device_id="no spaces"),
        OrderContext(address=" "),
    ):
        with pytest.raises(InvalidInput):
            sg.placing("o1", "acct-1", [("bottle", 1)], context)
    assert sg.get_listing("bottle").sellable == 10


# -- draws


def open_draw(sg: Stockguard, clock: FakeClock, units: int = 2, payment_seconds: int = 600) -> None:
    now = clock.now()
    sg.put_draw("d1", "bottle", units, now, now + timedelta(hours=1), payment_seconds)


def close_and_run(sg: Stockguard, clock: FakeClock) -> None:
    clock.advance(3600)
    sg.run_draw("d1")


def test_a_draw_publishes_a_commitment_and_reveals_its_seed_only_when_run(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 5)
    open_draw(sg, clock)
    report = sg.get_draw("d1")
    assert report.state is DrawState.OPEN
    assert report.seed is None
    assert len(report.draw.commitment) == 64
    close_and_run(sg, clock)
    revealed = sg.get_draw("d1")
    assert revealed.state is DrawState.DRAWN
    assert revealed.seed is not None
    assert rule.commitment(revealed.seed) == revealed.draw.commitment


def test_one_entry_per_buyer_device_and_address(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5)
    open_draw(sg, clock)
    first = sg.enter_draw("d1", "b1", OrderContext(device_id="phone-1", address="1 Main St"))
    assert first.created
    assert not sg.enter_draw("d1", "b1").created  # entering again answers the entry
    with pytest.raises(LimitExceeded, match="device already entered"):
        sg.enter_draw("d1", "b2", OrderContext(device_id="phone-1"))
    with pytest.raises(LimitExceeded, match="delivery address already entered"):
        sg.enter_draw("d1", "b3", OrderContext(device_id="phone-3", address="1 MAIN st."))
    assert sg.get_draw("d1").entries == 1


def test_entries_are_screened_and_kept_to_the_window(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5, screening=Screening(min_paid_orders=1))
    now = clock.now()
    sg.put_draw("d1", "bottle", 2, now + timedelta(minutes=10), now + timedelta(hours=1))
    customer(sg, clock, "regular")
    scalper(sg, clock, "new-account")
    with pytest.raises(InvalidTransition, match="opens for entries"):
        sg.enter_draw("d1", "regular")
    clock.advance(600)
    with pytest.raises(NotEligible):
        sg.enter_draw("d1", "new-account")
    sg.enter_draw("d1", "regular")
    assert sg.draw_standings() == {("d1", "entered"): 1}
    with pytest.raises(InvalidTransition, match="run it after"):
        sg.run_draw("d1")
    clock.advance(3600)
    customer(sg, clock, "late")
    with pytest.raises(InvalidTransition, match="closed for entries"):
        sg.enter_draw("d1", "late")
    assert sg.get_draw("d1").entries == 1


def test_a_run_ranks_by_the_published_rule_and_holds_a_unit_per_winner(
    sg: Stockguard, clock: FakeClock, store: Store
) -> None:
    bottles(sg, 5, deduction="order")  # a winner's hold lasts the payment window whatever the listing says
    open_draw(sg, clock, units=2, payment_seconds=600)
    buyers = [f"b{i}" for i in range(8)]
    for buyer in buyers:
        sg.enter_draw("d1", buyer)
    close_and_run(sg, clock)
    report = sg.get_draw("d1")
    seed = report.seed
    assert seed is not None
    drawn = rule.ranking(seed, buyers)
    assert [a.entry.buyer_id for a in report.winners] == drawn[:2]
    assert [e.buyer_id for e in report.waiting] == drawn[2:]
    for award in report.winners:
        order = sg.get_order(award.entry.order_id or "")
        assert order.status is OrderStatus.RESERVED
        assert order.expires_at == clock.now() + timedelta(seconds=600)
    assert sg.get_listing("bottle").sellable == 3
    assert sg.run_draw("d1").winners == report.winners  # running again changes nothing


def test_unpaid_winners_are_replaced_in_rank_order_until_the_stock_is_gone(
    sg: Stockguard, clock: FakeClock
) -> None:
    bottles(sg, 3)
    open_draw(sg, clock, units=2, payment_seconds=600)
    buyers = [f"b{i}" for i in range(6)]
    for buyer in buyers:
        sg.enter_draw("d1", buyer)
    sg.place_order("walk-in", "someone-else", [("bottle", 1)])  # the listing also sells outside the draw
    close_and_run(sg, clock)
    drawn = rule.ranking(sg.get_draw("d1").seed or "", buyers)
    first, second = (a.entry for a in sg.get_draw("d1").winners)
    sg.pay(first.order_id or "")
    clock.advance(601)  # the second winner never pays
    assert sg.expire_due() >= 1
    report = sg.get_draw("d1")
    assert [a.entry.buyer_id for a in report.winners] == drawn[:3]
    assert [a.status for a in report.winners] == [OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.RESERVED]
    assert second.buyer_id == drawn[1]
    sg.cancel("walk-in")  # a bottle comes back, but the draw's two units are taken
    assert sg.get_draw("d1").winners == report.winners
    clock.advance(601)  # the promoted winner lapses too: the next in line gets the unit
    sg.expire_due()
    report = sg.get_draw("d1")
    assert [a.entry.buyer_id for a in report.winners] == drawn[:4]
    assert sum(1 for a in report.winners if a.status in (OrderStatus.PAID, OrderStatus.RESERVED)) == 2
    assert sg.draw_standings() == {
        ("d1", "paid"): 1,
        ("d1", "expired"): 2,
        ("d1", "reserved"): 1,
        ("d1", "waiting"): 2,
    }


def test_when_the_stock_runs_out_the_waiting_list_stays_waiting(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 1)
    open_draw(sg, clock, units=3)
    for buyer in ("b1", "b2", "b3"):
        sg.enter_draw("d1", buyer)
    close_and_run(sg, clock)
    report = sg.get_draw("d1")
    assert len(report.winners) == 1
    assert len(report.waiting) == 2
    assert sg.get_listing("bottle").sellable == 0


def test_a_winner_who_cancels_is_replaced_exactly_once(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5)
    open_draw(sg, clock, units=1)
    for buyer in ("b1", "b2", "b3"):
        sg.enter_draw("d1", buyer)
    close_and_run(sg, clock)
    winner = sg.get_draw("d1").winners[0].entry
    sg.cancel(winner.order_id or "")
    sg.cancel(winner.order_id or "")  # a replayed cancel promotes nobody else
    report = sg.get_draw("d1")
    assert len(report.winners) == 2
    assert len(report.waiting) == 1
    assert sg.get_listing("bottle").sellable == 4


def test_the_published_record_verifies_and_a_tampered_one_does_not(sg: Stockguard, clock: FakeClock) -> None:
    bottles(sg, 5)
    open_draw(sg, clock, units=2)
    buyers = [f"b{i}" for i in range(10)]
    for buyer in buyers:
        sg.enter_draw("d1", buyer)
    close_and_run(sg, clock)
    record = sg.published_draw("d1")
    entries = record.entries
    assert rule.verify(record) == []
    assert rule.verify(replace(record, entries=(*entries[:-1], "intruder"))) != []
    assert rule.verify(replace(record, seed="00" * 32)) != []
