"""Event triggers: the ``event.<type>`` rules, evaluated as events are applied to the feature store.

Called with the events an ingest applied (``IngestResult.applied``: duplicates and rejected
events are not there, so a replayed event triggers nothing). Only events whose type has live
rules cost anything: their members' states are read in one round trip (after the events were
committed, so "third purchase this month" sees the third purchase), each event is evaluated by
durable_rules as of its own time, and what fired goes to the outbox with the event id as its
period: one emission per rule and event, whatever is retried. ``event.tier_change`` rules run when
the events changed the member's tier (once per member, new tier and day).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from engine.events import Event
from engine.feature_store import FEATURE_PARTS, FeatureStore
from engine.features import member_features
from engine.rules import RequestContext, RuleRuntime
from engine.triggers.outbox import Decision, EmitStats, Emitter

log = logging.getLogger(__name__)

TIER_CHANGE = "event.tier_change"
"""A synthetic trigger: the member's tier changed (went up, or back up) through the applied events."""


class EventTriggers:
    """Evaluates the event rules for applied events and emits what fired."""

    def __init__(self, store: FeatureStore, rules: RuleRuntime, emitter: Emitter,
                 catalogue: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.rules = rules
        self.emitter = emitter
        self.catalogue = catalogue or {}

    def after_ingest(self, applied: Sequence[Event]) -> EmitStats:
        """Run the rules of each applied event's ``event.<type>`` trigger; returns what was emitted."""
        live = self.rules.triggers
        tier_rules = TIER_CHANGE in live
        relevant = [e for e in applied if tier_rules or f"event.{e.type}" in live]
        if not relevant:
            return EmitStats()
        states = self.store.read_states(sorted({e.member_id for e in relevant}), parts=FEATURE_PARTS)
        programme = self.store.programme
        decisions = []
        changed: set[str] = set()
        for event in relevant:
            state = states.get(event.member_id)
            if state is None or not state.registered:
                continue
            features = member_features(state, event.ts, programme)
            context = RequestContext.from_event(event, self.catalogue)
            store_id = context.store_id or features.get("home_store")
            triggers = [(f"event.{event.type}", f"e:{event.event_id}")]
            changed_day = state.profile.get("tier_changed_day")
            if tier_rules and event.member_id not in changed and changed_day == programme.day_of(event.ts):
                # The tier changed on this event's day: once per member, tier and day, whichever event did it.
                changed.add(event.member_id)
                triggers.append((TIER_CHANGE, f"tier:{state.profile.get('tier')}:{changed_day}"))
            for trigger, period in triggers:
                if trigger not in live:
                    continue
                evaluation = self.rules.evaluate(trigger, features, context)
                if evaluation.firings:
                    decisions.append(Decision(event.member_id, evaluation, programme.aware(event.ts), period=period,
                                              store_id=store_id))
        return self.emitter.emit(decisions)
