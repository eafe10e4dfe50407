"""Nothing acknowledged is lost: what a call answered is there when the store is opened again.

Process crashes mid-sale are the chaos suite's subject; this is the plain case
every persistent store must pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import FakeClock
from stockguard import Stockguard, open_store


def test_an_acknowledged_order_survives_reopening_the_store(shared_store_url: str, clock: FakeClock) -> None:
    first = open_store(shared_store_url)
    try:
        sg = Stockguard(first, clock.now)
        sg.put_item("maotai-500ml", "Maotai")
        sg.receive("maotai-500ml", 3)
        sg.put_listing("maotai", "Maotai", [("maotai-500ml", 1)], "reserve")
        placed = sg.place_order("o-1", "alice", [("maotai", 2)]).order
    finally:
        first.close()
    reopened = open_store(shared_store_url)
    try:
        again = Stockguard(reopened, clock.now)
        assert again.get_order("o-1") == placed
        assert again.get_listing("maotai").sellable == 1
        assert again.check() == []
    finally:
        reopened.close()


KILLED_AFTER_ANSWER = """
import os, sys, stockguard
sg = stockguard.connect(sys.argv[1])
sg.put_item("maotai-500ml", "Maotai")
sg.receive("maotai-500ml", 3)
sg.put_listing("maotai", "Maotai", [("maotai-500ml", 1)], "order")
order = sg.place_order("o-1", "alice", [("maotai", 2)]).order
print(order.status.value, flush=True)
os.kill(os.getpid(), 9)  # no close, no clean exit: the answer is all the buyer saw
"""


def test_an_order_answered_before_kill_9_is_in_the_store(shared_store_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_ANSWER, shared_store_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.strip() == "reserved"
    store = open_store(shared_store_url)
    try:
        sg = Stockguard(store)
        assert sg.get_order("o-1").status.value == "reserved"
        assert sg.get_listing("maotai").sellable == 1
        assert sg.check() == []
    finally:
        store.close()
