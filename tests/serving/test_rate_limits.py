"""Rate limits per key and route class, shared by every worker through Redis (429 with Retry-After), and lockouts
after redemptions of unknown codes per key and per member."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from engine.coupons import CouponTerms
from engine.redis_server import free_port
from engine.settings import RateBudget, RateLimitSettings, Settings
from serving.auth import ApiKey
from serving.rate_limits import LockedOut, RateLimited, RateLimits, lease_size
from tests.helpers.events import register
from tests.helpers.http import bearer, serve
from tools.chaos import wait_for

TILL = ApiKey(key_id="till00000001", role="pos")


def limits_with(**budgets: RateBudget) -> RateLimitSettings:
    return RateLimitSettings(**budgets, redeem_failures_per_key=5, redeem_failures_per_member=3)


def admitted(limiter: RateLimits, calls: int, permission: str = "events") -> int:
    count = 0
    for _ in range(calls):
        try:
            limiter.take(TILL, permission)
            count += 1
        except RateLimited:
            pass
    return count


@pytest.mark.cluster
def test_the_bucket_is_shared_by_every_worker(redis_client: redis.Redis) -> None:
    """Two workers (two limiters on one Redis) together admit exactly the burst; then 429 with when to retry."""
    settings = limits_with(events=RateBudget(per_second=0.5, burst=6))
    one, two = RateLimits(redis_client, settings), RateLimits(redis_client, settings)
    assert lease_size(settings.events) == 1, "small budgets are taken one token at a time: exact"
    assert admitted(one, 4) + admitted(two, 4) == 6
    with pytest.raises(RateLimited) as refused:
        two.take(TILL, "events")
    assert refused.value.retry_after == 2 and refused.value.reason == "rate_limited"  # a token every 2 s
    other = ApiKey(key_id="till00000002", role="pos")
    one.take(other, "events")  # per key: another till is not held back
    one.take(TILL, "score")  # per route class: scoring has its own bucket


def test_leases_never_admit_more_than_the_bucket_holds(redis_client: redis.Redis) -> None:
    settings = limits_with(checkout=RateBudget(per_second=400, burst=400))
    workers = [RateLimits(redis_client, settings) for _ in range(3)]
    assert lease_size(settings.checkout) == 20, "a large bucket is leased 5% at a time: one round trip per 20 calls"
    started = time.monotonic()
    total = sum(admitted(worker, 400, "score") for worker in workers)
    elapsed = time.monotonic() - started
    assert 400 <= total <= 400 + 400 * elapsed + 1, (total, elapsed)  # the burst, and what refilled meanwhile


def test_tokens_come_back_at_the_budgets_rate(redis_client: redis.Redis) -> None:
    limiter = RateLimits(redis_client, limits_with(events=RateBudget(per_second=20, burst=2)))
    assert admitted(limiter, 5) == 2
    assert wait_for(lambda: admitted(limiter, 1) == 1, 2, every=0.02), "no token back within 2 s at 20/s"


def test_without_redis_requests_are_not_limited() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    gone = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RateLimits(gone, limits_with(events=RateBudget(per_second=1, burst=1)))
    assert admitted(limiter, 5) == 5, "scoring degrades without Redis; it does not stop"


@pytest.fixture
def api(settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"rate_limits": limits_with(events=RateBudget(per_second=0.2, burst=2))})
    with serve(limited, redis_client) as client:
        yield client


def test_over_budget_is_a_429_with_retry_after(api: TestClient) -> None:
    pos = bearer(api.app.state.services.keys.create("pos"))
    statuses = [api.post("/v1/events", headers=pos, json=[register(f"M{i}")]).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    refused = api.post("/v1/events", headers=pos, json=[register("M9")])
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 5
    assert refused.json()["reason"] == "rate_limited" and "events budget" in refused.json()["detail"]
    assert api.get("/v1/rules", headers=pos).status_code == 200, "reads have their own budget"


def test_guessing_codes_locks_out_the_member_then_the_key(api: TestClient) -> None:
    services = api.app.state.services
    admin, pos = bearer(services.keys.create("admin")), bearer(services.keys.create("pos"))
    assert api.post("/v1/events", headers=admin, json=[register("G1"), register("G2"), register("G3")]).status_code == 200
    coupon = services.coupons.issue("G1", CouponTerms("OFF5", "amount_off", 5, valid_days=7), "r", "pos", "req-g1")
    guesses = [api.post(f"/v1/coupons/{'0' * 15}{i}/redeem", headers=pos, json={"member_id": "G1"}) for i in range(4)]
    assert [r.status_code for r in guesses] == [404, 404, 404, 429]
    assert guesses[3].json()["reason"] == "locked_out" and int(guesses[3].headers["retry-after"]) > 800
    real = api.post(f"/v1/coupons/{coupon.code}/redeem", headers=pos, json={"member_id": "G1"})
    assert real.status_code == 429, "locked out means locked out: even the right code waits for the window"
    assert services.coupons.get(coupon.code).status == "issued"

    # The same key guessing for other members: the key itself locks out at its own limit (5 here).
    more = [api.post(f"/v1/coupons/{'1' * 15}{i}/redeem", headers=pos, json={"member_id": "G2"}).status_code
            for i in range(3)]
    assert more == [404, 404, 429], "3 + 2 failures: the key's fifth"
    assert "key" in api.post(f"/v1/coupons/{'2' * 16}/redeem", headers=pos, json={"member_id": "G3"}).json()["detail"]
    other_till = bearer(services.keys.create("pos"))
    assert api.post(f"/v1/coupons/{'3' * 16}/redeem", headers=other_till, json={"member_id": "G3"}).status_code == 404


@pytest.mark.cluster
def test_lockouts_count_only_unknown_codes(redis_client: redis.Redis) -> None:
    from engine.coupons import CouponError

    limiter = RateLimits(redis_client, limits_with())
    for _ in range(10):
        with pytest.raises(CouponError), limiter.redemption(TILL, "M1"):
            raise CouponError("redeemed", "coupon already redeemed")
    with limiter.redemption(TILL, "M1"):
        pass  # a till scanning a used coupon twice is not guessing
    for _ in range(3):
        with pytest.raises(CouponError), limiter.redemption(TILL, "M1"):
            raise CouponError.not_found("X")
    with pytest.raises(LockedOut), limiter.redemption(TILL, "M1"):
        pass
