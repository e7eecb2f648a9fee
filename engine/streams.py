"""What every Redis Stream consumer group here shares: creating the group once, running until
stopped, pausing through a Redis outage, and a blocking connection of its own.

Used by the events stream (``engine.ingestion``), the outbox (``engine.triggers.delivery``) and the
daily run's work stream (``engine.triggers.daily``).
"""

from __future__ import annotations

import logging
import threading

import redis

from engine.redis_circuit import REDIS_DOWN

log = logging.getLogger(__name__)


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class GroupConsumer:
    """One consumer of a stream's group; subclasses say what ``run_once`` does with the entries."""

    def __init__(self, client: redis.Redis, stream: str, group: str, consumer: str, block_ms: int) -> None:
        from engine.redis_server import client_like

        self.redis = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.block_ms = block_ms
        # Blocking reads wait up to block_ms: give them a connection whose timeout is longer than
        # that, separate from the short-timeout client that keeps requests snappy.
        self._blocking = client_like(client, socket_timeout=block_ms / 1000 + 2)
        self._group_ready = False

    def ensure_group(self) -> None:
        ensure_group(self.redis, self.stream, self.group)
        self._group_ready = True

    def run_once(self) -> int:
        """Handle what is there (claimed and new entries), making the group first if it is not known to
        exist; returns entries handled."""
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; a Redis outage pauses consumption and it resumes after."""
        while not stop.is_set():
            try:
                self.run_once()  # it makes the group first when it is not known to exist
            except REDIS_DOWN as exc:
                log.warning("%s: redis unavailable (%s); retrying", self.stream, type(exc).__name__)
                self._group_ready = False
                stop.wait(1.0)
