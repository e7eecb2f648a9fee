"""Rate limits per API key and class of routes, and lockouts after failed redemptions.

**Rate limits.** Each key has a token bucket per route class (``checkout``, ``events``, ``reads``,
``admin``) in Redis, shared by every worker and replica: one Lua script refills it from Redis's own
clock and takes tokens atomically. So that a request costs no round trip, a worker takes a small
lease of tokens at a time (``lease_size``: 1 for small budgets, so they are exact; up to 5% of a
second's rate for large ones) and spends it locally for at most ``LEASE_SECONDS``; the leases never
add up to more than the bucket holds. An empty bucket is a ``RateLimited`` (429 with
``Retry-After``, ``serving.errors``). With Redis away, requests are not limited: scoring degrades,
it does not stop.

Not the ``limits`` library: it has fixed-window, moving-window and sliding-window-counter
strategies but no token bucket, builds its own Redis client from a URI (so neither this project's
key schema nor its circuit breaker), and makes every hit a round trip, which alone is over the
50 us budget on next-best-offer here (a round trip is ~100-200 us on this machine).

**Lockouts.** Redemptions of unknown codes are counted per key and per member presented over a
window (``lockout_window_seconds``); at ``redeem_failures_per_key`` / ``_per_member`` that key or
member may not redeem until the window ends (429 ``locked_out``), so guessing codes is hopeless even
with a stolen POS key (80-bit codes, and at most 50 guesses per 15 minutes).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from engine.coupons import CouponError
from engine.keys import (
    RATE_BUCKET_TTL_SECONDS,
    erased_marker_key,
    key_redeem_failures_key,
    member_redeem_failures_key,
    rate_bucket_key,
)
from engine.redis_circuit import REDIS_DOWN
from engine.settings import RateBudget, RateLimitSettings
from serving.auth import ApiKey

log = logging.getLogger(__name__)

ROUTE_CLASSES: dict[str, str] = {
    "score": "checkout", "events": "events",
    "members:read": "reads", "rules:read": "reads", "models:read": "reads", "reports:read": "reads",
    "audit:read": "reads",
    "rules:write": "admin", "models:write": "admin", "keys:admin": "admin", "members:erase": "admin",
    "members:export": "admin",
}
"""The class of routes each permission guards (``serving.auth.PERMISSIONS``); a budget per class and key."""

LEASE_SECONDS = 0.5
"""Tokens a worker took and did not use within this go unused (the bucket refills meanwhile)."""

# KEYS[1] the bucket. ARGV: tokens per second, burst, tokens wanted, TTL seconds.
# Returns {granted, 0} or {0, milliseconds until one token}.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(stored[1]) or burst
local ts = tonumber(stored[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local granted = math.min(tonumber(ARGV[3]), math.floor(tokens))
if granted >= 1 then tokens = tokens - granted else granted = 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if granted >= 1 then return {granted, 0} end
return {0, math.ceil((1 - tokens) / rate)}
"""


class RateLimited(Exception):
    """Too many requests: try again after ``retry_after`` seconds."""

    reason = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class LockedOut(RateLimited):
    """Too many redemptions of unknown codes by this key or for this member."""

    reason = "locked_out"


@dataclass
class _Lease:
    tokens: int
    until: float


def lease_size(budget: RateBudget) -> int:
    """Tokens to take from Redis at once: 1 (exact) for small budgets, up to 5% of a second's rate for large ones."""
    return max(1, min(budget.burst // 20, int(budget.per_second * 0.05)))


class RateLimits:
    """Token buckets per key and route class (``take``) and the redemption lockout (``redemption``)."""

    def __init__(self, client: redis.Redis, settings: RateLimitSettings) -> None:
        self.redis = client
        self.settings = settings
        self._take = client.register_script(_TAKE_LUA)
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._lock = threading.Lock()

    def budget(self, route_class: str) -> RateBudget:
        return getattr(self.settings, route_class)

    def take(self, key: ApiKey, permission: str) -> None:
        """Spend one token of the key's bucket for the permission's route class; ``RateLimited`` when it is empty."""
        route_class = ROUTE_CLASSES.get(permission)
        if route_class is None or not self.settings.enabled:
            return
        budget = self.budget(route_class)
        if budget.per_second <= 0:
            return
        slot = (key.key_id, route_class)
        now = time.monotonic()
        with self._lock:
            lease = self._leases.get(slot)
            if lease is not None and lease.tokens > 0 and now < lease.until:
                lease.tokens -= 1
                return
        try:
            granted, wait_ms = self._take(keys=[rate_bucket_key(key.key_id, route_class)],
                                          args=[budget.per_second, budget.burst, lease_size(budget),
                                                RATE_BUCKET_TTL_SECONDS])
        except REDIS_DOWN:
            return  # no shared count without Redis: serve rather than refuse
        if granted:
            with self._lock:
                self._leases[slot] = _Lease(int(granted) - 1, now + LEASE_SECONDS)
            return
        raise RateLimited(f"key {key.key_id} is over its {route_class} budget ({budget.per_second:g}/s, "
                          f"bursts of {budget.burst}); retry later", math.ceil(int(wait_ms) / 1000))

    # --- redemption lockouts ------------------------------------------------------------------------

    @contextmanager
    def redemption(self, key: ApiKey, member_id: str | None) -> Iterator[None]:
        """Around a redemption: refused while the key or the member is locked out; an unknown code counts."""
        subjects = self._subjects(key, member_id)
        if self._check_lockout(subjects, member_id):
            subjects = subjects[:1]  # an erased member: nothing is written under their id again
        try:
            yield
        except CouponError as exc:
            if exc.reason == "not_found":
                self._count_failure(subjects)
            raise

    def _subjects(self, key: ApiKey, member_id: str | None) -> list[tuple[str, str, int]]:
        """(what, Redis key, attempts allowed) for the key and, when one is presented, the member."""
        subjects = [(f"key {key.key_id}", key_redeem_failures_key(key.key_id), self.settings.redeem_failures_per_key)]
        if member_id:
            subjects.append((f"member {member_id}", member_redeem_failures_key(member_id),
                             self.settings.redeem_failures_per_member))
        return subjects

    def _check_lockout(self, subjects: list[tuple[str, str, int]], member_id: str | None) -> bool:
        """Raise ``LockedOut`` if a subject is locked out; returns whether the member was erased."""
        if not self.settings.enabled:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for _, name, _ in subjects:
            pipe.get(name)
            pipe.ttl(name)
        if member_id:
            pipe.exists(erased_marker_key(member_id))
        try:
            replies = pipe.execute()
        except REDIS_DOWN:
            return False  # the redemption itself needs Redis and will say so
        for i, (what, _, allowed) in enumerate(subjects):
            failures, ttl = int(replies[2 * i] or 0), int(replies[2 * i + 1])
            if failures >= allowed:
                raise LockedOut(f"{what} is locked out after {failures} redemptions of unknown codes; "
                                f"retry in {max(ttl, 1)} s", max(ttl, 1))
        return bool(member_id and replies[-1])

    def _count_failure(self, subjects: list[tuple[str, str, int]]) -> None:
        if not self.settings.enabled:
            return
        window = self.settings.lockout_window_seconds
        pipe = self.redis.pipeline(transaction=False)
        for _, name, _ in subjects:
            pipe.set(name, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(name)
        try:
            pipe.execute()
        except REDIS_DOWN:
            log.warning("could not count a failed redemption: Redis unavailable")
