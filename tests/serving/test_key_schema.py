"""Every key a run of the whole product leaves in Redis is one the key schema (``engine.keys``) names,
with a TTL where its kind must expire, and in the hash slot its kind says (a member's keys in the member's)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from fastapi.testclient import TestClient
from redis.crc import key_slot

from engine.ingestion import EventStreamConsumer, publish_events
from engine.keys import KINDS, OUTBOX_STREAM, hash_tag, kind_of, member_of, member_tag
from engine.settings import Settings
from tests.helpers.events import purchase, register
from tests.helpers.http import bearer, serve
from tests.helpers.rules import coupon_rule, write_rules
from training.batch import score_members
from training.champions import ChampionModels

TZ = ZoneInfo("Asia/Shanghai")
RUN_DAY = date(2026, 3, 10)
RULES = {
    "welcome.yaml": coupon_rule("welcome", when="orders_total == 0", trigger="checkout", channel="pos",
                                limits="{per_member: 1 ever, budget: {coupons: 100}}"),
    "first-purchase.yaml": coupon_rule("first-purchase", when="orders_total == 1", trigger="event.purchase",
                                       limits="{per_member: 1 per year}"),
    "lapsed.yaml": coupon_rule("lapsed", when="recency_days >= 30", channel="sms"),
}
MEMBERS = {"LAPSED", "ACTIVE", "NEW", "GONE"}


@pytest.fixture
def clock() -> dict[str, datetime]:
    return {"now": datetime(2026, 3, 10, 10, 0, tzinfo=TZ)}


@pytest.fixture
def product(settings: Settings, tmp_path: Path, redis_client: redis.Redis, models: ChampionModels,
            clock: dict[str, datetime]) -> TestClient:
    rules = write_rules(tmp_path / "rules", RULES)
    with serve(settings.model_copy(update={"rules_dir": rules}), redis_client, models=models,
               clock=lambda: clock["now"]) as client:
        yield client


def run_the_product(client: TestClient, clock: dict[str, datetime], set_now: Callable[[datetime], None]) -> None:
    """What a day of the product does: keys, events over HTTP and the stream, a checkout with a coupon,
    its redemption, an unknown code tried, a console sign-in, an erasure and an export, event triggers, the daily
    run, delivery (with a deferral and a dead letter), batch scores."""
    services = client.app.state.services
    admin = bearer(services.keys.create("admin", name="ops"))
    pos = bearer(services.keys.create("pos", scope="store:S001"))
    events = [register("LAPSED", datetime(2026, 1, 1, 9, 0)), purchase("LAPSED", datetime(2026, 1, 20, 18, 0)),
              register("ACTIVE", datetime(2026, 3, 1, 9, 0)), purchase("ACTIVE", datetime(2026, 3, 9, 18, 0)),
              register("NEW", datetime(2026, 3, 9, 9, 0))]
    assert client.post("/v1/events", json=events, headers=pos).json()["accepted"] == 5
    publish_events(services.redis, [{"event_id": "chk-1", "type": "checkin", "member_id": "ACTIVE",
                                     "ts": "2026-03-10T08:00:00"}, {"event_id": "bad", "type": "nonsense"}])
    stream = EventStreamConsumer(services.store, "keys-test", block_ms=10, on_applied=services.after_ingest)
    assert stream.run_once() == 2 and stream.stats.rejected == 1

    checkout = {"request_id": "till1-0001", "member_id": "NEW", "store_id": "S001", "channel": "pos",
                "basket": [{"sku": "milk", "qty": 1, "price": 12.0}]}
    answer = client.post("/v1/next-best-offer", json=checkout, headers=pos).json()
    code = next(o["coupon"]["code"] for o in answer["offers"] if o["rule_id"] == "welcome")
    redeemed = client.post(f"/v1/coupons/{code}/redeem", json={"member_id": "NEW", "store_id": "S001"}, headers=pos)
    assert redeemed.status_code == 200, redeemed.text
    assert client.get("/v1/members/NEW/features", headers=admin).status_code == 200
    guessed = client.post(f"/v1/coupons/{'0' * 16}/redeem", json={"member_id": "NEW"}, headers=pos)
    assert guessed.status_code == 404  # counted towards the key's and the member's lockouts
    assert client.post("/console/login", data={"key": admin["Authorization"].removeprefix("Bearer ")},
                       follow_redirects=False).status_code == 303  # a console session
    assert client.post("/v1/events", json=[register("GONE", datetime(2026, 3, 1, 9, 0))], headers=pos).json()[
        "accepted"] == 1
    assert client.delete("/v1/members/GONE", headers=admin).status_code == 200  # leaves its tombstone
    assert client.get("/v1/members/ACTIVE/export", params={"request_id": "dsr-1"}, headers=admin).status_code == 200

    assert services.daily_run("w1").run(RUN_DAY).stats["emitted"] == 1  # LAPSED, by SMS
    set_now(datetime(2026, 3, 10, 22, 0, tzinfo=TZ))  # SMS quiet hours: the lapsed coupon waits, app ones go
    services.redis.xadd(OUTBOX_STREAM, {"e": "{not json"})  # what a broken producer would leave
    consumer = services.outbox_consumer("d1")
    consumer.drain()
    assert (consumer.stats.delivered, consumer.stats.deferred, consumer.stats.dead) == (2, 1, 1)
    assert score_members(services.store, services.models).members == 3


def test_every_key_the_product_writes_is_in_the_key_schema_and_the_right_slot(
    product: TestClient, clock: dict[str, datetime], redis_client: redis.Redis
) -> None:
    run_the_product(product, clock, lambda moment: clock.update(now=moment))

    found = sorted(redis_client.scan_iter(count=1000))
    unknown = [key for key in found if kind_of(key) is None]
    assert not unknown, f"keys no builder of engine.keys makes: {unknown}"
    kinds = {key: kind_of(key) for key in found}
    assert {kind.name for kind in kinds.values()} == {kind.name for kind in KINDS}  # the run wrote every kind

    pipe = redis_client.pipeline(transaction=False)
    for key in found:
        pipe.ttl(key)
    lasting = [key for key, ttl in zip(found, pipe.execute()) if kinds[key].expires and ttl < 0]
    assert not lasting, f"keys of kinds that must expire, without a TTL: {lasting}"

    by_member: dict[str, list[str]] = defaultdict(list)
    for key, kind in kinds.items():
        if kind.slot == "member":
            by_member[member_of(key)].append(key)
    assert set(by_member) == MEMBERS
    for member, keys in by_member.items():
        assert {hash_tag(key) for key in keys} == {member}
        assert {key_slot(key.encode()) for key in keys} == {key_slot(member_tag(member).encode())}, member
    tags = {kind.slot: set() for kind in KINDS}
    for key, kind in kinds.items():
        tags[kind.slot].add(hash_tag(key))
    assert tags["rule"] == {"welcome", "first-purchase", "lapsed"}
    assert tags["daily run"] == {f"daily:{RUN_DAY.isoformat()}"} and tags["outbox"] == {"outbox"}
    assert len(tags["coupon"]) == 3  # the checkout's and the two delivered by the app channel
    assert tags["own"] == {None}
