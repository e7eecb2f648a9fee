"""What a running service owns, built once (``Services.build``: every collaborator wired in one place) and closed once.

Routes get it through ``serving.dependencies.ServicesDep``; the checkout decision, the daily run
and the delivery worker get the collaborators they use as named constructor parameters from here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import redis

from engine.audit import AuditLog
from engine.clock import Clock, clock_from_settings
from engine.coupons import CouponLedger
from engine.data_rights import DataRights
from engine.events import Event
from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer
from engine.measurement import Measurement, RuleReport
from engine.programme import Programme
from engine.redis_circuit import REDIS_DOWN
from engine.redis_server import connect
from engine.rules import RuleLimits, RuleRuntime, start_watching
from engine.scope import Scope
from engine.settings import Settings
from engine.triggers import (
    DailyRun,
    DailyScheduler,
    Emitter,
    EventTriggers,
    OutboxConsumer,
    adapter_from_settings,
    server_worker_name,
)
from serving.auth import ApiKeys
from serving.console import ConsoleSessions
from serving.next_best_offer import NextBestOffer
from serving.rate_limits import RateLimits
from training.champions import ChampionModels, ModelUnavailable


def load_catalogue(path: Path) -> dict[str, str]:
    """sku -> category from a catalogue file (Parquet or CSV with ``sku`` and ``category``), if there is one."""
    if not path.exists():
        return {}
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return dict(zip(frame["sku"].astype(str), frame["category"].astype(str), strict=True))

log = logging.getLogger(__name__)


def rule_reach(scope) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A rule's ``scope:`` as (regions, stores); empty means everywhere."""
    return (tuple(scope.regions), tuple(scope.stores)) if scope is not None else ((), ())


