"""Measurement: treatment vs holdout spend after exposure, coupons issued and redeemed, lift with its interval."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine.keys import issuance_key
from engine.measurement import Measurement
from tests.helpers.events import purchase
from tests.helpers.rules import coupon_rule
from tests.helpers.triggers import AS_OF, lapsed_and_recent

pytestmark = pytest.mark.cluster


def test_lift_is_treatment_minus_holdout_spend_with_an_interval_and_roi(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule(holdout=0.5, limits="{per_member: 1 per 60d}")})
    members, _ = lapsed_and_recent(triggers, lapsed=60, recent=0)
    triggers.daily(chunk_size=20).run(AS_OF)
    treated = sorted({e["member"] for e in triggers.outbox()})
    held = sorted(set(members) - set(treated))
    assert treated and held
    triggers.consumer().drain()
    # Treated members come back and spend 30-39 yuan; held-out members spend 10; one redeems its coupon.
    later = datetime(2026, 3, 12, 11, 0)
    triggers.set_now(datetime(2026, 4, 30, 12, 0))
    triggers.ingest([purchase(m, later, amount=30.0 + i % 10) for i, m in enumerate(treated)]
                    + [purchase(m, later, amount=10.0) for m in held]
                    + [purchase(members[0], AS_OF_plus(40), amount=500.0)])  # outside the attribution window
    code = triggers.redis.get(next(iter(triggers.redis.scan_iter(match=issuance_key(treated[0], "*")))))
    triggers.set_now(datetime(2026, 3, 12, 11, 0))
    triggers.coupons.redeem(code, treated[0], "S001")
    report = Measurement(triggers.redis, attribution_days=14, margin_rate=0.25).report(
        [("lapsed", "lapsed", "schedule.daily")], AS_OF - timedelta(days=3), AS_OF + timedelta(days=20))[0]
    total = report.total
    assert (total.treatment, total.holdout, total.targeted) == (len(treated), len(held), 60)
    assert total.issued == len(treated) and total.redeemed == 1 and total.redemption_rate == round(1 / len(treated), 4)
    assert total.coupon_cost == 50.0  # M200_50: 50 yuan off
    mean_treated = sum(30.0 + i % 10 for i in range(len(treated))) / len(treated)
    assert total.spend_per_member_treatment == round(mean_treated, 2) and total.spend_per_member_holdout == 10.0
    assert total.lift_per_member == round(mean_treated - 10.0, 2)
    low, high = total.lift_ci95
    assert low < total.lift_per_member < high and low > 15  # a clear, significant lift
    assert total.incremental_revenue == round((mean_treated - 10.0) * len(treated), 2)
    assert total.roi == round((total.incremental_revenue * 0.25 - 50.0) / 50.0, 3)
    assert [p.period for p in report.periods] == ["2026-03"]
    assert any(d["fired"] == len(treated) and d["issued"] == len(treated) for d in report.daily)


def AS_OF_plus(days: int) -> datetime:  # noqa: N802 - reads as the constant it offsets
    return datetime.combine(AS_OF + timedelta(days=days), datetime.min.time()).replace(hour=12)


def test_a_rule_that_reached_no_one_reports_empty_figures(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule()})
    report = Measurement(triggers.redis).report([("lapsed", "lapsed", "schedule.daily")], date(2026, 3, 1),
                                                date(2026, 3, 31))[0]
    assert report.total.targeted == 0 and report.total.lift_per_member is None and report.periods == ()
