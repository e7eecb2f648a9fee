"""Console sessions: signing in exchanges an API key for a random session id, kept server-side in Redis.

The cookie holds only the session id (32 random bytes); Redis keeps its SHA-256, the key's digest
(never the key), a form token (CSRF) and when the session must end. A session ends after
``session_idle_minutes`` without use (Redis's TTL, refreshed on each page), ``session_hours`` after
sign-in whatever its use, on sign-out, and when its key is revoked or expires (revoking deletes the
key's sessions; every page also checks the key still works, through the same verification cache
as the API, which a key change invalidates within a second).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import redis

from engine.clock import Clock
from engine.keys import key_sessions_key, session_key
from engine.settings import ConsoleSettings
from serving.auth import ApiKey, ApiKeys, digest_of


@dataclass(frozen=True)
class Session:
    """A signed-in console session as Redis keeps it."""

    key_digest: str
    key_id: str
    form_token: str
    created: str
    ends: str
    """The absolute end (ISO 8601, by the service clock): sign-in time + ``session_hours``."""


@dataclass(frozen=True)
class SignedIn:
    """A live session and the key it belongs to."""

    session: Session
    key: ApiKey


class ConsoleSessions:
    """Creates, resolves and ends console sessions."""

    def __init__(self, client: redis.Redis, keys: ApiKeys, settings: ConsoleSettings, clock: Clock) -> None:
        self.redis = client
        self.keys = keys
        self.settings = settings
        self.clock = clock

    @property
    def idle_ms(self) -> int:
        return max(1, int(self.settings.session_idle_minutes * 60_000))

    def sign_in(self, raw_key: str) -> tuple[str, SignedIn] | None:
        """A new session for a working key: its id (for the cookie) and what it holds; None for a key that does not work."""
        digest = digest_of(raw_key)
        record = self.keys.record(digest)
        if record is None:
            return None
        now = self.clock()
        lifetime = timedelta(hours=self.settings.session_hours)
        session = Session(key_digest=digest, key_id=record.key_id, form_token=secrets.token_hex(16),
                          created=now.isoformat(), ends=(now + lifetime).isoformat())
        session_id = secrets.token_urlsafe(32)
        stored = digest_of(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(session_key(stored), json.dumps(asdict(session)), px=self.idle_ms)
        pipe.sadd(key_sessions_key(record.key_id), stored)
        pipe.expire(key_sessions_key(record.key_id), int(lifetime.total_seconds()) + 60)
        pipe.execute()
        return session_id, SignedIn(session, record.identity)

    def resolve(self, session_id: str) -> SignedIn | None:
        """The live session of a cookie's id (its idle timeout starts again), or None if it ended."""
        stored = digest_of(session_id)
        raw = self.redis.getex(session_key(stored), px=self.idle_ms)
        if raw is None:
            return None
        session = Session(**json.loads(raw))
        record = self.keys.record(session.key_digest)
        if record is None or self.clock() >= datetime.fromisoformat(session.ends):
            self._end(stored, session.key_id)
            return None
        return SignedIn(session, record.identity)

    def sign_out(self, session_id: str) -> None:
        """End a session (the cookie's id); nothing happens for one that ended already."""
        stored = digest_of(session_id)
        raw = self.redis.get(session_key(stored))
        self._end(stored, Session(**json.loads(raw)).key_id if raw else None)

    def _end(self, stored: str, key_id: str | None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(session_key(stored))
        if key_id:
            pipe.srem(key_sessions_key(key_id), stored)
        pipe.execute()
