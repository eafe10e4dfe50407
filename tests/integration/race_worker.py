"""One racing worker process for the concurrency tests: its own connection, many threads.

The tests start several of these as plain OS processes (``python race_worker.py``)
rather than through ``multiprocessing``, so a worker is an ordinary stockguard
client, like a service process, and does not depend on how pytest imported the
test module. The protocol is one JSON document per line:

1. the parent writes the job on stdin: ``{"url": ..., "threads": n, "calls": [...]}``;
2. the worker opens its own ``stockguard.connect(url)``, starts ``n`` threads that
   wait on one event, and prints ``ready``;
3. the parent writes ``go`` to every worker at once and the threads race;
4. the worker prints one line: the JSON list of outcomes, one per call, in call order.

Thread ``t`` runs calls ``t, t + n, t + 2n, ...`` one after the other. A call is
``{"op": "place", "order_id", "buyer_id", "lines", "context"?}``, ``{"op": "pay", "order_id"}``
or ``{"op": "expire"}``. An outcome is ``{"error": None or the exception class
name, "created": bool, "order": {...}, "released": int}`` (keys as they apply).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import stockguard

JSON = dict[str, Any]


def _order_json(order: stockguard.Order) -> JSON:
    """What callers compare: the order as the service answered it."""
    return {
        "order_id": order.order_id,
        "buyer_id": order.buyer_id,
        "status": order.status.value,
        "created_at": order.created_at.isoformat(),
        "expires_at": None if order.expires_at is None else order.expires_at.isoformat(),
        "allocations": [[a.sku, a.warehouse, a.quantity] for a in order.allocations],
    }


def run_call(sg: stockguard.Stockguard, call: JSON) -> JSON:
    op = call["op"]
    if op == "place":
        lines = [(listing_id, quantity) for listing_id, quantity in call["lines"]]
        context = stockguard.OrderContext(**call["context"]) if "context" in call else None
        placement = sg.placing(call["order_id"], call["buyer_id"], lines, context).result()
        return {"error": None, "created": placement.created, "order": _order_json(placement.order)}
    if op == "pay":
        return {"error": None, "order": _order_json(sg.pay(call["order_id"]))}
    if op == "expire":
        return {"error": None, "released": sg.expire_due()}
    raise ValueError(f"unknown op {op!r}")


def _outcome(sg: stockguard.Stockguard, call: JSON) -> JSON:
    try:
        return run_call(sg, call)
    except stockguard.StockguardError as error:
        return {"error": type(error).__name__, "detail": error.detail}
    except Exception as error:  # reported, so the test fails with the cause instead of hanging
        return {"error": f"unexpected {type(error).__name__}", "detail": str(error)}


def main() -> None:
    job: JSON = json.loads(sys.stdin.readline())
    calls: list[JSON] = job["calls"]
    threads: int = job["threads"]
    sg = stockguard.connect(job["url"], address_key=bytes.fromhex(job["address_key"]))
    outcomes: list[JSON | None] = [None] * len(calls)
    go = threading.Event()

    def work(first: int) -> None:
        go.wait()
        for index in range(first, len(calls), threads):
            outcomes[index] = _outcome(sg, calls[index])

    # Daemon threads: a worker told to stop before "go" must not hang on its parked threads.
    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")
    go.set()
    for worker in workers:
        worker.join()
    sg.store.close()
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
