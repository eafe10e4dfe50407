"""The command line: ``stockguard demo``, ``stockguard check``, ``stockguard bench``.

Thin on purpose: each command turns options into a config, calls the
simulator or the service, and turns the answer into tables, JSON and an exit
code.
"""

from __future__ import annotations

import asyncio
import enum
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from redis import RedisError
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from stockguard import Stockguard, StockguardError, connect, draw_record
from stockguard.api.auth import load as load_tokens
from stockguard.api.settings import DATA_DIR
from stockguard.bootstrap import MEMORY_URL, upgrade_database
from stockguard.chaos.soak import SoakConfig, run_soak
from stockguard.domain.draws import verify
from stockguard.sim.bench import BenchConfig, bench_json, run_bench
from stockguard.sim.demo import ARMS, ArmResult, DemoConfig, DriftFound, run_demo
from stockguard.sim.fairness import FairnessConfig, FairnessResult, run_fairness
from stockguard.sim.live import LiveConfig, LiveSaleError, run_live
from stockguard.sim.pgarms import NotDurable
from stockguard.sim.pgbench import PgArm, PgBenchConfig, run_pg_bench
from stockguard.sim.pool import SimulationError
from stockguard.sim.report import (
    RichView,
    bench_table,
    draw_verdict_table,
    drift_table,
    fairness_table,
    gate_drift_table,
    live_table,
    pg_bench_table,
    soak_table,
    summary_table,
)
from stockguard.stores.sql.migrations import SchemaOutOfDate

app = typer.Typer(
    help="Inventory deduction that never oversells.", no_args_is_help=True, add_completion=False
)
out = Console()
err = Console(stderr=True)
DEMO = DemoConfig()
FAIRNESS = FairnessConfig()
BENCH = BenchConfig()
PG_BENCH = PgBenchConfig(url="")
LIVE = LiveConfig(url="", token="")


class Loop(enum.StrEnum):
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Store URL: sqlite:///path.db or memory://. Default: SQLite in a temporary folder."
    ),
]


@app.command()
def demo(
    units: Annotated[
        int | None,
        typer.Option(min=1, help=f"Bottles on sale [default: {DEMO.units:,}; live: {LIVE.units:,}]."),
    ] = None,
    buyers: Annotated[
        int | None,
        typer.Option(min=1, help=f"Buyers pressing buy [default: {DEMO.buyers:,}; live: {LIVE.buyers:,}]."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="OS processes serving buyers.")] = DEMO.workers,
    threads: Annotated[int, typer.Option(min=1, help="Buyer threads in each process.")] = DEMO.threads,
    pay_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of buyers who pay.")
    ] = DEMO.pay_share,
    hold_seconds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"How long a reserve hold lasts [default: {DEMO.hold_seconds}; live: {LIVE.hold_seconds}].",
        ),
    ] = None,
    gateway_ms: Annotated[float, typer.Option(min=0.0, help="Mean payment gateway time.")] = DEMO.gateway_ms,
    seed: Annotated[int, typer.Option(help="Which crowd: the same seed, the same buyers.")] = DEMO.seed,
    arm: Annotated[
        list[str] | None, typer.Option("--arm", help=f"Only these arms: {', '.join(ARMS)}.")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")] = False,
    scalpers: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.95,
            help="Share of scalper-like accounts in the crowd: also runs the open / screened / draw arms "
            "and shows the share of units they got (0: off). Those arms sell "
            f"min(--units, {FAIRNESS.units}) bottles to min(--buyers, {FAIRNESS.buyers:,}) buyers "
            f"[default: 0; live: {LIVE.scalper_share}].",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Send the sale to a running `stockguard serve` at --url instead, paced so that its "
            "/dashboard shows it in motion.",
        ),
    ] = False,
    url: Annotated[str, typer.Option(help="With --live: the service's address.")] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="STOCKGUARD_ADMIN_TOKEN",
            show_envvar=True,
            help="With --live: the admin token [default: the one kept in ./stockguard-data].",
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.1, help="With --live: buyers arriving per second.")
    ] = LIVE.rate,
) -> None:
    """The article's flash sale, for real: a naive shop, then stockguard with each strategy.

    The naive shop always keeps its plain table in its own SQLite file in a
    temporary folder; ``--db`` chooses stockguard's store. With ``--live``, the
    sale goes to a running service over HTTP instead.
    """
    if live:
        live_config = LiveConfig(
            url,
            token or _kept_admin_token(),
            units or LIVE.units,
            buyers or LIVE.buyers,
            rate,
            LIVE.scalper_share if scalpers is None else scalpers,
            pay_share,
            hold_seconds=hold_seconds or LIVE.hold_seconds,
            seed=seed,
        )
        _demo_live(live_config, as_json)
        return
    units, buyers = units or DEMO.units, buyers or DEMO.buyers
    hold_seconds, scalpers = hold_seconds or DEMO.hold_seconds, scalpers or 0.0
    unknown = sorted(set(arm or ()) - set(ARMS))
    if unknown:
        raise typer.BadParameter(f"unknown arms {unknown}; choose from {list(ARMS)}", param_hint="--arm")
    chosen = tuple(a for a in ARMS if a in arm) if arm else ARMS
    config = DemoConfig(
        units, buyers, workers, threads, pay_share, hold_seconds, gateway_ms, seed, arms=chosen
    )
    with tempfile.TemporaryDirectory(prefix="stockguard-demo-") as tmp:
        url = db or f"sqlite:///{Path(tmp) / 'stockguard.db'}"
        if not as_json:
            err.print(f"store: {url}" + ("" if db else " (removed at the end; pass --db to keep it)"))
        guard = _open(url)
        view = RichView(out, err, quiet=as_json)
        fairness: list[FairnessResult] = []
        try:
            results = run_demo(config, guard, url, Path(tmp), view)
            if scalpers > 0:
                crowd = FairnessConfig(
                    min(units, FAIRNESS.units), min(buyers, FAIRNESS.buyers), scalpers, seed, threads
                )
                fairness = run_fairness(crowd, guard, view)
        except DriftFound as found:
            err.print(drift_table(found.drifts))
            err.print(f"[bold red]{found}[/]")
            raise typer.Exit(1) from None
        except SimulationError as failure:
            err.print(f"[bold red]the simulation failed:[/] {failure}")
            raise typer.Exit(2) from None
        finally:
            guard.close()
    if as_json:
        document: dict[str, object] = {"arms": [r.as_json() for r in results]}
        if fairness:
            document["fairness"] = [r.as_json() for r in fairness]
        print(json.dumps(document))
        return
    out.print(summary_table(results))
    _verdict(results)
    if fairness:
        out.print(fairness_table(fairness))


