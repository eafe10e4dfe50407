"""Python's garbage collector, set for a server that lives long and answers many small requests.

By default the collector runs a young collection every 700 new objects and,
every so often, a full one that walks every object alive. A started service
holds about 170,000 of them (modules, the app, its routes and schemas, the
store's engine) that live as long as the process, so each full collection
walked them all again: 36 full collections in one benchmark run, up to 66 ms
each, with every request waiting behind them. That was the tail of every
phase's latency (docs/benchmarks.md, "The garbage collector").

Once started, the service collects once and freezes what survived (the
collector never walks frozen objects again), and runs young collections less
often: a flash sale keeps hundreds of requests in flight, whose objects a
young collection would walk again and again before they finish.
"""

from __future__ import annotations

import gc

# New objects between young collections (Python's default is 700). Measured with
# bench/http_load.py: 5,000 to 50,000 all did as well; larger only holds garbage longer.
YOUNG_THRESHOLD = 20_000


def settle_after_start() -> None:
    """Collect the start's garbage, freeze the rest for the process's life, space young collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
