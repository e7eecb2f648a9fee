"""Idempotent reservations: what lets the automated triggers retry after a crash without spending twice."""

from __future__ import annotations

import pytest
import redis

from engine.rules import Ask, RuleLimits
from tests.helpers.clock import NOW
from tests.helpers.rules import TZ, limited_rule

pytestmark = pytest.mark.cluster


@pytest.fixture
def limits(redis_client: redis.Redis) -> RuleLimits:
    return RuleLimits(redis_client, TZ, hold_seconds=60)


def test_a_retried_token_takes_nothing_twice(limits: RuleLimits) -> None:
    rule = limited_rule(limits={"per_member": "1 per 30d", "budget": {"coupons": 2}})
    token = "lapsed-30d|M1|d2026-03-01"
    first = limits.reserve(rule, "M1", NOW, token=token)
    assert first.granted and limits.commit(first)
    again = limits.reserve(rule, "M1", NOW, token=token)  # a re-run after a crash: the same reservation
    assert again.granted and limits.commit(again)
    assert limits.usage(rule, NOW)[0].coupons_used == 1
    assert limits.reserve(rule, "M2", NOW).granted  # the second coupon of the budget is still there
    assert not limits.reserve(rule, "M1", NOW, token="lapsed-30d|M1|d2026-03-02").granted  # the cap holds


def test_reserve_many_serves_asks_in_order_up_to_the_budget(limits: RuleLimits) -> None:
    rule = limited_rule(limits={"budget": {"coupons": 3}})
    asks = [Ask(rule, f"M{i}", NOW, token=f"t{i}") for i in range(5)]
    granted = [r.granted for r in limits.reserve_many(asks)]
    assert granted == [True, True, True, False, False]
    assert limits.commit_many(limits.reserve_many(asks[:3])) == [True, True, True]
    assert limits.usage(rule, NOW)[0].coupons_used == 3
