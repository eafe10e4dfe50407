"""HTTP load benchmark of ``stockguard serve`` with wrk: one hot ``reserve`` listing, a crowd of buyers.

Each run starts a fresh server (new data folder, new SQLite file, tokens from
the environment, ``--log-level warning``), creates one listing of ``--units``
units over HTTP, then drives it with wrk at ``--connections`` connections:

1. baseline: ``GET /healthz`` (a trivial route of the same FastAPI app on the
   same server) for ``--duration`` seconds;
2. selling: ``POST /v1/orders`` with unique order ids until the units are gone.
   Exactly ``--units`` requests are sent (bench/wrk/common.lua: ``delay()``
   hands out each thread's share of the quota and parks the connections once
   it is handed out; ``response()`` stops the thread when its share is
   answered), so the phase is the time to sell out and every request in it is
   a sale;
3. sold out: ``POST /v1/orders`` with new unique ids against the sold-out
   listing for ``--duration`` seconds.

After each run: the item's ``reserved + committed <= on_hand``, exactly
``--units`` answers were 201 (counted in wrk's ``response()``), the listing
says it sold ``--units``, and ``stockguard check`` exits 0 on the database.

What wrk's latencies mean: wrk 4 corrects its histogram for coordinated
omission (every answer slower than the mean per-connection cycle adds
synthetic samples below it), so a handful of stalled requests (e.g.
connections left in the kernel's accept queue while the server's event loop
is saturated) move p90/p99 by seconds. Each phase therefore also reports the
bound Little's law puts on the true mean (connections x seconds / answers),
wrk's max, and how deep the listening socket's accept queue got.

``--extra-baseline PATH`` also measures another GET route of the same app
(``/healthz`` is an async route answered through FastAPI's full request
handling, response model included), reported beside the baseline.

Usage::

    .venv/bin/python bench/http_load.py [--connections 256] [--units 10000] [--buyers 100000]
        [--runs 3] [--workers 1] [--json-out PATH]

The run's exit status is 1 when any run oversold, miscounted or failed its
check; missing a throughput or latency aim is reported, not failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
SKU = "bench-hot"
LISTING = "bench-hot"
PHASES = ("baseline", "selling", "soldout")
LABELS = {
    "baseline": "baseline (GET /healthz)",
    "selling": "selling (POST /v1/orders)",
    "soldout": "sold out (POST /v1/orders)",
}
AIM_SELLING_RATIO = 0.5
AIM_SOLDOUT_RATIO = 0.8
AIM_P99_MS = 100.0

out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


class BenchError(Exception):
    """The benchmark could not run (the server did not start, wrk failed, ...)."""


# ---------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Config:
    connections: int
    threads: int
    units: int
    buyers: int
    runs: int
    workers: int
    duration: int
    warmup: int
    sell_cap: int
    timeout: int
    wrk: str
    ref: str | None
    quiet_below: float
    quiet_wait: int
    max_other_cpu: float
    attempts: int
    profile_dir: Path | None
    json_out: Path
    extra_baseline: str | None
    pg: str | None = None
    loop: str = "asyncio"
    redis: str | None = None


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="HTTP load benchmark of stockguard serve with wrk (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=256, help="wrk connections (-c), every phase")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t), every phase")
    parser.add_argument("--units", type=int, default=10_000, help="units on the hot listing")
    parser.add_argument("--buyers", type=int, default=100_000, help="distinct buyer ids")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh server and database")
    parser.add_argument("--workers", type=int, default=1, help="stockguard serve --workers")
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds of the baseline and of the sold-out phase"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of GET /healthz before measuring (not reported)"
    )
    parser.add_argument(
        "--sell-cap", type=int, default=300, help="give up on the selling phase after this many seconds"
    )
    parser.add_argument(
        "--timeout", type=int, default=30, help="wrk -T: slower answers count as timeouts (seconds)"
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    parser.add_argument(
        "--ref",
        default=None,
        help="benchmark this git commit's src/ (git archive) instead of the working tree",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=20.0,
        metavar="PCT",
        help="before each run, wait until other processes use less than PCT%% of one core",
    )
    parser.add_argument(
        "--quiet-wait", type=int, default=900, help="seconds to wait for that at most, then run anyway"
    )
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=30.0,
        metavar="PCT",
        help="a run during which other processes used more than PCT%% of one core in any phase is "
        "disturbed: it is kept in the JSON and run again",
    )
    parser.add_argument(
        "--attempts", type=int, default=4, help="attempts per run before a disturbed run is used anyway"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record each phase with py-spy into DIR (slows the server: figures are not comparable)",
    )
    parser.add_argument(
        "--extra-baseline",
        default=None,
        metavar="PATH",
        help="also measure GET PATH (e.g. /docs) beside the baseline; not used for the ratios",
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="stockguard serve --loop"
    )
    parser.add_argument(
        "--pg",
        default=None,
        metavar="URL",
        help="serve from this PostgreSQL database instead of SQLite: each run in a fresh schema there "
        "(migrated with stockguard db upgrade, dropped afterwards)",
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="serve behind the flash-sale gate on this Redis (each run under a key prefix of its own)",
    )
    parser.add_argument(
        "--json-out", type=Path, default=Path("http-load-results.json"), help="where to write the figures"
    )
    args = parser.parse_args(argv)
    for name in ("connections", "threads", "units", "buyers", "runs", "workers", "duration", "timeout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if args.units < args.threads:
        parser.error("--units must be at least --threads (each wrk thread sells its share)")
    if args.buyers < args.units:
        parser.error("--buyers must be at least --units (every sale goes to a distinct buyer)")
    if shutil.which(args.wrk) is None:
        parser.error(f"wrk not found ({args.wrk}); apt-get install -y wrk")
    return Config(
        connections=args.connections,
        threads=args.threads,
        units=args.units,
        buyers=args.buyers,
        runs=args.runs,
        workers=args.workers,
        duration=args.duration,
        warmup=max(0, args.warmup),
        sell_cap=args.sell_cap,
        timeout=args.timeout,
        wrk=args.wrk,
        ref=args.ref,
        quiet_below=args.quiet_below,
        quiet_wait=args.quiet_wait,
        max_other_cpu=args.max_other_cpu,
        attempts=max(1, args.attempts),
        profile_dir=args.profile,
        json_out=args.json_out,
        extra_baseline=args.extra_baseline,
        pg=args.pg,
        loop=args.loop,
        redis=args.redis,
    )


# ---------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Tokens:
    admin: str
    storefront: str


class Server:
    """``stockguard serve`` in a process group of its own, on a fresh data folder."""

    def __init__(self, config: Config, workdir: Path, code_path: Path | None, db_url: str | None) -> None:
        self.config = config
        self.data_dir = workdir / "data"
        self.db_url = db_url or f"sqlite:///{self.data_dir / 'stockguard.db'}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tokens = Tokens(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        self.log_path = workdir / "server.log"
        self.env = server_env(code_path)
        self.env["STOCKGUARD_ADMIN_TOKEN"] = self.tokens.admin
        self.env["STOCKGUARD_STOREFRONT_TOKEN"] = self.tokens.storefront
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "stockguard",
            "serve",
            "--db",
            self.db_url,
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.config.workers),
            "--log-level",
            "warning",
            "--loop",
            self.config.loop,
            *(
                ()
                if self.config.redis is None
                else ("--redis", self.config.redis, "--redis-prefix", f"bench-{secrets.token_hex(4)}")
            ),
        ]

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the server is not running")
        return self.process.pid

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.data_dir.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers stop with it
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http(self.base + "/healthz", "GET")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the server did not answer /healthz within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully, workers too
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the server's group (supervisor and workers)."""
        return group_cpu_seconds(self.pid)

    def pids(self) -> list[int]:
        return group_pids(self.pid)


