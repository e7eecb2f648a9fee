"""Delivering the outbox: once per entry whatever crashes, consent and quiet hours respected, adapters."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.keys import DELIVERY_GROUP, OUTBOX_DEAD_LETTERS, OUTBOX_DEFERRED, OUTBOX_STREAM, issuance_key
from engine.triggers import DeliveryFailed, WebhookAdapter, quiet_until
from tests.helpers.rules import coupon_rule
from tests.helpers.triggers import AS_OF, lapsed_and_recent

pytestmark = pytest.mark.cluster

DAYTIME = datetime(2026, 3, 10, 10, 0)  # local: outside every quiet window


def coupons_of(triggers, member_id: str) -> list[str]:
    return [key for key in triggers.redis.scan_iter(match=issuance_key(member_id, "*"))]


def emitted(make_triggers, lapsed: int = 3, **rule):
    triggers = make_triggers({"lapsed.yaml": coupon_rule(**rule)}, now=DAYTIME)
    members, _ = lapsed_and_recent(triggers, lapsed=lapsed, recent=0)
    triggers.daily().run(AS_OF)
    return triggers, members


def test_each_entry_is_delivered_once_with_its_coupon_issued(make_triggers) -> None:
    triggers, members = emitted(make_triggers)
    consumer = triggers.consumer()
    assert consumer.drain() == 3
    deliveries = triggers.deliveries()
    assert sorted(d["member_id"] for d in deliveries) == members
    assert all(len(d["coupon_code_hint"]) == 4 and "coupon_code" not in d for d in deliveries)  # the log holds no codes
    assert all(len(coupons_of(triggers, m)) == 1 for m in members)
    assert triggers.redis.xlen(OUTBOX_STREAM) == 0  # acked and deleted
    assert consumer.drain() == 0


def test_a_consumer_killed_between_read_and_ack_still_delivers_once(make_triggers) -> None:
    triggers, members = emitted(make_triggers)
    dead = triggers.consumer("dead")
    dead.ensure_group()
    entries = triggers.redis.xreadgroup(DELIVERY_GROUP, "dead", {OUTBOX_STREAM: ">"}, count=3)[0][1]
    # It delivered the first entry completely but died before acking it; the others it never touched.
    dead._deliver(json.loads(entries[0][1]["e"]))
    assert len(triggers.deliveries()) == 1
    alive = triggers.consumer("alive", claim_idle_seconds=0.0001)
    assert alive.drain() == 3
    assert alive.stats.duplicates == 1 and alive.stats.delivered == 2
    assert sorted(d["member_id"] for d in triggers.deliveries()) == members
    assert all(len(coupons_of(triggers, m)) == 1 for m in members)
    assert triggers.redis.xpending(OUTBOX_STREAM, DELIVERY_GROUP)["pending"] == 0


def test_a_member_who_opted_out_after_the_rule_fired_gets_nothing(make_triggers) -> None:
    triggers, members = emitted(make_triggers, lapsed=2)
    triggers.ingest([{"event_id": "optout", "type": "consent", "member_id": members[0], "ts": "2026-03-10T09:30:00",
                      "opted_out": True}])
    consumer = triggers.consumer()
    consumer.drain()
    assert consumer.stats.suppressed == 1
    assert [d["member_id"] for d in triggers.deliveries()] == [members[1]]
    assert coupons_of(triggers, members[0]) == []


def test_quiet_hours_hold_an_sms_until_the_morning(make_triggers) -> None:
    triggers, members = emitted(make_triggers, lapsed=1, channel="sms")
    triggers.set_now(datetime(2026, 3, 10, 22, 30))  # local: inside the sms quiet window 21:00-09:00
    consumer = triggers.consumer()
    consumer.drain()
    assert consumer.stats.deferred == 1 and triggers.deliveries() == []
    assert triggers.redis.zcard(OUTBOX_DEFERRED) == 1
    triggers.set_now(datetime(2026, 3, 11, 9, 1))
    consumer.drain()
    assert [d["member_id"] for d in triggers.deliveries()] == members
    assert triggers.redis.zcard(OUTBOX_DEFERRED) == 0


def test_quiet_windows_across_midnight() -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    assert quiet_until("21:00-09:00", datetime(2026, 3, 10, 23, 0, tzinfo=tz)) == datetime(2026, 3, 11, 9, 0, tzinfo=tz)
    assert quiet_until("21:00-09:00", datetime(2026, 3, 10, 8, 0, tzinfo=tz)) == datetime(2026, 3, 10, 9, 0, tzinfo=tz)
    assert quiet_until("21:00-09:00", datetime(2026, 3, 10, 12, 0, tzinfo=tz)) is None
    assert quiet_until("12:00-13:00", datetime(2026, 3, 10, 12, 30, tzinfo=tz)) == datetime(2026, 3, 10, 13, 0, tzinfo=tz)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers["Idempotency-Key"], body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    """A real HTTP server on loopback standing in for the messaging system."""
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/deliver"
    server.shutdown()
    server.server_close()


def test_the_webhook_gets_the_code_and_an_idempotency_key(make_triggers, webhook) -> None:
    receiver, url = webhook
    triggers, members = emitted(make_triggers, lapsed=2)
    adapter = WebhookAdapter(url, timeout_seconds=2)
    triggers.consumer(adapter=adapter).drain()
    assert sorted(body["member_id"] for _, body in receiver.received) == members
    for key, body in receiver.received:
        assert key == f"{body['key']}" and key.startswith("lapsed|") and len(body["coupon_code"]) == 16


def test_a_failing_webhook_is_retried_then_dead_lettered(make_triggers, webhook) -> None:
    receiver, url = webhook
    receiver.status = 503
    triggers, _ = emitted(make_triggers, lapsed=1)
    consumer = triggers.consumer(adapter=WebhookAdapter(url, timeout_seconds=2), claim_idle_seconds=0.0001,
                                 max_delivery_attempts=3)
    for _ in range(6):
        consumer.run_once(block=False)
    assert consumer.stats.failed == 3 and consumer.stats.dead == 1
    assert triggers.redis.xlen(OUTBOX_DEAD_LETTERS) == 1
    assert triggers.redis.xpending(OUTBOX_STREAM, DELIVERY_GROUP)["pending"] == 0
    with pytest.raises(DeliveryFailed):
        WebhookAdapter("http://127.0.0.1:9/nowhere", timeout_seconds=0.5).deliver(
            type("D", (), {"as_json": lambda self, reveal_code: {}, "key": "k"})())
