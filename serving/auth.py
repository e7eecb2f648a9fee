"""API keys with roles and store/region scopes, stored hashed in Redis.

A key is shown once when created; Redis keeps only its SHA-256. Verified keys are cached briefly
in process, so scoring keeps working through a short Redis outage.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import redis

from engine.clock import Clock, utc_now
from engine.keys import API_KEYS
from engine.redis_circuit import REDIS_DOWN

ROLES: tuple[str, ...] = ("pos", "app", "marketer", "data-scientist", "admin")

PERMISSIONS: dict[str, frozenset[str]] = {
    "score": frozenset({"pos", "app", "admin"}),
    "events": frozenset({"pos", "app", "admin"}),
    "members:read": frozenset({"pos", "app", "marketer", "data-scientist", "admin"}),
    "rules:read": frozenset({"marketer", "data-scientist", "admin", "pos", "app"}),
    "rules:write": frozenset({"marketer", "admin"}),
    "models:read": frozenset({"marketer", "data-scientist", "admin"}),
    "models:write": frozenset({"data-scientist", "admin"}),
    "reports:read": frozenset({"marketer", "data-scientist", "admin"}),
    "offers:try": frozenset({"marketer", "data-scientist", "admin"}),  # the console's "try it" (issues real coupons)
}


class OutOfScope(Exception):
    """The key may not ask for this member or store (its scope is another region or store)."""


@dataclass(frozen=True)
class ApiKey:
    """Who is calling: a role and an optional scope (``region:R`` or ``store:S``)."""

    key_id: str
    role: str
    scope: str | None = None
    name: str = ""

    def allows(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def covers(self, region: str | None, store: str | None) -> bool:
        """Whether this key may see a member of ``region`` / ``store`` (unscoped keys see all)."""
        if self.scope is None:
            return True
        kind, _, value = self.scope.partition(":")
        if kind == "region":
            return region == value
        return store == value


def parse_scope(scope: str | None) -> str | None:
    """Validate a scope string: ``region:NAME`` or ``store:ID`` (or none)."""
    if not scope:
        return None
    kind, sep, value = scope.partition(":")
    if not sep or kind not in ("region", "store") or not value:
        raise ValueError(f"scope {scope!r} must be region:NAME or store:ID")
    return scope


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Creates and verifies API keys."""

    def __init__(self, client: redis.Redis, cache_seconds: float = 30.0, clock: Clock = utc_now) -> None:
        self.redis = client
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def create(self, role: str, scope: str | None = None, name: str = "") -> str:
        """Store a new key for ``role`` and return it (the only time it is shown)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        scope = parse_scope(scope)
        key = "nbo_" + secrets.token_urlsafe(32)
        record = {"role": role, "scope": scope, "name": name, "created": self.clock().isoformat()}
        self.redis.hset(API_KEYS, _digest(key), json.dumps(record))
        return key

    def verify(self, key: str) -> ApiKey | None:
        """The key's identity, or None if it is not a known key."""
        digest = _digest(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            raw = self.redis.hget(API_KEYS, digest)
        except REDIS_DOWN:
            if cached:  # Redis is away: trust what we verified recently rather than fail scoring
                return cached[1]
            raise
        found = None
        if raw is not None:
            record = json.loads(raw)
            found = ApiKey(key_id=digest[:12], role=record["role"], scope=record.get("scope"), name=record.get("name", ""))
        self._cache[digest] = (now, found)
        return found