RedisOption = Annotated[
    str | None,
    typer.Option(help="The flash-sale gate's Redis (redis://host:port; a cluster node works)."),
]
PrefixOption = Annotated[str, typer.Option(help="The gate's key prefix, as given to serve.")]


@app.command()
def check(
    db: Annotated[str, typer.Option("--db", help="Store URL, e.g. sqlite:///stock.db.")],
    redis: RedisOption = None,
    redis_prefix: PrefixOption = "sg",
) -> None:
    """Recompute every counter from the ledger and the orders; with --redis, compare the gate with
    the store too. Exit 1 if anything differs."""
    guard = _open(db, must_exist=True, redis_url=redis, redis_prefix=redis_prefix)
    try:
        drifts = guard.check()
        gate_drifts = guard.gate_drift()
    finally:
        guard.close()
    if drifts:
        out.print(drift_table(drifts))
        noun = "difference" if len(drifts) == 1 else "differences"
        out.print(f"[bold red]{len(drifts)} {noun}[/] between the stored counters and the ledger")
    else:
        out.print("[green]no drift[/]: every counter equals its ledger, and the orders agree with the holds")
    if gate_drifts:
        out.print(gate_drift_table(gate_drifts))
        noun = "difference" if len(gate_drifts) == 1 else "differences"
        out.print(
            f"[bold red]{len(gate_drifts)} {noun}[/] between the gate and the store "
            "(`stockguard gate reconcile` loads the gate from the store)"
        )
    elif redis is not None:
        out.print("[green]the gate agrees with the store[/]")
    if drifts or gate_drifts:
        raise typer.Exit(1)


