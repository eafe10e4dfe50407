"""Quotas that start again every period: a channel's 10,000 bottles a year.

A listing's quota counts the units of orders holding or having taken stock
that were placed in the current period; an order counts in the period of its
``created_at`` for as long as it holds stock (a cancellation next year gives
nothing back to next year's quota).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stockguard.domain.model import QuotaPeriod


def period_start(period: QuotaPeriod, moment: datetime) -> datetime:
    """The start of the calendar period (UTC) that holds ``moment``."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is QuotaPeriod.DAY:
        return day
    if period is QuotaPeriod.WEEK:
        return day - timedelta(days=day.weekday())
    if period is QuotaPeriod.MONTH:
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def period_end(period: QuotaPeriod, moment: datetime) -> datetime:
    """When the period holding ``moment`` ends and the quota starts again."""
    start = period_start(period, moment)
    if period is QuotaPeriod.DAY:
        return start + timedelta(days=1)
    if period is QuotaPeriod.WEEK:
        return start + timedelta(days=7)
    if period is QuotaPeriod.MONTH:
        return (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
    return start.replace(year=start.year + 1)
