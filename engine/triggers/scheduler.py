"""The scheduler inside ``nbo serve`` (off by default): starts each day's run at ``daily_at`` local time.

Every server process may run one; they share the day's run through its work stream (each chunk
is done once), so N workers or replicas finish the run N times faster instead of repeating it.
A server started after ``daily_at`` joins (or completes) that day's run at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime

from engine.redis_circuit import REDIS_DOWN
from engine.triggers.daily import DailyRun

log = logging.getLogger(__name__)


class DailyScheduler:
    """Runs ``DailyRun`` for today once the local clock passes ``daily_at``, then waits for tomorrow."""

    def __init__(self, run: DailyRun, clock: Callable[[], datetime], poll_seconds: float = 30.0) -> None:
        self.daily = run
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.finished: date | None = None

    def due(self) -> date | None:
        """Today's local date if its run should be going now (and this scheduler has not finished it)."""
        tz = self.daily.store.programme.tz
        now = self.clock().astimezone(tz)
        today = now.date()
        if self.finished == today or now < self.daily.moment(today):
            return None
        return today

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``; a Redis outage or a failing run is logged and tried again at the next poll."""
        while not stop.is_set():
            today = self.due()
            if today is not None:
                try:
                    report = self.daily.run(today)
                    if report.status == "done":
                        self.finished = today
                except REDIS_DOWN as exc:
                    log.warning("daily run %s paused: redis unavailable (%s)", today, type(exc).__name__)
                except Exception:  # a bad day must not stop tomorrow's run
                    log.exception("daily run %s failed; retrying at the next poll", today)
            stop.wait(self.poll_seconds)
