"""Each screening rule on its own, at its boundary, and the verdicts that win over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stockguard.domain.screening import (
    BuyerProfile,
    Override,
    Screening,
    Verdict,
    hash_address,
    normal_address,
    screen,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def profile(**fields: object) -> BuyerProfile:
    values: dict[str, object] = {"buyer_id": "b1", "registered_at": NOW - timedelta(days=365)} | fields
    return BuyerProfile(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("screening", "passing", "failing", "rule"),
    [
        (
            Screening(min_account_age_days=30),
            profile(registered_at=NOW - timedelta(days=30)),
            profile(registered_at=NOW - timedelta(days=29, hours=23)),
            "account_age",
        ),
        (Screening(min_paid_orders=2), profile(paid_orders=2), profile(paid_orders=1), "paid_orders"),
        (
            Screening(min_active_days_90d=10),
            profile(active_days_90d=10),
            profile(active_days_90d=9),
            "active_days",
        ),
        (
            Screening(min_membership_days=7),
            profile(member_since=NOW - timedelta(days=7)),
            profile(member_since=NOW - timedelta(days=6)),
            "membership",
        ),
        (Screening(min_membership_days=0), profile(member_since=NOW), profile(), "membership"),
        (Screening(phone_verified=True), profile(phone_verified=True), profile(), "phone_verified"),
    ],
)
def test_each_rule_passes_at_its_threshold_and_fails_just_below(
    screening: Screening, passing: BuyerProfile, failing: BuyerProfile, rule: str
) -> None:
    assert screen(screening, passing, None, NOW) == []
    failures = screen(screening, failing, None, NOW)
    assert [f.rule for f in failures] == [rule]
    assert "this product needs" in failures[0].reason


def test_a_scalper_fails_every_rule_with_a_sentence_each() -> None:
    strict = Screening(30, 1, 10, 7, phone_verified=True)
    scalper = profile(registered_at=NOW - timedelta(days=1), active_days_90d=1)
    reasons = [f.reason for f in screen(strict, scalper, None, NOW)]
    assert reasons == [
        "the account was opened 1 day ago; this product needs an account at least 30 days old",
        "the account has 0 paid orders; this product needs at least 1 paid order",
        "the account was active on 1 day of the last 90; this product needs at least 10",
        "the account has no membership; this product needs a membership of at least 7 days",
        "the account's phone number is not verified; this product needs one",
    ]


def test_without_a_profile_a_screened_listing_cannot_be_passed_but_an_open_one_can() -> None:
    assert [f.rule for f in screen(Screening(min_paid_orders=1), None, None, NOW)] == ["no_profile"]
    assert screen(Screening(), None, None, NOW) == []


def test_an_operators_verdict_decides_alone() -> None:
    strict = Screening(min_paid_orders=5)
    allow = Override("b1", Verdict.ALLOW, "staff", NOW)
    deny = Override("b1", Verdict.DENY, "resold bottles", NOW)
    assert screen(strict, None, allow, NOW) == []
    assert [f.rule for f in screen(Screening(), profile(paid_orders=9), deny, NOW)] == ["denied"]


def test_one_address_however_spelled_hashes_alike_and_the_key_matters() -> None:
    spellings = ["12 Harbour Road, Flat 3", "12  harbour ROAD flat 3", "12 Harbour Road; Flat 3."]
    assert {normal_address(s) for s in spellings} == {"12 harbour road flat 3"}
    assert len({hash_address(b"k", s) for s in spellings}) == 1
    assert hash_address(b"k", spellings[0]) != hash_address(b"other", spellings[0])
    assert hash_address(b"k", "12 Harbour Road, Flat 4") != hash_address(b"k", spellings[0])