@app.command()
def serve(
    db: Annotated[str | None, typer.Option(help="Store URL. Default: stockguard-data/stockguard.db.")] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            help="Put the flash-sale gate in front of the store: redis://host:port (a cluster node works)."
        ),
    ] = None,
    redis_prefix: Annotated[
        str | None, typer.Option(help="The gate's key prefix: one per store sharing a Redis. Default: sg.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on. Default: 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port. Default: 8000.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes. Default: 1.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (tokens, default database).")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    loop: Annotated[
        Loop | None, typer.Option(help="Event loop: asyncio (default) or uvloop (see the README).")
    ] = None,
    rate_per_buyer: Annotated[
        str | None, typer.Option(help='Orders a buyer may place, e.g. "5/second" or "20 per minute".')
    ] = None,
    rate_per_ip: Annotated[
        str | None, typer.Option(help='Orders one IP may place (the order\'s "ip"), e.g. "100/minute".')
    ] = None,
) -> None:
    """Run the HTTP service (API v1). Options override STOCKGUARD_* environment variables."""
    from stockguard.api.server import run

    chosen = {
        "db": db,
        "redis": redis,
        "redis_prefix": redis_prefix,
        "host": host,
        "port": port,
        "workers": workers,
        "data_dir": data_dir,
        "log_level": log_level,
        "loop": None if loop is None else loop.value,
        "rate_per_buyer": rate_per_buyer,
        "rate_per_ip": rate_per_ip,
    }
    try:
        run({key: value for key, value in chosen.items() if value is not None}, out)
    except (ValueError, SchemaOutOfDate, RedisError, StockguardError) as error:
        err.print(f"[bold red]cannot start:[/] {error}")
        raise typer.Exit(2) from None


@app.command()
def relay(
    db: Annotated[str | None, typer.Option(help="Store URL. Default: stockguard-data/stockguard.db.")] = None,
    broker: Annotated[
        str, typer.Option(help="nats://host:4222 (JetStream) or amqp://user:password@host:5672/.")
    ] = "nats://127.0.0.1:4222",
    retention_hours: Annotated[
        float, typer.Option(min=0.01, help="How long published events stay for SSE clients to resume.")
    ] = 168.0,
) -> None:
    """Publish the store's change events to a broker, at least once and in order per stream, until
    stopped (Ctrl-C or SIGTERM). Several relays may run: one publishes at a time, another takes
    over within 10 s of it stopping."""
    import asyncio
    import signal
    from datetime import timedelta

    from stockguard.api.settings import Settings
    from stockguard.relay import Relay, broker_for

    url = db or Settings().db_url
    try:
        chosen = broker_for(broker)
    except ValueError as error:
        err.print(f"[bold red]cannot start:[/] {error}")
        raise typer.Exit(2) from None
    guard = _open(url, must_exist=url.startswith("sqlite"))
    runner = Relay(guard, chosen, retention=timedelta(hours=retention_hours))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        await runner.run(stop)

    shown = [make_url(u).render_as_string(hide_password=True) for u in (url, broker)]
    out.print(f"relaying events from {shown[0]} to {shown[1]}")
    try:
        asyncio.run(main())
    finally:
        guard.close()
    out.print(f"stopped after publishing {runner.published:,} events")


db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    db: Annotated[str, typer.Option("--db", help="Store URL, e.g. postgresql://user@host/db.")],
) -> None:
    """Apply every pending schema migration (SQLite stores also do this when they open)."""
    try:
        upgrade_database(db)
    except (ValueError, ArgumentError, StockguardError) as error:
        err.print(f"[bold red]cannot upgrade {db}:[/] {error}")
        raise typer.Exit(2) from None
    out.print("[green]schema up to date[/]")


gate_app = typer.Typer(help="The flash-sale gate in Redis.", no_args_is_help=True)
app.add_typer(gate_app, name="gate")


@gate_app.command("reconcile")
def gate_reconcile(
    db: Annotated[str, typer.Option("--db", help="Store URL, e.g. postgresql://user@host/db.")],
    redis: Annotated[str, typer.Option(help="The gate's Redis (redis://host:port; a cluster node works).")],
    redis_prefix: PrefixOption = "sg",
) -> None:
    """Load every listing's state from the store into the gate (tokens, limit, live orders)."""
    guard = _open(db, must_exist=True, redis_url=redis, redis_prefix=redis_prefix)
    try:
        loaded = guard.reconcile_gate()
    finally:
        guard.close()
    out.print(
        f"[green]gate loaded from the store[/] for {loaded:,} {'listing' if loaded == 1 else 'listings'}"
    )


