"""Evaluating a trigger's rules: every rule that holds fires, deterministically, and says why."""

from __future__ import annotations

import resource
from datetime import datetime

from engine.rules.limits import holdout_draw, in_holdout
from tests.helpers.rules import context, rule, runtime


def test_overlapping_rules_all_fire(rules_dir, member) -> None:
    # durable_rules events are consumed by the first matching rule; facts let every rule fire.
    rt = runtime(rules_dir({
        "a.yaml": rule("big-basket", "basket_total >= 50", then="[{tag: a}]"),
        "b.yaml": rule("any-basket", "basket_total > 0", then="[{tag: b}]"),
        "c.yaml": rule("dairy", "basket_categories contains dairy", then="[{tag: c}]"),
        "d.yaml": rule("tiny", "basket_total < 10", then="[{tag: d}]"),
    }))
    evaluation = rt.evaluate("checkout", member, context(basket=[{"sku": "MILK", "price": 60.0, "category": "dairy"}]))
    assert {f.rule_id for f in evaluation.firings} == {"big-basket", "any-basket", "dairy"}


def test_firings_come_by_priority_then_id_and_are_deterministic(rules_dir, member) -> None:
    rt = runtime(rules_dir({
        "a.yaml": rule("b-low", "basket_total > 0", extra="priority: 10\n"),
        "b.yaml": rule("a-high", "basket_total > 0", extra="priority: 90\n"),
        "c.yaml": rule("c-high", "basket_total > 0", extra="priority: 90\n"),
    }))
    ctx = context(basket=[{"sku": "A", "price": 5.0}])
    answers = {tuple(f.rule_id for f in rt.evaluate("checkout", member, ctx).firings) for _ in range(200)}
    assert answers == {("a-high", "c-high", "b-low")}


def test_a_rule_of_other_trigger_does_not_fire(rules_dir, member) -> None:
    rt = runtime(rules_dir({"a.yaml": rule("daily", "registered", trigger="schedule.daily"),
                            "b.yaml": rule("on-purchase", "basket_total > 0", trigger="event.purchase")}))
    assert rt.evaluate("checkout", member, context()).firings == ()
    assert [f.rule_id for f in rt.evaluate("schedule.daily", member, context()).firings] == ["daily"]
    purchase = context(basket=[{"sku": "A", "price": 3.0}])
    assert [f.rule_id for f in rt.evaluate("event.purchase", member, purchase).firings] == ["on-purchase"]


def test_a_firing_says_which_conditions_held(rules_dir, member) -> None:
    rt = runtime(rules_dir({"a.yaml": """
        id: why
        name: why
        trigger: checkout
        when:
          any:
            - basket_total >= 100
            - basket_categories contains dairy
            - tier == gold
        then: [{issue_coupon: {template: M200_50, channel: sms}}]
        scope: {regions: [north]}
    """}))
    firing, = rt.evaluate("checkout", member, context(basket=[{"sku": "M", "price": 5.0, "category": "dairy"}])).firings
    assert firing.conditions == ("basket_categories contains dairy", "scope: region in [north]",
                                 "member accepts marketing (not opted out)", "member accepts sms")
    assert firing.coupons[0].template == "M200_50" and firing.coupons[0].min_spend == 200
    assert firing.face_value == 50


def test_a_missing_value_fails_a_condition_and_its_negation(rules_dir, member) -> None:
    assert member["recency_days"] is None  # never bought
    rt = runtime(rules_dir({
        "a.yaml": rule("lapsed", "recency_days >= 30", trigger="schedule.daily"),
        "b.yaml": rule("not-recent", "not recency_days < 30", trigger="schedule.daily"),
        "c.yaml": rule("never-bought", "recency_days is null", trigger="schedule.daily"),
    }))
    assert [f.rule_id for f in rt.evaluate("schedule.daily", member, context()).firings] == ["never-bought"]


def test_a_rule_of_only_negations_does_not_match_durable_rules_state(rules_dir, member) -> None:
    # Unanchored, a rule that holds for durable_rules' own session state fires forever (measured).
    rt = runtime(rules_dir({"a.yaml": rule("no-churn-score", "churn_probability is null", trigger="schedule.daily")}))
    assert [f.rule_id for f in rt.evaluate("schedule.daily", member, context()).firings] == ["no-churn-score"]


def test_opted_out_members_get_no_marketing_but_still_get_recommendations(rules_dir, member) -> None:
    rt = runtime(rules_dir({
        "a.yaml": rule("coupon", "basket_total > 0", then="[{issue_coupon: {template: PCT20}}]"),
        "b.yaml": rule("reco", "basket_total > 0", then="[{recommend: {categories: [bakery]}}]"),
        "c.yaml": rule("sms", "basket_total > 0", then="[{send_message: {channel: sms, template: x}}]"),
    }))
    basket = context(basket=[{"sku": "A", "price": 5.0}])
    assert {f.rule_id for f in rt.evaluate("checkout", member, basket).firings} == {"coupon", "reco", "sms"}
    assert {f.rule_id for f in rt.evaluate("checkout", {**member, "opted_out": True}, basket).firings} == {"reco"}
    no_sms = {**member, "channel_sms": False}
    assert {f.rule_id for f in rt.evaluate("checkout", no_sms, basket).firings} == {"coupon", "reco"}


