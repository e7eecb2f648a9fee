"""Members' data rights (PIPL, GDPR): to be forgotten, and to get a copy of everything held about them.

**Erasure** removes every key of the member (state, buckets, recommendations, remembered answers,
caps, markers, redemption failures), the coupons issued to them, and their marks in the rules'
exposure records; it leaves a tombstone (``m:{id}:x``: when, by whom, how much was removed, never
personal data), audited as ``member.erased``, and adds the id to the erasure list
(``nbo:erased``). The tombstone sits in the member's slot, so the feature store's commit script
refuses every later event for the member atomically, whichever way it comes (HTTP, the stream, a
backfill, a trigger's points); imports and training drop the listed members' lines
(``drop_erased``); reads answer as for an unknown member. Erasing twice changes nothing: the
second call returns the first's tombstone. An erasure stopped half-way (a crash) is finished by
the next call.

**Export** returns every key of the member, each read whatever its type and named by its kind
in the key schema (so a kind added later is exported without a change here), the coupons they
hold, their exposures per rule and day, the features computed now, and the audit entries that
name them, as JSON. Each export is audited once per ``request_id``.

The audit log's past entries keep the member's programme id (no personal data; the project's
audit never holds any) and are not rewritten: the tombstone is the record that they were erased.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
import redis
from redis.cluster import RedisCluster

from engine.audit import AuditLog
from engine.calendar import day_to_date
from engine.clock import utc_now
from engine.feature_store import FeatureStore
from engine.keys import (
    AUDIT_STREAM,
    ERASED_MEMBERS,
    EXPORT_MARKER_TTL_SECONDS,
    coupon_key,
    erased_marker_key,
    export_marker_key,
    kind_of,
    member_key,
    member_tag,
)
from engine.member_state import PROFILE
from engine.settings import Settings

EXPOSURES_PATTERN = "mx:*"
BATCH = 500


class UnknownMember(LookupError):
    """No member with this id is held (never registered, or erased)."""


@dataclass(frozen=True)
class Tombstone:
    """What is left of an erased member: when, by whom, and how much was removed (no personal data)."""

    member_id: str
    erased_at: str
    actor: str
    keys_removed: int
    coupons_removed: int
    exposures_removed: int
    region: str | None
    """The member's region and home store, so the same scoped key can ask again (not personal data)."""
    store: str | None
    complete: bool = True
    already_erased: bool = False


def drop_erased(frame: pd.DataFrame, erased: Iterable[str]) -> tuple[pd.DataFrame, int]:
    """Transactions (or member rows) without the erased members' lines; and how many lines went."""
    erased = set(erased)
    if not erased or frame.empty:
        return frame, 0
    keep = ~frame["member_id"].astype(str).isin(erased)
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def erased_members(client: redis.Redis) -> set[str]:
    """The erasure list: every member id erased at their request."""
    return {m.decode() if isinstance(m, bytes) else m for m in client.smembers(ERASED_MEMBERS)}


def erased_members_for(settings: Settings) -> set[str]:
    """The erasure list of the configured store, for commands that read files (imports, training, backtests):
    ``REDIS_URL`` or the running embedded Redis; none is started (no store: nobody was erased from it)."""
    from engine.redis_server import connect, running_redis_url

    url = running_redis_url(settings)
    if url is None:
        return set()
    client = connect(settings, url)
    try:
        return erased_members(client)
    finally:
        client.close()


def member_keys(client: redis.Redis, member_id: str) -> list[str]:
    """Every key in Redis of this member (``m:{id}:*``): on a cluster, the keys of the member's slot on its node;
    else a SCAN (erasures and exports are rare: a full SCAN of 1M keys takes about a second)."""
    prefix = member_key(member_id, "")
    if isinstance(client, RedisCluster):
        from redis.crc import key_slot

        keys = client.cluster_get_keys_in_slot(key_slot(member_tag(member_id).encode()), 1_000_000)
        return sorted(k for k in (k.decode() if isinstance(k, bytes) else k for k in keys) if k.startswith(prefix))
    return sorted(k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=prefix + "*", count=1000))


