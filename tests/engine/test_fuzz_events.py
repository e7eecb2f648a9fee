"""Fuzzing event payloads: batches mixing good events with huge, deeply nested, mistyped, unicode, NaN/inf,
negative and far-away-in-time ones.

Every batch is answered (no exception); every event is counted once (accepted, duplicate or rejected
with its index and reason); the good ones are applied exactly once and the rejected ones leave nothing:
the store afterwards is exactly what applying only the accepted events gives, and a replay applies
nothing twice.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from engine.events import parse_event
from engine.feature_store import FeatureStore
from engine.programme import Programme
from tests.helpers.clock import NOW
from tests.helpers.fuzz import fuzz_settings
from tests.helpers.redis_dump import dump_redis

pytestmark = [pytest.mark.fuzz, pytest.mark.cluster]

MEMBERS = ["A", "B", "C"]
timestamps = st.datetimes(min_value=NOW - timedelta(days=200), max_value=NOW).map(lambda t: t.isoformat())
money = st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2))
short = st.text(alphabet="abcdeXYZ019_-", min_size=1, max_size=8)
line = st.fixed_dictionaries({"sku": short, "qty": st.sampled_from([1, 2, 0.5, 3]), "amount": money},
                             optional={"category": st.sampled_from(["dairy", "bakery", "饮料"])})


def event(kind: str, **fields) -> st.SearchStrategy[dict]:
    # A few shared event ids, so batches hold duplicates too.
    base = {"event_id": st.sampled_from(["e1", "e2", "e3"]) | short, "type": st.just(kind),
            "member_id": st.sampled_from(MEMBERS), "ts": timestamps}
    return st.fixed_dictionaries({**base, **fields})


good_event = st.one_of(
    event("register", store_id=st.sampled_from(["S001", "S002"]), phone=st.just("13812345678")),
    event("purchase", lines=st.lists(line, min_size=1, max_size=3), points_used=st.sampled_from([0, 0, 50, 10**6])),
    event("checkin"), event("share"), event("questionnaire"),
    event("referral", referred_member_id=st.sampled_from(MEMBERS + ["NEW1"])),
    event("coupon_redeemed", code=short, value=money),
    event("profile", birthday=st.dates().map(str), region=st.sampled_from(["north", "south"])),
    event("consent", opted_out=st.booleans(), channels=st.fixed_dictionaries({"sms": st.booleans()})),
)

def deep(levels: int) -> list:
    """A list nested ``levels`` deep."""
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


nested = st.recursive(st.integers() | st.text(max_size=5), lambda inner: st.lists(inner, max_size=2)
                      | st.dictionaries(st.text(max_size=3), inner, max_size=2), max_leaves=30)
bad_value = st.one_of(
    st.just("x" * 100_000), st.just(deep(500)), nested,
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not math.isfinite(x)),
    st.integers(-(10**30), -1), st.booleans(), st.none(), st.text(max_size=20),
    st.sampled_from(["9999-12-31T23:59:59", "0001-01-01T00:00:00", "2030-01-01", "1969-12-31T23:59:59",
                     "2026-02-30", "\u202e\u0000", "会员", "🛒" * 100, "", " ", "1e308", "-0"]),
)


@st.composite
def bad_event(draw: st.DrawFn) -> object:
    """A good event with one field spoiled, one field missing or one too many, or not an event at all."""
    raw = dict(draw(good_event))
    how = draw(st.sampled_from(["spoil", "spoil", "spoil-line", "drop", "extra", "replace"]))
    if how == "spoil":
        raw[draw(st.sampled_from(sorted(raw)))] = draw(bad_value)
    elif how == "spoil-line" and raw["type"] == "purchase":
        raw["lines"] = [{**raw["lines"][0], draw(st.sampled_from(["qty", "amount", "sku"])): draw(bad_value)}]
    elif how == "drop":
        del raw[draw(st.sampled_from(sorted(raw)))]
    elif how == "extra":
        raw[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in raw))] = draw(bad_value)
    else:
        return draw(bad_value)
    return raw


def is_valid(raw: object) -> bool:
    try:
        parse_event(raw)
    except ValueError:
        return False
    return True


REGISTERED = [{"event_id": f"reg-{m}", "type": "register", "member_id": m, "ts": "2025-06-01T09:00:00"}
              for m in MEMBERS]


@given(batch=st.lists(good_event | bad_event(), min_size=1, max_size=12).map(lambda events: REGISTERED + events))
@fuzz_settings(120)
def test_a_batch_applies_its_good_events_once_and_its_bad_ones_not_at_all(
    batch: list, redis_client: redis.Redis, programme: Programme
) -> None:
    redis_client.flushall()
    result = FeatureStore(redis_client, programme, clock=lambda: NOW).ingest(batch)

    # Every event is counted once; every rejection names its index and says why.
    assert result.accepted + result.duplicates + len(result.rejected) == len(batch)
    indexes = [r.index for r in result.rejected]
    assert indexes == sorted(set(indexes)) and all(0 <= i < len(batch) for i in indexes)
    assert all(r.reason.strip() for r in result.rejected)
    assert {i for i, raw in enumerate(batch) if not is_valid(raw)} <= set(indexes)
    applied = {(e.member_id, e.event_id) for e in result.applied}
    assert len(applied) == len(result.applied) == result.accepted

    # Nothing half-applied: the store holds exactly what the accepted events alone make.
    after = dump_redis(redis_client)
    redis_client.flushall()
    alone = FeatureStore(redis_client, programme, clock=lambda: NOW).apply_events(result.applied)
    assert (alone.accepted, alone.rejected) == (result.accepted, [])
    assert dump_redis(redis_client) == after

    # A replay applies none of them again.
    replay = FeatureStore(redis_client, programme, clock=lambda: NOW).ingest(batch)
    assert not applied & {(e.member_id, e.event_id) for e in replay.applied}


def test_the_bad_events_are_bad_enough() -> None:
    """The strategy really produces what the issue lists: each kind is rejected by validation on its own."""
    base = {"event_id": "e", "type": "purchase", "member_id": "A", "ts": "2026-02-01T10:00:00",
            "lines": [{"sku": "milk", "qty": 1, "amount": 3.5}]}
    spoiled = [
        {**base, "member_id": "x" * 100_000}, {**base, "lines": deep(500)},
        {**base, "lines": [{"sku": "milk", "qty": float("nan"), "amount": 1}]},
        {**base, "lines": [{"sku": "milk", "qty": 1, "amount": float("inf")}]},
        {**base, "lines": [{"sku": "milk", "qty": -2, "amount": 1}]}, {**base, "ts": "0001-01-01T00:00:00"},
        {**base, "member_id": "会员"}, {**base, "points_used": "many"}, {**base, "surprise": 1},
        json.dumps(base)[:-5],
    ]
    assert not any(is_valid(raw) for raw in spoiled)
    assert is_valid(base)


def test_far_future_events_are_rejected_and_leave_nothing(redis_client: redis.Redis, programme: Programme) -> None:
    store = FeatureStore(redis_client, programme, clock=lambda: NOW)
    store.ingest([{"event_id": "r", "type": "register", "member_id": "A", "ts": "2026-01-01T09:00:00"}])
    before = dump_redis(redis_client)
    future = (NOW + timedelta(days=3650)).isoformat()
    result = store.ingest([{"event_id": "f", "type": "checkin", "member_id": "A", "ts": future},
                           {"event_id": "g", "type": "checkin", "member_id": "A", "ts": "9999-12-31T23:59:59"}])
    assert [r.index for r in result.rejected] == [0, 1] and "future" in result.rejected[0].reason
    assert dump_redis(redis_client) == before
    assert datetime.fromisoformat(future) > NOW
