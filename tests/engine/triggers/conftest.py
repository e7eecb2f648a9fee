"""Fixtures for the triggers: the parts over the suite's Redis and a rules directory (tests/helpers/triggers.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import redis

from engine.audit import AuditLog
from engine.coupons import CouponLedger
from engine.feature_store import FeatureStore
from engine.programme import Programme
from engine.rules import RuleLimits, RuleRuntime
from engine.settings import Settings
from engine.triggers import Emitter
from tests.helpers.rules import write_rules
from tests.helpers.triggers import Triggers


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
