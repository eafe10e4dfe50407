"""The draw rule: reproducible from the published data, and sensitive to every part of it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from stockguard.domain.draws import Published, commitment, entries_digest, ranking, verify

SEED = "5f" * 32
ENTRIES = [f"buyer-{n}" for n in range(50)]


def test_the_same_seed_and_entries_give_the_same_winners_in_any_arrival_order() -> None:
    assert ranking(SEED, ENTRIES) == ranking(SEED, list(reversed(ENTRIES)))
    assert sorted(ranking(SEED, ENTRIES)) == sorted(ENTRIES)


def test_a_changed_seed_or_entry_list_changes_the_winners() -> None:
    winners = ranking(SEED, ENTRIES)[:5]
    assert ranking("60" * 32, ENTRIES)[:5] != winners
    assert ranking(SEED, [*ENTRIES, "late-entry"])[:5] != winners
    assert ranking(SEED, ENTRIES[1:])[:5] != winners


def test_the_rule_is_the_documented_one() -> None:
    digest = hashlib.sha256("\n".join(sorted(ENTRIES)).encode()).hexdigest()
    assert entries_digest(ENTRIES) == digest
    tickets = {b: hashlib.sha256(f"{SEED}:{digest}:{b}".encode()).hexdigest() for b in ENTRIES}
    assert ranking(SEED, ENTRIES) == sorted(ENTRIES, key=lambda b: (tickets[b], b))
    assert commitment(SEED) == hashlib.sha256(SEED.encode()).hexdigest()


def record(units: int = 3) -> Published:
    drawn = ranking(SEED, ENTRIES)
    return Published(
        commitment(SEED),
        SEED,
        units,
        tuple(ENTRIES),
        {b: rank for rank, b in enumerate(drawn, start=1)},
        frozenset(drawn[:units]),
        frozenset(drawn[units:]),
    )


def test_an_honest_record_verifies() -> None:
    assert verify(record()) == []


def test_every_kind_of_tampering_is_found() -> None:
    honest = record()
    drawn = ranking(SEED, ENTRIES)
    favourite = drawn[-1]
    assert verify(replace(honest, seed="00" * 32))
    assert verify(replace(honest, commitment=commitment("00" * 32)))
    assert verify(replace(honest, entries=(*ENTRIES, "ghost")))
    swapped = dict(honest.ranks) | {favourite: 1, drawn[0]: len(drawn)}
    assert verify(replace(honest, ranks=swapped))
    jumped = replace(honest, winners=frozenset([*drawn[:2], favourite]), waiting=frozenset(drawn[2:-1]))
    assert verify(jumped)
    assert verify(replace(honest, seed=None)) == ["the draw has not run: its seed is not revealed yet"]


@given(st.lists(st.text(alphabet="abc123-", min_size=1, max_size=8), min_size=1, max_size=30, unique=True))
def test_any_entry_list_ranks_each_entry_once(buyers: list[str]) -> None:
    drawn = ranking(SEED, buyers)
    assert sorted(drawn) == sorted(buyers)
    assert drawn == ranking(SEED, sorted(buyers))
