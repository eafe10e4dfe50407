"""The SQL transaction's buyer profiles, operators' verdicts and draws (tables in ``tables.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stockguard.domain.draws import ENTERED, PASSED_OVER, WAITING, Draw, Entry
from stockguard.domain.screening import BuyerProfile, Override, Verdict


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _maybe_dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else dt(seconds)


def _maybe_ts(moment: datetime | None) -> float | None:
    return None if moment is None else ts(moment)


_BUYER_COLUMNS = (
    "buyer_id, registered_at, paid_orders, active_days_90d, member_since, last_active_at, phone_verified"
)
_DRAW_COLUMNS = (
    "draw_id, listing_id, units, opens_at, closes_at, payment_seconds, seed, commitment, created_at, drawn_at"
)
_ENTRY_COLUMNS = "draw_id, buyer_id, number, entered_at, device_id, address_hash, rank, order_id, passed_over"


class BuyersAndDraws:
    """Mixed into ``SqlTransaction``, which supplies the statement helpers and the lock clause."""

    _for_update: str

    if TYPE_CHECKING:  # supplied by SqlTransaction

        def _one(self, sql: str, params: Mapping[str, Any]) -> Any: ...
        def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]: ...
        def _write(self, sql: str, params: Mapping[str, Any]) -> None: ...

    # -- buyers
    def buyer(self, buyer_id: str) -> BuyerProfile | None:
        row = self._one(f"SELECT {_BUYER_COLUMNS} FROM buyers WHERE buyer_id = :id", {"id": buyer_id})
        if row is None:
            return None
        buyer, registered_at, paid_orders, active_days, member_since, last_active_at, phone_verified = row
        return BuyerProfile(
            buyer,
            dt(registered_at),
            int(paid_orders),
            int(active_days),
            _maybe_dt(member_since),
            _maybe_dt(last_active_at),
            bool(phone_verified),
        )

    def put_buyer(self, profile: BuyerProfile) -> None:
        self._write(
            f"INSERT INTO buyers ({_BUYER_COLUMNS}) VALUES (:buyer_id, :registered_at, :paid_orders, "
            ":active_days_90d, :member_since, :last_active_at, :phone_verified) "
            "ON CONFLICT (buyer_id) DO UPDATE SET registered_at = excluded.registered_at, "
            "paid_orders = excluded.paid_orders, "
            "active_days_90d = excluded.active_days_90d, member_since = excluded.member_since, "
            "last_active_at = excluded.last_active_at, phone_verified = excluded.phone_verified",
            {
                "buyer_id": profile.buyer_id,
                "registered_at": ts(profile.registered_at),
                "paid_orders": profile.paid_orders,
                "active_days_90d": profile.active_days_90d,
                "member_since": _maybe_ts(profile.member_since),
                "last_active_at": _maybe_ts(profile.last_active_at),
                "phone_verified": profile.phone_verified,
            },
        )

    def override(self, buyer_id: str) -> Override | None:
        row = self._one(
            "SELECT verdict, reason, at FROM buyer_overrides WHERE buyer_id = :id", {"id": buyer_id}
        )
        return None if row is None else Override(buyer_id, Verdict(row[0]), row[1], dt(row[2]))

    def put_override(self, buyer_id: str, override: Override | None) -> None:
        if override is None:
            self._write("DELETE FROM buyer_overrides WHERE buyer_id = :id", {"id": buyer_id})
            return
        self._write(
            "INSERT INTO buyer_overrides (buyer_id, verdict, reason, at) "
            "VALUES (:id, :verdict, :reason, :at) ON CONFLICT (buyer_id) DO UPDATE SET "
            "verdict = excluded.verdict, reason = excluded.reason, "
            "at = excluded.at",
            {
                "id": buyer_id,
                "verdict": override.verdict.value,
                "reason": override.reason,
                "at": ts(override.at),
            },
        )

    # -- draws
    def draw(self, draw_id: str) -> Draw | None:
        row = self._one(
            f"SELECT {_DRAW_COLUMNS} FROM draws WHERE draw_id = :id{self._for_update}", {"id": draw_id}
        )
        if row is None:
            return None
        (
            draw,
            listing_id,
            units,
            opens_at,
            closes_at,
            payment_seconds,
            seed,
            commitment,
            created_at,
            drawn_at,
        ) = row
        return Draw(
            draw,
            listing_id,
            int(units),
            dt(opens_at),
            dt(closes_at),
            int(payment_seconds),
            seed,
            commitment,
            dt(created_at),
            _maybe_dt(drawn_at),
        )

    def put_draw(self, draw: Draw) -> None:
        self._write(
            f"INSERT INTO draws ({_DRAW_COLUMNS}) VALUES (:draw_id, :listing_id, :units, :opens_at, "
            ":closes_at, :payment_seconds, :seed, :commitment, :created_at, :drawn_at) "
            "ON CONFLICT (draw_id) DO UPDATE SET "
            "listing_id = excluded.listing_id, units = excluded.units, opens_at = excluded.opens_at, "
            "closes_at = excluded.closes_at, payment_seconds = excluded.payment_seconds, "
            "drawn_at = excluded.drawn_at",  # the seed and its commitment never change
            {
                "draw_id": draw.draw_id,
                "listing_id": draw.listing_id,
                "units": draw.units,
                "opens_at": ts(draw.opens_at),
                "closes_at": ts(draw.closes_at),
                "payment_seconds": draw.payment_seconds,
                "seed": draw.seed,
                "commitment": draw.commitment,
                "created_at": ts(draw.created_at),
                "drawn_at": _maybe_ts(draw.drawn_at),
            },
        )

    def entries(self, draw_id: str) -> list[Entry]:
        rows = self._all(
            f"SELECT {_ENTRY_COLUMNS} FROM draw_entries WHERE draw_id = :id ORDER BY number", {"id": draw_id}
        )
        return [_entry(r) for r in rows]

    def waiting(self, draw_id: str, limit: int) -> list[Entry]:
        rows = self._all(
            f"SELECT {_ENTRY_COLUMNS} FROM draw_entries WHERE draw_id = :id AND rank IS NOT NULL "
            "AND order_id IS NULL AND passed_over IS NULL ORDER BY rank LIMIT :limit",
            {"id": draw_id, "limit": limit},
        )
        return [_entry(r) for r in rows]

    def entry(self, draw_id: str, buyer_id: str) -> Entry | None:
        row = self._one(
            f"SELECT {_ENTRY_COLUMNS} FROM draw_entries WHERE draw_id = :id AND buyer_id = :buyer",
            {"id": draw_id, "buyer": buyer_id},
        )
        return None if row is None else _entry(row)

    def entry_sharing(self, draw_id: str, device_id: str | None, address_hash: str | None) -> Entry | None:
        if device_id is None and address_hash is None:
            return None
        row = self._one(
            f"SELECT {_ENTRY_COLUMNS} FROM draw_entries WHERE draw_id = :id "
            "AND (device_id = :device OR address_hash = :address) ORDER BY number LIMIT 1",
            {"id": draw_id, "device": device_id, "address": address_hash},
        )
        return None if row is None else _entry(row)

    def entry_count(self, draw_id: str) -> int:
        return int(self._one("SELECT COUNT(*) FROM draw_entries WHERE draw_id = :id", {"id": draw_id})[0])

    def put_entry(self, entry: Entry) -> None:
        self._write(
            f"INSERT INTO draw_entries ({_ENTRY_COLUMNS}) VALUES (:draw_id, :buyer_id, :number, :entered_at, "
            ":device_id, :address_hash, :rank, :order_id, :passed_over) ON CONFLICT (draw_id, buyer_id) "
            "DO UPDATE SET rank = excluded.rank, order_id = excluded.order_id, "
            "passed_over = excluded.passed_over",
            {
                "draw_id": entry.draw_id,
                "buyer_id": entry.buyer_id,
                "number": entry.number,
                "entered_at": ts(entry.entered_at),
                "device_id": entry.device_id,
                "address_hash": entry.address_hash,
                "rank": entry.rank,
                "order_id": entry.order_id,
                "passed_over": entry.passed_over,
            },
        )

    def draw_standings(self) -> dict[tuple[str, str], int]:
        # As domain.draws.standing, counted by the database in one pass.
        rows = self._all(
            "SELECT e.draw_id, CASE WHEN e.order_id IS NOT NULL THEN COALESCE(o.status, :entered) "
            "WHEN e.passed_over IS NOT NULL THEN :passed_over WHEN e.rank IS NOT NULL THEN :waiting "
            "ELSE :entered END AS standing, COUNT(*) "
            "FROM draw_entries e LEFT JOIN orders o ON o.order_id = e.order_id GROUP BY 1, 2",
            {"entered": ENTERED, "passed_over": PASSED_OVER, "waiting": WAITING},
        )
        return {(draw_id, standing): int(count) for draw_id, standing, count in rows}

    def entry_of_order(self, order_id: str) -> Entry | None:
        row = self._one(f"SELECT {_ENTRY_COLUMNS} FROM draw_entries WHERE order_id = :id", {"id": order_id})
        return None if row is None else _entry(row)


def _entry(r: Any) -> Entry:
    draw_id, buyer_id, number, entered_at, device_id, address_hash, rank, order_id, passed_over = r
    return Entry(
        draw_id,
        buyer_id,
        int(number),
        dt(entered_at),
        device_id,
        address_hash,
        None if rank is None else int(rank),
        order_id,
        passed_over,
    )
