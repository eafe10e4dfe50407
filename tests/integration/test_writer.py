"""The writer's batches on a real database: answers decided for a whole batch, and their failure."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import empty_postgres_url
from stockguard.stores.sql.engines import Backend, backend_for
from stockguard.stores.sql.writer import Writer


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    backend = backend_for(f"sqlite:///{tmp_path / 'writer.db'}")
    raw = backend.engine.raw_connection()
    raw.cursor().execute("CREATE TABLE notes (text TEXT NOT NULL)")
    raw.commit()
    raw.close()
    yield backend
    backend.engine.dispose()


def notes(backend: Backend) -> list[str]:
    raw = backend.engine.raw_connection()
    try:
        return sorted(row[0] for row in raw.cursor().execute("SELECT text FROM notes").fetchall())
    finally:
        raw.close()


def note(n: int) -> Any:
    def run(cursor: Any, answer: Any) -> Any:
        cursor.execute("INSERT INTO notes (text) VALUES (?)", (f"work {n}",))
        return answer

    return run


def test_each_work_gets_the_answer_decided_for_its_request(backend: Backend) -> None:
    batches: list[list[Any]] = []

    def decide(cursor: Any, requests: list[Any]) -> list[Any]:
        batches.append(requests)
        return [f"answer to {request}" for request in requests]

    writer = Writer(backend.engine.raw_connection, (sqlite3.OperationalError,), backend, decide)
    try:
        futures = [writer.submit(note(n), request=n if n % 2 else None) for n in range(6)]
        answers = [future.result(timeout=30) for future in futures]
    finally:
        writer.close()
    assert answers == [None, "answer to 1", None, "answer to 3", None, "answer to 5"]
    assert sorted(request for batch in batches for request in batch) == [1, 3, 5]
    assert notes(backend) == [f"work {n}" for n in range(6)]


def test_a_failed_joint_decision_applies_nothing_and_every_work_runs_on_its_own(backend: Backend) -> None:
    def decide(cursor: Any, requests: list[Any]) -> list[Any]:
        # One statement, as a joint decision is: its first row is written, its second fails.
        cursor.execute("INSERT INTO notes (text) VALUES ('written by the failed decision'), (NULL)")
        return list(requests)

    errors = (sqlite3.OperationalError, sqlite3.IntegrityError)
    writer = Writer(backend.engine.raw_connection, errors, backend, decide)
    try:
        futures = [writer.submit(note(n), request=n) for n in range(5)]
        answers = [future.result(timeout=30) for future in futures]
    finally:
        writer.close()
    assert answers == [None] * 5  # none was decided: each ran in full
    assert notes(backend) == [f"work {n}" for n in range(5)]


def test_a_decision_that_fails_for_any_reason_leaves_every_work_to_run_on_its_own(backend: Backend) -> None:
    def decide(cursor: Any, requests: list[Any]) -> list[Any]:
        raise ValueError("a defect in the decision")

    writer = Writer(backend.engine.raw_connection, (sqlite3.OperationalError,), backend, decide)
    try:
        futures = [writer.submit(note(n), request=n) for n in range(3)]
        assert [future.result(timeout=30) for future in futures] == [None] * 3
    finally:
        writer.close()
    assert notes(backend) == [f"work {n}" for n in range(3)]


def test_a_caller_who_cancelled_does_not_cost_the_others_their_answers(backend: Backend) -> None:
    writer = Writer(backend.engine.raw_connection, (sqlite3.OperationalError,), backend)
    try:
        futures = [writer.submit(note(n)) for n in range(200)]
        cancelled = [n for n in range(0, 200, 5) if futures[n].cancel()]
        answered = [n for n in range(200) if n not in cancelled]
        assert all(futures[n].result(timeout=30) is None for n in answered)
    finally:
        writer.close()
    # Whatever was cancelled before it ran may or may not have run; everything answered is there.
    assert {f"work {n}" for n in answered} <= set(notes(backend))


def _update(row: int, pause: float = 0.0) -> Any:
    def run(cursor: Any, answer: Any) -> Any:
        cursor.execute("UPDATE counters SET n = n + 1 WHERE id = %s", (row,))
        time.sleep(pause)
        return row

    return run


def _pause(seconds: float) -> Any:
    def run(cursor: Any, answer: Any) -> Any:
        time.sleep(seconds)

    return run


def test_two_processes_batches_locking_rows_in_opposite_orders_all_commit() -> None:
    """Writer A's batch updates row 1 then row 2 while writer B's updates row 2 then row 1: a lock
    cycle between two transactions that PostgreSQL breaks by failing one statement. Retrying that
    statement in the same transaction meets the same cycle, because the batch still holds what
    its earlier works locked; the batch must let go of everything and run its works alone."""
    url = empty_postgres_url()
    backend = backend_for(url)
    raw = backend.engine.raw_connection()
    raw.cursor().execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
    raw.cursor().execute("INSERT INTO counters VALUES (1, 0), (2, 0)")
    raw.commit()
    writers = [Writer(backend.engine.raw_connection, (psycopg.Error,), backend) for _ in range(2)]
    try:
        futures = []
        for writer, (first, second) in zip(writers, [(1, 2), (2, 1)], strict=True):
            writer.submit(_pause(0.3))  # keeps the writer busy while the next two queue up as one batch
            futures += [writer.submit(_update(first, pause=0.5)), writer.submit(_update(second))]
        answers = [future.result(timeout=60) for future in futures]
    finally:
        for writer in writers:
            writer.close()
    assert answers == [1, 2, 2, 1]
    cursor = raw.cursor()
    cursor.execute("SELECT id, n FROM counters ORDER BY id")
    assert cursor.fetchall() == [(1, 2), (2, 2)]
    raw.close()
    backend.engine.dispose()
