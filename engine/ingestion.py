"""The ways events reach the feature store besides HTTP: bulk backfill and the events Redis Stream.

Every path ends in ``FeatureStore.apply_events``, so the same validation, exactly-once and
atomicity apply whether an event came from a POS batch, the stream or a history import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import pandas as pd
import redis

from engine.events import Event
from engine.feature_store import FeatureStore, IngestResult
from engine.keys import EVENTS_STREAM, EVENTS_STREAM_MAXLEN, INGEST_GROUP, REJECTED_EVENTS_STREAM, REJECTED_MAXLEN
from engine.point_in_time import history_events
from engine.streams import GroupConsumer

log = logging.getLogger(__name__)


def backfill(
    store: FeatureStore,
    transactions: pd.DataFrame,
    members: pd.DataFrame | None = None,
    batch_size: int = 2000,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Load history into the store as register and purchase events (idempotent: ids are deterministic)."""
    total = IngestResult()
    events = history_events(transactions, members)
    while chunk := list(islice(events, batch_size)):
        result = store.apply_events(chunk)
        result.applied.clear()  # a backfill's caller wants counts, not millions of events
        total.merge(result)
        if on_progress:
            on_progress(len(chunk))
    return total


def publish_events(client: redis.Redis, raw_events: Sequence[dict], maxlen: int = EVENTS_STREAM_MAXLEN) -> list[str]:
    """Append raw events to the events stream (what a POS gateway or another service does)."""
    pipe = client.pipeline(transaction=False)
    for raw in raw_events:
        pipe.xadd(EVENTS_STREAM, {"e": json.dumps(raw, default=str)}, maxlen=maxlen, approximate=True)
    return [i.decode() if isinstance(i, bytes) else i for i in pipe.execute()]


@dataclass
class StreamStats:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


class EventStreamConsumer(GroupConsumer):
    """Applies events from the events stream with a consumer group; entries are acked after they apply.

    A consumer that dies between read and ack leaves its entries pending; another consumer claims
    them after ``claim_idle_ms`` (XAUTOCLAIM) and applies them, which exactly-once makes safe.
    Handled entries are deleted as they are acked: a raw event may carry a phone number, which
    must not stay in Redis in clear (a rejected one leaves its id and reason in the rejected stream).
    """

    def __init__(
        self,
        store: FeatureStore,
        consumer: str,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        on_applied: Callable[[list[Event]], None] | None = None,
    ) -> None:
        super().__init__(store.redis, EVENTS_STREAM, INGEST_GROUP, consumer, block_ms)
        self.store = store
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.on_applied = on_applied
        self.stats = StreamStats()

    def run_once(self) -> int:
        """Claim stale pending entries, read new ones, apply and ack them; returns entries handled."""
        if not self._group_ready:
            self.ensure_group()
        _, claimed, *_ = self.redis.xautoclaim(
            EVENTS_STREAM, INGEST_GROUP, self.consumer, min_idle_time=self.claim_idle_ms, count=self.batch_size
        )
        handled = self._handle(claimed)
        replies = self._blocking.xreadgroup(
            INGEST_GROUP, self.consumer, {EVENTS_STREAM: ">"}, count=self.batch_size,
            block=self.block_ms if not claimed else None,
        )
        for _, entries in replies or []:
            handled += self._handle(entries)
        return handled

    def _handle(self, entries: Iterable[tuple]) -> int:
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return 0
        raws: list[object] = []
        for _, fields in entries:
            payload = fields.get(b"e") or fields.get("e") or b""
            try:
                raws.append(json.loads(payload))
            except (ValueError, TypeError):
                raws.append(payload)  # rejected by validation below with a reason
        result = self.store.ingest(raws)
        pipe = self.redis.pipeline(transaction=False)
        for rejection in result.rejected:
            entry_id = entries[rejection.index][0]
            pipe.xadd(REJECTED_EVENTS_STREAM, {"entry": entry_id, "event_id": rejection.event_id or "",
                                               "reason": rejection.reason}, maxlen=REJECTED_MAXLEN, approximate=True)
        handled = [entry_id for entry_id, _ in entries]
        pipe.xack(EVENTS_STREAM, INGEST_GROUP, *handled)
        pipe.xdel(EVENTS_STREAM, *handled)
        pipe.execute()
        self.stats.read += len(entries)
        self.stats.accepted += result.accepted
        self.stats.duplicates += result.duplicates
        self.stats.rejected += len(result.rejected)
        if self.on_applied and result.applied:
            self.on_applied(result.applied)
        return len(entries)
