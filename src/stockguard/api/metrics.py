"""Prometheus metrics; with several worker processes, prometheus-client's multiprocess mode.

Sellable per listing is read from the store at scrape time, so every worker
reports the same truth and nothing is kept that could drift.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stockguard.service import Stockguard

ORDERS = Counter(
    "stockguard_orders", "Order placements by outcome (created, replayed or the error code).", ["outcome"]
)
REFUSALS = Counter(
    "stockguard_refusals",
    "Refused orders by code and by the rule that refused them (a screening rule, a limit).",
    ["code", "rule"],
)
DRAW_ENTRIES = Counter(
    "stockguard_draw_entries", "Draw entries by outcome (entered or the error code).", ["outcome"]
)
HOLDS_EXPIRED = Counter("stockguard_holds_expired", "Holds released by the expiry sweeper.")
LATENCY = Histogram(
    "stockguard_request_seconds",
    "Time to answer a request.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


# prometheus-client validates and looks up label values on every labels() call;
# the hot path asks for the same few children over and over.
@functools.lru_cache(maxsize=256)
def orders_with(outcome: str) -> Any:
    return ORDERS.labels(outcome)


@functools.lru_cache(maxsize=256)
def refusals_by(code: str, rule: str) -> Any:
    return REFUSALS.labels(code, rule)


@functools.lru_cache(maxsize=4096)
def latency_of(method: str, route: str, status: int) -> Any:
    return LATENCY.labels(method, route, str(status))


class SellableCollector(Collector):
    def __init__(self, guard: Stockguard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "stockguard_sellable", "Units a listing may still sell.", labels=["listing"]
        )
        sold = GaugeMetricFamily("stockguard_sold", "Units of a listing held or sold.", labels=["listing"])
        for stock in self._guard.listings():
            gauge.add_metric([stock.listing.listing_id], stock.sellable)
            sold.add_metric([stock.listing.listing_id], stock.sold)
        yield gauge
        yield sold
        draws = GaugeMetricFamily(
            "stockguard_draw_standing",
            "Draw entries by where they stand: the status of the order they won (reserved, paid, "
            "expired, cancelled, ...), waiting, passed_over, or entered (not drawn yet).",
            labels=["draw", "standing"],
        )
        for (draw_id, standing), count in sorted(self._guard.draw_standings().items()):
            draws.add_metric([draw_id, standing], count)
        yield draws


def _counted() -> CollectorRegistry:
    """This process's counters, or with workers every worker's, added up from their files."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    workers = CollectorRegistry()
    multiprocess.MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
    return workers


def exposition(guard: Stockguard) -> bytes:
    """The text format: this process's (or, with workers, every worker's) metrics, then sellable."""
    stock = CollectorRegistry()
    stock.register(SellableCollector(guard))
    return generate_latest(_counted()) + generate_latest(stock)


def counter_totals(name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """A counter's totals since the service started, by the values of ``labels`` (every worker's
    together)."""
    totals: dict[tuple[str, ...], float] = {}
    for metric in _counted().collect():
        if metric.name != name:
            continue
        for sample in metric.samples:
            if sample.name == f"{name}_total":
                key = tuple(sample.labels[label] for label in labels)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals
