"""The loyalty programme as the engine applies it: its settings, the stores' time zone, keyed hashing.

``Programme`` is what the fold, the features, the store and the triggers are handed: thresholds and
rates (``settings``), the stores' local time (a naive timestamp is local; days are local calendar
days, ``engine.calendar``) and the keyed hash that keeps phone numbers comparable but never in clear.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from engine.calendar import day_number
from engine.settings import Settings


@dataclass(frozen=True)
class Programme:
    """The loyalty programme's rules as the fold needs them: thresholds, rates, time zone, hashing."""

    settings: Settings
    tz: ZoneInfo
    _pii_secret: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Programme:
        return cls(settings=settings, tz=ZoneInfo(settings.timezone), _pii_secret=settings.pii_secret())

    def local(self, ts: datetime) -> datetime:
        """The stores' local wall-clock time of ``ts`` (naive timestamps are already local)."""
        if ts.tzinfo is not None:
            return ts.astimezone(self.tz).replace(tzinfo=None)
        return ts

    def aware(self, ts: datetime) -> datetime:
        """``ts`` with a time zone (naive timestamps are the stores' local time)."""
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=self.tz)

    def day_of(self, ts: datetime) -> int:
        """The stores' local day number of ``ts``."""
        return day_number(self.local(ts).date())

    def hash_pii(self, value: str) -> str:
        """Keyed hash of a personal value (phone): comparable, never reversible without the key."""
        normalised = "".join(ch for ch in value if ch.isdigit())
        return hmac.new(self._pii_secret, normalised.encode(), hashlib.sha256).hexdigest()