class DataRights:
    """Erases and exports members (``DELETE /v1/members/{id}``, ``GET /v1/members/{id}/export``)."""

    def __init__(self, client: redis.Redis, store: FeatureStore, audit: AuditLog | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.redis = client
        self.store = store
        self.audit = audit
        self.clock = clock

    # --- the erasure list --------------------------------------------------------------------

    def erased_members(self) -> set[str]:
        """Every erased member id (imports and training drop their lines)."""
        return erased_members(self.redis)

    def tombstone(self, member_id: str) -> Tombstone | None:
        raw = self.redis.get(erased_marker_key(member_id))
        return Tombstone(**json.loads(raw)) if raw else None

    # --- erasure -----------------------------------------------------------------------------

    def where(self, member_id: str) -> tuple[str | None, str | None] | None:
        """The region and home store of a held member (for the caller's scope), or None if none is held."""
        tombstone = self.tombstone(member_id)
        if tombstone is not None:
            return tombstone.region, tombstone.store
        region, store, version = self.redis.hmget(member_key(member_id, PROFILE), ["region", "store", "v"])
        if version is None and region is None and store is None:
            return None
        return region, store

    def erase(self, member_id: str, actor: str) -> Tombstone:
        """Forget the member, once: the tombstone (``already_erased`` on a repeat); ``UnknownMember`` if none is held."""
        marker = erased_marker_key(member_id)
        existing = self.tombstone(member_id)
        if existing is not None and existing.complete:
            return Tombstone(**{**asdict(existing), "already_erased": True})
        where = self.where(member_id)
        if where is None:
            raise UnknownMember(f"member {member_id!r} is not registered")
        started = existing or Tombstone(member_id=member_id, erased_at=self.clock().isoformat(), actor=actor,
                                        keys_removed=0, coupons_removed=0, exposures_removed=0,
                                        region=where[0], store=where[1], complete=False)
        # The marker first: from here every commit for the member is refused, so nothing new appears.
        if existing is None and not self.redis.set(marker, json.dumps(asdict(started)), nx=True):
            return self.erase(member_id, actor)  # another call got there first
        self.redis.sadd(ERASED_MEMBERS, member_id)
        self.store.forget(member_id)
        keys = [k for k in member_keys(self.redis, member_id) if k != marker]
        coupons = self._coupons_of(member_id, keys)
        exposures = self._remove_exposures(member_id)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.delete(key)
        for code in coupons:
            pipe.delete(coupon_key(code))
        pipe.execute()
        done = Tombstone(**{**asdict(started), "keys_removed": started.keys_removed + len(keys),
                            "coupons_removed": started.coupons_removed + len(coupons),
                            "exposures_removed": started.exposures_removed + exposures, "complete": True})
        if self.audit is not None:
            self.audit.record("member.erased", actor=actor, subject=member_id, keys_removed=done.keys_removed,
                              coupons_removed=done.coupons_removed, exposures_removed=done.exposures_removed)
        self.redis.set(marker, json.dumps(asdict(done)))
        return done

    def _coupons_of(self, member_id: str, keys: list[str]) -> list[str]:
        """The codes of the coupons issued to the member (their issuance markers name them)."""
        issuances = [k for k in keys if (kind := kind_of(k)) is not None and kind.name == "coupon issuance"]
        if not issuances:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in issuances:
            pipe.get(key)
        codes = [code for code in pipe.execute() if code]
        pipe = self.redis.pipeline(transaction=False)
        for code in codes:
            pipe.hget(coupon_key(code), "member_id")
        return [code for code, owner in zip(codes, pipe.execute()) if owner == member_id]

    def _exposures(self) -> list[str]:
        return [k.decode() if isinstance(k, bytes) else k for k in self.redis.scan_iter(match=EXPOSURES_PATTERN,
                                                                                       count=1000)]

    def _remove_exposures(self, member_id: str) -> int:
        keys = self._exposures()
        removed = 0
        for start in range(0, len(keys), BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys[start:start + BATCH]:
                pipe.hdel(key, member_id)
            removed += sum(pipe.execute())
        return removed

    # --- export ------------------------------------------------------------------------------

    def export(self, member_id: str, actor: str, request_id: str | None = None) -> dict[str, object]:
        """Everything held about the member as JSON-ready data; ``UnknownMember`` for one not held (or erased)."""
        if self.tombstone(member_id) is not None or self.where(member_id) is None:
            raise UnknownMember(f"member {member_id!r} is not registered")
        keys = member_keys(self.redis, member_id)
        held: dict[str, dict[str, object]] = {}
        for key, value in zip(keys, self._read(keys)):
            kind = kind_of(key)
            held.setdefault(kind.name if kind else "other", {})[key] = value
        coupons = {}
        for code in self._coupons_of(member_id, keys):
            coupons[code] = self.redis.hgetall(coupon_key(code))
        exposures = self._exposures_of(member_id)
        features = self.store.member_features(member_id)
        exported = {
            "member_id": member_id,
            "exported_at": self.clock().isoformat(),
            "features": features,
            "keys": held,
            "coupons": coupons,
            "exposures": exposures,
            "audit": self._audit_entries(member_id),
        }
        audited = request_id is None or self.redis.set(export_marker_key(member_id, request_id), "1", nx=True,
                                                       ex=EXPORT_MARKER_TTL_SECONDS)
        if audited and self.audit is not None:
            self.audit.record("member.exported", actor=actor, subject=member_id, request_id=request_id,
                              keys=len(keys), coupons=len(coupons))
        return exported

    def _read(self, keys: list[str]) -> list[object]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        types = pipe.execute()
        readers = {"string": "get", "hash": "hgetall", "set": "smembers", "zset": "zrange", "list": "lrange"}
        pipe = self.redis.pipeline(transaction=False)
        for key, kind in zip(keys, types):
            reader = readers.get(kind if isinstance(kind, str) else kind.decode())
            if reader == "zrange":
                pipe.zrange(key, 0, -1, withscores=True)
            elif reader == "lrange":
                pipe.lrange(key, 0, -1)
            elif reader is not None:
                getattr(pipe, reader)(key)
            else:
                pipe.type(key)
        values = []
        for value in pipe.execute():
            if isinstance(value, set):
                value = sorted(value)
            if isinstance(value, str):
                try:
                    value = json.loads(value) if value[:1] in "{[" else value
                except ValueError:
                    pass
            values.append(value)
        return values

    def _exposures_of(self, member_id: str) -> list[dict[str, str]]:
        keys = self._exposures()
        found = []
        for start in range(0, len(keys), BATCH):
            part = keys[start:start + BATCH]
            pipe = self.redis.pipeline(transaction=False)
            for key in part:
                pipe.hget(key, member_id)
            for key, group in zip(part, pipe.execute()):
                if group is not None:
                    rule, _, day = key.removeprefix("mx:{").partition("}:")
                    found.append({"rule_id": rule, "day": day_to_date(int(day)).isoformat(),
                                  "group": "treatment" if group == "t" else "holdout"})
        return found

    def _audit_entries(self, member_id: str) -> list[dict]:
        """The audit stream's entries about the member (the stream holds the newest million)."""
        entries = []
        last = "-"
        while True:
            chunk = self.redis.xrange(AUDIT_STREAM, min=last, count=5000)
            if last != "-":
                chunk = chunk[1:]
            if not chunk:
                return entries
            for _, fields in chunk:
                entry = json.loads(fields.get("entry") or fields.get(b"entry"))
                if entry.get("subject") == member_id:
                    entries.append(entry)
            last = chunk[-1][0]
