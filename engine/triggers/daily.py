"""The daily run: every member's ``schedule.daily`` rules on a date, resumable and shared by workers.

The run for a date is planned once: the member ids (a SCAN of the store, sorted) are cut into
chunks kept in Redis, and one work entry per chunk goes into a stream with a consumer group. Any
number of workers (``nbo triggers run-daily``, the scheduler in ``nbo serve``) take chunks from it:

    read the chunk's states (1 round trip) -> features as of the run's moment -> churn score if a
    rule reads it -> durable_rules evaluates the daily rules per member -> the outbox emitter
    (caps, budgets, holdouts, exposures; exactly once per rule, member and date) -> ack the chunk

A worker that dies leaves its chunk pending: the same worker name picks it up first when it runs
again, another worker claims it once it has been idle ``claim_idle_seconds``. Redoing a chunk
emits nothing twice (``engine.triggers.outbox``), so the run completes once whatever crashed.

The run's figures are exact too. A chunk's counts and its ack are one script, applied only while
the chunk is still pending for the worker committing it (a slow worker whose chunk another has
claimed commits nothing). Emission markers carry the run's plan id, so a redone chunk counts what
an earlier attempt of the same run emitted before it died as emitted, not as "already".
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time

import redis

from engine.clock import Clock
from engine.feature_store import FEATURE_PARTS, FeatureStore
from engine.features import member_features
from engine.keys import (
    DAILY_RUN_TTL_SECONDS,
    DAILY_WORKERS_GROUP,
    PLANNING_SECONDS,
    daily_run_chunks_key,
    daily_run_key,
    daily_run_planning_key,
    daily_run_work_key,
)
from engine.programme import Programme
from engine.rules import RequestContext, RuleRuntime
from engine.settings import TriggerSettings
from engine.streams import ensure_group
from engine.triggers.outbox import Decision, EmitStats, Emitter

log = logging.getLogger(__name__)

TRIGGER = "schedule.daily"
STAT_FIELDS = ("members", "fired", "held_out", "emitted", "entries", "already")

# KEYS: the run record, its work stream (one slot); ARGV: group, consumer, entry id, then field, increment pairs.
# The chunk's counts and its ack happen once, by the worker the chunk is pending for.
_COMMIT_CHUNK_LUA = """
local pending = redis.call('XPENDING', KEYS[2], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

ChurnScorer = Callable[[Mapping[str, object]], float | None]
Progress = Callable[[int, int], None]
"""on_progress(chunks done, chunks in the run)."""


def worker_name() -> str:
    """A worker name that is the same when the same command runs again on this host (so it resumes its chunk)."""
    return socket.gethostname()


@dataclass
class RunReport:
    """Where a daily run stands: chunks done of all, and what it emitted (over every worker and restart)."""

    as_of: date
    status: str
    chunks: int
    chunks_done: int
    stats: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    """This call's time."""
    chunks_this_call: int = 0


class DailyRun:
    """Plans and works through the daily rules for a date (see the module notes)."""

    def __init__(self, *, client: redis.Redis, store: FeatureStore, programme: Programme, rules: RuleRuntime,
                 emitter: Emitter, settings: TriggerSettings, clock: Clock, score_churn: ChurnScorer | None = None,
                 worker: str | None = None) -> None:
        self.redis = client
        self.store = store
        self.programme = programme
        self.rules = rules
        self.emitter = emitter
        self.settings = settings
        self.clock = clock
        self.score_churn = score_churn
        """The churn model's probability for a feature vector (None: no model), for rules that read it."""
        self.worker = worker or worker_name()
        self._commit_chunk = self.redis.register_script(_COMMIT_CHUNK_LUA)

    def moment(self, as_of: date) -> datetime:
        """When the daily rules look at the members: ``daily_at`` local time on the date."""
        hour, minute = (int(x) for x in self.settings.daily_at.split(":"))
        return datetime.combine(as_of, clock_time(hour, minute), tzinfo=self.programme.tz)

    # --- planning ---------------------------------------------------------------------------------

    def plan(self, as_of: date) -> int:
        """Cut the members into chunks and queue them, once per date; returns the number of chunks."""
        key = daily_run_key(as_of)
        chunks = self.redis.hget(key, "chunks")
        if chunks is not None:
            return int(chunks)
        planning = daily_run_planning_key(as_of)
        if not self.redis.set(planning, self.worker, nx=True, ex=PLANNING_SECONDS):
            return self._wait_for_plan(key)
        ids = sorted(self.store.member_ids())
        size = self.settings.chunk_size
        parts = [ids[i:i + size] for i in range(0, len(ids), size)]
        chunks_key, work = daily_run_chunks_key(as_of), daily_run_work_key(as_of)
        pipe = self.redis.pipeline(transaction=False)
        for i, part in enumerate(parts):
            pipe.hset(chunks_key, str(i), "\n".join(part))
        pipe.execute()
        ensure_group(self.redis, work, DAILY_WORKERS_GROUP)
        pipe = self.redis.pipeline(transaction=False)
        for i in range(len(parts)):
            pipe.xadd(work, {"chunk": str(i)})
        pipe.hset(key, mapping={"status": "running", "members": 0, "member_ids": len(ids),
                                "plan": secrets.token_hex(8),
                                "planned_at": self.clock().astimezone(self.programme.tz).isoformat(),
                                "chunks_done": 0})
        pipe.hset(key, "chunks", len(parts))  # last: a plan is complete once "chunks" is there
        for run_part in (key, chunks_key, work):
            pipe.expire(run_part, DAILY_RUN_TTL_SECONDS)
        pipe.delete(planning)
        pipe.execute()
        log.info("daily run %s planned: %d members in %d chunks", as_of, len(ids), len(parts))
        return len(parts)

    def _wait_for_plan(self, key: str) -> int:
        deadline = time.monotonic() + PLANNING_SECONDS
        while time.monotonic() < deadline:
            chunks = self.redis.hget(key, "chunks")
            if chunks is not None:
                return int(chunks)
            time.sleep(0.1)
        raise TimeoutError(f"{key}: another worker started planning the run and did not finish")

    # --- working ----------------------------------------------------------------------------------

    def run(self, as_of: date, on_progress: Progress | None = None, wait: bool = True,
            max_chunks: int | None = None) -> RunReport:
        """Work through the run's chunks with the other workers; with ``wait``, return once all are done."""
        started = time.perf_counter()
        key = daily_run_key(as_of)
        total = self.plan(as_of)
        plan_id = self.redis.hget(key, "plan")
        done_here = 0
        own_pending = True  # first the chunks this worker name left unfinished (a crash), then new ones
        while max_chunks is None or done_here < max_chunks:
            entries = self._next(as_of, own_pending)
            if own_pending and not entries:
                own_pending = False
                continue
            if not entries:
                if not wait or int(self.redis.xpending(daily_run_work_key(as_of), DAILY_WORKERS_GROUP)["pending"]) == 0:
                    break
                time.sleep(min(1.0, self.settings.claim_idle_seconds / 4))  # others are on the last chunks
                continue
            for entry_id, fields in entries:
                self._work(as_of, plan_id, entry_id, int(fields["chunk"]))
                done_here += 1
                if on_progress is not None:
                    on_progress(int(self.redis.hget(key, "chunks_done") or 0), total)
        report = self.report(as_of)
        if report.chunks_done >= total and report.status != "done":
            self.redis.hset(key, mapping={"status": "done",
                                          "finished_at": self.clock().astimezone(self.programme.tz).isoformat()})
            report.status = "done"
            log.info("daily run %s done: %s", as_of, report.stats)
        report.seconds = time.perf_counter() - started
        report.chunks_this_call = done_here
        return report

    def _next(self, as_of: date, own_pending: bool) -> list:
        work = daily_run_work_key(as_of)
        if own_pending:
            replies = self.redis.xreadgroup(DAILY_WORKERS_GROUP, self.worker, {work: "0"}, count=1)
            return [(i, f) for _, entries in replies or [] for i, f in entries if f]
        idle_ms = int(self.settings.claim_idle_seconds * 1000)
        _, claimed, *_ = self.redis.xautoclaim(work, DAILY_WORKERS_GROUP, self.worker, min_idle_time=idle_ms, count=1)
        if claimed:
            return claimed
        replies = self.redis.xreadgroup(DAILY_WORKERS_GROUP, self.worker, {work: ">"}, count=1)
        return [(i, f) for _, entries in replies or [] for i, f in entries]

    def _work(self, as_of: date, plan_id: str | None, entry_id: str, chunk: int) -> None:
        ids = (self.redis.hget(daily_run_chunks_key(as_of), str(chunk)) or "").split("\n")
        stats, members = self.evaluate_members([m for m in ids if m], as_of, run=plan_id)
        counts: list[object] = ["members", members]
        for name in STAT_FIELDS[1:]:
            counts += [name, getattr(stats, name)]
        for reason, n in stats.refused.items():
            counts += [f"refused:{reason}", n]
        counts += ["chunks_done", 1]
        committed = self._commit_chunk(keys=[daily_run_key(as_of), daily_run_work_key(as_of)],
                                       args=[DAILY_WORKERS_GROUP, self.worker, entry_id, *counts])
        if not committed:
            log.info("daily run %s: chunk %d was claimed by another worker; its counts are that worker's", as_of, chunk)

    def evaluate_members(self, member_ids: list[str], as_of: date, run: str | None = None) -> tuple[EmitStats, int]:
        """The daily rules for these members on ``as_of``, emitted; returns the emission and members evaluated.

        ``run`` (the plan id) marks the emissions as this run's, so a redone chunk counts them once."""
        moment = self.moment(as_of)
        programme = self.programme
        states = self.store.read_states(member_ids, parts=FEATURE_PARTS)
        wants_churn = self.score_churn is not None and "churn_probability" in self.rules.reads(TRIGGER)
        period = f"d{as_of.isoformat()}"
        decisions = []
        members = 0
        for member_id, state in states.items():
            if state is None or not state.registered:
                continue
            members += 1
            features = member_features(state, moment, programme)
            if features["days_since_registration"] is not None and features["days_since_registration"] < 0:
                continue  # not yet a member on that day (a run for a past date)
            if wants_churn:
                probability = self.score_churn(features)
                if probability is not None:
                    features["churn_probability"] = probability
            evaluation = self.rules.evaluate(TRIGGER, features, RequestContext(at=moment, member_id=member_id))
            if evaluation.firings:
                decisions.append(Decision(member_id, evaluation, moment, period, store_id=features.get("home_store"),
                                          run=run))
        return self.emitter.emit(decisions), members

    def report(self, as_of: date) -> RunReport:
        """The run's progress and counts, from Redis (any worker's view)."""
        fields = self.redis.hgetall(daily_run_key(as_of))
        if not fields:
            return RunReport(as_of=as_of, status="not started", chunks=0, chunks_done=0)
        return RunReport(
            as_of=as_of, status=fields.get("status", "planning"), chunks=int(fields.get("chunks", 0)),
            chunks_done=int(fields.get("chunks_done", 0)),
            stats={name: int(fields.get(name, 0)) for name in STAT_FIELDS},
            refused={k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("refused:")})


def server_worker_name() -> str:
    """The name a ``nbo serve`` process works under (its chunks are claimed by others if it dies)."""
    return f"{worker_name()}-serve-{os.getpid()}"