@app.command("verify-draw")
def verify_draw(
    draw_id: Annotated[str | None, typer.Argument(help="The draw to fetch from --url.")] = None,
    url: Annotated[str, typer.Option(help="The service to fetch the draw from.")] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(envvar="STOCKGUARD_TOKEN", help="A storefront or admin token.")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--from", help='A saved record: {"draw": GET draw, "entries": GET entries}.'),
    ] = None,
    save: Annotated[Path | None, typer.Option(help="Also save the fetched record here.")] = None,
) -> None:
    """Recompute a draw's winners from its published record: the seed against its commitment,
    every rank, and that nobody waiting ranks above a winner. Exit 1 when anything differs."""
    try:
        if record is not None:
            data = draw_record.load(record)
        elif draw_id is not None and token is not None:
            data = draw_record.fetch(url, draw_id, token)
        else:
            err.print("give a DRAW_ID with --token (or STOCKGUARD_TOKEN), or --from a saved record")
            raise typer.Exit(2)
        if save is not None:
            save.write_text(json.dumps(data, indent=2))
        problems = verify(draw_record.published(data))
    except draw_record.RecordUnreadable as error:
        err.print(f"[bold red]cannot verify:[/] {error}")
        raise typer.Exit(2) from None
    out.print(draw_verdict_table(data, problems))
    if problems:
        raise typer.Exit(1)


@app.command()
def sweep(
    db: Annotated[str, typer.Option("--db", help="Store URL, e.g. sqlite:///stock.db.")],
    every: Annotated[
        float | None,
        typer.Option(min=0.05, help="Keep sweeping, every this many seconds, until interrupted."),
    ] = None,
) -> None:
    """Release every hold whose time ran out. Safe beside other sweepers: each hold is released once."""
    guard = _open(db, must_exist=True)
    try:
        while True:
            released = guard.expire_due()
            if released or every is None:
                out.print(f"released {released:,} expired {'hold' if released == 1 else 'holds'}")
            if every is None:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        return
    finally:
        guard.close()


@app.command()
def soak(
    db: Annotated[str, typer.Option("--db", help="Store URL (PostgreSQL for the real thing).")],
    minutes: Annotated[float, typer.Option(min=0.1, help="How long the traffic runs.")] = 10.0,
    buyers: Annotated[int, typer.Option(min=1, help="Concurrent buyers.")] = 24,
    kill_every: Annotated[
        float, typer.Option(min=0.0, help="Seconds between kill -9 of a service process (0: never).")
    ] = 120.0,
    folder: Annotated[
        Path | None,
        typer.Option(help="Where the logs, history.jsonl and soak.json go [default: a temporary folder]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")] = False,
) -> None:
    """Mixed traffic (orders, payments, cancellations, expiries, receipts, counts) on two service
    processes for minutes, a process killed now and then; memory, open files and database
    connections sampled; every call checked against the promises at the end. Exit 1 if any broke."""
    config = SoakConfig(db, minutes, buyers, kill_every=kill_every, folder=folder)
    with RichView(out, err, quiet=as_json).sale("soak", int(minutes * 60)) as tick:
        result = run_soak(config, lambda second: tick(int(second)))
    if as_json:
        print(json.dumps(result.as_json()))
    else:
        out.print(soak_table(result))
    if not result.report.clean:
        raise typer.Exit(1)


@app.command()
def bench(
    holds: Annotated[int, typer.Option(min=1, help="Holds in each run.")] = BENCH.holds,
    runs: Annotated[int, typer.Option(min=1, help="Runs per case; the median is reported.")] = BENCH.runs,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes in the multi-process cases.")
    ] = BENCH.workers,
    threads: Annotated[int, typer.Option(min=1, help="Threads in each process.")] = BENCH.threads,
    json_out: Annotated[Path, typer.Option(help="Where to write the figures.")] = Path("bench-results.json"),
    pg: Annotated[
        str | None,
        typer.Option(
            "--pg",
            help="A PostgreSQL URL: run the hot-listing bench there instead (plain row locks against "
            "stockguard, in a schema of its own that is dropped afterwards).",
        ),
    ] = None,
    clients: Annotated[int, typer.Option(min=1, help="With --pg: concurrent clients.")] = PG_BENCH.clients,
    units: Annotated[int, typer.Option(min=1, help="With --pg: units of the hot listing.")] = PG_BENCH.units,
    buyers: Annotated[
        int, typer.Option(min=1, help="With --pg: buyers, one attempt at one unit each.")
    ] = PG_BENCH.buyers,
    processes: Annotated[
        int,
        typer.Option(min=1, help="With --pg: processes of the multi-process stockguard arm (1: none)."),
    ] = PG_BENCH.processes,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --pg: print one JSON object, nothing else.")
    ] = False,
) -> None:
    """Holds per second on one hot listing: memory, SQLite, SQLite shared by processes, naive.

    With ``--pg URL``: the same hot listing on PostgreSQL, SELECT ... FOR UPDATE and a
    conditional UPDATE (plain psycopg) against stockguard's PostgreSQL store.
    """
    if pg is not None:
        _pg_bench(PgBenchConfig(pg, clients, units, buyers, runs, processes), as_json)
        return
    if as_json:
        raise typer.BadParameter("--json goes with --pg; this bench writes --json-out", param_hint="--json")
    config = BenchConfig(holds, runs, workers, threads)
    with tempfile.TemporaryDirectory(prefix="stockguard-bench-") as tmp:
        try:
            measured = run_bench(config, Path(tmp), RichView(out, err))
        except SimulationError as failure:
            err.print(f"[bold red]the benchmark failed:[/] {failure}")
            raise typer.Exit(2) from None
    out.print(bench_table(measured, holds))
    command = " ".join(["stockguard", *sys.argv[1:]])
    json_out.write_text(json.dumps(bench_json(config, measured, command), indent=2) + "\n")
    out.print(f"wrote {json_out}")


