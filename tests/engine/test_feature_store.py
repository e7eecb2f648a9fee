"""The online feature store against a real Redis: exactly once, atomic, right at read time."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta

import pytest
import redis

from engine.feature_store import FeatureStore
from engine.keys import member_key
from engine.programme import Programme
from engine.redis_server import client_from_url
from engine.settings import Settings
from tests.helpers.clock import NOW
from tests.helpers.events import purchase, register
from tests.helpers.redis_dump import dump_redis

pytestmark = pytest.mark.cluster




@pytest.mark.secure_redis  # also over a password and over TLS
def test_duplicate_event_changes_nothing(store: FeatureStore, redis_client: redis.Redis) -> None:
    events = [register("A"), purchase("A", "2026-02-01T10:00:00", 50.0, event_id="p1")]
    first = store.ingest(events)
    before = dump_redis(redis_client)
    again = store.ingest(events)
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert dump_redis(redis_client) == before


def test_duplicate_inside_one_batch_counts_once(store: FeatureStore) -> None:
    result = store.ingest([register("A"), purchase("A", "2026-02-01T10:00:00", 50.0, event_id="p1"),
                           purchase("A", "2026-02-01T10:00:00", 50.0, event_id="p1")])
    assert (result.accepted, result.duplicates) == (2, 1)
    assert store.member_features("A")["orders_total"] == 1


@pytest.mark.secure_redis  # also over a password and over TLS
def test_malformed_events_are_rejected_one_by_one_and_the_rest_applied(store: FeatureStore) -> None:
    result = store.ingest([
        register("A"),
        {"event_id": "bad1", "type": "purchase", "member_id": "A", "ts": "2026-02-01T10:00:00",
         "lines": [{"sku": "milk", "amount": -3}]},
        {"event_id": "bad2", "type": "teleport", "member_id": "A", "ts": "2026-02-01T10:00:00"},
        {"event_id": "bad3", "type": "purchase", "member_id": "A", "ts": "not a date", "lines": []},
        "not even an object",
        purchase("A", "2026-02-01T11:00:00", 20.0, event_id="ok"),
    ])
    assert result.accepted == 2
    reasons = {r.index: r.reason for r in result.rejected}
    assert set(reasons) == {1, 2, 3, 4}
    assert "lines.0.amount" in reasons[1]
    assert "teleport" in reasons[2] or "type" in reasons[2]
    assert "ts" in reasons[3] and "lines" in reasons[3]
    assert store.member_features("A")["spend_total"] == 20.0


@pytest.mark.secure_redis  # also over a password and over TLS
def test_only_register_creates_a_member(store: FeatureStore, redis_client: redis.Redis) -> None:
    result = store.ingest([purchase("ghost", "2026-02-01T10:00:00", 10.0, event_id="p1")])
    assert result.accepted == 0
    assert "not registered" in result.rejected[0].reason
    assert dump_redis(redis_client) == {}
    assert store.member_features("ghost") is None


def test_events_from_the_future_are_rejected(store: FeatureStore) -> None:
    future = (NOW + timedelta(days=3)).isoformat()
    result = store.ingest([register("A"), purchase("A", future, 10.0, event_id="p1")])
    assert result.accepted == 1
    assert "future" in result.rejected[0].reason


def test_windows_are_right_at_read_time_without_new_events(store: FeatureStore, programme: Programme) -> None:
    store.ingest([register("A"), purchase("A", "2026-02-20T10:00:00", 30.0, event_id="p1")])
    at_now = store.member_features("A")
    weeks_later = store.member_features("A", as_of=NOW + timedelta(days=40))
    assert at_now["recency_days"] == 9 and at_now["monetary_30d"] == 30.0 and at_now["frequency_30d"] == 1
    assert weeks_later["recency_days"] == 49
    assert weeks_later["monetary_30d"] == 0.0 and weeks_later["frequency_30d"] == 0
    assert weeks_later["monetary_90d"] == 30.0


def test_windows_across_month_and_year_boundaries(store: FeatureStore) -> None:
    store.ingest([
        register("A", ts="2025-12-01T09:00:00"),
        purchase("A", "2025-12-31T23:30:00", 100.0, event_id="dec31"),
        purchase("A", "2026-01-01T00:10:00", 10.0, event_id="jan1"),
        purchase("A", "2026-01-31T12:00:00", 1.0, event_id="jan31"),
    ])
    jan31 = store.member_features("A", as_of=datetime(2026, 1, 31, 20))
    feb1 = store.member_features("A", as_of=datetime(2026, 2, 1, 8))
    assert jan31["month_spend"] == 11.0
    assert feb1["month_spend"] == 0.0
    assert jan31["monetary_30d"] == 1.0  # the window is 2 Jan .. 31 Jan
    assert store.member_features("A", as_of=datetime(2026, 1, 30, 8))["monetary_30d"] == 10.0
    assert store.member_features("A", as_of=datetime(2026, 1, 29, 8))["monetary_30d"] == 110.0  # 31 Dec .. 29 Jan
    assert feb1["frequency_90d"] == 3


@pytest.mark.secure_redis  # also over a password and over TLS
def test_points_expire_fifo_and_never_go_negative(store: FeatureStore) -> None:
    store.ingest([
        register("A", ts="2025-01-01T09:00:00"),
        purchase("A", "2025-01-10T10:00:00", 100.0, event_id="jan"),  # 100 points, usable until 2026-01-31
        purchase("A", "2025-03-10T10:00:00", 50.0, event_id="mar"),   # 50 points, usable until 2026-03-31
    ])
    assert store.member_features("A", as_of=datetime(2026, 1, 15))["points_balance"] == 150
    assert store.member_features("A", as_of=datetime(2026, 1, 15))["points_expiring_30d"] == 100
    # Using 120 points takes the January lot first, then 20 of March's.
    used = store.ingest([purchase("A", "2025-06-01T10:00:00", 0.0, event_id="use", points_used=120)])
    assert used.accepted == 1
    assert store.member_features("A", as_of=datetime(2026, 2, 15))["points_balance"] == 30
    too_many = store.ingest([purchase("A", "2025-06-02T10:00:00", 0.0, event_id="over", points_used=31)])
    assert too_many.accepted == 0 and "exceeds the balance of 30" in too_many.rejected[0].reason
    assert store.member_features("A", as_of=datetime(2026, 2, 15))["points_balance"] == 30
    assert store.member_features("A", as_of=datetime(2026, 4, 1))["points_balance"] == 0


@pytest.mark.secure_redis  # also over a password and over TLS
def test_tier_goes_up_at_once_and_down_after_a_year_without_qualifying(store: FeatureStore) -> None:
    store.ingest([register("A", ts="2025-01-01T09:00:00")])
    assert store.member_features("A", as_of=datetime(2025, 1, 2))["tier"] == "regular"
    store.ingest([purchase("A", "2025-02-10T10:00:00", 600.0, event_id="big")])
    assert store.member_features("A", as_of=datetime(2025, 2, 10, 12))["tier"] == "silver"
    # Gold needs growth >= 1500 and >= 200 spent this month.
    store.ingest([purchase("A", "2025-03-05T10:00:00", 1000.0, event_id="bigger")])
    assert store.member_features("A", as_of=datetime(2025, 3, 6))["tier"] == "gold"
    # Next month spend is low, but a tier reached is kept for a year ...
    assert store.member_features("A", as_of=datetime(2025, 9, 1))["tier"] == "gold"
    # ... and a year later, with the growth window empty, it falls back to regular.
    assert store.member_features("A", as_of=datetime(2026, 3, 10))["tier"] == "regular"


def test_diamond_needs_a_referral(store: FeatureStore) -> None:
    store.ingest([register("A", ts="2026-01-01T09:00:00"), purchase("A", "2026-01-05T10:00:00", 3100.0, event_id="p")])
    assert store.member_features("A", as_of=datetime(2026, 1, 6))["tier"] == "gold"
    store.ingest([{"event_id": "ref", "type": "referral", "member_id": "A", "ts": "2026-01-07T10:00:00",
                   "referred_member_id": "B"}])
    features = store.member_features("A", as_of=datetime(2026, 1, 8))
    assert features["tier"] == "diamond" and features["referrals"] == 1
    assert features["growth_value"] == 3150.0


def test_growth_from_checkin_share_and_one_questionnaire(store: FeatureStore) -> None:
    def event(kind: str, event_id: str) -> dict:
        return {"event_id": event_id, "type": kind, "member_id": "A", "ts": "2026-02-01T10:00:00"}

    result = store.ingest([register("A"), event("checkin", "c1"), event("share", "s1"),
                           event("questionnaire", "q1"), event("questionnaire", "q2")])
    assert result.accepted == 4 and "already awarded" in result.rejected[0].reason
    assert store.member_features("A")["growth_value"] == 5 + 20 + 10


@pytest.mark.secure_redis  # also over a password and over TLS
def test_consent_and_channels(store: FeatureStore) -> None:
    store.ingest([register("A", channels={"email": False})])
    features = store.member_features("A")
    assert (features["opted_out"], features["channel_sms"], features["channel_email"]) == (False, True, False)
    store.ingest([{"event_id": "c", "type": "consent", "member_id": "A", "ts": "2026-02-01T10:00:00",
                   "opted_out": True, "channels": {"sms": False}}])
    features = store.member_features("A")
    assert (features["opted_out"], features["channel_sms"], features["channel_app"]) == (True, False, True)


@pytest.mark.secure_redis  # also over a password and over TLS
def test_phone_is_never_stored_in_clear(store: FeatureStore, redis_client: redis.Redis) -> None:
    store.ingest([register("A", phone="138-0000-1111"),
                  {"event_id": "p", "type": "profile", "member_id": "A", "ts": "2026-02-01T10:00:00",
                   "phone": "13900002222", "birthday": "1990-07-04"}])
    everything = repr(dump_redis(redis_client))
    for digits in ("13800001111", "138-0000-1111", "13900002222", "1990"):
        assert digits not in everything
    profile = redis_client.hgetall(member_key("A", "p"))
    assert len(profile["phone_h"]) == 64 and profile["bday"] == "07-04"


def test_birthday_countdown(store: FeatureStore) -> None:
    store.ingest([register("A", birthday="1988-03-05"), register("B", birthday="1992-02-29")])
    assert store.member_features("A")["days_to_birthday"] == 4
    assert store.member_features("B")["days_to_birthday"] == 364  # 28 Feb 2027 from 1 Mar 2026


def _hammer(url: str, pii_key: str, worker: int, members: int, per_member: int) -> None:
    settings = Settings(_env_file=None, pii_key=pii_key)
    store = FeatureStore(client_from_url(url, decode_responses=True), Programme.from_settings(settings), clock=lambda: NOW)
    batch = [
        purchase(f"M{m}", "2026-02-01T10:00:00", 1.0, event_id=f"w{worker}-m{m}-{i}")
        for i in range(per_member) for m in range(members)
    ]
    for start in range(0, len(batch), 25):
        result = store.ingest(batch[start:start + 25])
        assert result.accepted == len(batch[start:start + 25]), result.rejected


def test_concurrent_writers_lose_no_update(store: FeatureStore, redis_server) -> None:
    members, per_member, workers = 3, 60, 4
    store.ingest([register(f"M{m}") for m in range(members)])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(redis_server.url, "test-secret", w, members, per_member))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for m in range(members):
        features = store.member_features(f"M{m}")
        assert features["orders_total"] == workers * per_member
        assert features["spend_total"] == pytest.approx(workers * per_member * 1.0)
        assert features["points_balance"] == workers * per_member


@pytest.mark.secure_redis  # also over a password and over TLS
def test_rejected_event_leaves_no_partial_change(store: FeatureStore, redis_client: redis.Redis) -> None:
    store.ingest([register("A"), purchase("A", "2026-02-01T10:00:00", 10.0, event_id="p")])
    before = dump_redis(redis_client)
    result = store.ingest([purchase("A", "2026-02-02T10:00:00", 99.0, event_id="over", points_used=500)])
    assert result.accepted == 0
    assert dump_redis(redis_client) == before


def test_names_with_control_characters_are_rejected(store: FeatureStore) -> None:
    store.ingest([register("A")])
    result = store.ingest([purchase("A", "2026-02-01T10:00:00", 1.0, event_id="p", sku="milk\x1fbread")])
    assert result.accepted == 0 and "lines.0.sku" in result.rejected[0].reason
    assert store.ingest([purchase("A", "2026-02-01T10:00:00", 1.0, event_id="q", sku="牛奶 1L")]).accepted == 1