def server_env(code_path: Path | None) -> dict[str, str]:
    """The caller's environment without STOCKGUARD_* settings, so every run has the same settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STOCKGUARD_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    if code_path is not None:
        env["PYTHONPATH"] = str(code_path) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _proc_stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the fields after it) of every process in /proc/<pid>/stat."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm, _, rest = raw.partition("(")[2].rpartition(")")
        yield int(entry.name), comm, rest.split()


def group_pids(pgid: int) -> list[int]:
    return sorted(pid for pid, _, fields in _proc_stats() if int(fields[2]) == pgid)


def group_cpu_seconds(pgid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for _, _, fields in _proc_stats():
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


def database_cpu_seconds() -> float:
    """User + system CPU of every live PostgreSQL process (with --pg, part of what is measured)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(int(f[11]) + int(f[12]) for _, comm, f in _proc_stats() if comm == "postgres")
    return total / ticks


def http(url: str, method: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def expect(answer: tuple[int, Any], statuses: tuple[int, ...], what: str) -> Any:
    status, body = answer
    if status not in statuses:
        raise BenchError(f"{what}: HTTP {status}: {body}")
    return body


def create_hot_listing(server: Server, units: int) -> None:
    admin = server.tokens.admin
    base = server.base
    expect(http(f"{base}/v1/items/{SKU}", "PUT", admin, {"name": "Hot item"}), (200, 201), "create item")
    expect(
        http(f"{base}/v1/items/{SKU}/receipts", "POST", admin, {"quantity": units, "reference": "bench"}),
        (200,),
        "receive stock",
    )
    listing = {
        "title": "Hot listing",
        "components": [{"sku": SKU, "quantity": 1}],
        "deduction": "reserve",
        "hold_seconds": 86_400,  # no hold may expire during a run: every 201 stays a held unit
    }
    expect(http(f"{base}/v1/listings/{LISTING}", "PUT", admin, listing), (200, 201), "create listing")


# ---------------------------------------------------------------------------
# wrk


@dataclass
class Phase:
    name: str
    rate: float  # answered requests per second
    requests: int
    duration_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    sent: int
    wrk_duration_s: float  # wrk's own: -d when a quota ended the threads early
    span_s: float  # first request to last answer, from the wrk threads
    server_cpu_pct: float  # of one core
    client_cpu_pct: float  # wrk, of one core
    other_cpu_pct: float  # everything else on the machine meanwhile, of one core
    database_cpu_pct: float  # PostgreSQL's processes with --pg (not counted in other_cpu_pct), else 0
    # wrk corrects its histogram for coordinated omission (every answer slower than
    # the mean per-connection cycle adds synthetic samples), so a few stalled requests
    # move p90/p99. Little's law bounds the true mean: connections * seconds / requests.
    littles_mean_ms: float
    accept_queue_max: int  # connections the kernel had accepted and the server had not
    accept_queue_seconds: float  # how long any connection waited there
    wrk_command: list[str]


def run_wrk(
    config: Config,
    server: Server,
    phase: str,
    script: str,
    duration: int,
    extra_env: dict[str, str],
    profile_to: Path | None = None,
) -> Phase:
    command = [
        config.wrk,
        "-t",
        str(config.threads),
        "-c",
        str(config.connections),
        "-d",
        f"{duration}s",
        "-T",
        f"{config.timeout}s",
        "--latency",
        "-s",
        str(WRK_DIR / script),
        server.base,
    ]
    env = dict(os.environ)
    env.update(
        {
            "BENCH_TOKEN": server.tokens.storefront,
            "BENCH_THREADS": str(config.threads),
            "BENCH_QUOTA": "0",
            **extra_env,
        }
    )
    quota = int(env["BENCH_QUOTA"])
    with profiled(server, profile_to), AcceptQueue(server.port) as backlog:
        cpu_before = server.cpu_seconds()
        database_before = database_cpu_seconds() if config.pg else 0.0
        busy_before = machine_busy_seconds()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall_before = time.perf_counter()
        stdout = drive_wrk(command, env, config.threads if quota else 0)
        wall = time.perf_counter() - wall_before
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy_after = machine_busy_seconds()
        database_cpu = (database_cpu_seconds() - database_before) if config.pg else 0.0
        cpu_after = server.cpu_seconds()
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if not lines:
        raise BenchError(f"wrk printed no result:\n{stdout}")
    result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    latency = result["latency_us"]
    percentiles = latency["percentiles"]
    # With a quota wrk's own duration is its -d (see common.lua): use the span
    # from the first request to the last answer, measured in the wrk threads.
    seconds = (result["span_us"] if quota else result["duration_us"]) / 1e6
    client_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    server_cpu = cpu_after - cpu_before
    foreign_cpu = max(0.0, (busy_after - busy_before) - server_cpu - client_cpu - database_cpu)
    return Phase(
        name=phase,
        rate=result["requests"] / seconds if seconds else 0.0,
        requests=int(result["requests"]),
        duration_s=seconds,
        p50_ms=percentiles["50"] / 1000,
        p75_ms=percentiles["75"] / 1000,
        p90_ms=percentiles["90"] / 1000,
        p99_ms=percentiles["99"] / 1000,
        p999_ms=percentiles["99.9"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={k: int(v) for k, v in result["statuses"].items()},
        socket_errors={k: int(v) for k, v in result["errors"].items() if k != "status"},
        sent=int(result["sent"]),
        wrk_duration_s=result["duration_us"] / 1e6,
        span_s=result["span_us"] / 1e6,
        server_cpu_pct=100 * server_cpu / wall,
        client_cpu_pct=100 * client_cpu / wall,
        other_cpu_pct=100 * foreign_cpu / wall,
        database_cpu_pct=100 * database_cpu / wall,
        littles_mean_ms=1000 * config.connections * seconds / max(1, result["requests"]),
        accept_queue_max=backlog.max,
        accept_queue_seconds=backlog.seconds,
        wrk_command=command,
    )


class AcceptQueue:
    """Samples the listening socket's accept queue (/proc/net/tcp) every 0.1 s while in use."""

    def __init__(self, port: int) -> None:
        self._local = f"0100007F:{port:04X}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.max = 0
        self.seconds = 0.0

    def __enter__(self) -> AcceptQueue:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            waiting = self.depth()
            self.max = max(self.max, waiting)
            if waiting:
                self.seconds += 0.1

    def depth(self) -> int:
        try:
            lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return 0
        for line in lines:
            fields = line.split()
            if fields[1] == self._local and fields[3] == "0A":  # LISTEN: rx_queue is the accept queue
                return int(fields[4].split(":")[1], 16)
        return 0


def drive_wrk(command: list[str], env: dict[str, str], threads_with_quota: int) -> str:
    """Run wrk; with a quota, end it (SIGINT) once every thread said it is done."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    output: list[str] = []
    finished = 0
    for line in process.stdout:
        output.append(line)
        if line.startswith("BENCH_THREAD_DONE"):
            finished += 1
            if finished == threads_with_quota:
                process.send_signal(signal.SIGINT)  # wrk then joins its threads and reports
    process.wait()
    if process.returncode != 0:
        raise BenchError(f"wrk failed ({process.returncode}): {''.join(output)}")
    return "".join(output)


def wait_for_quiet(config: Config) -> float:
    """Wait until the machine is idle (other sessions' tests skew every figure); the busy % last seen."""
    deadline = time.monotonic() + config.quiet_wait
    said = False
    while True:
        before = machine_busy_seconds()
        time.sleep(2.0)
        busy = 100 * (machine_busy_seconds() - before) / 2.0
        if busy < config.quiet_below or time.monotonic() >= deadline:
            if busy >= config.quiet_below:
                err.print(f"[yellow]the machine is still {busy:.0f}% busy; running anyway[/]")
            return busy
        if not said:
            err.print(f"waiting for a quiet machine: {busy:.0f}% of a core busy, want < {config.quiet_below}")
            said = True


def machine_busy_seconds() -> float:
    """CPU time every core spent busy since boot (/proc/stat), to see who else used the machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextmanager
def profiled(server: Server, to: Path | None) -> Iterator[None]:
    """py-spy record on the server (and its workers) for the duration of the block."""
    if to is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy")
    to.parent.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, i.e. where the one core a
    # worker process can use goes. (Threads waiting on a lock or a queue would
    # otherwise show up as busy in this VM, and C code that releases the GIL,
    # such as SQLite's statement execution, does not show up.)
    command = [spy, "record", "--pid", str(server.pid), "--gil", "--format", "raw", "--output", str(to)]
    if server.config.workers > 1:
        command.append("--subprocesses")
    spy_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach before the load starts
    try:
        yield
    finally:
        spy_process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy_process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy_process.kill()
            spy_process.wait()


# ---------------------------------------------------------------------------
# One run


@dataclass
class Verification:
    on_hand: int
    reserved: int
    committed: int
    oversold_units: int  # max(0, reserved + committed - on_hand)
    listing_sold: int
    listing_sellable: int
    created_201: int  # over both order phases, from wrk's response()
    selling_201: int
    soldout_201: int
    unexpected: dict[str, int]  # answers other than 201 / 409 sold_out (orders) and 200 (baseline)
    check_exit: int
    check_output: str
    problems: list[str] = field(default_factory=list)  # oversell, miscount, failed check
    warnings: list[str] = field(default_factory=list)  # measurement trouble, e.g. wrk timeouts

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Run:
    index: int
    busy_before_pct: float  # CPU the machine used just before the run (of one core)
    loadavg_before: str  # /proc/loadavg as the run started: was the machine quiet?
    port: int
    server_command: list[str]
    phases: dict[str, Phase]
    ratios: dict[str, float]
    verification: Verification
    attempt: int = 1
    disturbed: bool = False  # other processes used the CPU during a phase (see --max-other-cpu)

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.index,
            "attempt": self.attempt,
            "disturbed": self.disturbed,
            "busy_before_pct": self.busy_before_pct,
            "loadavg_before": self.loadavg_before,
            "server_command": self.server_command,
            "phases": {name: asdict(phase) for name, phase in self.phases.items()},
            "ratios": self.ratios,
            "verification": {**asdict(self.verification), "ok": self.verification.ok},
        }


@contextmanager
def fresh_database(config: Config, code_path: Path | None) -> Iterator[str | None]:
    """With ``--pg``: a new schema in that database, migrated, dropped afterwards; else None (SQLite)."""
    if config.pg is None:
        yield None
        return
    schema = f"sg_http_load_{os.getpid()}_{secrets.token_hex(4)}"
    separator = "&" if "?" in config.pg else "?"
    url = f"{config.pg}{separator}options=-csearch_path%3D{schema}"
    admin_url = config.pg.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            subprocess.run(
                [sys.executable, "-m", "stockguard", "db", "upgrade", "--db", url],
                env=server_env(code_path),
                check=True,
                capture_output=True,
            )
            yield url
        finally:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_once(config: Config, index: int, code_path: Path | None) -> Run:
    busy = wait_for_quiet(config)
    loadavg = Path("/proc/loadavg").read_text().strip()
    with (
        tempfile.TemporaryDirectory(prefix="stockguard-http-load-") as tmp,
        fresh_database(config, code_path) as db_url,
    ):
        server = Server(config, Path(tmp), code_path, db_url)
        server.start()
        try:
            err.print(
                f"run {index}: server pid {server.pid} ({len(server.pids())} processes) on port {server.port}"
            )
            create_hot_listing(server, config.units)
            if config.warmup:
                run_wrk(config, server, "warmup", "healthz.lua", config.warmup, {})
            phases: dict[str, Phase] = {}
            profile = config.profile_dir

            def spy(name: str) -> Path | None:
                return None if profile is None else profile / f"run{index}-{name}.txt"

            phases["baseline"] = run_wrk(
                config, server, "baseline", "healthz.lua", config.duration, {}, spy("baseline")
            )
            report_phase(index, phases["baseline"])
            if config.extra_baseline:
                phases["extra_baseline"] = run_wrk(
                    config,
                    server,
                    "extra_baseline",
                    "healthz.lua",
                    config.duration,
                    {"BENCH_PATH": config.extra_baseline},
                    spy("extra-baseline"),
                )
                report_phase(index, phases["extra_baseline"])
            order_env = {"BENCH_LISTING": LISTING, "BENCH_BUYERS": str(config.buyers)}
            phases["selling"] = run_wrk(
                config,
                server,
                "selling",
                "orders.lua",
                config.sell_cap,
                {**order_env, "BENCH_PHASE": "sell", "BENCH_QUOTA": str(config.units)},
                spy("selling"),
            )
            report_phase(index, phases["selling"])
            phases["soldout"] = run_wrk(
                config,
                server,
                "soldout",
                "orders.lua",
                config.duration,
                {**order_env, "BENCH_PHASE": "soldout", "BENCH_BUYER_OFFSET": str(config.units)},
                spy("soldout"),
            )
            report_phase(index, phases["soldout"])
            item = expect(http(f"{server.base}/v1/items/{SKU}", "GET", server.tokens.admin), (200,), "item")
            listing = expect(
                http(f"{server.base}/v1/listings/{LISTING}", "GET", server.tokens.admin), (200,), "listing"
            )
        finally:
            server.stop()
        check = subprocess.run(
            [sys.executable, "-m", "stockguard", "check", "--db", server.db_url],
            env=server_env(code_path),
            capture_output=True,
            text=True,
            check=False,
        )
        verification = verify(config, phases, item, listing, check)
        base = phases["baseline"].rate
        ratios = {
            "selling": phases["selling"].rate / base if base else 0.0,
            "soldout": phases["soldout"].rate / base if base else 0.0,
        }
        return Run(index, busy, loadavg, server.port, server.command, phases, ratios, verification)


def verify(
    config: Config,
    phases: dict[str, Phase],
    item: dict[str, Any],
    listing: dict[str, Any],
    check: subprocess.CompletedProcess[str],
) -> Verification:
    selling, soldout = phases["selling"], phases["soldout"]
    selling_201 = selling.statuses.get("201", 0)
    soldout_201 = soldout.statuses.get("201", 0)
    unexpected: dict[str, int] = {}
    for phase, allowed in ((selling, {"201", "409:sold_out"}), (soldout, {"201", "409:sold_out"})):
        for key, n in phase.statuses.items():
            if key not in allowed:
                unexpected[f"{phase.name} {key}"] = unexpected.get(f"{phase.name} {key}", 0) + n
    for name in ("baseline", "extra_baseline"):
        for key, n in phases[name].statuses.items() if name in phases else ():
            if key != "200":
                unexpected[f"{name} {key}"] = n
    on_hand, reserved, committed = int(item["on_hand"]), int(item["reserved"]), int(item["committed"])
    verification = Verification(
        on_hand=on_hand,
        reserved=reserved,
        committed=committed,
        oversold_units=max(0, reserved + committed - on_hand),
        listing_sold=int(listing["sold"]),
        listing_sellable=int(listing["sellable"]),
        created_201=selling_201 + soldout_201,
        selling_201=selling_201,
        soldout_201=soldout_201,
        unexpected=unexpected,
        check_exit=check.returncode,
        check_output=(check.stdout + check.stderr).strip()[-2000:],
    )
    problems = verification.problems
    if verification.oversold_units:
        problems.append(f"OVERSOLD: reserved + committed = {reserved + committed} > on_hand = {on_hand}")
    if verification.created_201 != config.units:
        problems.append(f"{verification.created_201:,} answers were 201, not {config.units:,}")
    if selling.sent != config.units or selling.requests != config.units:
        problems.append(
            f"the selling phase sent {selling.sent:,} and got {selling.requests:,} answers, "
            f"not {config.units:,} (hit --sell-cap or lost connections?)"
        )
    if verification.listing_sold != config.units or verification.listing_sellable != 0:
        problems.append(
            f"the listing says sold {verification.listing_sold:,}, sellable {verification.listing_sellable:,}"
        )
    if unexpected:
        problems.append(f"unexpected answers: {unexpected}")
    for phase in phases.values():
        if any(phase.socket_errors.values()):
            verification.warnings.append(
                f"{phase.name}: wrk socket errors {phase.socket_errors} (timeouts: answers slower than "
                f"-T {config.timeout} s, counted but left out of the latency histogram)"
            )
    if check.returncode != 0:
        problems.append(f"stockguard check exited {check.returncode}: {verification.check_output}")
    return verification


def report_phase(index: int, phase: Phase) -> None:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(phase.statuses.items()))
    err.print(
        f"run {index} {phase.name:>8}: {phase.rate:8,.0f} req/s  p50 {phase.p50_ms:6.1f} ms  "
        f"p99 {phase.p99_ms:6.1f} ms  {phase.requests:,} in {phase.duration_s:.2f} s  "
        f"CPU: server {phase.server_cpu_pct:.0f}%, wrk {phase.client_cpu_pct:.0f}%, "
        + (f"postgres {phase.database_cpu_pct:.0f}%, " if phase.database_cpu_pct else "")
        + f"others {phase.other_cpu_pct:.0f}%  [{statuses}]"
    )
    if phase.mean_ms > 1.2 * phase.littles_mean_ms or phase.accept_queue_max:
        err.print(
            f"    wrk mean {phase.mean_ms:.0f} ms vs at most {phase.littles_mean_ms:.0f} ms by Little's law; "
            f"max {phase.max_ms:,.0f} ms; accept queue up to {phase.accept_queue_max} connections "
            f"for {phase.accept_queue_seconds:.1f} s"
        )


# ---------------------------------------------------------------------------
# Summary


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def phase_names(runs: list[Run]) -> list[str]:
    extra = ["extra_baseline"] if runs and "extra_baseline" in runs[0].phases else []
    return [PHASES[0], *extra, *PHASES[1:]]


def summarize(config: Config, runs: list[Run]) -> dict[str, Any]:
    medians: dict[str, Any] = {}
    for name in phase_names(runs):
        phases = [run.phases[name] for run in runs]
        medians[name] = {
            "rate": median([p.rate for p in phases]),
            "p50_ms": median([p.p50_ms for p in phases]),
            "p99_ms": median([p.p99_ms for p in phases]),
            "p999_ms": median([p.p999_ms for p in phases]),
            "max_ms": median([p.max_ms for p in phases]),
            "mean_ms": median([p.mean_ms for p in phases]),
            "littles_mean_ms": median([p.littles_mean_ms for p in phases]),
            "histogram_inflated_runs": sum(p.mean_ms > 1.2 * p.littles_mean_ms for p in phases),
            "accept_queue_max": max(p.accept_queue_max for p in phases),
            "server_cpu_pct": median([p.server_cpu_pct for p in phases]),
            "client_cpu_pct": median([p.client_cpu_pct for p in phases]),
        }
    for name in ("selling", "soldout"):
        medians[name]["ratio"] = median([run.ratios[name] for run in runs])
    oversold = sum(run.verification.oversold_units for run in runs)
    aims = {
        "selling_ratio": {"aim": f">= {AIM_SELLING_RATIO}", "median": medians["selling"]["ratio"]},
        "soldout_ratio": {"aim": f">= {AIM_SOLDOUT_RATIO}", "median": medians["soldout"]["ratio"]},
        "selling_p99_ms": {"aim": f"< {AIM_P99_MS}", "median": medians["selling"]["p99_ms"]},
        "soldout_p99_ms": {"aim": f"< {AIM_P99_MS}", "median": medians["soldout"]["p99_ms"]},
        "oversold_units": {"aim": "0 in every run", "total": oversold},
    }
    aims["selling_ratio"]["met"] = medians["selling"]["ratio"] >= AIM_SELLING_RATIO
    aims["soldout_ratio"]["met"] = medians["soldout"]["ratio"] >= AIM_SOLDOUT_RATIO
    aims["selling_p99_ms"]["met"] = medians["selling"]["p99_ms"] < AIM_P99_MS
    aims["soldout_p99_ms"]["met"] = medians["soldout"]["p99_ms"] < AIM_P99_MS
    aims["oversold_units"]["met"] = oversold == 0 and all(run.verification.ok for run in runs)
    disturbed = [run.index for run in runs if run.disturbed]
    return {
        "medians": medians,
        "aims": aims,
        "disturbed_runs_used": disturbed,
        "connections": config.connections,
    }


def table(config: Config, runs: list[Run], summary: dict[str, Any]) -> Table:
    medians = summary["medians"]
    title = (
        f"stockguard serve --workers {config.workers}, wrk -t{config.threads} -c{config.connections}: "
        f"medians of {len(runs)} run{'s' if len(runs) != 1 else ''}"
    )
    grid = Table(title=title)
    grid.add_column("phase")
    grid.add_column("orders/s (median)", justify="right")
    grid.add_column("runs", justify="right")
    grid.add_column("p50 ms", justify="right")
    grid.add_column("p99 ms", justify="right")
    grid.add_column("baseline req/s", justify="right")
    grid.add_column("ratio", justify="right")
    grid.add_column("oversold", justify="right")
    base = medians["baseline"]["rate"]
    oversold = sum(run.verification.oversold_units for run in runs)
    bad = sum(not run.verification.ok for run in runs)
    for name in phase_names(runs):
        m = medians[name]
        per_run = " ".join(f"{run.phases[name].rate:,.0f}{'*' if run.disturbed else ''}" for run in runs)
        label = LABELS.get(name, f"GET {config.extra_baseline} (not in the ratios)")
        if name == "baseline":
            ratio, sold = "1.00", ""
        elif name == "extra_baseline":
            ratio, sold = f"({m['rate'] / base:.2f})" if base else "", ""
        else:
            ratio = f"{m['ratio']:.2f}"
            sold = f"{oversold} ({len(runs) - bad}/{len(runs)} runs verified)"
        grid.add_row(
            label,
            f"{m['rate']:,.0f}",
            per_run,
            f"{m['p50_ms']:.1f}",
            f"{m['p99_ms']:.1f}",
            f"{base:,.0f}",
            ratio,
            sold,
        )
    return grid


def notes(summary: dict[str, Any]) -> list[str]:
    """What the latency columns hide: wrk's coordinated-omission correction and the accept queue."""
    lines = []
    for name, m in summary["medians"].items():
        if m["histogram_inflated_runs"]:
            lines.append(
                f"[yellow]{name}: in {m['histogram_inflated_runs']} run(s) wrk's mean latency "
                f"(median {m['mean_ms']:,.0f} ms) exceeds the most Little's law allows "
                f"(connections x seconds / requests, median {m['littles_mean_ms']:,.0f} ms): wrk adds "
                f"synthetic samples for answers slower than the mean cycle (coordinated-omission "
                f"correction), so a few stalled requests (max {m['max_ms']:,.0f} ms) move its p90/p99.[/]"
            )
        if m["accept_queue_max"] > 0.25 * summary["connections"]:
            lines.append(
                f"{name}: up to {m['accept_queue_max']} connections waited in the kernel's accept queue "
                "(connected, not yet accepted by the server)"
            )
    return lines


def aims_lines(summary: dict[str, Any]) -> list[str]:
    aims = summary["aims"]

    def mark(key: str) -> str:
        return "[green]met[/]" if aims[key]["met"] else "[red]missed[/]"

    lines = []
    if summary["disturbed_runs_used"]:
        lines.append(
            f"[yellow]* run(s) {summary['disturbed_runs_used']} shared the CPU with other processes "
            "in every attempt; their figures are low[/]"
        )
    return [
        *lines,
        f"selling / baseline {aims['selling_ratio']['median']:.3f} (aim >= {AIM_SELLING_RATIO}): "
        + mark("selling_ratio"),
        f"sold out / baseline {aims['soldout_ratio']['median']:.3f} (aim >= {AIM_SOLDOUT_RATIO}): "
        + mark("soldout_ratio"),
        f"p99 selling {aims['selling_p99_ms']['median']:.1f} ms, sold out "
        f"{aims['soldout_p99_ms']['median']:.1f} ms (aim < {AIM_P99_MS:.0f} ms): "
        + ("selling " + mark("selling_p99_ms") + ", sold out " + mark("soldout_p99_ms")),
        f"oversold units over all runs: {aims['oversold_units']['total']} (aim 0, every run verified): "
        + mark("oversold_units"),
    ]


# ---------------------------------------------------------------------------
# Where and what


def _run_text(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    except OSError:
        return ""
    return (done.stdout + done.stderr).strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _fs_type(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def _versions() -> dict[str, str]:
    found = {}
    for name in ("stockguard", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def source_state(commit: str | None) -> dict[str, Any]:
    """Which code was measured: a commit, or the working tree with a digest of its changes to src/."""
    if commit is not None:
        subject = _run_text(["git", "log", "-1", "--format=%s", commit])
        return {"commit": commit, "subject": subject, "working_tree": False}
    diff = _run_text(["git", "diff", "HEAD", "--", "src"])
    untracked = _run_text(["git", "ls-files", "--others", "--exclude-standard", "--", "src"])
    return {
        "commit": _run_text(["git", "rev-parse", "HEAD"]),
        "subject": _run_text(["git", "log", "-1", "--format=%s", "HEAD"]),
        "working_tree": True,
        "src_changed_since_commit": bool(diff or untracked),
        "src_diff_sha256": hashlib.sha256((diff + untracked).encode()).hexdigest()[:16],
    }


def machine() -> dict[str, Any]:
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "os": os_name,
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "tmp_filesystem": _fs_type(Path(tempfile.gettempdir()).resolve()),
    }


@contextmanager
def code_at(ref: str | None) -> Iterator[Path | None]:
    """``src/`` of a git commit, extracted to a temporary folder (None: the working tree)."""
    if ref is None:
        yield None
        return
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {ref} failed: {archive.stderr.decode(errors='replace')}")
    with tempfile.TemporaryDirectory(prefix="stockguard-code-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "src"


# ---------------------------------------------------------------------------


def report_run(run: Run) -> None:
    for problem in run.verification.problems:
        err.print(f"[bold red]run {run.index}: {problem}[/]")
    for warning in run.verification.warnings:
        err.print(f"[yellow]run {run.index}: {warning}[/]")
    if run.verification.ok:
        v = run.verification
        err.print(
            f"run {run.index} verified: {v.created_201:,} answers 201, reserved {v.reserved:,} + "
            f"committed {v.committed:,} <= on_hand {v.on_hand:,}, stockguard check exit {v.check_exit}"
        )


def resolve(ref: str | None) -> str | None:
    """The commit a ref names now (HEAD may move while the benchmark runs), or None: the working tree."""
    if ref is None:
        return None
    done = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"unknown git ref {ref!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    try:
        commit = resolve(config.ref)
    except BenchError as failure:
        err.print(f"[bold red]the benchmark failed:[/] {failure}")
        return 2
    before = source_state(commit)
    if config.profile_dir is not None:
        err.print("[yellow]--profile: py-spy slows the server; these figures are not the benchmark's[/]")
    runs: list[Run] = []
    discarded: list[Run] = []
    try:
        with code_at(commit) as code_path:
            for index in range(1, config.runs + 1):
                for attempt in range(1, config.attempts + 1):
                    run = run_once(config, index, code_path)
                    run.attempt = attempt
                    busiest = max(phase.other_cpu_pct for phase in run.phases.values())
                    run.disturbed = busiest > config.max_other_cpu
                    report_run(run)
                    if run.disturbed and attempt < config.attempts and run.verification.ok:
                        err.print(
                            f"[yellow]run {index} attempt {attempt} disturbed: other processes used "
                            f"{busiest:.0f}% of a core (> {config.max_other_cpu:.0f}%); running it again[/]"
                        )
                        discarded.append(run)
                        continue
                    runs.append(run)
                    break
    except BenchError as failure:
        err.print(f"[bold red]the benchmark failed:[/] {failure}")
        return 2
    after = source_state(commit)
    summary = summarize(config, runs)
    out.print(table(config, runs, summary))
    for line in [*notes(summary), *aims_lines(summary)]:
        out.print(line)
    if before != after:
        out.print("[yellow]src/ changed during the benchmark: the runs may have measured different code[/]")
    python = os.path.relpath(sys.executable, Path.cwd())
    command = shlex.join([python, *sys.argv] if argv is None else [python, __file__, *argv])
    report = {
        "benchmark": "http_load",
        "date": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "software": {**_versions(), "wrk": _run_text([config.wrk, "-v"]).splitlines()[0]},
        "source": {"before": before, "after": after},
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "listing": {"deduction": "reserve", "units": config.units, "hold_seconds": 86_400},
            "server": f"stockguard serve --log-level warning --loop {config.loop}, "
            + (
                "PostgreSQL, a fresh migrated schema per run"
                if config.pg
                else "SQLite in a fresh temporary folder"
            ),
        },
        "runs": [run.as_json() for run in runs],
        "disturbed_attempts": [run.as_json() for run in discarded],
        **summary,
    }
    config.json_out.parent.mkdir(parents=True, exist_ok=True)
    config.json_out.write_text(json.dumps(report, indent=2) + "\n")
    out.print(f"figures written to {config.json_out}")
    return 0 if all(run.verification.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
