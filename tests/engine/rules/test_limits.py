"""Caps, budgets and holdouts: enforced atomically in Redis, never overspent, with the clock passed in."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta

import numpy as np
import pytest
import redis

from engine.redis_server import client_from_url
from engine.rules import RuleLimits, in_holdout
from engine.rules.limits import holdout_mask, member_hashes
from tests.helpers.clock import NOW
from tests.helpers.rules import TZ, limited_rule

pytestmark = pytest.mark.cluster


@pytest.fixture
def limits(redis_client: redis.Redis) -> RuleLimits:
    return RuleLimits(redis_client, TZ, hold_seconds=60)


def test_member_cap_allows_n_per_rolling_window(limits: RuleLimits) -> None:
    rule = limited_rule({"per_member": "2 per 7d"})
    assert limits.reserve(rule, "M1", NOW).granted
    assert limits.reserve(rule, "M1", NOW + timedelta(days=1)).granted
    refused = limits.reserve(rule, "M1", NOW + timedelta(days=2))
    assert not refused.granted and "member cap reached: 2 per 7d" in refused.reason
    assert limits.reserve(rule, "M2", NOW).granted  # another member
    assert limits.reserve(rule, "M1", NOW + timedelta(days=7, seconds=1)).granted  # the first left the window


def test_one_ever_is_for_ever(limits: RuleLimits) -> None:
    rule = limited_rule({"per_member": "1 ever"})
    assert limits.reserve(rule, "M1", NOW).granted
    assert not limits.reserve(rule, "M1", NOW + timedelta(days=3000)).granted


def test_coupon_budget_is_never_overspent_by_concurrent_threads(limits: RuleLimits) -> None:
    rule = limited_rule({"budget": {"coupons": 25}})
    granted = []
    lock = threading.Lock()

    def take(worker: int) -> None:
        for i in range(40):
            reservation = limits.reserve(rule, f"M{worker}-{i}", NOW)
            if reservation.granted:
                with lock:
                    granted.append(reservation)

    threads = [threading.Thread(target=take, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 25
    assert limits.usage(rule, NOW)[0].coupons_used == 25


def _take_in_process(url: str, worker: int, attempts: int, queue) -> None:
    client = client_from_url(url, decode_responses=True)
    own = RuleLimits(client, TZ)
    rule = limited_rule({"budget": {"amount": 500}, "per_store": {"coupons": 100}})
    queue.put(sum(own.reserve(rule, f"P{worker}-{i}", NOW, store_id="S001", amount=50).granted
                  for i in range(attempts)))


@pytest.mark.slow
def test_amount_budget_is_never_overspent_by_concurrent_processes(redis_server, redis_client) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_take_in_process, args=(redis_server.url, w, 30, queue)) for w in range(4)]
    for worker in workers:
        worker.start()
    totals = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(totals) == 10  # 500 yuan / 50 a coupon


def test_amount_and_store_budgets(limits: RuleLimits) -> None:
    rule = limited_rule({"budget": {"amount": 120}, "per_store": {"coupons": 2}})
    assert limits.reserve(rule, "M1", NOW, store_id="S1", amount=50).granted
    assert limits.reserve(rule, "M2", NOW, store_id="S1", amount=50).granted
    store_spent = limits.reserve(rule, "M3", NOW, store_id="S1", amount=10)
    assert not store_spent.granted and store_spent.reason == "store S1 budget of coupons spent"
    overall_spent = limits.reserve(rule, "M4", NOW, store_id="S2", amount=50)
    assert not overall_spent.granted and overall_spent.reason == "overall budget of amount spent"
    assert limits.reserve(rule, "M5", NOW, store_id="S2", amount=20).granted  # 120 exactly


def test_a_refused_budget_gives_the_member_cap_back(limits: RuleLimits) -> None:
    rule = limited_rule({"per_member": "1 per 30d", "budget": {"coupons": 1}})
    assert limits.reserve(rule, "M1", NOW).granted
    assert not limits.reserve(rule, "M2", NOW).granted
    rule_more = limited_rule({"per_member": "1 per 30d", "budget": {"coupons": 5}})
    assert limits.reserve(rule_more, "M2", NOW).granted  # M2's cap was not taken by the refusal


def test_release_gives_everything_back_and_commit_keeps_it(limits: RuleLimits) -> None:
    rule = limited_rule({"per_member": "1 per 30d", "budget": {"coupons": 1}})
    first = limits.reserve(rule, "M1", NOW)
    limits.release(first)
    second = limits.reserve(rule, "M1", NOW)
    assert second.granted and limits.commit(second)
    assert not limits.reserve(rule, "M2", NOW).granted
    assert limits.usage(rule, NOW)[0].coupons_used == 1


def test_a_hold_not_committed_in_time_returns_to_the_budget(limits: RuleLimits) -> None:
    rule = limited_rule({"budget": {"coupons": 1}})
    crashed = limits.reserve(rule, "M1", NOW)  # a worker that never commits
    assert not limits.reserve(rule, "M2", NOW + timedelta(seconds=30)).granted
    later = limits.reserve(rule, "M2", NOW + timedelta(seconds=61))
    assert later.granted
    assert not limits.commit(crashed)  # too late: its coupon must not be issued
    assert limits.commit(later)


def test_daily_budgets_start_again_each_local_day(limits: RuleLimits) -> None:
    rule = limited_rule({"budget": {"coupons": 1, "period": "day"}})
    assert limits.commit(limits.reserve(rule, "M1", datetime(2026, 3, 1, 23, 30)))
    assert not limits.reserve(rule, "M2", datetime(2026, 3, 1, 23, 59)).granted
    assert limits.reserve(rule, "M2", datetime(2026, 3, 2, 0, 1)).granted
    assert limits.usage(rule, datetime(2026, 3, 2, 9))[0].period == "overall d2026-03-02"


def test_holdout_is_a_stable_share_and_the_vectorised_draw_is_identical() -> None:
    members = [f"M{i:07d}" for i in range(20000)]
    scalar = np.array([in_holdout("lapsed-30d", m, 0.1) for m in members])
    assert 0.09 < scalar.mean() < 0.11
    assert np.array_equal(holdout_mask("lapsed-30d", member_hashes(members), 0.1), scalar)
    other = np.array([in_holdout("birthday-week", m, 0.1) for m in members])
    assert 0.005 < (scalar & other).mean() < 0.015  # independent across rules
    assert not in_holdout("lapsed-30d", None, 0.5) and not in_holdout("lapsed-30d", "M1", 0.0)
