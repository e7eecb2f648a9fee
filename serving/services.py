"""What a running service owns: settings, Redis, the feature store, keys; built once, closed once."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis

from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer
from engine.member_state import Programme, utc_now
from engine.redis_server import connect
from engine.settings import Settings
from serving.auth import ApiKeys

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    programme: Programme
    redis: redis.Redis
    store: FeatureStore
    keys: ApiKeys
    clock: Callable[[], datetime]
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: Settings, client: redis.Redis | None = None, clock: Callable[[], datetime] = utc_now
    ) -> Services:
        programme = Programme.from_settings(settings)
        client = client or connect(settings)
        return cls(
            settings=settings, programme=programme, redis=client,
            store=FeatureStore(client, programme, clock=clock), keys=ApiKeys(client), clock=clock,
        )

    def start_background(self) -> None:
        """Start the events stream consumer (if enabled) on its own thread."""
        if not self.settings.stream_consumer:
            return
        consumer = EventStreamConsumer(self.store, consumer=f"serve-{os.getpid()}")
        thread = threading.Thread(target=consumer.run, args=(self._stop,), name="events-stream", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self.redis.close()
