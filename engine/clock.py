"""The product's one clock: what "now" is for the service, the CLI, the triggers and the tests.

Everything that needs the time takes a ``Clock`` (a function returning an aware ``datetime``) and
never reads the wall clock itself. In production the clock is the real one. The setting ``now``
(``NBO_NOW``, or the CLI's hidden ``--now``) starts it at a given moment instead, from which it runs
on at the pace of the monotonic clock: a server or a CLI command that a test starts then acts at the
hour the test means (quiet hours, the daily run's 09:00, a coupon's expiry), and ``make test-clock``
runs the whole suite at another hour, date and host time zone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import nothing of the engine; the clock is built from them
    from engine.settings import Settings

Clock = Callable[[], datetime]
"""Returns "now", time-zone aware."""


def utc_now() -> datetime:
    """The real clock (UTC)."""
    return datetime.now(UTC)


def clock_starting_at(moment: datetime) -> Clock:
    """A clock that reads ``moment`` now and then runs on in real time (monotonic, so never backwards)."""
    if moment.tzinfo is None:
        raise ValueError(f"a clock's starting moment needs a time zone: {moment.isoformat()}")
    anchor = time.monotonic()

    def now() -> datetime:
        return moment + timedelta(seconds=time.monotonic() - anchor)

    return now


def clock_from_settings(settings: Settings) -> Clock:
    """The real clock, or one started at ``settings.now`` when it is set."""
    return utc_now if settings.now is None else clock_starting_at(settings.now)
