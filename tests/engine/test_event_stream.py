"""Events through the Redis Stream: applied once, rejected with reasons, survive a crashed consumer."""

from __future__ import annotations

import json

import pytest
import redis

from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer, publish_events
from engine.keys import EVENTS_STREAM, INGEST_GROUP, REJECTED_EVENTS_STREAM
from engine.redis_server import client_from_url
from tests.helpers.events import purchase, register

pytestmark = pytest.mark.cluster


def events(member: str = "A") -> list[dict]:
    """A registration and a purchase of the member."""
    return [register(member), purchase(member, amount=12.0, event_id=f"p1-{member}")]


def test_stream_events_are_applied_and_acked(store: FeatureStore, redis_client: redis.Redis) -> None:
    consumer = EventStreamConsumer(store, consumer="c1", block_ms=10)
    consumer.ensure_group()
    publish_events(redis_client, events())
    assert consumer.run_once() == 2
    assert store.member_features("A")["spend_total"] == 12.0
    assert redis_client.xpending(EVENTS_STREAM, INGEST_GROUP)["pending"] == 0


def test_replayed_stream_entries_change_nothing(store: FeatureStore, redis_client: redis.Redis) -> None:
    consumer = EventStreamConsumer(store, consumer="c1", block_ms=10)
    consumer.ensure_group()
    publish_events(redis_client, events())
    publish_events(redis_client, events())
    consumer.run_once()
    assert (consumer.stats.accepted, consumer.stats.duplicates) == (2, 2)
    assert store.member_features("A")["orders_total"] == 1


def test_bad_stream_entries_go_to_the_rejected_stream_with_a_reason(store: FeatureStore, redis_client: redis.Redis) -> None:
    consumer = EventStreamConsumer(store, consumer="c1", block_ms=10)
    consumer.ensure_group()
    publish_events(redis_client, [{"event_id": "x", "type": "purchase", "member_id": "A", "ts": "2026-02-01"}])
    redis_client.xadd(EVENTS_STREAM, {"e": "{not json"})
    consumer.run_once()
    rejected = redis_client.xrange(REJECTED_EVENTS_STREAM)
    assert len(rejected) == 2
    reasons = [fields["reason"] for _, fields in rejected]
    assert "lines" in reasons[0] and "json" in reasons[1].lower()
    assert redis_client.xpending(EVENTS_STREAM, INGEST_GROUP)["pending"] == 0


def test_a_crashed_consumers_entries_are_claimed_and_applied_once(store: FeatureStore, redis_client: redis.Redis) -> None:
    EventStreamConsumer(store, consumer="setup").ensure_group()
    publish_events(redis_client, events("A") + events("B"))
    # A consumer reads the entries and dies before applying or acknowledging them.
    redis_client.xreadgroup(INGEST_GROUP, "crashed", {EVENTS_STREAM: ">"}, count=10)
    assert redis_client.xpending(EVENTS_STREAM, INGEST_GROUP)["pending"] == 4
    survivor = EventStreamConsumer(store, consumer="survivor", block_ms=10, claim_idle_ms=0)
    survivor.run_once()
    survivor.run_once()
    assert store.member_features("A")["orders_total"] == 1
    assert store.member_features("B")["orders_total"] == 1
    assert redis_client.xpending(EVENTS_STREAM, INGEST_GROUP)["pending"] == 0
    assert survivor.stats.accepted == 4


def test_a_consumer_that_applied_but_did_not_ack_causes_no_double_count(store: FeatureStore, redis_client: redis.Redis) -> None:
    EventStreamConsumer(store, consumer="setup").ensure_group()
    publish_events(redis_client, events("A"))
    entries = redis_client.xreadgroup(INGEST_GROUP, "crashed", {EVENTS_STREAM: ">"}, count=10)
    store.ingest([json.loads(fields["e"]) for _, fields in entries[0][1]])  # applied, then died
    survivor = EventStreamConsumer(store, consumer="survivor", block_ms=10, claim_idle_ms=0)
    survivor.run_once()
    assert survivor.stats.duplicates == 2
    assert store.member_features("A")["orders_total"] == 1


def test_a_blocking_read_outlasts_the_clients_short_timeout(redis_server, programme) -> None:
    """The service's client times out after 0.5 s; the consumer's wait for new entries must not."""
    snappy = client_from_url(redis_server.url, decode_responses=True, socket_timeout=0.1)
    snappy.flushall()
    consumer = EventStreamConsumer(FeatureStore(snappy, programme), consumer="c1", block_ms=300)
    assert consumer.run_once() == 0
