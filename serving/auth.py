"""API keys with roles and store/region scopes, stored hashed in Redis, with a lifecycle.

A key is shown once when created (or rotated); Redis keeps only its SHA-256 and a record: id, name,
role, scope, created, expires, revoked, and for a rotated secret until when it still works. Keys
can be listed (never the secret), revoked, given an expiry, and rotated with a grace period in
which the old secret still works. Every change is audited.

Verified keys are cached briefly in process, so scoring keeps working through a short Redis
outage and a request costs no round trip. Every change bumps ``nbo:keys:version``; each process
checks it four times a second (``watch``, a thread of ``nbo serve``; where nothing watches, a
verification looks itself once a second) and drops its cache when it moved, so a revoked key stops
working on every worker within a second, not after the cache's 30 s. Expiry is checked on every
verification, cached or not.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import redis

from engine.audit import AuditLog
from engine.clock import Clock, utc_now
from engine.keys import API_KEYS, API_KEYS_USED, API_KEYS_VERSION, key_sessions_key, session_key
from engine.redis_circuit import REDIS_DOWN
from engine.scope import Scope

ROLES: tuple[str, ...] = ("pos", "app", "privacy", "marketer", "data-scientist", "admin")

PERMISSIONS: dict[str, frozenset[str]] = {
    "score": frozenset({"pos", "app", "admin"}),
    "events": frozenset({"pos", "app", "admin"}),
    "members:read": frozenset({"pos", "app", "marketer", "data-scientist", "admin"}),
    "members:erase": frozenset({"privacy", "admin"}),  # a member's right to be forgotten
    "members:export": frozenset({"privacy", "admin"}),  # a member's right to a copy of their data
    "rules:read": frozenset({"marketer", "data-scientist", "admin", "pos", "app"}),
    "rules:write": frozenset({"marketer", "admin"}),
    "models:read": frozenset({"marketer", "data-scientist", "admin"}),
    "models:write": frozenset({"data-scientist", "admin"}),
    "reports:read": frozenset({"marketer", "data-scientist", "admin"}),
    "audit:read": frozenset({"privacy", "admin"}),
    "keys:admin": frozenset({"admin"}),  # and unscoped (serving.dependencies.require)
    "offers:try": frozenset({"marketer", "data-scientist", "admin"}),  # the console's "try it" (issues real coupons)
}

KeyStatus = Literal["active", "rotating", "expired", "revoked"]
INLINE_CHECK_SECONDS = 1.0
"""Where no thread watches the key version, a verification looks at it at most this often (within a second)."""
CACHE_ENTRIES = 100_000


class OutOfScope(Exception):
    """The key may not ask for this member or store (its scope is another region or store)."""


class UnknownKey(LookupError):
    """No API key has this id."""


@dataclass(frozen=True)
class ApiKey:
    """Who is calling: a role and an optional scope (``region:R`` or ``store:S``)."""

    key_id: str
    role: str
    scope: str | None = None
    name: str = ""

    def allows(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    @property
    def reach(self) -> Scope:
        """What this key may see (``engine.scope``): everything, one region or one store."""
        return Scope.parse(self.scope)

    def covers(self, region: str | None, store: str | None) -> bool:
        """Whether this key may see a member of ``region`` / ``store`` (unscoped keys see all)."""
        return self.reach.covers(region, store)


def parse_scope(scope: str | None) -> str | None:
    """Validate a scope string: ``region:NAME`` or ``store:ID`` (or none)."""
    return str(Scope.parse(scope)) if scope else None


_DURATION = re.compile(r"^(\d{1,6})([dhm])$")


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h`` or ``30m`` as a duration (``ValueError`` says what is accepted)."""
    match = _DURATION.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration: write a positive number of days, hours or minutes (90d, 12h, 30m)")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def digest_of(secret: str) -> str:
    """What Redis keeps of a key or session id: its SHA-256 (the secret is never stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One secret of a key as Redis keeps it (``nbo:keys`` digest -> JSON)."""

    digest: str
    key_id: str
    role: str
    scope: str | None
    name: str
    created: datetime
    expires: datetime | None = None
    revoked: datetime | None = None
    valid_until: datetime | None = None
    """A rotated-out secret works until then (the grace period)."""

    @classmethod
    def from_json(cls, digest: str, raw: str) -> KeyRecord:
        data = json.loads(raw)
        moment = lambda name: datetime.fromisoformat(data[name]) if data.get(name) else None  # noqa: E731
        return cls(digest=digest, key_id=data.get("id") or digest[:12], role=data["role"], scope=data.get("scope"),
                   name=data.get("name", ""), created=datetime.fromisoformat(data["created"]),
                   expires=moment("expires"), revoked=moment("revoked"), valid_until=moment("valid_until"))

    def to_json(self) -> str:
        moment = lambda value: value.isoformat() if value else None  # noqa: E731
        return json.dumps({"id": self.key_id, "role": self.role, "scope": self.scope, "name": self.name,
                           "created": self.created.isoformat(), "expires": moment(self.expires),
                           "revoked": moment(self.revoked), "valid_until": moment(self.valid_until)})

    def status(self, now: datetime) -> KeyStatus:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and _aware(now) >= _aware(self.expires):
            return "expired"
        if self.valid_until is not None:
            return "rotating" if _aware(now) < _aware(self.valid_until) else "expired"
        return "active"

    def works(self, now: datetime) -> bool:
        return self.status(now) in ("active", "rotating")

    @property
    def identity(self) -> ApiKey:
        return ApiKey(key_id=self.key_id, role=self.role, scope=self.scope, name=self.name)


