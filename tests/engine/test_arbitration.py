"""Arbitration ranks offers: consent first, then exclusivity and limits per checkout, then score."""

from __future__ import annotations

from engine.arbitration import Candidate, Outlook, Response, arbitrate, expected_value
from engine.coupons import CouponTerms
from engine.settings import ArbitrationRules

RULES = ArbitrationRules()
MEMBER = {"avg_basket": 60.0, "coupons_redeemed": 0, "opted_out": False, "channel_sms": True, "channel_app": False}
OFF50_200 = CouponTerms("OFF50_200", "amount_off", 50, valid_days=7, min_spend=200)
OFF5 = CouponTerms("OFF5", "amount_off", 5, valid_days=7)
PCT20 = CouponTerms("PCT20", "percent_off", 20, valid_days=14)


def coupon(rule: str, terms: CouponTerms = OFF5, priority: int = 50, **kw) -> Candidate:
    return Candidate(rule_id=rule, kind="coupon", priority=priority, reason=rule, coupon=terms, **kw)


def recommend(rule: str, priority: int = 50, **kw) -> Candidate:
    return Candidate(rule_id=rule, kind="recommend", priority=priority, reason=rule, skus=("bread",), **kw)


def test_an_opted_out_member_gets_no_marketing_but_still_recommendations() -> None:
    ranked, dropped = arbitrate([coupon("a"), recommend("b")], MEMBER | {"opted_out": True}, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["b"]
    assert dropped[0].why == "the member opted out of marketing"


def test_priority_dominates_and_expected_value_breaks_ties() -> None:
    ranked, _ = arbitrate([recommend("low", priority=10), coupon("high", priority=90)], MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["high", "low"]
    ranked, _ = arbitrate([coupon("pricey", OFF50_200), recommend("cheap")], MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["cheap", "pricey"]  # 50 off costs more than it earns


def test_expected_value_follows_the_documented_formula() -> None:
    propensity, value = expected_value(coupon("x", OFF50_200), MEMBER, 30.0, RULES)
    assert propensity == 0.12
    assert value == round(0.12 * (0.25 * 200 - 50), 4)  # threshold coupon: spend is at least 200
    _, pct = expected_value(coupon("y", PCT20), MEMBER, 30.0, RULES)
    assert pct == round(0.12 * (0.25 * 60 - 0.2 * 60), 4)
    capped = CouponTerms("PCT20", "percent_off", 20, valid_days=14, max_value=5)
    _, capped_value = expected_value(coupon("c", capped), MEMBER, 30.0, RULES)
    assert capped_value == round(0.12 * (0.25 * 60 - 5), 4)  # 20% of 60 is 12, capped at 5
    loyal, _ = expected_value(coupon("z"), MEMBER | {"coupons_redeemed": 9}, 30.0, RULES)
    assert loyal == round(0.12 * 1.5, 4)


def test_one_coupon_per_checkout_and_a_short_list() -> None:
    candidates = [coupon("a", priority=60), coupon("b", priority=50)] + [recommend(f"r{i}", priority=40) for i in range(5)]
    ranked, dropped = arbitrate(candidates, MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["a", "r0", "r1"]
    assert any(d.candidate.rule_id == "b" and "coupon" in d.why for d in dropped)


def test_an_exclusive_offer_stands_alone() -> None:
    ranked, dropped = arbitrate([coupon("vip", priority=90, exclusive=True), recommend("r")], MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["vip"]
    ranked, _ = arbitrate([recommend("r", priority=90), coupon("vip", priority=50, exclusive=True)], MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["r"]


def test_messages_go_only_to_accepted_channels() -> None:
    sms = Candidate("s", "message", 50, "s", channel="sms")
    app = Candidate("a", "message", 50, "a", channel="app")
    ranked, dropped = arbitrate([sms, app], MEMBER, 30.0, "pos", RULES)
    assert [r.candidate.rule_id for r in ranked] == ["s"]
    assert dropped[0].why == "the member does not accept app"


def test_ranking_is_deterministic() -> None:
    candidates = [recommend(f"r{i}") for i in range(6)]
    first = arbitrate(candidates, MEMBER, 30.0, "pos", RULES)
    assert all(arbitrate(list(reversed(candidates)), MEMBER, 30.0, "pos", RULES) == first for _ in range(3))


def test_a_response_model_values_a_coupon_by_its_uplift_not_its_redemption() -> None:
    # margin x uplift - p(redeem) x cost: the member who would buy anyway makes the coupon a loss.
    persuadable = Outlook(response=Response(redeem=0.5, uplift=40.0, version="7"))
    sure_thing = Outlook(response=Response(redeem=0.9, uplift=0.0, version="7"))
    p, value = expected_value(coupon("x", OFF5), MEMBER, 30.0, RULES, persuadable)
    assert (p, value) == (0.5, round(0.25 * 40.0 - 0.5 * 5, 4))
    assert expected_value(coupon("x", OFF5), MEMBER, 30.0, RULES, sure_thing) == (0.9, round(-0.9 * 5, 4))
    ranked, _ = arbitrate([coupon("x", OFF5)], MEMBER, 30.0, "pos", RULES, persuadable)
    assert ranked[0].model_version == "7" and ranked[0].propensity == 0.5


def test_without_a_response_model_the_hand_set_propensity_stays() -> None:
    assert expected_value(coupon("x", OFF5), MEMBER, 30.0, RULES, Outlook()) == expected_value(
        coupon("x", OFF5), MEMBER, 30.0, RULES)
    ranked, _ = arbitrate([coupon("x", OFF5), recommend("r")], MEMBER, 30.0, "pos", RULES,
                          Outlook(response=Response(0.4, 10.0, "3")))
    assert {r.candidate.rule_id: r.model_version for r in ranked} == {"x": "3", "r": None}


def test_lifetime_value_raises_the_expected_spend_over_the_coupons_validity() -> None:
    # LTV 900 over 90 days: 140 yuan expected while a 14-day coupon is live, above the 60 average basket.
    _, with_ltv = expected_value(coupon("x", PCT20), MEMBER, 30.0, RULES, Outlook(ltv=900.0, ltv_horizon_days=90))
    _, without = expected_value(coupon("x", PCT20), MEMBER, 30.0, RULES)
    spend = 900.0 * 14 / 90
    assert with_ltv == round(0.12 * (0.25 * spend - 0.2 * spend), 4) and with_ltv > without
