"""Terminal output of the simulator: live progress on stderr, tables on stdout.

Progress goes to stderr so that ``--json`` leaves exactly one JSON object on
stdout, and so that a redirected table stays clean.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from stockguard import Drift
from stockguard.chaos.soak import SoakResult
from stockguard.service.admission import GateDrift
from stockguard.sim.bench import Case
from stockguard.sim.demo import NAIVE, ArmResult
from stockguard.sim.fairness import FairnessResult
from stockguard.sim.live import LiveResult
from stockguard.sim.pgbench import CONDITIONAL, PgArm, PgBenchConfig
from stockguard.sim.pool import Tick

_STORIES = {
    NAIVE: "the article's shop: stock checked, gateway called, then deducted blindly",
    "order": "stockguard, deduct at order: held with no time limit, unpaid orders keep their units",
    "payment": "stockguard, deduct at payment: one atomic take, refused before money is captured",
    "reserve": "stockguard, reserve: held for a short time, expired holds go back on sale",
}


class RichView:
    """Shows sales as progress bars and, unless quiet, each arm's table as it finishes."""

    def __init__(self, out: Console, err: Console, *, quiet: bool = False) -> None:
        self.out = out
        self.err = err
        self.quiet = quiet

    @contextmanager
    def sale(self, name: str, total: int) -> Iterator[Tick]:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("buyers"),
            TimeElapsedColumn(),
        )
        # Off a terminal (a pipe, a CI log) bars would only leave blank lines behind.
        quiet = not self.err.is_terminal
        with Progress(*columns, console=self.err, transient=True, disable=quiet) as progress:
            task = progress.add_task(name, total=total)
            yield lambda done: progress.update(task, completed=done)

    def arm_done(self, result: ArmResult) -> None:
        if not self.quiet:
            self.out.print(arm_table(result))


def arm_table(result: ArmResult) -> Table:
    naive = result.name == NAIVE
    refused = "orders cancelled for lack of stock" if naive else "payments refused (no stock or expired)"
    rows = [
        ("units sold", f"{result.sold:,}"),
        ("units oversold", _alarm(result.oversold)),
        (refused, _alarm(result.cancelled) if naive else f"{result.cancelled:,}"),
        ("units of expired holds returned", f"{result.expired:,}"),
        ("units left unsold", f"{result.unsold:,}"),
        ("wall time", f"{result.seconds:.2f} s"),
        ("rate", f"{result.rate:,.0f} buyers/s"),
    ]
    return _measures(f"arm: {result.name}", rows, caption=_STORIES.get(result.name))


def live_table(result: LiveResult) -> Table:
    final = result.final
    rows = [
        (f"orders answered {outcome}", f"{count:,}") for outcome, count in sorted(result.outcomes.items())
    ]
    rows += [
        ("payments accepted", f"{result.paid:,}"),
        ("payments refused (hold ran out, bottle sold again)", f"{result.payments_refused:,}"),
        ("bottles oversold", _alarm(result.oversold)),
        ("the service says: sold (held or paid)", f"{final.get('sold', 0):,}"),
        ("the service says: still sellable", f"{final.get('sellable', 0):,}"),
        ("wall time", f"{result.seconds:.1f} s"),
    ]
    return _measures(f"live sale: {result.listing_id}", rows)


def soak_table(result: SoakResult) -> Table:
    report, bounds = result.report, result.bounds()
    rows = [
        ("requests", f"{report.calls:,}"),
        ("answered / no answer", f"{report.answered:,} / {report.unknown:,}"),
        ("orders acknowledged (201)", f"{report.acknowledged_orders:,}"),
        ("acknowledged orders lost", _alarm(report.lost_orders)),
        ("units oversold", _alarm(report.oversold_units)),
        ("promises broken", _alarm(sum(report.violation_counts.values()))),
    ]
    rows += [(f"  {rule}", _alarm(n)) for rule, n in sorted(report.violation_counts.items())]
    for recovery in result.recoveries:
        selling = "never" if recovery.selling_after is None else f"{recovery.selling_after:.1f} s"
        rows.append(
            (
                f"{recovery.fault} at {recovery.second:.0f} s: healthy / selling",
                f"{recovery.healthy_after:.1f} s / {selling}",
            )
        )
    rows += [(name.replace("_", " "), str(value)) for name, value in bounds.items()]
    return _measures(f"soak: {result.seconds / 60:.1f} minutes", rows)


