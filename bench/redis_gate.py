"""The Redis gate's admissions against redis-benchmark's floor on the same server.

Three arms, interleaved run by run on one Redis:

- ``redis-benchmark``: 50 clients, no pipelining, calling by EVALSHA a one-key
  check-and-decrement script (the least a gate can do: is there stock? take one);
- ``gate client``: stockguard's own path, ``GateClient.admit`` with 50 calls
  always in flight on one hot listing, as the service's event loop keeps them
  (the client's thread sends whatever is waiting in one pipeline; each admission
  also checks the order id and the buyer's limit and records the order);
- ``gate, one call each``: ``RedisGate.admit`` from 50 threads, a round trip per
  admission (what the gate costs without the client's batching).

Usage::

    .venv/bin/python bench/redis_gate.py [--url redis://127.0.0.1:6379/0] [--calls 100000]
        [--runs 3] [--json-out bench/results/redis-gate.json]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import secrets
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import redis
from rich.console import Console
from rich.table import Table

from stockguard.gate.client import GateClient
from stockguard.gate.redis_gate import RedisGate
from stockguard.service.admission import Admission, Answered, Decision

CLIENTS = 50
STARTING = Admission(Decision.UNLOADED)  # what starts each of the CLIENTS callers, not an answer
CHECK_AND_DECREMENT = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left > 0 then
    return redis.call('DECR', KEYS[1])
end
return -1
"""


def redis_benchmark(url: str, calls: int) -> float:
    """Calls per second of redis-benchmark's EVALSHA of the one-key script."""
    client = redis.Redis.from_url(url)
    key = f"bench-stock-{secrets.token_hex(4)}"
    client.set(key, 10**12)
    sha = client.script_load(CHECK_AND_DECREMENT)
    where = urlparse(url)
    done = subprocess.run(
        ["redis-benchmark", "-h", where.hostname or "127.0.0.1", "-p", str(where.port or 6379),
         "-c", str(CLIENTS), "-n", str(calls), "--csv", "EVALSHA", sha, "1", key],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    client.delete(key)
    client.close()
    rows = list(csv.reader(io.StringIO(done.stdout)))
    return float(rows[-1][1])


def threads_calling(calls: int, call: Callable[[int], object]) -> float:
    """Calls per second of ``call(n)`` for n in range(calls), from CLIENTS threads."""
    counter = iter(range(calls))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            call(n)

    threads = [threading.Thread(target=work) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls / (time.perf_counter() - started)


def in_flight(calls: int, admit: Callable[[int, Answered], None]) -> float:
    """Calls per second with CLIENTS admissions always in flight, as an event loop serving
    CLIENTS buyers keeps them: each answer sends the next call."""
    counter = iter(range(calls))
    lock = threading.Lock()
    answered = [0]
    finished = threading.Event()

    def next_call(answer: Admission | None) -> None:
        with lock:
            if answer is not STARTING:
                answered[0] += 1
                if answered[0] == calls:
                    finished.set()
            n = next(counter, None)
        if n is not None:
            admit(n, next_call)

    started = time.perf_counter()
    for _ in range(CLIENTS):
        next_call(STARTING)
    finished.wait()
    return calls / (time.perf_counter() - started)


def gate_arm(url: str, calls: int, *, batched: bool) -> float:
    client = redis.Redis.from_url(url, decode_responses=True, max_connections=CLIENTS + 4)
    gate = RedisGate(client, f"bench-{secrets.token_hex(4)}")
    gate.load("hot", tokens=10**12, limit=None, live=[])
    if batched:
        gate_client = GateClient(gate)
        rate = in_flight(calls, lambda n, answered: gate_client.admit("hot", f"o-{n}", f"b-{n}", 1, answered))
        gate_client.close()
    else:
        rate = threads_calling(calls, lambda n: gate.admit("hot", f"o-{n}", f"b-{n}", 1))
    state = gate.state("hot")
    assert state is not None
    assert state.tokens == 10**12 - calls  # every admission took exactly one token
    client.delete(*gate.keys("hot").all())
    client.close()
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The Redis gate against redis-benchmark (see the docstring)."
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-out", type=Path, default=Path("bench/results/redis-gate.json"))
    args = parser.parse_args(argv)
    arms: dict[str, Callable[[], float]] = {
        "redis-benchmark EVALSHA (baseline)": lambda: redis_benchmark(args.url, args.calls),
        "gate client (pipelined)": lambda: gate_arm(args.url, args.calls, batched=True),
        "gate, one call each": lambda: gate_arm(args.url, args.calls // 2, batched=False),
    }
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.runs):
        for name, arm in arms.items():
            rates[name].append(arm())
    baseline = statistics.median(rates["redis-benchmark EVALSHA (baseline)"])
    table = Table(
        title=f"admissions per second on one hot listing, {CLIENTS} clients: median of {args.runs} runs"
    )
    for column in ("arm", "calls/s", "of baseline", "runs"):
        table.add_column(column, justify="left" if column in {"arm", "runs"} else "right")
    for name, measured in rates.items():
        median = statistics.median(measured)
        runs = " ".join(f"{rate:,.0f}" for rate in measured)
        table.add_row(name, f"{median:,.0f}", f"{median / baseline:.2f}", runs)
    Console().print(table)
    document = {
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "clients": CLIENTS,
        "calls": args.calls,
        "arms": {name: {"median": statistics.median(m), "runs": m} for name, m in rates.items()},
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