def test_scope_and_active_window_limit_where_and_when(rules_dir, member) -> None:
    rt = runtime(rules_dir({"a.yaml": rule("spring", "basket_total > 0", extra=(
        "scope: {stores: [S001, S002], channels: [pos]}\nactive: {from: 2026-03-01, to: 2026-03-31}\n"))}))
    basket = [{"sku": "A", "price": 5.0}]

    def fires(at: datetime, store: str, channel: str) -> bool:
        return bool(rt.evaluate("checkout", member, context(at=at, store_id=store, channel=channel, basket=basket)).firings)

    assert fires(datetime(2026, 3, 1, 0, 5), "S001", "pos") and fires(datetime(2026, 3, 31, 23, 55), "S002", "pos")
    assert not fires(datetime(2026, 2, 28, 23, 55), "S001", "pos")
    assert not fires(datetime(2026, 4, 1, 0, 5), "S001", "pos")
    assert not fires(datetime(2026, 3, 10, 12), "S003", "pos")
    assert not fires(datetime(2026, 3, 10, 12), "S001", "app")


def test_active_window_is_in_the_stores_time_zone(rules_dir, member) -> None:
    from zoneinfo import ZoneInfo

    rt = runtime(rules_dir({"a.yaml": rule("from-march", "registered", trigger="schedule.daily",
                                           extra="active: {from: 2026-03-01}\n")}))
    utc = ZoneInfo("UTC")
    # 2026-02-28 17:00 UTC is already 1 March 01:00 in Shanghai.
    assert rt.evaluate("schedule.daily", member, context(at=datetime(2026, 2, 28, 17, tzinfo=utc))).firings
    assert not rt.evaluate("schedule.daily", member, context(at=datetime(2026, 2, 28, 15, tzinfo=utc))).firings


def test_festival_calendar_and_moment_fields(rules_dir, member) -> None:
    rt = runtime(rules_dir({
        "a.yaml": rule("before-mid-autumn", "days_to_mid_autumn between 1 and 7", trigger="schedule.daily"),
        "b.yaml": rule("weekend-morning", "'day_of_week in [sat, sun] and hour < 12'", trigger="schedule.daily"),
    }))
    saturday_before = context(at=datetime(2026, 9, 19, 9))  # Mid-Autumn is 25 September 2026
    assert {f.rule_id for f in rt.evaluate("schedule.daily", member, saturday_before).firings} == {
        "before-mid-autumn", "weekend-morning"}
    assert not rt.evaluate("schedule.daily", member, context(at=datetime(2026, 9, 28, 9))).firings  # a Monday after


def test_text_with_quotes_backslashes_and_chinese_and_tiny_numbers(rules_dir, member) -> None:
    rt = runtime(rules_dir({
        "a.yaml": rule("backslash", r"""'store == "北京\\1"'"""),  # the value 北京\1
        "b.yaml": rule("quote", "\"store == 'q\\\"x'\""),  # the value q"x
        "c.yaml": rule("tiny", "churn_probability > 0.00001", trigger="schedule.daily"),
    }))
    assert [f.rule_id for f in rt.evaluate("checkout", member, context(store_id="北京\\1")).firings] == ["backslash"]
    assert [f.rule_id for f in rt.evaluate("checkout", member, context(store_id='q"x')).firings] == ["quote"]
    assert not rt.evaluate("checkout", member, context(store_id="北京")).firings
    assert rt.evaluate("schedule.daily", {**member, "churn_probability": 2e-05}, context()).firings
    assert not rt.evaluate("schedule.daily", {**member, "churn_probability": 1e-05}, context()).firings


def test_holdout_is_sticky_per_rule_and_member_and_flagged(rules_dir, member) -> None:
    rt = runtime(rules_dir({"a.yaml": rule("held", "basket_total > 0", extra="holdout: 0.3\n")}))
    basket = [{"sku": "A", "price": 5.0}]
    flags = {}
    for i in range(400):
        member_id = f"M{i}"
        evaluation = rt.evaluate("checkout", member, context(member_id=member_id, basket=basket))
        flags[member_id] = evaluation.firings[0].holdout
        assert evaluation.holdout == (("held",) if flags[member_id] else ())
        assert evaluation.offers == (() if flags[member_id] else evaluation.firings)
    assert 0.22 < sum(flags.values()) / len(flags) < 0.38
    again = {m: rt.evaluate("checkout", member, context(member_id=m, basket=basket)).firings[0].holdout for m in flags}
    assert again == flags
    assert all(in_holdout("held", m, 0.3) == held for m, held in flags.items())
    assert holdout_draw("held", "M1") != holdout_draw("other-rule", "M1")


def test_durable_rules_state_stays_flat_over_many_evaluations(rules_dir, member) -> None:
    rt = runtime(rules_dir({f"r{i}.yaml": rule(f"r{i}", f"basket_total > {i}") for i in range(20)}))
    basket = context(basket=[{"sku": "A", "price": 12.0}])
    for _ in range(2000):  # warm: durable_rules allocates its session once
        rt.evaluate("checkout", member, basket)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(20000):
        assert len(rt.evaluate("checkout", member, basket).firings) == 12
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 5_000
    live = rt._live
    assert all(ruleset.facts() == [] for rulesets in live.handles.values() for ruleset in rulesets)