def _measures(title: str, rows: list[tuple[str, str]], caption: str | None = None) -> Table:
    """A two-column table: what was measured, and its value."""
    table = Table(title=title, caption=caption, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in rows:
        table.add_row(measure, value)
    return table


def summary_table(results: Sequence[ArmResult]) -> Table:
    table = Table(title="flash sale, all arms", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("arm", "sold", "oversold", "cancelled", "expired", "unsold", "seconds", "buyers/s"):
        table.add_column(name, justify="left" if name == "arm" else "right", min_width=len(name))
    for r in results:
        table.add_row(
            r.name,
            f"{r.sold:,}",
            _alarm(r.oversold),
            f"{r.cancelled:,}",
            f"{r.expired:,}",
            f"{r.unsold:,}",
            f"{r.seconds:.2f}",
            f"{r.rate:,.0f}",
        )
    return table


def drift_table(drifts: Sequence[Drift]) -> Table:
    table = Table(title="drift: stored values that disagree with the ledger or the orders")
    table.add_column("what")
    table.add_column("stored", justify="right")
    table.add_column("expected", justify="right")
    for drift in drifts:
        table.add_row(drift.what, str(drift.stored), str(drift.expected))
    return table


def gate_drift_table(drifts: Sequence[GateDrift]) -> Table:
    table = Table(title="gate drift: the gate in Redis against the store")
    for name in ("listing", "what", "gate", "store"):
        table.add_column(name, justify="left" if name in {"listing", "what"} else "right")
    for drift in drifts:
        table.add_row(drift.listing_id, drift.what, drift.gate, drift.store)
    return table


def draw_verdict_table(record: Mapping[str, Any], problems: Sequence[str]) -> Table:
    """What ``verify-draw`` recomputed, and its verdict."""
    draw, entries = record.get("draw", {}), record.get("entries", {})
    verdict = "[red]NOT FAIR[/]" if problems else "[green]fair: every rank recomputed[/]"
    table = Table(
        title=f"draw {draw.get('draw_id', '?')}: {verdict}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("", justify="left")
    table.add_column("", justify="left", overflow="fold")
    table.add_row("commitment", str(draw.get("commitment")))
    table.add_row("seed", str(draw.get("seed")))
    table.add_row("entries", f"{len(entries.get('entries', [])):,} (digest {entries.get('entries_digest')})")
    table.add_row("winners", f"{len(draw.get('winners', [])):,} of {draw.get('units')} units")
    table.add_row("waiting", f"{len(draw.get('waiting', [])):,}")
    for problem in problems:
        table.add_row("[red]problem[/]", problem)
    return table


def bench_table(measured: Sequence[Case], holds: int) -> Table:
    title = f"holds per second on one hot listing: median of the runs ({holds:,} holds a run)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("case", "procs", "threads", "holds/s", "runs (holds/s)"):
        table.add_column(
            name, justify="left" if name in {"case", "runs (holds/s)"} else "right", no_wrap=True
        )
    for case in measured:
        runs = " ".join(f"{rate:.0f}" for rate in case.rates)
        table.add_row(case.name, str(case.processes), str(case.threads), f"{case.median:,.0f}", runs)
    return table


def pg_bench_table(measured: Sequence[PgArm], config: PgBenchConfig) -> Table:
    title = (
        f"one hot listing on PostgreSQL: {config.units:,} units, {config.buyers:,} buyers, "
        f"{config.clients} clients, durable commits (median of {config.runs} runs)"
    )
    caption = (
        "holds/s: holds over the selling phase, until the last unit is held; "
        "p50/p99: every attempt, refusals included; hold p50/p99: attempts that got a unit; "
        "oversold: the worst run, from the database"
    )
    table = Table(title=title, caption=caption, title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("arm", "clients", "holds/s", "x (b)", "p50 ms", "p99 ms", "hold p50", "hold p99")
    for name in (*columns, "refusals", "errors", "oversold", "runs (holds/s)"):
        table.add_column(name, justify="left" if name in {"arm", "runs (holds/s)"} else "right", no_wrap=True)
    baseline = next((arm.holds_per_s for arm in measured if arm.name == CONDITIONAL), 0.0)
    for arm in measured:
        table.add_row(
            arm.name,
            f"{arm.processes}x{arm.threads}",
            f"{arm.holds_per_s:,.0f}",
            f"{arm.holds_per_s / baseline:.1f}" if baseline else "-",
            f"{arm.p50_ms:.2f}",
            f"{arm.p99_ms:.2f}",
            f"{arm.hold_p50_ms:.2f}",
            f"{arm.hold_p99_ms:.2f}",
            f"{arm.refusals:,}",
            _alarm(arm.errors),
            _alarm(arm.oversold),
            " ".join(f"{run.holds_per_s:.0f}" for run in arm.runs),
        )
    return table


def _alarm(value: int) -> str:
    return f"[bold red]{value:,}[/]" if value else "0"


def fairness_table(results: Sequence[FairnessResult]) -> Table:
    """Who got the bottles in each fairness arm, as the store holds them, and whom the shop refused."""
    caption = (
        "open: no screening, first come first served; screened: account rules and one unit per "
        "buyer, device and address; draw: the screened listing sold by lottery"
    )
    title = "scalpers: who got the bottles"
    table = Table(title=title, caption=caption, title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("arm", "units sold", "to scalpers", "share to scalpers", "refused: not eligible", "by limit")
    for name in columns:
        table.add_column(name, justify="left" if name == "arm" else "right")
    for r in results:
        table.add_row(
            r.name,
            f"{r.sold:,} of {r.units:,}",
            f"{r.sold_to_scalpers:,}",
            f"{r.scalper_share_of_units:.1%}",
            f"{r.refused_not_eligible:,}",
            f"{r.refused_limit:,}",
        )
    return table
