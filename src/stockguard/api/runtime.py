"""The Python interpreter, set for a server that lives long and answers many small requests.

Two of the interpreter's defaults suit short programs, not a flash sale
(measured with bench/http_load.py, docs/benchmarks.md, "The interpreter's
settings"):

- **The garbage collector.** It runs a young collection every 700 new
  objects and, every so often, a full one that walks every object alive. A
  started service holds about 170,000 of them (modules, the app, its routes
  and schemas, the store's engine) that live as long as the process, so each
  full collection walked them all again: 36 in one benchmark run, up to 66 ms
  each, with every request in flight waiting behind them. Once started, the
  service collects once and freezes what survived (the collector never walks
  frozen objects again), and runs young collections less often: a sale keeps
  hundreds of requests in flight, whose objects a young collection would walk
  again and again before they finish.
- **The switch interval, on SQLite.** The SQLite store's writer thread lets
  go of the GIL around every statement (about ten per hold) and must win it
  back from the event loop each time; by default a thread waiting for the GIL
  asks for it only after 5 ms, so the writer's batches waited on the loop far
  longer than on the database. At 1 ms it gets back to work sooner. On
  PostgreSQL the writer sends one statement per batch, and the shorter
  interval did not help selling there and cost the sold-out phase about a
  tenth, so it is left at Python's default.

Tuned on Python 3.11; the collector of later versions (incremental from
3.14) reads its thresholds differently, and they are worth measuring again.
"""

from __future__ import annotations

import gc
import sys

# New objects between young collections (Python's default is 700). 5,000 to 50,000 all did
# as well in bench/http_load.py (set from outside the code, one-off); larger only holds
# garbage longer.
YOUNG_THRESHOLD = 20_000
# Seconds a thread waits for the GIL before asking the holder to let go (Python's default:
# 0.005). 0.0005 did no better than 0.001; 0.002 no better than the default.
SWITCH_INTERVAL = 0.001


def settle_after_start(*, sqlite_writer: bool) -> None:
    """Collect the start's garbage, freeze the rest for the process's life and space young
    collections; with a SQLite store's writer thread, shorten the switch interval."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if sqlite_writer:
        sys.setswitchinterval(SWITCH_INTERVAL)
