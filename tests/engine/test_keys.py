"""The Redis key schema: the formats other tools read, one kind per builder, the slots that must agree."""

from __future__ import annotations

from datetime import date

from redis.crc import key_slot

from engine.keys import (
    API_KEYS,
    AUDIT_STREAM,
    EVENTS_STREAM,
    KINDS,
    MEMBER_PROFILES,
    OUTBOX_DEAD_LETTERS,
    OUTBOX_DEFERRED,
    OUTBOX_STREAM,
    REJECTED_EVENTS_STREAM,
    answer_key,
    coupon_key,
    daily_run_chunks_key,
    daily_run_key,
    daily_run_planning_key,
    daily_run_work_key,
    delivery_marker_key,
    emission_marker_key,
    event_key,
    exposures_key,
    hash_tag,
    issuance_key,
    kind_of,
    member_key,
    member_of,
    recommendations_key,
    rule_budget_keys,
    rule_cap_key,
    rule_counters_key,
)
from engine.member_state import PARTS, PROFILE

RUN_DAY = date(2026, 3, 10)


def test_the_key_formats_are_the_documented_ones() -> None:
    # The README's table and the tools that read Redis directly depend on these spellings.
    assert [member_key("M42", part) for part in PARTS] == [
        "m:{M42}:p", "m:{M42}:mo", "m:{M42}:d", "m:{M42}:c", "m:{M42}:i"]
    assert event_key("M42", "e-1") == "m:{M42}:e:e-1"
    assert recommendations_key("M42") == "m:{M42}:r"
    assert issuance_key("M42", "req-9") == "m:{M42}:cpi:req-9"
    assert rule_cap_key("M42", "lapsed-30d") == "m:{M42}:rl:lapsed-30d"
    assert emission_marker_key("M42", "lapsed-30d", "d2026-03-10") == "m:{M42}:ob:lapsed-30d|d2026-03-10"
    assert delivery_marker_key("M42", "lapsed-30d|M42|d2026-03-10", 0) == "m:{M42}:dl:lapsed-30d|M42|d2026-03-10#0"
    assert answer_key("M42", "till3-000123") == "m:{M42}:nbo:till3-000123"
    assert MEMBER_PROFILES == "m:{*}:p"
    assert coupon_key("ABCDEFGHJKMNPQRS") == "cp:{ABCDEFGHJKMNPQRS}"
    assert rule_budget_keys("lapsed-30d") == ["rl:{lapsed-30d}:used", "rl:{lapsed-30d}:holds",
                                              "rl:{lapsed-30d}:records", "rl:{lapsed-30d}:committed"]
    assert exposures_key("lapsed-30d", 20522) == "mx:{lapsed-30d}:20522"
    assert rule_counters_key("lapsed-30d") == "ms:{lapsed-30d}"
    assert [daily_run_key(RUN_DAY), daily_run_chunks_key(RUN_DAY), daily_run_work_key(RUN_DAY),
            daily_run_planning_key(RUN_DAY)] == ["run:{daily:2026-03-10}", "run:{daily:2026-03-10}:chunks",
                                                 "run:{daily:2026-03-10}:work", "run:{daily:2026-03-10}:planning"]
    assert (EVENTS_STREAM, REJECTED_EVENTS_STREAM, AUDIT_STREAM, API_KEYS) == (
        "nbo:events", "nbo:events:rejected", "nbo:audit", "nbo:keys")
    assert (OUTBOX_STREAM, OUTBOX_DEFERRED, OUTBOX_DEAD_LETTERS) == (
        "nbo:{outbox}", "nbo:{outbox}:deferred", "nbo:{outbox}:dead")


def test_each_builder_makes_keys_of_its_own_kind() -> None:
    built = [
        ("answer", answer_key("M1", "r-1")),
        ("event dedup", event_key("M1", "coupon:cpi:x")),  # an event id may look like another suffix
        ("coupon issuance", issuance_key("M1", "nbo:r-1:rule")),
        ("member rule cap", rule_cap_key("M1", "rule")),
        ("trigger emission marker", emission_marker_key("M1", "rule", "e:evt-1")),
        ("trigger delivery marker", delivery_marker_key("M1", "rule|M1|d2026-03-10", 2)),
        ("member recommendations", recommendations_key("M1")),
        ("member profile", member_key("M1", PROFILE)),
        *(("member state", member_key("M1", part)) for part in PARTS if part != PROFILE),
        ("coupon", coupon_key("ABCDEFGHJKMNPQRS")),
        *(("rule budget", key) for key in rule_budget_keys("rule")),
        ("rule exposures", exposures_key("rule", 20522)),
        ("rule counters", rule_counters_key("rule")),
        *(("daily run", build(RUN_DAY)) for build in (daily_run_key, daily_run_chunks_key, daily_run_work_key,
                                                      daily_run_planning_key)),
        *(("outbox", key) for key in (OUTBOX_STREAM, OUTBOX_DEFERRED, OUTBOX_DEAD_LETTERS)),
        ("events stream", EVENTS_STREAM),
        ("rejected events", REJECTED_EVENTS_STREAM),
        ("audit stream", AUDIT_STREAM),
        ("api keys", API_KEYS),
    ]
    assert [(kind_of(key).name, key) for _, key in built] == built
    assert {kind.name for kind in KINDS} == {name for name, _ in built}  # a builder for every kind
    assert kind_of("m:{M1}:unheard-of") is None and kind_of("session:abc") is None


def test_keys_one_script_touches_share_a_slot() -> None:
    member = [member_key("M7", part) for part in PARTS] + [event_key("M7", "e-1"), rule_cap_key("M7", "r"),
                                                           answer_key("M7", "q"), issuance_key("M7", "i")]
    assert {key_slot(key.encode()) for key in member} == {key_slot(b"M7")}
    assert {hash_tag(key) for key in member} == {"M7"} and {member_of(key) for key in member} == {"M7"}
    assert len({key_slot(key.encode()) for key in rule_budget_keys("lapsed-30d")}) == 1
    assert key_slot(OUTBOX_DEFERRED.encode()) == key_slot(OUTBOX_STREAM.encode())  # the release script moves between them
    run = [daily_run_key(RUN_DAY), daily_run_chunks_key(RUN_DAY), daily_run_work_key(RUN_DAY)]
    assert len({key_slot(key.encode()) for key in run}) == 1
