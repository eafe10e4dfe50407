"""Buyer use cases: the profiles shops keep us informed of, and operators' verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stockguard.domain.errors import InvalidInput, UnknownBuyer
from stockguard.domain.screening import BuyerProfile, Override, Verdict
from stockguard.domain.validation import check_id, check_moment, check_quantity, check_text
from stockguard.service.base import ServiceBase
from stockguard.stores.base import Transaction


@dataclass(frozen=True, slots=True)
class BuyerRecord:
    """A buyer as the service knows them: the shop's profile, an operator's verdict (either may be absent)."""

    buyer_id: str
    profile: BuyerProfile | None
    override: Override | None


class BuyerService(ServiceBase):
    def put_buyer(
        self,
        buyer_id: str,
        registered_at: datetime,
        *,
        paid_orders: int = 0,
        active_days_90d: int = 0,
        member_since: datetime | None = None,
        last_active_at: datetime | None = None,
        phone_verified: bool = False,
    ) -> tuple[BuyerRecord, bool]:
        """Create or replace a buyer's profile; answers the buyer and whether this call created it."""
        check_id(buyer_id, "buyer_id")
        now = self.clock()
        profile = BuyerProfile(
            buyer_id,
            _not_future(check_moment(registered_at, "registered_at"), "registered_at", now),
            check_quantity(paid_orders, "paid_orders", minimum=0),
            check_quantity(active_days_90d, "active_days_90d", minimum=0),
            None
            if member_since is None
            else _not_future(check_moment(member_since, "member_since"), "member_since", now),
            None if last_active_at is None else check_moment(last_active_at, "last_active_at"),
            phone_verified,
        )
        if profile.active_days_90d > 90:
            raise InvalidInput("active_days_90d must be between 0 and 90")
        if not isinstance(phone_verified, bool):
            raise InvalidInput("phone_verified must be true or false")

        def work(tx: Transaction) -> tuple[BuyerRecord, bool]:
            created = tx.buyer(buyer_id) is None
            tx.put_buyer(profile)
            return BuyerRecord(buyer_id, profile, tx.override(buyer_id)), created

        return self.store.atomic(work)

    def get_buyer(self, buyer_id: str) -> BuyerRecord:
        check_id(buyer_id, "buyer_id")
        with self.store.read() as tx:
            record = BuyerRecord(buyer_id, tx.buyer(buyer_id), tx.override(buyer_id))
        if record.profile is None and record.override is None:
            raise UnknownBuyer(buyer_id)
        return record

    def set_verdict(self, buyer_id: str, verdict: Verdict | str, reason: str) -> BuyerRecord:
        """An operator allows or denies a buyer, whatever the screening rules say."""
        check_id(buyer_id, "buyer_id")
        check_text(reason, "reason")
        try:
            override = Override(buyer_id, Verdict(verdict), reason, self.clock())
        except ValueError:
            raise InvalidInput("verdict must be 'allow' or 'deny'") from None

        def work(tx: Transaction) -> BuyerRecord:
            tx.put_override(buyer_id, override)
            return BuyerRecord(buyer_id, tx.buyer(buyer_id), override)

        return self.store.atomic(work)

    def clear_verdict(self, buyer_id: str) -> BuyerRecord:
        """Remove an operator's verdict: the screening rules decide again."""
        check_id(buyer_id, "buyer_id")

        def work(tx: Transaction) -> BuyerRecord:
            profile = tx.buyer(buyer_id)
            if profile is None and tx.override(buyer_id) is None:
                raise UnknownBuyer(buyer_id)
            tx.put_override(buyer_id, None)
            return BuyerRecord(buyer_id, profile, None)

        return self.store.atomic(work)


def _not_future(moment: datetime, field: str, now: datetime) -> datetime:
    if moment > now:
        raise InvalidInput(f"{field} lies in the future")
    return moment
