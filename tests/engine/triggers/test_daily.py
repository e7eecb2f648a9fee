"""The daily run: every member's daily rules once per day, resumable after a crash, shared by workers."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.keys import DAILY_WORKERS_GROUP, daily_run_chunks_key, daily_run_key, daily_run_work_key, exposures_key
from engine.triggers import DailyRun
from tests.helpers.events import register
from tests.helpers.rules import coupon_rule
from tests.helpers.triggers import AS_OF, day_after, lapsed_and_recent

pytestmark = pytest.mark.cluster


def test_lapsed_members_get_one_coupon_entry_each_and_the_recent_none(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule()})
    lapsed, recent = lapsed_and_recent(triggers, lapsed=12, recent=8)
    report = triggers.daily(chunk_size=5).run(AS_OF)
    assert report.status == "done" and report.chunks == 4 and report.chunks_done == 4
    assert report.stats["members"] == 20 and report.stats["emitted"] == 12
    entries = triggers.outbox()
    assert sorted(e["member"] for e in entries) == lapsed
    assert {e["key"] for e in entries} == {f"lapsed|{m}|d{AS_OF}" for m in lapsed}
    assert all(e["kind"] == "coupon" and e["body"]["template"] == "M200_50" for e in entries)
    assert not set(recent) & {e["member"] for e in entries}


def test_running_the_same_day_twice_emits_nothing_the_second_time(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule(limits="{budget: {coupons: 1000}}")})
    lapsed, _ = lapsed_and_recent(triggers, lapsed=6, recent=2)
    triggers.daily(chunk_size=3).run(AS_OF)
    again = triggers.daily(chunk_size=3, worker="other").run(AS_OF)
    assert again.status == "done" and again.chunks_this_call == 0
    # Even with the run's record gone (a run started afresh), the markers and tokens hold.
    triggers.redis.delete(daily_run_key(AS_OF), daily_run_work_key(AS_OF), daily_run_chunks_key(AS_OF))
    fresh = triggers.daily(chunk_size=3).run(AS_OF)
    assert fresh.stats["emitted"] == 0 and fresh.stats["already"] == 6
    assert len(triggers.outbox()) == 6
    assert triggers.limits.usage(triggers.rules.compiled.rules[0].checked.rule, triggers.clock())[0].coupons_used == 6
    # The next day is a new period, but the rule's budget counts on and nothing else changed.
    next_day = triggers.daily(chunk_size=3).run(day_after(AS_OF))
    assert next_day.stats["emitted"] == 6 and len(triggers.outbox()) == 12


def test_a_run_that_crashed_mid_chunk_resumes_and_completes_once(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule()})
    lapsed, _ = lapsed_and_recent(triggers, lapsed=10, recent=5)

    class CrashAfterEmitting(DailyRun):
        """Dies after the second chunk's emission, before its ack: the worst moment."""

        chunks = 0

        def evaluate_members(self, member_ids, as_of, run=None):
            result = super().evaluate_members(member_ids, as_of, run)
            CrashAfterEmitting.chunks += 1
            if CrashAfterEmitting.chunks == 2:
                raise SystemExit("killed")
            return result

    crashing = triggers.daily(worker="w1", kind=CrashAfterEmitting, chunk_size=4)
    with pytest.raises(SystemExit):
        crashing.run(AS_OF)
    assert triggers.daily(worker="w1").report(AS_OF).chunks_done == 1
    resumed = triggers.daily(worker="w1", chunk_size=4).run(AS_OF)  # the same worker name picks its chunk up first
    assert resumed.status == "done" and resumed.chunks_done == 4
    keys = Counter(e["key"] for e in triggers.outbox())
    assert sorted(k.split("|")[1] for k in keys) == lapsed
    assert max(keys.values()) == 1  # the crashed chunk's entries were not added again (its markers were set)
    # The run's figures count the crashed chunk's emissions once: emitted by this run, not "already".
    stats = resumed.stats
    assert (stats["members"], stats["emitted"], stats["entries"], stats["already"]) == (15, 10, 10, 0)


