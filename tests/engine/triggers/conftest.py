"""Fixtures for the triggers: members in a real Redis, a rules directory, and the parts wired as serving does."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import redis

from engine.audit import AuditLog
from engine.coupons import CouponLedger
from engine.feature_store import FeatureStore
from engine.keys import OUTBOX_STREAM
from engine.programme import Programme
from engine.rules import RuleLimits, RuleRuntime
from engine.settings import Settings
from engine.triggers import DailyRun, Emitter, EventTriggers, LogAdapter, OutboxConsumer
from tests.engine.rules.conftest import write_rules

AS_OF = date(2026, 3, 10)
"""The day of the daily runs in these tests (the members' history ends before it)."""


def register(member_id: str, day: datetime, **fields) -> dict:
    return {"event_id": f"reg-{member_id}", "type": "register", "member_id": member_id, "ts": day.isoformat(),
            "store_id": "S001", "region": "north", **fields}


def purchase(member_id: str, at: datetime, amount: float = 30.0, n: int = 0) -> dict:
    return {"event_id": f"buy-{member_id}-{at.isoformat()}-{n}", "type": "purchase", "member_id": member_id,
            "ts": at.isoformat(), "store_id": "S001", "lines": [{"sku": "milk", "qty": 1, "amount": amount}]}


def coupon_rule(rule_id: str = "lapsed", when: str = "recency_days >= 30", trigger: str = "schedule.daily",
                limits: str = "{per_member: 1 per 60d}", holdout: float = 0.0, channel: str = "app") -> str:
    return f"""
        id: {rule_id}
        name: {rule_id}
        trigger: {trigger}
        when: {when}
        then:
          - issue_coupon: {{template: M200_50, channel: {channel}}}
        limits: {limits}
        priority: 40
        holdout: {holdout}
        """


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


@pytest.fixture
def make_triggers(redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> Callable[..., Triggers]:
    """``make_triggers({"a.yaml": rule_text}, now=...)``: the parts over the suite's Redis and these rules."""

    def make(files: dict[str, str], now: datetime = datetime(2026, 3, 10, 10, 0)) -> Triggers:
        clock = {"now": now}
        programme = Programme.from_settings(settings)
        clock_fn = lambda: clock["now"]  # noqa: E731 - a settable clock
        store = FeatureStore(redis_client, programme, clock=clock_fn)
        audit = AuditLog(redis_client, settings.var_dir / "audit", clock=clock_fn)
        rules = RuleRuntime(write_rules(tmp_path / "rules", files), programme.tz, audit=audit)
        report = rules.reload()
        assert report.ok, [str(p) for p in report.errors]
        limits = RuleLimits(redis_client, programme.tz)
        triggers = Triggers(redis_client, settings, store, rules, limits, Emitter(redis_client, limits, programme),
                            CouponLedger(redis_client, audit, clock=clock_fn, store=store), audit, clock_fn)
        triggers.set_now = lambda value: clock.update(now=value)  # type: ignore[attr-defined]
        return triggers

    return make


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
    return day + timedelta(days=n)
