"""The expiry sweeper inside the service: a thread per worker process.

Every worker sweeps; the store releases each hold once however many sweepers
race (the write lock in SQLite, SKIP LOCKED row locks in PostgreSQL). Sweeping
every 0.2 s keeps the promise that a hold's stock is sellable again within a
second of ``expires_at``; reads release due holds themselves anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from stockguard.api.metrics import HOLDS_EXPIRED
from stockguard.domain.errors import StockguardError
from stockguard.service import Stockguard

log = logging.getLogger("stockguard.sweeper")


# How often each worker deletes change events older than the retention period.
PRUNE_EVERY_S = 600.0


class Sweeper:
    def __init__(self, guard: Stockguard, interval: float, event_retention: timedelta) -> None:
        self._guard = guard
        self._interval = interval
        self._event_retention = event_retention
        self._pruned_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stockguard-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                released = self._guard.expire_due()
            except StockguardError as error:  # e.g. the store is briefly unavailable: try again
                log.warning("sweep failed: %s", error.detail)
                continue
            if released:
                HOLDS_EXPIRED.inc(released)
                log.info('{"expired_holds": %d}', released)
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                self._prune()

    def _prune(self) -> None:
        try:
            self._guard.prune_events(self._event_retention)
        except StockguardError as error:
            log.warning("pruning events failed: %s", error.detail)
