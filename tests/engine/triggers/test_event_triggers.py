"""Event triggers: event.<type> rules run as events are applied, once per event, never for duplicates."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.features import member_features
from tests.helpers.events import purchase, register
from tests.helpers.rules import coupon_rule

pytestmark = pytest.mark.cluster

STREAK = """
    id: third-purchase
    name: third purchase this month
    trigger: event.purchase
    when: month_orders == 3
    then:
      - award_points: {points: 50, reason: third purchase}
    limits: {per_member: 1 per month}
    priority: 30
    """


def test_the_third_purchase_of_the_month_earns_50_points_once(make_triggers) -> None:
    triggers = make_triggers({"streak.yaml": STREAK})
    events = triggers.events()
    triggers.ingest([register("M1", datetime(2026, 2, 1, 9, 0))])
    emitted = []
    for day in (2, 4, 6, 8):  # the third purchase fires; the fourth does not
        result = triggers.ingest([purchase("M1", datetime(2026, 3, day, 10, 0), amount=10.0)])
        emitted.append(events.after_ingest(result.applied).emitted)
    assert emitted == [0, 0, 1, 0]
    entries = triggers.outbox()
    assert [(e["kind"], e["body"]["points"], e["period"]) for e in entries] == [
        ("points", 50, f"e:buy-M1-{datetime(2026, 3, 6, 10, 0).isoformat()}-0")]
    before = member_features(triggers.store.read_state("M1"), datetime(2026, 3, 10), triggers.store.programme)
    triggers.consumer().drain()
    triggers.consumer("again", claim_idle_seconds=0.0001).drain()
    after = member_features(triggers.store.read_state("M1"), datetime(2026, 3, 10), triggers.store.programme)
    assert after["points_balance"] == before["points_balance"] + 50


def test_a_replayed_event_triggers_nothing(make_triggers) -> None:
    triggers = make_triggers({"streak.yaml": STREAK})
    triggers.ingest([register("M1", datetime(2026, 2, 1, 9, 0))])
    third = [purchase("M1", datetime(2026, 3, d, 10, 0)) for d in (2, 4, 6)]
    result = triggers.ingest(third)
    assert triggers.events().after_ingest(result.applied).emitted == 1
    replay = triggers.store.ingest(third)
    assert replay.duplicates == 3 and replay.applied == []
    assert triggers.events().after_ingest(replay.applied).emitted == 0
    assert len(triggers.outbox()) == 1


def test_a_referral_sends_the_referrer_a_coupon(make_triggers) -> None:
    rule = coupon_rule("referral-thanks", when="referrals >= 1", trigger="event.referral", limits="{per_member: 5 per month}")
    triggers = make_triggers({"referral.yaml": rule})
    triggers.ingest([register("REF", datetime(2026, 2, 1, 9, 0)), register("NEW", datetime(2026, 3, 9, 9, 0))])
    result = triggers.ingest([{"event_id": "ref-1", "type": "referral", "member_id": "REF", "ts": "2026-03-09T09:05:00",
                               "referred_member_id": "NEW"}])
    stats = triggers.events().after_ingest(result.applied)
    assert stats.emitted == 1
    assert [(e["member"], e["kind"], e["key"]) for e in triggers.outbox()] == [
        ("REF", "coupon", "referral-thanks|REF|e:ref-1")]


def test_events_without_rules_cost_no_redis_call(make_triggers) -> None:
    triggers = make_triggers({"streak.yaml": STREAK})
    result = triggers.ingest([register("M1", datetime(2026, 2, 1, 9, 0))])
    if not hasattr(triggers.redis, "connection_pool"):
        pytest.skip("a cluster counts commands per node")
    calls_before = triggers.redis.info("stats")["total_commands_processed"]
    assert triggers.events().after_ingest(result.applied).fired == 0
    assert triggers.redis.info("stats")["total_commands_processed"] == calls_before + 1  # only the INFO itself


def test_reaching_silver_fires_the_tier_change_rules_once(make_triggers) -> None:
    welcome = coupon_rule("silver-welcome", when="tier == silver", trigger="event.tier_change",
                          limits="{per_member: 1 per year}")
    triggers = make_triggers({"welcome.yaml": welcome})
    triggers.ingest([register("M1", datetime(2026, 2, 1, 9, 0))])
    events = triggers.events()
    small = triggers.ingest([purchase("M1", datetime(2026, 3, 1, 10, 0), amount=100.0)])
    assert events.after_ingest(small.applied).emitted == 0  # 100 growth: still regular
    # 450 more growth (silver at 500) in two purchases the same day: one change, one emission.
    big = triggers.ingest([purchase("M1", datetime(2026, 3, 2, 10, 0), amount=200.0, n=1),
                           purchase("M1", datetime(2026, 3, 2, 11, 0), amount=250.0, n=2)])
    assert events.after_ingest(big.applied).emitted == 1
    assert events.after_ingest(big.applied).already == 1  # a retry of the same batch emits nothing
    assert [(e["member"], e["period"]) for e in triggers.outbox()] == [
        ("M1", f"tier:silver:{triggers.store.programme.day_of(datetime(2026, 3, 2, 10, 0))}")]
