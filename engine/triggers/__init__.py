"""Automated triggers: event rules on ingest, the daily run, the coupon outbox and its delivery.

* ``EventTriggers(store, rules, emitter).after_ingest(applied_events)``: ``event.<type>`` rules.
* ``DailyRun(...).run(as_of)``: ``schedule.daily`` rules over every
  member, resumable and shared by workers; ``DailyScheduler`` starts it at ``daily_at``.
* ``Emitter``: decisions -> outbox entries, exactly once per (rule, member, period).
* ``OutboxConsumer``: delivers the outbox (consumer group, claims, consent, quiet hours) through a
  ``DeliveryAdapter`` (``LogAdapter``, ``WebhookAdapter``).
"""

from engine.triggers.daily import DailyRun, RunReport, server_worker_name, worker_name
from engine.triggers.delivery import (
    Delivery,
    DeliveryAdapter,
    DeliveryFailed,
    LogAdapter,
    OutboxConsumer,
    WebhookAdapter,
    adapter_from_settings,
    quiet_until,
)
from engine.triggers.on_event import EventTriggers
from engine.triggers.outbox import Decision, EmitStats, Emitter, emission_key
from engine.triggers.scheduler import DailyScheduler

__all__ = [
    "DailyRun", "DailyScheduler", "Decision", "Delivery", "DeliveryAdapter", "DeliveryFailed",
    "EmitStats", "Emitter", "EventTriggers", "LogAdapter", "OutboxConsumer", "RunReport", "WebhookAdapter",
    "adapter_from_settings", "emission_key", "quiet_until", "server_worker_name", "worker_name",
]
