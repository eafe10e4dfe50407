"""The article's shop, honestly reproduced: stock is deducted at payment with check-then-write.

It keeps stock in a plain table of an SQLite file set up like stockguard's
own (WAL, ``synchronous=NORMAL``, busy timeout). A payment first reads the
stock, then calls the payment gateway, then subtracts one unit blindly and
writes the order. Nothing here computes an oversell: it emerges when several
buyers read the last units before any of them subtracts, exactly as in the
article ("when one bottle was left every scalper could pay at once").
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from stockguard.sim.buyers import Buyer, Outcome

BUSY_TIMEOUT_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_stock (listing_id TEXT PRIMARY KEY, stock INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS naive_orders (
    order_id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    status TEXT NOT NULL  -- paid, or cancelled for lack of stock
);
"""


def open_naive(path: str) -> sqlite3.Connection:
    """One connection per thread, in autocommit mode: each statement is its own transaction."""
    # Opened by the process, then used by exactly one buyer thread.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def stock_listing(path: str, listing_id: str, units: int) -> None:
    """Create the tables if needed and put ``units`` on sale under ``listing_id``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = open_naive(path)
    try:
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO naive_stock VALUES (?, ?)", (listing_id, units))
    finally:
        conn.close()


class NaiveCheckout:
    """One buyer-serving thread of the naive shop, with its own connection."""

    def __init__(self, path: str, listing_id: str, order_prefix: str) -> None:
        self._conn = open_naive(path)
        self._listing_id = listing_id
        self._prefix = order_prefix

    def serve(self, buyer: Buyer) -> Outcome:
        # Ordering takes nothing in this shop, so a buyer who never pays leaves no trace.
        if not buyer.pays:
            return Outcome.WALKED_AWAY
        # The check: a plain read, no lock kept afterwards.
        (stock,) = self._conn.execute(
            "SELECT stock FROM naive_stock WHERE listing_id = ?", (self._listing_id,)
        ).fetchone()
        if stock <= 0:
            return Outcome.SOLD_OUT
        time.sleep(buyer.gateway_seconds)  # the gateway captures the money; the race window
        # The write: trusts the check made before the gateway call.
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "UPDATE naive_stock SET stock = stock - 1 WHERE listing_id = ?", (self._listing_id,)
            )
            self._conn.execute(
                "INSERT INTO naive_orders VALUES (?, ?, ?, 'paid')",
                (f"{self._prefix}-{buyer.index}", self._listing_id, buyer.buyer_id),
            )
        return Outcome.PAID

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True, slots=True)
class NaiveSettlement:
    """The shop's morning after: what was oversold and how many paid orders it had to cancel."""

    paid: int  # paid orders the shop had acknowledged
    oversold: int  # paid orders beyond the stock (the stock went this far below zero)
    cancelled: int  # orders cancelled for lack of stock
    unsold: int  # units left on the shelf


def settle(path: str, listing_id: str) -> NaiveSettlement:
    """Read the damage from the tables and cancel the last paid orders that have no bottle behind them."""
    conn = open_naive(path)
    try:
        (stock,) = conn.execute(
            "SELECT stock FROM naive_stock WHERE listing_id = ?", (listing_id,)
        ).fetchone()
        (paid,) = conn.execute(
            "SELECT count(*) FROM naive_orders WHERE listing_id = ? AND status = 'paid'", (listing_id,)
        ).fetchone()
        oversold = max(0, -stock)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            cancelled = conn.execute(
                "UPDATE naive_orders SET status = 'cancelled' WHERE rowid IN ("
                " SELECT rowid FROM naive_orders WHERE listing_id = ? AND status = 'paid'"
                " ORDER BY rowid DESC LIMIT ?)",
                (listing_id, oversold),
            ).rowcount
            conn.execute(
                "UPDATE naive_stock SET stock = stock + ? WHERE listing_id = ?", (cancelled, listing_id)
            )
        return NaiveSettlement(paid, oversold, cancelled, max(0, stock))
    finally:
        conn.close()