@dataclass(frozen=True)
class KeyInfo:
    """A key as ``nbo keys list`` and ``GET /v1/admin/keys`` show it: never the secret."""

    key_id: str
    name: str
    role: str
    scope: str | None
    created: datetime
    expires: datetime | None
    last_used: datetime | None
    status: KeyStatus
    previous_secret_until: datetime | None
    """After a rotation, until when the previous secret still works."""


@dataclass(frozen=True)
class NewSecret:
    """A secret just made (shown this once) and the key it belongs to."""

    key_id: str
    secret: str
    expires: datetime | None
    previous_secret_until: datetime | None = None


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ApiKeys:
    """Creates, verifies, lists, revokes and rotates API keys."""

    def __init__(self, client: redis.Redis, cache_seconds: float = 30.0, clock: Clock = utc_now,
                 audit: AuditLog | None = None, version_check_seconds: float = 0.25) -> None:
        self.redis = client
        self.clock = clock
        self.audit = audit
        self.cache_seconds = cache_seconds
        self.version_check_seconds = version_check_seconds
        """How often ``watch`` looks; a request looks itself only if nothing did for ``INLINE_CHECK_SECONDS``."""
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._version: str | None = None
        self._version_checked = float("-inf")

    # --- verifying ------------------------------------------------------------------------------

    def verify(self, key: str) -> ApiKey | None:
        """The key's identity, or None if it is not a known key that works now (revoked, expired: None)."""
        record = self.record(digest_of(key))
        return record.identity if record is not None else None

    def record(self, digest: str) -> KeyRecord | None:
        """The working record of a key's digest (cached; None if unknown, revoked or expired)."""
        now = time.monotonic()
        if now - self._version_checked >= INLINE_CHECK_SECONDS:  # nothing watches (a test app, a command)
            self.check_version(now)
        cached = self._cache.get(digest)
        if cached and now - cached[0] < self.cache_seconds:
            found = cached[1]
        else:
            try:
                raw = self.redis.hget(API_KEYS, digest)
            except REDIS_DOWN:
                if cached:  # Redis is away: trust what we verified recently rather than fail scoring
                    found = cached[1]
                    return found if found is not None and found.works(self.clock()) else None
                raise
            found = KeyRecord.from_json(digest, raw) if raw is not None else None
            if len(self._cache) >= CACHE_ENTRIES:  # a flood of made-up keys must not grow the process
                self._cache = {}
            self._cache[digest] = (now, found)
            if found is not None and found.works(self.clock()):
                self._note_use(digest)
        return found if found is not None and found.works(self.clock()) else None

    def _note_use(self, digest: str) -> None:
        try:
            self.redis.hset(API_KEYS_USED, digest, self.clock().isoformat())
        except REDIS_DOWN:
            pass  # "last used" is a convenience; verifying does not depend on it

    def check_version(self, now: float | None = None) -> None:
        """Drop the verification cache if any key changed since the last look (one GET)."""
        self._version_checked = time.monotonic() if now is None else now
        try:
            version = self.redis.get(API_KEYS_VERSION)
        except REDIS_DOWN:
            return  # keep the cache: it is what lets scoring survive an outage
        if version != self._version:
            self._version = version
            self._cache = {}

    def watch(self, stop: threading.Event) -> None:
        """Check the version every ``version_check_seconds`` until ``stop`` (a thread of ``nbo serve``), so
        requests never wait for the check."""
        while not stop.wait(self.version_check_seconds):
            self.check_version()

    # --- the lifecycle --------------------------------------------------------------------------

    def create(self, role: str, scope: str | None = None, name: str = "", expires_in: timedelta | None = None,
               actor: str = "cli") -> str:
        """Store a new key for ``role`` and return it (the only time it is shown)."""
        return self.issue(role, scope, name, expires_in, actor).secret

    def issue(self, role: str, scope: str | None = None, name: str = "", expires_in: timedelta | None = None,
              actor: str = "cli") -> NewSecret:
        """A new key: its id and its secret (shown once), audited as ``keys.created``."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        scope = parse_scope(scope)
        now = self.clock()
        secret = "nbo_" + secrets.token_urlsafe(32)
        digest = digest_of(secret)
        record = KeyRecord(digest=digest, key_id=digest[:12], role=role, scope=scope, name=name, created=now,
                           expires=now + expires_in if expires_in else None)
        self._write([record])
        self._audit("keys.created", actor, record.key_id, role=role, scope=scope, label=name,
                    expires=record.expires.isoformat() if record.expires else None)
        return NewSecret(record.key_id, secret, record.expires)

    def revoke(self, key_id: str, actor: str = "cli") -> KeyInfo:
        """Revoke every secret of the key and end its console sessions; a revoked key stays listed."""
        now = self.clock()
        records = self._records_of(key_id)
        changed = [_replace(r, revoked=now) for r in records if r.revoked is None]
        if changed:
            self._write(changed, end_sessions_of=key_id)
            self._audit("keys.revoked", actor, key_id, secrets=len(changed))
        return self._info(key_id)

    def rotate(self, key_id: str, grace: timedelta = timedelta(hours=24), actor: str = "cli") -> NewSecret:
        """A new secret for the key (same id, role, scope, name and expiry); the current one keeps working for
        ``grace``, then stops. Refused for a revoked or expired key."""
        now = self.clock()
        records = self._records_of(key_id)
        current = [r for r in records if r.valid_until is None]
        if not current or not current[0].works(now):
            raise ValueError(f"key {key_id} is {current[0].status(now) if current else 'unusable'}: "
                             "create a new key instead of rotating it")
        old = current[0]
        secret = "nbo_" + secrets.token_urlsafe(32)
        new = KeyRecord(digest=digest_of(secret), key_id=key_id, role=old.role, scope=old.scope, name=old.name,
                        created=now, expires=old.expires)
        until = now + grace
        if old.expires is not None and _aware(old.expires) < _aware(until):
            until = old.expires
        self._write([new, _replace(old, valid_until=until)])
        self._audit("keys.rotated", actor, key_id, grace_seconds=int(grace.total_seconds()),
                    previous_secret_until=until.isoformat())
        return NewSecret(key_id, secret, new.expires, previous_secret_until=until)

    def list(self) -> list[KeyInfo]:
        """Every key (revoked and expired ones too), oldest first; never a secret."""
        records = self._all()
        ids = dict.fromkeys(r.key_id for r in sorted(records, key=lambda r: r.created))
        used = self._last_used()
        return [self._summarise(key_id, [r for r in records if r.key_id == key_id], used) for key_id in ids]

    def _info(self, key_id: str) -> KeyInfo:
        return self._summarise(key_id, self._records_of(key_id), self._last_used())

    def _summarise(self, key_id: str, records: list[KeyRecord], used: dict[str, datetime]) -> KeyInfo:
        now = self.clock()
        current = next((r for r in records if r.valid_until is None), records[-1])
        previous = [r.valid_until for r in records if r.valid_until is not None and r.works(now)]
        last = max((used[r.digest] for r in records if r.digest in used), default=None)
        status = current.status(now)
        return KeyInfo(key_id=key_id, name=current.name, role=current.role, scope=current.scope,
                       created=min(r.created for r in records), expires=current.expires, last_used=last,
                       status="rotating" if status == "active" and previous else status,
                       previous_secret_until=max(previous) if previous else None)

    # --- storage --------------------------------------------------------------------------------

    def _all(self) -> list[KeyRecord]:
        return [KeyRecord.from_json(digest, raw) for digest, raw in self.redis.hgetall(API_KEYS).items()]

    def _records_of(self, key_id: str) -> list[KeyRecord]:
        records = sorted((r for r in self._all() if r.key_id == key_id), key=lambda r: r.created)
        if not records:
            raise UnknownKey(f"no API key with id {key_id!r} (nbo keys list shows them)")
        return records

    def _last_used(self) -> dict[str, datetime]:
        return {digest: datetime.fromisoformat(moment) for digest, moment in self.redis.hgetall(API_KEYS_USED).items()}

    def _write(self, records: list[KeyRecord], end_sessions_of: str | None = None) -> None:
        """Store records and bump the version every worker watches, in one round trip (and end the key's
        console sessions when it is revoked)."""
        sessions = list(self.redis.smembers(key_sessions_key(end_sessions_of))) if end_sessions_of else []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(API_KEYS, mapping={r.digest: r.to_json() for r in records})
        pipe.incr(API_KEYS_VERSION)
        for session in sessions:
            pipe.delete(session_key(session))
        if end_sessions_of:
            pipe.delete(key_sessions_key(end_sessions_of))
        pipe.execute()
        self._cache = {}  # this process sees its own change at once

    def _audit(self, action: str, actor: str, key_id: str, **details: object) -> None:
        if self.audit is not None:
            self.audit.record(action, actor=actor, subject=f"key:{key_id}", **details)


def _replace(record: KeyRecord, **changes: object) -> KeyRecord:
    from dataclasses import replace

    return replace(record, **changes)
