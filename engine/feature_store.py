"""The online member feature store: member state in Redis, events applied atomically, exactly once.

Layout (``engine.keys``): every key of one member shares the hash tag ``{member_id}`` (same Redis
Cluster slot): ``m:{id}:p`` profile, ``m:{id}:mo`` monthly buckets (growth, spend, point lots),
``m:{id}:d`` daily buckets (spend, baskets), ``m:{id}:c`` category and ``m:{id}:i`` item counters,
and one short-lived ``m:{id}:e:<event_id>`` key per applied event (the exactly-once record).

Ingestion reads the members of a batch in one round trip, folds each event with
``engine.member_state.apply_event`` and commits each member's changes with one Lua script that
checks the state version it read (optimistic concurrency: a concurrent writer makes it retry, no
update is lost) and skips events already applied (a replay changes nothing).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis

from engine.clock import utc_now
from engine.events import Event, parse_event
from engine.features import member_features
from engine.keys import DAY_SECONDS, MEMBER_PROFILES, event_key, member_key, member_of, recommendations_key
from engine.member_state import (
    INCREMENTED_PARTS,
    ITEMS,
    PARTS,
    PROFILE,
    WRITER_PARTS,
    Changes,
    EventRejected,
    MemberState,
    apply_event,
)
from engine.programme import Programme
from engine.redis_server import queue_script

FEATURE_PARTS: tuple[str, ...] = tuple(part for part in PARTS if part != ITEMS)
"""What ``member_features`` reads: the items bought are for the recommender only."""
DAILY_BUCKET_DAYS = 400
"""Daily buckets older than this (behind the member's newest event) are pruned: windows stop at 365."""
MAX_ATTEMPTS = 64
WRITER_CACHE_MEMBERS = 50_000


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
# ARGV: expected version, dedup ttl seconds, newest day, daily-bucket horizon, event count, then
#       sections, each a count and its items: profile field/value pairs (absolute), month
#       field/value pairs (absolute), month fields to delete, then field/delta pairs to add to
#       days, categories and items.
# Returns {1} applied, {-1} the version moved (re-read and retry), {-2, i...} events i were
# already applied (nothing written: drop them and retry).
_APPLY_LUA = """
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[1] then return {-1} end
local n = tonumber(ARGV[5])
local seen = {-2}
for e = 1, n do
  if redis.call('EXISTS', KEYS[5 + e]) == 1 then seen[#seen + 1] = e end
end
if #seen > 1 then return seen end
local pos = 6
local function pairs_section(command, key)
  local count = tonumber(ARGV[pos]); pos = pos + 1
  if count > 0 then redis.call(command, key, unpack(ARGV, pos, pos + 2 * count - 1)) end
  pos = pos + 2 * count
end
pairs_section('HSET', KEYS[1])
pairs_section('HSET', KEYS[2])
local dels = tonumber(ARGV[pos]); pos = pos + 1
if dels > 0 then redis.call('HDEL', KEYS[2], unpack(ARGV, pos, pos + dels - 1)) end
pos = pos + dels
for part = 3, 5 do
  -- Daily buckets are integers (fen, baskets); quantities may be fractional (0.5 kg).
  local command = part == 3 and 'HINCRBY' or 'HINCRBYFLOAT'
  local count = tonumber(ARGV[pos]); pos = pos + 1
  for _ = 1, count do
    redis.call(command, KEYS[part], ARGV[pos], ARGV[pos + 1])
    pos = pos + 2
  end
end
local ttl = tonumber(ARGV[2])
for e = 1, n do redis.call('SET', KEYS[5 + e], '1', 'EX', ttl) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
local horizon = tonumber(ARGV[4])
if redis.call('HLEN', KEYS[3]) > 2 * horizon + 64 then
  local cutoff = tonumber(ARGV[3]) - horizon
  local stale = {}
  for _, fld in ipairs(redis.call('HKEYS', KEYS[3])) do
    if tonumber(string.sub(fld, 2)) < cutoff then stale[#stale + 1] = fld end
  end
  for i = 1, #stale, 500 do
    redis.call('HDEL', KEYS[3], unpack(stale, i, math.min(i + 499, #stale)))
  end
end
return {1}
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
        writer_cache_members: int = WRITER_CACHE_MEMBERS,
    ) -> None:
        self.redis = client
        self.programme = programme
        self.clock = clock
        self.future_tolerance = future_tolerance
        self._apply = client.register_script(_APPLY_LUA)
        self._dedup_seconds = programme.settings.event_dedup_days * DAY_SECONDS
        # The profile and months this process last committed, per member. Safe to reuse because
        # every commit checks the stored version: a stale entry only costs a refused commit and
        # a re-read. It saves the read round trip and the parsing for members seen recently.
        self._writer_cache: OrderedDict[str, MemberState] = OrderedDict()
        self.writer_cache_members = writer_cache_members

    # --- reading --------------------------------------------------------------------------------

    def read_states(self, member_ids: Sequence[str], parts: Sequence[str] = PARTS) -> dict[str, MemberState | None]:
        """The state of each member, in one round trip (None for an unknown member); ``parts`` may leave out
        what the caller does not need (``FEATURE_PARTS``: all that ``member_features`` reads)."""
        pipe = self.redis.pipeline(transaction=False)
        for member_id in member_ids:
            for part in parts:
                pipe.hgetall(member_key(member_id, part))
        replies = pipe.execute()
        states: dict[str, MemberState | None] = {}
        n = len(parts)
        for i, member_id in enumerate(member_ids):
            stored = dict(zip(parts, replies[i * n:(i + 1) * n]))
            states[member_id] = MemberState.from_stored(member_id, stored) if stored[PROFILE] else None
        return states

    def read_state(self, member_id: str) -> MemberState | None:
        return self.read_states([member_id])[member_id]

    def read_state_and(self, member_id: str, key: str) -> tuple[MemberState | None, str | None]:
        """A member's state and one more string value (e.g. a remembered answer) in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for part in PARTS:
            pipe.hgetall(member_key(member_id, part))
        pipe.get(key)
        *parts, value = pipe.execute()
        stored = dict(zip(PARTS, parts))
        return (MemberState.from_stored(member_id, stored) if stored[PROFILE] else None), value

    def member_features(self, member_id: str, as_of: datetime | None = None) -> dict[str, object] | None:
        """One member's feature vector now (or at ``as_of``); None if the member is unknown."""
        state = self.read_state(member_id)
        if state is None:
            return None
        return member_features(state, as_of or self.clock(), self.programme)

    def member_ids(self, batch: int = 1000) -> Iterator[str]:
        """Every stored member id (SCAN; on a cluster, run per node)."""
        for key in self.redis.scan_iter(match=MEMBER_PROFILES, count=batch):
            yield member_of(key.decode() if isinstance(key, bytes) else key)

    def write_states(self, states: Mapping[str, MemberState]) -> None:
        """Write whole member states under the given ids, pipelined: a bulk load of history folded elsewhere
        (benchmarks, migrations). It records no event ids, so replaying that history afterwards would count twice."""
        pipe = self.redis.pipeline(transaction=False)
        for member_id, state in states.items():
            for part in PARTS:
                values = state.part(part)
                if values:
                    pipe.hset(member_key(member_id, part), mapping={k: _encode(v) for k, v in values.items()})
        pipe.execute()

    def write_profile_values(self, values: dict[str, dict[str, object]]) -> None:
        """Set derived profile fields (e.g. batch churn scores) for many members, pipelined."""
        pipe = self.redis.pipeline(transaction=False)
        for member_id, mapping in values.items():
            pipe.hset(member_key(member_id, PROFILE), mapping={k: str(v) for k, v in mapping.items()})
        pipe.execute()

    def write_recommendations(
        self,
        recommendations: dict[str, list[tuple]],
        model_version: str | None = None,
        ttl_seconds: int | None = None,
    ) -> None:
        """Store batch-scored top-N recommendations per member (``engine.keys.recommendations_key``), pipelined.

        Each item is ``(sku, score)`` or ``(sku, score, reason)``, best first; a member's previous
        list is replaced. ``ttl_seconds`` lets stale lists expire if batch scoring stops.
        """
        import json  # local: only batch scoring writes recommendations

        pipe = self.redis.pipeline(transaction=False)
        for member_id, items in recommendations.items():
            payload = json.dumps({
                "model_version": model_version,
                "items": [
                    {"sku": str(item[0]), "score": float(item[1]), "reason": str(item[2]) if len(item) > 2 else None}
                    for item in items
                ],
            })
            pipe.set(recommendations_key(member_id), payload, ex=ttl_seconds)
        pipe.execute()

    def read_recommendations(self, member_id: str) -> dict[str, object] | None:
        """A member's stored recommendations ``{"model_version", "items": [{sku, score, reason}]}``, or None."""
        import json

        raw = self.redis.get(recommendations_key(member_id))
        if raw is None:
            return None
        return json.loads(raw)

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
        for attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            if attempt >= 2:  # several writers keep colliding on these members: spread them out
                time.sleep(random.uniform(0, 0.0005 * attempt))
            pending = self._attempt(pending, by_member, result)
        for member_id in pending:  # pragma: no cover - needs MAX_ATTEMPTS lost races in a row
            for index, event in by_member[member_id]:
                result.rejected.append(Rejection(index, event.event_id, "too much contention on this member; retry"))
        self._replays_are_duplicates(result, events)
        return result

    def _replays_are_duplicates(self, result: IngestResult, events: list[tuple[int, Event]]) -> None:
        """A rejected event that was in fact applied before (a replayed register, say) is a duplicate."""
        if not result.rejected:
            return
        by_index = dict(events)
        candidates = [r for r in result.rejected if r.index in by_index]
        if not candidates:
            return
        pipe = self.redis.pipeline(transaction=False)
        for r in candidates:
            event = by_index[r.index]
            pipe.exists(event_key(event.member_id, event.event_id))
        seen = {r.index for r, exists in zip(candidates, pipe.execute()) if exists}
        if seen:
            result.rejected = [r for r in result.rejected if r.index not in seen]
            result.duplicates += len(seen)

    def _attempt(self, members: list[str], by_member: dict, result: IngestResult) -> list[str]:
        """One optimistic round over ``members``; returns those that lost a race and must retry."""
        cache = self._writer_cache
        states = {member_id: cache.pop(member_id) for member_id in members if member_id in cache}
        uncached = [member_id for member_id in members if member_id not in states]
        if uncached:
            read = self.redis.pipeline(transaction=False)
            for member_id in uncached:
                for part in WRITER_PARTS:
                    read.hgetall(member_key(member_id, part))
            replies = iter(read.execute())
            for member_id in uncached:
                stored = {part: next(replies) for part in WRITER_PARTS}
                states[member_id] = (
                    MemberState.from_stored(member_id, stored) if stored[PROFILE] else MemberState(member_id)
                )

        write = self.redis.pipeline(transaction=False)
        plans = []
        for member_id in members:
            state = states[member_id]
            version = str(state.profile.get("v", 0))
            outcome = IngestResult()
            changes = Changes()
            to_commit: list[Event] = []
            for index, event in by_member[member_id]:
                try:
                    changes.merge(apply_event(state, event, self.programme))
                    to_commit.append(event)
                except EventRejected as exc:
                    outcome.rejected.append(Rejection(index, event.event_id, str(exc)))
            if to_commit:
                keys, args = self._commit_arguments(member_id, version, state, changes, to_commit)
                queue_script(write, self._apply, keys, args)
            plans.append((member_id, outcome, to_commit))

        replies = iter(write.execute()) if len(write) else iter(())
        retry = []
        for member_id, outcome, to_commit in plans:
            state = states[member_id]
            if to_commit:
                status = next(replies)
                if status[0] == -1:
                    retry.append(member_id)
                    continue
                if status[0] == -2:
                    # Already applied (a replay, or a concurrent writer got there first): count
                    # them once as duplicates and fold the rest again without them.
                    seen = {to_commit[i - 1].event_id for i in status[1:]}
                    result.duplicates += len(seen)
                    by_member[member_id] = [(i, e) for i, e in by_member[member_id] if e.event_id not in seen]
                    retry.append(member_id)
                    continue
                outcome.accepted += len(to_commit)
                outcome.applied.extend(to_commit)
                state.profile["v"] = int(state.profile.get("v", 0)) + 1
            self._remember(state)
            result.merge(outcome)
        return retry

    def _remember(self, state: MemberState) -> None:
        """Keep the committed writer state of a member (the least recently used go first)."""
        if not state.registered or self.writer_cache_members <= 0:
            return
        cache = self._writer_cache
        cache[state.member_id] = state
        if len(cache) > self.writer_cache_members:
            cache.popitem(last=False)

    def _commit_arguments(
        self, member_id: str, version: str, state: MemberState, changes: Changes, events: list[Event]
    ) -> tuple[list[str], list[object]]:
        keys = [member_key(member_id, part) for part in PARTS]
        keys += [event_key(member_id, event.event_id) for event in events]
        newest = max(self.programme.day_of(event.ts) for event in events)
        args: list[object] = [version, self._dedup_seconds, newest, DAILY_BUCKET_DAYS, len(events)]
        profile, months = state.profile, state.months
        args.append(len(changes.profile))
        for key in changes.profile:
            args += (key, _encode(profile[key]))
        args.append(len(changes.months))
        for key in changes.months:
            args += (key, _encode(months[key]))
        args.append(len(changes.months_deleted))
        args += changes.months_deleted
        for part in INCREMENTED_PARTS:
            section = [(key, amount) for (p, key), amount in changes.increments.items() if p == part]
            args.append(len(section))
            for key, amount in section:
                args += (key, _encode(amount))
        return keys, args


def _encode(value: object) -> object:
    return repr(value) if isinstance(value, float) else value


__all__ = ["FeatureStore", "IngestResult", "Rejection"]
