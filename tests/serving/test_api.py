"""The HTTP API over a real Redis: events, member features, keys and scopes, health."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from engine.keys import API_KEYS
from engine.redis_server import free_port
from engine.settings import Settings
from serving.auth import ApiKeys
from tests.helpers.clock import NOW
from tests.helpers.events import purchase, register
from tests.helpers.http import bearer, serve

LAST_VISIT = "2026-02-27T18:30:00"
"""Two days before ``NOW``."""


@pytest.fixture
def client(settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    with serve(settings, redis_client) as test_client:
        yield test_client




def test_events_batch_counts_accepted_duplicates_and_rejected(client: TestClient, keys: ApiKeys) -> None:
    pos = bearer(keys.create("pos"))
    batch = [register("A"), purchase("A", LAST_VISIT, 42.0, event_id="p1"),
             {"event_id": "x", "type": "purchase", "member_id": "A"}]
    first = client.post("/v1/events", json=batch, headers=pos)
    again = client.post("/v1/events", json=batch[:2], headers=pos)
    assert first.status_code == 200
    body = first.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert body["rejected"][0]["index"] == 2 and "lines" in body["rejected"][0]["reason"]
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}


def test_events_body_must_be_an_array(client: TestClient, keys: ApiKeys) -> None:
    response = client.post("/v1/events", json={"event_id": "a"}, headers=bearer(keys.create("pos")))
    assert response.status_code == 422
    assert "body" in str(response.json()["detail"])


def test_member_features_after_events(client: TestClient, keys: ApiKeys) -> None:
    pos = bearer(keys.create("pos"))
    client.post("/v1/events", json=[register("A"), purchase("A", LAST_VISIT, 42.0, event_id="p1")], headers=pos)
    response = client.get("/v1/members/A/features", headers=pos)
    assert response.status_code == 200
    features = response.json()["features"]
    assert features["recency_days"] == 2 and features["monetary_30d"] == 42.0
    assert features["favourite_categories"] == ["dairy"]


def test_unknown_member_is_404_and_a_bad_id_is_422(client: TestClient, keys: ApiKeys) -> None:
    pos = bearer(keys.create("pos"))
    assert client.get("/v1/members/nobody/features", headers=pos).status_code == 404
    assert client.get("/v1/members/bad%20id!/features", headers=pos).status_code == 422


def test_keys_are_required_and_roles_enforced(client: TestClient, keys: ApiKeys) -> None:
    assert client.post("/v1/events", json=[]).status_code == 401
    assert client.post("/v1/events", json=[], headers=bearer("nbo_made_up")).status_code == 401
    marketer = bearer(keys.create("marketer"))
    response = client.post("/v1/events", json=[], headers=marketer)
    assert response.status_code == 403 and "marketer" in response.json()["detail"]


def test_store_scoped_key_sees_only_its_store(client: TestClient, keys: ApiKeys) -> None:
    admin = bearer(keys.create("admin"))
    client.post("/v1/events", json=[register("A", store_id="S001"), register("B", store_id="S002", region="south")],
                headers=admin)
    store_key = bearer(keys.create("pos", scope="store:S001"))
    region_key = bearer(keys.create("app", scope="region:south"))
    assert client.get("/v1/members/A/features", headers=store_key).status_code == 200
    assert client.get("/v1/members/B/features", headers=store_key).status_code == 403
    assert client.get("/v1/members/B/features", headers=region_key).status_code == 200
    assert client.get("/v1/members/A/features", headers=region_key).status_code == 403


def test_keys_are_stored_hashed(keys: ApiKeys, redis_client: redis.Redis) -> None:
    key = keys.create("pos", name="till 3")
    assert key not in repr(redis_client.hgetall(API_KEYS))
    assert keys.verify(key).role == "pos"


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503  # this app was given no models
    assert ready.json()["checks"]["redis"] == "ok" and ready.json()["checks"]["rules"] == "ok"
    assert "not loaded" in ready.json()["checks"]["model:churn"]
    client.get("/healthz")
    metrics = client.get("/metrics").text
    assert 'nbo_request_seconds_count{method="GET",route="/healthz",status="200"}' in metrics


def test_redis_away_gives_503_not_a_crash(settings: Settings) -> None:
    dead = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2, decode_responses=True)
    with serve(settings, dead) as client:
        ready = client.get("/readyz")
        events = client.post("/v1/events", json=[register("A")], headers=bearer("nbo_anything"))
    assert ready.status_code == 503 and "redis" in ready.json()["checks"]
    assert events.status_code == 503 and "unavailable" in events.json()["detail"]


def test_a_coupon_is_redeemed_once_and_feeds_the_features(client: TestClient, keys: ApiKeys) -> None:
    from engine.coupons import CouponTerms

    pos = bearer(keys.create("pos"))
    client.post("/v1/events", json=[register("A")], headers=pos)
    ledger = client.app.state.services.coupons
    coupon = ledger.issue("A", CouponTerms("OFF5", "amount_off", 5, valid_days=7), "new-member", "pos", "req-1")
    first = client.post(f"/v1/coupons/{coupon.code}/redeem", json={"member_id": "A", "store_id": "S001"}, headers=pos)
    second = client.post(f"/v1/coupons/{coupon.code}/redeem", json={"member_id": "A"}, headers=pos)
    assert first.status_code == 200 and first.json()["value"] == 5
    assert second.status_code == 409 and "already redeemed" in second.json()["detail"]
    assert client.get("/v1/members/A/features", headers=pos).json()["features"]["coupons_redeemed"] == 1


def test_coupon_redemption_refuses_bad_codes_foreign_members_and_scopes(client: TestClient, keys: ApiKeys) -> None:
    from engine.coupons import CouponTerms

    admin = bearer(keys.create("admin"))
    client.post("/v1/events", json=[register("A", store_id="S001"), register("B", store_id="S002")], headers=admin)
    coupon = client.app.state.services.coupons.issue("A", CouponTerms("OFF5", "amount_off", 5, 7), "r", "pos", "q")
    other_store = bearer(keys.create("pos", scope="store:S002"))
    assert client.post("/v1/coupons/not-a-code/redeem", headers=admin).status_code == 422
    assert client.post("/v1/coupons/0000000000000000/redeem", headers=admin).status_code == 404
    assert client.post(f"/v1/coupons/{coupon.code}/redeem", json={"member_id": "B"}, headers=admin).status_code == 403
    assert client.post(f"/v1/coupons/{coupon.code}/redeem", headers=other_store).status_code == 403
    assert client.post(f"/v1/coupons/{coupon.code}/redeem", json={"colour": "red"}, headers=admin).status_code == 422


def test_each_coupon_refusal_is_answered_with_its_status_and_reason(client: TestClient, keys: ApiKeys,
                                                                     redis_client: redis.Redis) -> None:
    from datetime import timedelta
    from typing import get_args

    from engine.coupons import CouponLedger, CouponRefusal, CouponTerms
    from serving.errors import COUPON_STATUS

    assert set(COUPON_STATUS) == set(get_args(CouponRefusal))  # every reason the engine gives has its status
    admin = bearer(keys.create("admin"))
    client.post("/v1/events", json=[register("A")], headers=admin)
    terms = CouponTerms("OFF5", "amount_off", 5, valid_days=7)
    live = client.app.state.services.coupons.issue("A", terms, "r", "pos", "live")
    lapsed = CouponLedger(redis_client, clock=lambda: NOW - timedelta(days=8)).issue("A", terms, "r", "pos", "old")
    assert client.post(f"/v1/coupons/{live.code}/redeem", json={"member_id": "A"}, headers=admin).status_code == 200
    asked = {"not_found": ("0000000000000000", "A"), "foreign": (live.code, "B"), "redeemed": (live.code, "A"),
             "expired": (lapsed.code, "A")}
    answers = {reason: client.post(f"/v1/coupons/{code}/redeem", json={"member_id": member}, headers=admin)
               for reason, (code, member) in asked.items()}
    assert {reason: (a.status_code, a.json()["reason"]) for reason, a in answers.items()} == {
        "not_found": (404, "not_found"), "foreign": (403, "foreign"), "redeemed": (409, "redeemed"),
        "expired": (409, "expired")}
    assert "expired on" in answers["expired"].json()["detail"]


def test_log_records_become_json_lines_with_their_fields() -> None:
    import json
    import logging

    from serving.json_logs import JsonFormatter

    record = logging.makeLogRecord({"msg": "request failed", "levelname": "ERROR", "name": "serving.app",
                                    "route": "/v1/events", "status": 503})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "request failed" and entry["route"] == "/v1/events" and entry["level"] == "error"


def test_models_in_use_are_listed_for_data_scientists_only(client: TestClient, keys: ApiKeys) -> None:
    response = client.get("/v1/models", headers=bearer(keys.create("data-scientist")))
    assert response.status_code == 200
    assert response.json() == {"in_use": {"churn": None, "recommender": None, "ltv": None, "response": None}}
    assert client.get("/v1/models", headers=bearer(keys.create("pos"))).status_code == 403