def _pg_bench(config: PgBenchConfig, as_json: bool) -> None:
    """Run the PostgreSQL bench; exit 2 when it cannot run, 1 when an arm oversold or lost track."""
    try:
        measured = run_pg_bench(config, RichView(out, err, quiet=as_json))
    except NotDurable as refusal:
        err.print(f"[bold red]refusing to run:[/] {refusal}")
        raise typer.Exit(2) from None
    except (psycopg.Error, ValueError, ArgumentError, StockguardError, SchemaOutOfDate) as error:
        err.print(f"[bold red]cannot run the bench on {config.url}:[/] {error}")
        raise typer.Exit(2) from None
    except SimulationError as failure:
        err.print(f"[bold red]the benchmark failed:[/] {failure}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps({"arms": [arm.as_json() for arm in measured]}))
    else:
        out.print(pg_bench_table(measured, config))
    if not _pg_verdict(measured, quiet=as_json):
        raise typer.Exit(1)


def _pg_verdict(measured: list[PgArm], *, quiet: bool) -> bool:
    """Say what went wrong in which arm (on stderr under --json); True when nothing did."""
    console = err if quiet else out
    fine = True
    for arm in measured:
        if arm.oversold or not arm.consistent:
            fine = False
            console.print(
                f"[bold red]{arm.name}: {arm.oversold:,} units oversold[/]"
                + ("" if arm.consistent else ", and the database disagrees with itself or with the clients")
            )
        if arm.errors:
            first = next((run.first_error for run in arm.runs if run.first_error), None)
            console.print(f"[bold red]{arm.name}: {arm.errors:,} attempts failed[/]; the first: {first}")
    return fine


def _open(
    url: str, *, must_exist: bool = False, redis_url: str | None = None, redis_prefix: str = "sg"
) -> Stockguard:
    """Connect, turning a bad URL or a missing database file into a clear error and exit code 2."""
    try:
        if must_exist and url != MEMORY_URL:
            parsed = make_url(url)
            database = parsed.database
            is_file = parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
            if is_file and not Path(str(database)).exists():
                raise ValueError(f"no database at {database}")
        return connect(url, redis_url=redis_url, redis_prefix=redis_prefix)
    except (ValueError, ArgumentError, StockguardError, SchemaOutOfDate, RedisError) as error:
        err.print(f"[bold red]cannot open {url}:[/] {error}")
        raise typer.Exit(2) from None


def _kept_admin_token() -> str:
    try:
        tokens = load_tokens(DATA_DIR)
    except FileNotFoundError:
        raise typer.BadParameter(
            f"no tokens in {DATA_DIR}/: pass the service's admin token", param_hint="--token"
        ) from None
    return tokens.admin


def _demo_live(config: LiveConfig, as_json: bool) -> None:
    if not as_json:
        err.print(
            f"selling {config.units:,} bottles to {config.buyers:,} buyers at {config.url}, "
            f"{config.rate:g} a second: watch {config.url}/dashboard"
        )
    view = RichView(out, err, quiet=as_json)
    try:
        with view.sale("live", config.buyers) as tick:
            result = asyncio.run(run_live(config, tick))
    except LiveSaleError as failure:
        err.print(f"[bold red]the live sale failed:[/] {failure}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result.as_json()))
    else:
        out.print(live_table(result))
    if result.oversold:
        raise typer.Exit(1)


def _verdict(results: list[ArmResult]) -> None:
    for r in results:
        if r.oversold:
            out.print(
                f"[bold red]{r.name}: {r.oversold:,} units oversold[/], "
                f"{r.cancelled:,} paid orders cancelled for lack of stock"
            )
        else:
            out.print(f"[green]{r.name}: nothing oversold[/]")
