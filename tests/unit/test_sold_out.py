"""The sold-out board: a proof refuses only while what it rests on still stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stockguard.domain.model import OrderLine
from stockguard.service.sold_out import Proof, SoldOutBoard

NOW = datetime(2026, 11, 11, tzinfo=UTC)
ONE = (OrderLine("bottle", 1),)


def board_with(proof: Proof) -> SoldOutBoard:
    board = SoldOutBoard()
    board.suspect(["bottle"])
    board.prove("bottle", proof)
    return board


def test_a_proof_refuses_while_the_version_is_the_same_and_no_hold_has_run_out() -> None:
    board = board_with(Proof(version=7, sellable=0, until=NOW + timedelta(seconds=60)))
    assert board.refusing(ONE, 7, NOW) == ONE[0]
    assert board.refusing(ONE, 7, NOW + timedelta(seconds=59)) == ONE[0]


def test_a_proof_is_void_once_stock_may_have_come_back() -> None:
    board = board_with(Proof(version=7, sellable=0, until=None))
    assert board.refusing(ONE, 8, NOW) is None


def test_a_proof_is_void_once_the_first_hold_runs_out() -> None:
    board = board_with(Proof(version=7, sellable=0, until=NOW + timedelta(seconds=60)))
    assert board.refusing(ONE, 7, NOW + timedelta(seconds=60)) is None


def test_a_store_that_cannot_tell_its_version_gets_no_refusal_from_a_proof() -> None:
    board = board_with(Proof(version=None, sellable=0, until=None))
    assert board.refusing(ONE, None, NOW) is None


def test_a_proof_refuses_only_more_than_it_found_sellable() -> None:
    board = board_with(Proof(version=1, sellable=2, until=None))
    assert board.refusing((OrderLine("bottle", 2),), 1, NOW) is None
    assert board.refusing((OrderLine("bottle", 3),), 1, NOW) == OrderLine("bottle", 3)


def test_an_order_is_refused_by_the_first_line_a_proof_covers() -> None:
    board = board_with(Proof(version=1, sellable=0, until=None))
    lines = (OrderLine("glass", 1), OrderLine("bottle", 1))
    assert board.refusing(lines, 1, NOW) == OrderLine("bottle", 1)


def test_clearing_a_listing_drops_its_suspicion_and_its_proof() -> None:
    board = board_with(Proof(version=1, sellable=0, until=None))
    board.clear(["bottle"])
    assert not board.suspects_any(["bottle"])
    assert board.refusing(ONE, 1, NOW) is None
