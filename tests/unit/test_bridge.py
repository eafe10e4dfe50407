"""The loop bridge: futures answered on other threads settle their awaitables on the loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from stockguard.api.bridge import LoopBridge


def test_answers_from_another_thread_reach_every_awaiting_task() -> None:
    async def scenario() -> list[object]:
        bridge = LoopBridge(asyncio.get_running_loop())
        futures: list[Future[int]] = [Future() for _ in range(500)]
        waiting = [bridge.wait(future) for future in futures]

        def answer() -> None:  # as the store's writer does: a batch at a time
            for n, future in enumerate(futures):
                if n % 7 == 0:
                    future.set_exception(ValueError(f"refused {n}"))
                else:
                    future.set_result(n)

        threading.Thread(target=answer).start()
        return await asyncio.gather(*waiting, return_exceptions=True)

    settled = asyncio.run(scenario())
    for n, outcome in enumerate(settled):
        if n % 7 == 0:
            assert isinstance(outcome, ValueError)
            assert str(outcome) == f"refused {n}"
        else:
            assert outcome == n


def test_an_answer_already_there_settles_at_once() -> None:
    async def scenario() -> int:
        bridge = LoopBridge(asyncio.get_running_loop())
        done: Future[int] = Future()
        done.set_result(7)
        return await bridge.wait(done)

    assert asyncio.run(scenario()) == 7


def test_a_cancelled_wait_ignores_its_late_answer() -> None:
    async def scenario() -> int:
        bridge = LoopBridge(asyncio.get_running_loop())
        late: Future[int] = Future()
        gone = bridge.wait(late)
        gone.cancel()
        later: Future[int] = Future()
        waiting = bridge.wait(later)
        late.set_result(1)
        later.set_result(2)
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await waiting

    assert asyncio.run(scenario()) == 2
