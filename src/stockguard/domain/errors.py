"""The exception hierarchy of stockguard.

Every refusal the service can give is one of these classes, and each class
carries the API error ``code`` it maps to, so the HTTP layer translates them in
one place. Catch :class:`StockguardError` to catch them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self


class StockguardError(Exception):
    """Base of every error stockguard raises on purpose."""

    code = "error"
    # The rules that refused, by name, for metrics ("per_device", "account_age", ...).
    rules: Sequence[str] = ()

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def by(self, *rules: str) -> Self:
        self.rules = rules
        return self


class InvalidInput(StockguardError):
    """A value breaks the rules (ids, quantities, shapes); nothing was changed."""

    code = "invalid"

    def __init__(self, detail: str, errors: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors) or [detail]


class NotFound(StockguardError):
    """An unknown sku, listing, order or shipment."""

    code = "not_found"


class UnknownItem(NotFound):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown sku {sku!r}")
        self.sku = sku


class UnknownListing(NotFound):
    def __init__(self, listing_id: str) -> None:
        super().__init__(f"unknown listing {listing_id!r}")
        self.listing_id = listing_id


class UnknownOrder(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"unknown order {order_id!r}")
        self.order_id = order_id


class UnknownBuyer(NotFound):
    def __init__(self, buyer_id: str) -> None:
        super().__init__(f"unknown buyer {buyer_id!r}")
        self.buyer_id = buyer_id


class UnknownDraw(NotFound):
    def __init__(self, draw_id: str) -> None:
        super().__init__(f"unknown draw {draw_id!r}")
        self.draw_id = draw_id


class UnknownShipment(NotFound):
    def __init__(self, shipment_id: str) -> None:
        super().__init__(f"unknown incoming shipment {shipment_id!r}")
        self.shipment_id = shipment_id


class SoldOut(StockguardError):
    """Not enough sellable stock for the whole order (or for its payment)."""

    code = "sold_out"

    @classmethod
    def item(cls, sku: str, wanted: int) -> SoldOut:
        return cls(f"not enough stock of {sku!r}: {wanted} needed")

    @classmethod
    def item_in(cls, sku: str, wanted: int, warehouses: Sequence[str]) -> SoldOut:
        return cls(f"not enough stock of {sku!r} in {', '.join(warehouses)}: {wanted} needed")

    @classmethod
    def quota(cls, listing_id: str, quota: int) -> SoldOut:
        return cls(f"listing {listing_id!r} has used its quota of {quota}")


class LimitExceeded(StockguardError):
    """The buyer's live and paid orders of a listing would pass its limit."""

    code = "limit_exceeded"

    @classmethod
    def buyer(cls, buyer_id: str, listing_id: str, used: int, limit: int) -> LimitExceeded:
        return cls(f"buyer {buyer_id!r} has {used} of listing {listing_id!r}; the limit is {limit}").by(
            "per_buyer"
        )

    @classmethod
    def of(cls, holder: str, who: str, listing_id: str, used: int, limit: int) -> LimitExceeded:
        """A listing's limit per ``holder`` ("buyer", "device", "address") refused ``who``."""
        if holder == "buyer":
            return cls.buyer(who, listing_id, used, limit)
        whose = "this device" if holder == "device" else "this delivery address"
        return cls(f"{whose} has {used} of listing {listing_id!r}; the limit per {holder} is {limit}").by(
            f"per_{holder}"
        )


class OrderConflict(StockguardError):
    """An order id reused with a different body."""

    code = "order_conflict"


class InvalidTransition(StockguardError):
    """An order status change that does not exist, e.g. paying a cancelled order."""

    code = "invalid_transition"


class HoldExpired(StockguardError):
    """Paying an order whose hold expired when no stock is left to take again."""

    code = "expired"


class NotEligible(StockguardError):
    """The buyer fails the listing's screening (or an operator denied them).

    ``reasons`` are sentences a shop's support team can read to the customer,
    one per failed rule; ``rules`` name the same rules for machines (metrics).
    """

    code = "not_eligible"

    def __init__(self, detail: str, reasons: Sequence[str], rules: Sequence[str]) -> None:
        super().__init__(detail)
        self.reasons = list(reasons)
        self.rules = tuple(rules)


class RateLimited(StockguardError):
    """Too many requests from one buyer or one IP address; try again after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int, *, rule: str = "rate") -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)
        self.rules = (rule,)


class Unavailable(StockguardError):
    """A store the request needs is down or busy; nothing was changed."""

    code = "unavailable"


class OutcomeUnknown(StockguardError):
    """The database went away while the request's change was being committed, and could not
    be asked in time whether it was: the change may or may not have been made.

    Not an ``Unavailable``, whose promise is that nothing changed. Placing, paying and
    cancelling an order again with the same order id is safe and answers what happened.
    """

    code = "outcome_unknown"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail
            or "the database went away while this change was being committed and could not be asked "
            "whether it was: the change may or may not have been made; read it back, or send the same "
            "order, payment or cancellation again (they are idempotent)"
        )
