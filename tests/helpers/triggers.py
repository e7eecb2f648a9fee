"""The trigger parts over one Redis, wired as ``serving.services.Services`` wires them, and members to run them on."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import redis

from engine.audit import AuditLog
from engine.coupons import CouponLedger
from engine.feature_store import FeatureStore
from engine.keys import OUTBOX_STREAM
from engine.rules import RuleLimits, RuleRuntime
from engine.settings import Settings
from engine.triggers import DailyRun, Emitter, EventTriggers, LogAdapter, OutboxConsumer
from tests.helpers.events import purchase, register

AS_OF = date(2026, 3, 10)
"""The day of the daily runs in these tests (the members' history ends before it)."""


@dataclass
class Triggers:
    """The trigger parts over one Redis, wired as ``serving.services.Services`` wires them."""

    redis: redis.Redis
    settings: Settings
    store: FeatureStore
    rules: RuleRuntime
    limits: RuleLimits
    emitter: Emitter
    coupons: CouponLedger
    audit: AuditLog
    clock: Callable[[], datetime]

    def daily(self, worker: str = "w1", kind: type[DailyRun] = DailyRun, **overrides) -> DailyRun:
        """A daily run (of ``kind``: a test's subclass) with these trigger settings overridden."""
        settings = self.settings.triggers.model_copy(update=overrides)
        return kind(client=self.redis, store=self.store, programme=self.store.programme, rules=self.rules,
                    emitter=self.emitter, settings=settings, clock=self.clock, worker=worker)

    def events(self) -> EventTriggers:
        return EventTriggers(self.store, self.rules, self.emitter)

    def consumer(self, name: str = "c1", adapter=None, **overrides) -> OutboxConsumer:
        settings = self.settings.triggers.model_copy(update=overrides)
        adapter = adapter or LogAdapter(self.deliveries_path)
        return OutboxConsumer(client=self.redis, store=self.store, programme=self.store.programme, coupons=self.coupons,
                              adapter=adapter, settings=settings, clock=self.clock, consumer=name, audit=self.audit)

    @property
    def deliveries_path(self) -> Path:
        return self.settings.var_dir / "outbox" / "deliveries.jsonl"

    def deliveries(self) -> list[dict]:
        if not self.deliveries_path.exists():
            return []
        return [json.loads(line) for line in self.deliveries_path.read_text().splitlines()]

    def outbox(self) -> list[dict]:
        return [json.loads(fields["e"]) for _, fields in self.redis.xrange(OUTBOX_STREAM)]

    def ingest(self, events: list[dict]):
        result = self.store.ingest(events)
        assert not result.rejected, result.rejected
        return result


def lapsed_and_recent(triggers: Triggers, lapsed: int, recent: int) -> tuple[list[str], list[str]]:
    """Members who last bought 40 days before AS_OF, and members who bought 2 days before."""
    start = datetime(2026, 1, 1, 10, 0)
    events, old, new = [], [], []
    for i in range(lapsed):
        member = f"L{i:03d}"
        old.append(member)
        events += [register(member, start), purchase(member, datetime(2026, 1, 29, 11, 0))]
    for i in range(recent):
        member = f"R{i:03d}"
        new.append(member)
        events += [register(member, start), purchase(member, datetime(2026, 3, 8, 11, 0))]
    triggers.ingest(events)
    return old, new


def day_after(day: date, n: int = 1) -> date:
    """The day ``n`` days after ``day``."""
    return day + timedelta(days=n)
