"""The online member feature store: member state in Redis, events applied atomically, exactly once.

Layout: every key of one member shares the hash tag ``{member_id}`` (same Redis Cluster slot):
``m:{id}:p`` profile, ``m:{id}:mo`` monthly buckets (growth, spend, point lots), ``m:{id}:d`` daily
buckets (spend, baskets), ``m:{id}:c`` category and ``m:{id}:i`` item counters, and one short-lived
``m:{id}:e:<event_id>`` key per applied event (the exactly-once record).

Ingestion reads the members of a batch in one round trip, folds each event with
``engine.member_state.apply_event`` and commits each member's changes with one Lua script that
checks the state version it read (optimistic concurrency: a concurrent writer makes it retry, no
update is lost) and skips events already applied (a replay changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis

from engine.events import Event, parse_event
from engine.features import member_features
from engine.member_state import (
    DAYS,
    PARTS,
    PROFILE,
    WRITER_PARTS,
    EventRejected,
    MemberState,
    Op,
    Programme,
    apply_event,
)

DAILY_BUCKET_DAYS = 400
"""Daily buckets older than this (behind the member's newest event) are pruned: windows stop at 365."""
MAX_ATTEMPTS = 8


def member_key(member_id: str, part: str) -> str:
    """The Redis key of one part of a member's state."""
    return f"m:{{{member_id}}}:{part}"


def event_key(member_id: str, event_id: str) -> str:
    """The exactly-once record of one applied event."""
    return f"m:{{{member_id}}}:e:{event_id}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str | None
    reason: str


@dataclass
class IngestResult:
    """What happened to a batch: applied, already seen, or rejected with the reason."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    applied: list[Event] = field(default_factory=list)

    def merge(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)
        self.applied.extend(other.applied)


# KEYS: profile, months, days, categories, items, then one exactly-once key per event.
# ARGV: expected version, dedup ttl seconds, newest day, daily-bucket horizon, event count,
#       then per event: op count, then per op: code, part index (1-5), field, value.
_APPLY_LUA = """
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[1] then return {-1} end
local ttl = tonumber(ARGV[2])
local newest = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local pos = 6
local out = {}
local applied = 0
for e = 1, n do
  local nops = tonumber(ARGV[pos]); pos = pos + 1
  local once = KEYS[5 + e]
  if redis.call('EXISTS', once) == 1 then
    out[e] = 0
    pos = pos + 4 * nops
  else
    for _ = 1, nops do
      local code, key, fld, val = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])], ARGV[pos + 2], ARGV[pos + 3]
      pos = pos + 4
      if code == 'incr' then redis.call('HINCRBYFLOAT', key, fld, val)
      elseif code == 'set' then redis.call('HSET', key, fld, val)
      else redis.call('HDEL', key, fld) end
    end
    redis.call('SET', once, '1', 'EX', ttl)
    out[e] = 1
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  if redis.call('HLEN', KEYS[3]) > 2 * horizon + 64 then
    local cutoff = newest - horizon
    local stale = {}
    for _, fld in ipairs(redis.call('HKEYS', KEYS[3])) do
      if tonumber(string.sub(fld, 2)) < cutoff then stale[#stale + 1] = fld end
    end
    for i = 1, #stale, 500 do
      redis.call('HDEL', KEYS[3], unpack(stale, i, math.min(i + 499, #stale)))
    end
  end
end
return out
"""

_PART_INDEX = {part: str(i + 1) for i, part in enumerate(PARTS)}


class FeatureStore:
    """Reads member state and features from Redis and applies events to it."""

    def __init__(
        self,
        client: redis.Redis,
        programme: Programme,
        clock: Callable[[], datetime] = utc_now,
        future_tolerance: timedelta = timedelta(days=1),
    ) -> None:
        self.redis = client
        self.programme = programme
        self.clock = clock
        self.future_tolerance = future_tolerance
        self._apply = client.register_script(_APPLY_LUA)
        self._dedup_seconds = programme.settings.event_dedup_days * 86400

    # --- reading --------------------------------------------------------------------------------

    def read_states(self, member_ids: Sequence[str]) -> dict[str, MemberState | None]:
        """The full state of each member, in one round trip (None for an unknown member)."""
        pipe = self.redis.pipeline(transaction=False)
        for member_id in member_ids:
            for part in PARTS:
                pipe.hgetall(member_key(member_id, part))
        replies = pipe.execute()
        states: dict[str, MemberState | None] = {}
        for i, member_id in enumerate(member_ids):
            stored = dict(zip(PARTS, replies[i * len(PARTS):(i + 1) * len(PARTS)]))
            states[member_id] = MemberState.from_stored(member_id, stored) if stored[PROFILE] else None
        return states

    def read_state(self, member_id: str) -> MemberState | None:
        return self.read_states([member_id])[member_id]

    def member_features(self, member_id: str, as_of: datetime | None = None) -> dict[str, object] | None:
        """One member's feature vector now (or at ``as_of``); None if the member is unknown."""
        state = self.read_state(member_id)
        if state is None:
            return None
        return member_features(state, as_of or self.clock(), self.programme)

    def member_ids(self, batch: int = 1000) -> Iterator[str]:
        """Every stored member id (SCAN; on a cluster, run per node)."""
        for key in self.redis.scan_iter(match="m:{*}:p", count=batch):
            text = key.decode() if isinstance(key, bytes) else key
            yield text[3:text.rindex("}")]

    def write_profile_values(self, values: dict[str, dict[str, object]]) -> None:
        """Set derived profile fields (e.g. batch churn scores) for many members, pipelined."""
        pipe = self.redis.pipeline(transaction=False)
        for member_id, mapping in values.items():
            pipe.hset(member_key(member_id, PROFILE), mapping={k: str(v) for k, v in mapping.items()})
        pipe.execute()

    # --- writing --------------------------------------------------------------------------------

    def ingest(self, raw_events: Iterable[object]) -> IngestResult:
        """Validate raw events one by one, then apply the valid ones; bad ones are rejected with a reason."""
        events: list[tuple[int, Event]] = []
        result = IngestResult()
        for index, raw in enumerate(raw_events):
            try:
                events.append((index, parse_event(raw)))
            except ValueError as exc:
                event_id = raw.get("event_id") if isinstance(raw, dict) else None
                result.rejected.append(Rejection(index, event_id if isinstance(event_id, str) else None, str(exc)))
        result.merge(self._apply_indexed(events))
        result.rejected.sort(key=lambda r: r.index)
        return result

    def apply_events(self, events: Sequence[Event]) -> IngestResult:
        """Apply validated events atomically and exactly once per (member, event_id)."""
        return self._apply_indexed(list(enumerate(events)))

    def _apply_indexed(self, events: list[tuple[int, Event]]) -> IngestResult:
        result = IngestResult()
        latest_allowed = self.programme.aware(self.clock()) + self.future_tolerance
        by_member: dict[str, list[tuple[int, Event]]] = {}
        seen: set[tuple[str, str]] = set()
        for index, event in events:
            if self.programme.aware(event.ts) > latest_allowed:
                result.rejected.append(Rejection(index, event.event_id, f"ts {event.ts.isoformat()} is in the future"))
                continue
            if (event.member_id, event.event_id) in seen:
                result.duplicates += 1
                continue
            seen.add((event.member_id, event.event_id))
            by_member.setdefault(event.member_id, []).append((index, event))
        for member_events in by_member.values():
            member_events.sort(key=lambda pair: self.programme.local(pair[1].ts))

        pending = list(by_member)
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                break
            pending = self._attempt(pending, by_member, result)
        for member_id in pending:  # pragma: no cover - needs MAX_ATTEMPTS lost races in a row
            for index, event in by_member[member_id]:
                result.rejected.append(Rejection(index, event.event_id, "too much contention on this member; retry"))
        return result

    def _attempt(self, members: list[str], by_member: dict, result: IngestResult) -> list[str]:
        """One optimistic round over ``members``; returns those that lost a race and must retry."""
        read = self.redis.pipeline(transaction=False)
        for member_id in members:
            for part in WRITER_PARTS:
                read.hgetall(member_key(member_id, part))
            for _, event in by_member[member_id]:
                read.exists(event_key(member_id, event.event_id))
        replies = iter(read.execute())

        write = self.redis.pipeline(transaction=False)
        plans = []
        for member_id in members:
            stored = {part: next(replies) for part in WRITER_PARTS}
            state = MemberState.from_stored(member_id, stored) if stored[PROFILE] else MemberState(member_id)
            outcome = IngestResult()
            to_commit: list[tuple[Event, list[Op]]] = []
            for index, event in by_member[member_id]:
                if next(replies):
                    outcome.duplicates += 1
                    continue
                try:
                    to_commit.append((event, apply_event(state, event, self.programme)))
                except EventRejected as exc:
                    outcome.rejected.append(Rejection(index, event.event_id, str(exc)))
            if to_commit:
                keys, args = self._commit_arguments(member_id, state, to_commit)
                self._apply(keys=keys, args=args, client=write)
            plans.append((member_id, outcome, to_commit))

        replies = iter(write.execute()) if len(write) else iter(())
        retry = []
        for member_id, outcome, to_commit in plans:
            if to_commit:
                statuses = next(replies)
                if statuses == [-1]:
                    retry.append(member_id)
                    continue
                for status, (event, _) in zip(statuses, to_commit):
                    if status == 1:
                        outcome.accepted += 1
                        outcome.applied.append(event)
                    else:
                        outcome.duplicates += 1
            result.merge(outcome)
        return retry

    def _commit_arguments(self, member_id: str, state: MemberState, to_commit) -> tuple[list[str], list[object]]:
        keys = [member_key(member_id, part) for part in PARTS]
        keys += [event_key(member_id, event.event_id) for event, _ in to_commit]
        newest = max(self.programme.day_of(event.ts) for event, _ in to_commit)
        args: list[object] = [
            str(state.profile.get("v", 0)), self._dedup_seconds, newest, DAILY_BUCKET_DAYS, len(to_commit),
        ]
        for _, ops in to_commit:
            args.append(len(ops))
            for code, part, key, value in ops:
                args.extend((code, _PART_INDEX[part], key, repr(value) if isinstance(value, float) else value))
        return keys, args


__all__ = ["FeatureStore", "IngestResult", "Rejection", "member_key", "event_key", "DAYS"]