@dataclass
class Services:
    settings: Settings
    programme: Programme
    redis: redis.Redis
    store: FeatureStore
    keys: ApiKeys
    clock: Clock
    audit: AuditLog
    coupons: CouponLedger
    models: ChampionModels
    rules: RuleRuntime
    limits: RuleLimits
    catalogue: dict[str, str]
    """sku -> category, for basket lines (rules test categories) and category recommendations."""
    emitter: Emitter
    event_triggers: EventTriggers
    measurement: Measurement
    next_best_offer: NextBestOffer
    """The checkout decision (``POST /v1/next-best-offer`` and the console's "try it")."""
    rate_limits: RateLimits
    """Token buckets per key and route class, and the redemption lockout (``serving.rate_limits``)."""
    data_rights: DataRights
    """Members' erasure and export (``engine.data_rights``)."""
    sessions: ConsoleSessions
    """The console's sign-in sessions (``serving.console.session``)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        client: redis.Redis | None = None,
        clock: Clock | None = None,
        models: ChampionModels | None = None,
    ) -> Services:
        """Connect and load everything; ``models`` defaults to the registry's champions, ``clock`` to the
        settings' (``engine.clock``)."""
        programme = Programme.from_settings(settings)
        clock = clock or clock_from_settings(settings)
        client = client or connect(settings)
        audit = AuditLog(client, settings.var_dir / "audit", clock=clock)
        store = FeatureStore(client, programme, clock=clock, writer_cache_members=settings.writer_cache_members)
        catalogue = load_catalogue(settings.catalogue_path or settings.var_dir / "catalogue.parquet")
        rules = RuleRuntime(settings.rules_dir, programme.tz, settings.points.points_per_yuan_redeemed,
                            catalogue=catalogue, audit=audit)
        report = rules.reload()
        if not report.ok:
            log.error("rules did not load", extra={"problems": [str(p) for p in report.errors][:20]})
        limits = RuleLimits(client, programme.tz)
        emitter = Emitter(client, limits, programme)
        coupons = CouponLedger(client, audit, clock=clock, store=store)
        models = models if models is not None else ChampionModels.from_settings(settings).load()
        keys = ApiKeys(client, clock=clock, audit=audit)
        return cls(
            settings=settings, programme=programme, redis=client, store=store, keys=keys, clock=clock,
            audit=audit, coupons=coupons, models=models, rules=rules, limits=limits, catalogue=catalogue, emitter=emitter,
            event_triggers=EventTriggers(store, rules, emitter, catalogue),
            measurement=Measurement(client, settings.triggers.attribution_days, settings.arbitration.margin_rate),
            next_best_offer=NextBestOffer(client=client, store=store, programme=programme, models=models, rules=rules,
                                          limits=limits, coupons=coupons, catalogue=catalogue,
                                          arbitration=settings.arbitration, clock=clock),
            rate_limits=RateLimits(client, settings.rate_limits),
            data_rights=DataRights(client, store, audit, clock),
            sessions=ConsoleSessions(client, keys, settings.console, clock),
        )

    def today(self) -> date:
        """The stores' local date now (by the service's clock)."""
        return self.programme.local(self.clock()).date()

    def daily_run(self, worker: str | None = None) -> DailyRun:
        """The daily rules over every member (churn scored by the champion model when a rule reads it)."""
        return DailyRun(client=self.redis, store=self.store, programme=self.programme, rules=self.rules,
                        emitter=self.emitter, settings=self.settings.triggers, clock=self.clock,
                        score_churn=self.score_churn, worker=worker)

    def score_churn(self, features: Mapping[str, object]) -> float | None:
        """The champion churn model's probability for a feature vector, or None without a model."""
        try:
            return self.models.score_churn(features)
        except ModelUnavailable:
            return None

    def outbox_consumer(self, consumer: str) -> OutboxConsumer:
        """A consumer of the coupon outbox delivering through the configured adapter."""
        adapter = adapter_from_settings(self.settings.triggers, self.settings.var_dir)
        return OutboxConsumer(client=self.redis, store=self.store, programme=self.programme, coupons=self.coupons,
                              adapter=adapter, settings=self.settings.triggers, clock=self.clock, consumer=consumer,
                              audit=self.audit)

    def rule_reports(self, since: date, until: date, period: str = "month",
                     scope: Scope | None = None) -> list[RuleReport]:
        """Measurement of every live rule that applies in ``scope`` over exposures from ``since`` to ``until``, counting
        the members in ``scope`` only (``engine.measurement``)."""
        scope = scope or Scope()
        compiled = self.rules.compiled
        rules = [(r.id, r.checked.rule.name, r.trigger) for r in compiled.rules
                 if scope.applies_to_rule(*rule_reach(r.checked.rule.scope), self.settings.store_regions)] \
            if compiled else []
        return self.measurement.report(rules, since, until, period, scope)

    def after_ingest(self, applied: Sequence[Event]) -> None:
        """Event triggers for applied events; a failure is logged, the events stay applied."""
        if not applied or not self.settings.triggers.event_triggers:
            return
        try:
            self.event_triggers.after_ingest(applied)
        except REDIS_DOWN as exc:
            log.warning("event triggers skipped: redis unavailable (%s)", type(exc).__name__)
        except Exception:  # a rule bug must not stop ingestion (the events are applied already)
            log.exception("event triggers failed; the events stay applied")

    def start_background(self) -> None:
        """Start the events stream consumer (if enabled) and the model reloader, each on its own thread."""
        if self.settings.stream_consumer:
            consumer = EventStreamConsumer(self.store, consumer=f"serve-{os.getpid()}", on_applied=self.after_ingest,
                                           claim_idle_ms=int(self.settings.stream_claim_idle_seconds * 1000))
            self._start("events-stream", consumer.run)
        if self.settings.triggers.deliver:
            self._start("outbox", self.outbox_consumer(server_worker_name()).run)
        if self.settings.triggers.scheduler:
            self._start("daily-scheduler", DailyScheduler(self.daily_run(server_worker_name()), self.clock).run)
        self._start("model-reload", self._reload_models)
        self._start("key-changes", self.keys.watch)  # a revoked key stops working here within a second
        self._threads.append(start_watching(self.rules, self._stop))

    def _start(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _reload_models(self, stop: threading.Event) -> None:
        """Swap in a newly promoted champion without a restart (the registry is asked once a minute)."""
        while not stop.wait(self.settings.model_reload_seconds):
            try:
                self.models.reload_if_changed()
            except Exception:  # a registry hiccup must not stop the reloader; the models in use stay
                log.exception("model reload failed; keeping the models in use")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self.audit.close()
        self.redis.close()