def test_a_slow_worker_whose_chunk_was_claimed_counts_nothing_twice(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule()})
    lapsed, _ = lapsed_and_recent(triggers, lapsed=6, recent=3)

    class Slow(DailyRun):
        """Evaluates its first chunk, then (before committing it) another worker claims and finishes the run."""

        def evaluate_members(self, member_ids, as_of, run=None):
            result = super().evaluate_members(member_ids, as_of, run)
            if not getattr(self, "overtaken", False):
                self.overtaken = True
                other = triggers.daily(worker="fast", chunk_size=3, claim_idle_seconds=0.0001).run(AS_OF)
                assert other.status == "done"
            return result

    slow = triggers.daily(worker="slow", kind=Slow, chunk_size=3)
    report = slow.run(AS_OF)
    assert report.status == "done" and report.chunks_done == report.chunks == 3
    assert (report.stats["members"], report.stats["emitted"], report.stats["already"]) == (9, 6, 0)
    assert sorted(e["member"] for e in triggers.outbox()) == lapsed


def test_another_worker_claims_the_chunk_of_a_dead_one(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule()})
    lapsed, _ = lapsed_and_recent(triggers, lapsed=9, recent=0)
    run = triggers.daily(worker="dead", chunk_size=3)
    run.plan(AS_OF)
    work = daily_run_work_key(AS_OF)
    triggers.redis.xreadgroup(DAILY_WORKERS_GROUP, "dead", {work: ">"}, count=1)  # took a chunk, then died
    report = triggers.daily(worker="alive", chunk_size=3, claim_idle_seconds=0.0001).run(AS_OF)
    assert report.status == "done" and report.chunks_done == 3
    assert sorted(e["member"] for e in triggers.outbox()) == lapsed


def test_budget_exhaustion_mid_run_stops_issuing_exactly_at_the_budget(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule(limits="{budget: {coupons: 7}}")})
    lapsed_and_recent(triggers, lapsed=20, recent=0)
    report = triggers.daily(chunk_size=3).run(AS_OF)
    assert report.stats["emitted"] == 7 and len(triggers.outbox()) == 7
    assert report.refused == {"overall budget of coupons spent": 13}
    rule = triggers.rules.compiled.rules[0].checked.rule
    assert triggers.limits.usage(rule, triggers.clock())[0].coupons_used == 7


def test_held_out_members_get_nothing_but_are_recorded_for_lift(make_triggers) -> None:
    triggers = make_triggers({"lapsed.yaml": coupon_rule(holdout=0.5)})
    lapsed, _ = lapsed_and_recent(triggers, lapsed=40, recent=0)
    report = triggers.daily(chunk_size=10).run(AS_OF)
    treated = {e["member"] for e in triggers.outbox()}
    assert report.stats["held_out"] == 40 - len(treated) and 5 < len(treated) < 35
    day = triggers.store.programme.day_of(triggers.daily().moment(AS_OF))
    exposed = triggers.redis.hgetall(exposures_key("lapsed", day))
    assert {m for m, g in exposed.items() if g == "t"} == treated
    assert {m for m, g in exposed.items() if g == "h"} == set(lapsed) - treated


def test_a_run_for_a_past_day_leaves_out_members_who_registered_after_it(make_triggers) -> None:
    from datetime import datetime

    triggers = make_triggers({"welcome.yaml": coupon_rule("everyone", when="registered")})
    triggers.set_now(datetime(2026, 3, 20, 10, 0))
    triggers.ingest([register("EARLY", datetime(2026, 3, 1, 9, 0)), register("LATER", datetime(2026, 3, 15, 9, 0))])
    report = triggers.daily().run(AS_OF)  # AS_OF is 2026-03-10
    assert [e["member"] for e in triggers.outbox()] == ["EARLY"]
    assert report.stats["members"] == 2  # both were looked at
