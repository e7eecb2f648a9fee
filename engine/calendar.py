"""Day and month arithmetic of the stores' calendar: days since 1970-01-01 and months since year 0.

Member state, features, measurement and the rules count time in these plain integers (a day is
the stores' local calendar day; ``engine.programme.Programme.day_of`` turns a moment into one), so
windows are subtractions and buckets are dictionary keys. "Now" itself comes from ``engine.clock``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()


def day_number(d: date) -> int:
    """Days since 1970-01-01 of a calendar date."""
    return d.toordinal() - EPOCH_ORDINAL


def day_to_date(day: int) -> date:
    """The calendar date of a day number."""
    return date.fromordinal(day + EPOCH_ORDINAL)


@lru_cache(maxsize=8192)
def month_index(day: int) -> int:
    """Months since year 0 of the month holding ``day`` (consecutive months differ by 1)."""
    d = day_to_date(day)
    return d.year * 12 + d.month - 1


def local_seconds(local_ts: datetime) -> float:
    """Seconds since 1970-01-01 00:00 of a local wall-clock time (independent of the host's zone)."""
    return (local_ts - EPOCH).total_seconds()


def from_local_seconds(seconds: float) -> datetime:
    """The local wall-clock time ``local_seconds`` made these seconds from."""
    return EPOCH + timedelta(seconds=seconds)
