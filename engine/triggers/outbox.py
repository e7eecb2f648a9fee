"""The outbox: every action an automated trigger emits, once per (rule, member, period), in a Redis Stream.

A rule that fires for a member outside its holdout becomes one outbox entry per action (coupon,
points, message, recommendation, tag). Emitting is safe to repeat after any crash:

1. the member's emission marker ``m:{<member>}:ob:<rule>|<period>`` says it was emitted: skip (and
   when its value is the emitting run's id, an earlier attempt of this run did it: count it as emitted);
2. the rule's cap and budgets are reserved and committed under the token ``<rule>|<member>|<period>``
   (``RuleLimits``: a retry with the same token takes nothing twice);
3. the entries are added to the stream and the marker is set, in one round trip.

A crash between 2 and 3 leaves no marker, so the retry adds the entries again; the delivery side
(``engine.triggers.delivery``) makes that harmless: coupons are issued once per entry key, points
are an exactly-once event, and a delivered entry is remembered. Exposures for measurement
(treatment and holdout) are recorded in the same round trip.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis

from engine import measurement
from engine.keys import MARKER_TTL_SECONDS, OUTBOX_STREAM, emission_marker_key
from engine.programme import Programme
from engine.rules import Ask, Evaluation, Firing, RuleLimits, action_body, action_kind


def emission_key(rule_id: str, member_id: str, period: str) -> str:
    """The idempotency key of one rule's emission to one member in one period (rule ids and member ids have no '|')."""
    return f"{rule_id}|{member_id}|{period}"


@dataclass(frozen=True)
class Decision:
    """What the rules of a trigger decided for one member at one moment, and the period it counts in."""

    member_id: str
    evaluation: Evaluation
    at: datetime
    period: str
    """``d2026-03-01`` for the daily run, ``e:<event_id>`` for an event trigger."""
    store_id: str | None = None
    run: str | None = None
    """The run emitting it (the daily run's plan id): a marker an earlier attempt of the run set counts as emitted."""


@dataclass
class EmitStats:
    """What an emission did, by outcome; ``refused`` counts reasons (cap, budget)."""

    fired: int = 0
    held_out: int = 0
    emitted: int = 0
    entries: int = 0
    already: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def merge(self, other: EmitStats) -> None:
        self.fired += other.fired
        self.held_out += other.held_out
        self.emitted += other.emitted
        self.entries += other.entries
        self.already += other.already
        for reason, n in other.refused.items():
            self.refused[reason] = self.refused.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_entries(firing: Firing, decision: Decision, key: str, version: str) -> list[dict[str, Any]]:
    """One outbox entry per action of a firing (what the delivery side needs, nothing personal)."""
    coupons = iter(firing.coupons)
    entries = []
    for index, action in enumerate(firing.actions):
        kind, body = action_kind(action), action_body(action)
        if kind == "issue_coupon":
            kind, channel, payload = "coupon", body.channel or "app", asdict(next(coupons))
        elif kind == "award_points":
            kind, channel, payload = "points", None, {"points": body.points, "reason": body.reason}
        elif kind == "send_message":
            kind, channel, payload = "message", body.channel, {"template": body.template, "text": body.text}
        elif kind == "recommend":
            channel = "app"
            payload = {"skus": list(body.skus), "categories": list(body.categories), "k": body.k,
                       "reason": body.reason}
        else:  # tag: a label for the CRM, e.g. a call-back task
            channel, payload = None, {"tag": str(body)}
        entries.append({
            "key": key, "action": index, "rule": firing.rule_id, "name": firing.name, "member": decision.member_id,
            "kind": kind, "channel": channel, "body": payload, "trigger": firing.trigger, "period": decision.period,
            "at": decision.at.isoformat(), "version": version,
        })
    return entries


class Emitter:
    """Turns trigger decisions into outbox entries, exactly once per (rule, member, period)."""

    def __init__(self, client: redis.Redis, limits: RuleLimits, programme: Programme) -> None:
        self.redis = client
        self.limits = limits
        self.programme = programme

    def emit(self, decisions: Sequence[Decision]) -> EmitStats:
        """Emit the offers of many decisions in a handful of round trips; record exposures."""
        stats = EmitStats()
        offers = [(d, f) for d in decisions for f in d.evaluation.offers]
        held = [(d, f) for d in decisions for f in d.evaluation.firings if f.holdout]
        stats.fired = len(offers) + len(held)
        stats.held_out = len(held)
        todo = self._not_yet_emitted(offers, stats)
        reservations = self.limits.reserve_many([
            Ask(f.rule, d.member_id, d.at, d.store_id, coupons=len(f.coupons), amount=f.face_value,
                token=emission_key(f.rule_id, d.member_id, d.period)) for d, f in todo])
        granted = [(pair, r) for pair, r in zip(todo, reservations) if r.granted]
        for r in reservations:
            if not r.granted:
                reason = r.reason.split(":")[0]
                stats.refused[reason] = stats.refused.get(reason, 0) + 1
        committed = self.limits.commit_many([r for _, r in granted])
        pipe = self.redis.pipeline(transaction=False)
        treated: dict[tuple[str, int], list[str]] = defaultdict(list)
        for ((decision, firing), _), ok in zip(granted, committed):
            if not ok:  # pragma: no cover - a hold outlived by the run (hold_seconds); the retry reserves again
                stats.refused["hold expired"] = stats.refused.get("hold expired", 0) + 1
                continue
            key = emission_key(firing.rule_id, decision.member_id, decision.period)
            for entry in outbox_entries(firing, decision, key, decision.evaluation.version):
                pipe.xadd(OUTBOX_STREAM, {"e": json.dumps(entry, ensure_ascii=False, default=str)})
                stats.entries += 1
            pipe.set(emission_marker_key(decision.member_id, firing.rule_id, decision.period), decision.run or "1",
                     ex=MARKER_TTL_SECONDS)
            treated[(firing.rule_id, self.programme.day_of(decision.at))].append(decision.member_id)
            stats.emitted += 1
        holdouts: dict[tuple[str, int], list[str]] = defaultdict(list)
        for decision, firing in held:
            holdouts[(firing.rule_id, self.programme.day_of(decision.at))].append(decision.member_id)
        for rule_id, day in set(treated) | set(holdouts):
            measurement.record_exposures(pipe, rule_id, day, treated.get((rule_id, day), ()),
                                         holdouts.get((rule_id, day), ()))
        if len(pipe):
            pipe.execute()
        return stats

    def _not_yet_emitted(self, offers: list[tuple[Decision, Firing]], stats: EmitStats) -> list[tuple[Decision, Firing]]:
        if not offers:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for decision, firing in offers:
            pipe.get(emission_marker_key(decision.member_id, firing.rule_id, decision.period))
        todo = []
        for (decision, firing), marker in zip(offers, pipe.execute()):
            if marker is None:
                todo.append((decision, firing))
            elif decision.run is not None and marker == decision.run:
                # This run emitted it in an attempt that died before counting it (its entries and exposures
                # went in with the marker): it is this run's emission, counted now.
                stats.emitted += 1
                stats.entries += len(firing.actions)
            else:
                stats.already += 1
        return todo
