"""Event triggers: the ``event.<type>`` rules, evaluated as events are applied to the feature store.

Called with the events an ingest applied (``IngestResult.applied``: duplicates and rejected
events are not there, so a replayed event triggers nothing). Only events whose type has live
rules cost anything: their members' states are read in one round trip (after the events were
committed, so "third purchase this month" sees the third purchase), each event is evaluated by
durable_rules as of its own time, and what fired goes to the outbox with the event id as its
period: one emission per rule and event, whatever is retried.
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
        relevant = [e for e in applied if f"event.{e.type}" in live]
        if not relevant:
            return EmitStats()
        states = self.store.read_states(sorted({e.member_id for e in relevant}), parts=FEATURE_PARTS)
        programme = self.store.programme
        decisions = []
        for event in relevant:
            state = states.get(event.member_id)
            if state is None or not state.registered:
                continue
            trigger = f"event.{event.type}"
            features = member_features(state, event.ts, programme)
            context = RequestContext.from_event(event, self.catalogue)
            evaluation = self.rules.evaluate(trigger, features, context)
            if evaluation.firings:
                decisions.append(Decision(event.member_id, evaluation, programme.aware(event.ts),
                                          period=f"e:{event.event_id}",
                                          store_id=context.store_id or features.get("home_store")))
        return self.emitter.emit(decisions)
