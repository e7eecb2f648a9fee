"""POST /v1/next-best-offer: real Redis, the shipped rules, small real models trained on a synthetic shop."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from engine.ingestion import backfill
from engine.keys import coupon_key
from engine.redis_server import start_redis_server
from engine.rules import in_holdout
from engine.settings import Settings
from serving.auth import ApiKeys
from tests.helpers.http import serve

NEW_MEMBER_RULE = "new-member-first-order"


@pytest.fixture
def client(service: TestClient, shop) -> TestClient:
    """The service with the synthetic shop's history loaded."""
    backfill(service.app.state.services.store, shop.transactions, shop.members)
    return service


@pytest.fixture
def pos(redis_client: redis.Redis) -> dict[str, str]:
    return {"Authorization": f"Bearer {ApiKeys(redis_client).create('pos')}"}


def new_member(client: TestClient, headers: dict, prefix: str = "NEW", holdout: bool = False) -> str:
    """Register a member who has never bought, in or out of the new-member rule's control group."""
    member = next(f"{prefix}{i}" for i in range(10_000) if in_holdout(NEW_MEMBER_RULE, f"{prefix}{i}", 0.05) == holdout)
    client.post("/v1/events", headers=headers, json=[{
        "event_id": f"reg-{member}", "type": "register", "member_id": member, "ts": "2026-02-20T10:00:00",
        "store_id": "S001"}])
    return member


def ask(client: TestClient, headers: dict, member: str, request_id: str = "req-1", basket=None, **extra):
    body = {"request_id": request_id, "member_id": member, "store_id": "S001", "channel": "pos",
            "basket": basket if basket is not None else [{"sku": "SKU00001", "qty": 2, "price": 15.0}], **extra}
    return client.post("/v1/next-best-offer", headers=headers, json=body)


def test_a_known_member_gets_churn_recommendations_and_model_versions(client: TestClient, pos, shop) -> None:
    member = str(shop.transactions["member_id"].value_counts().index[0])
    basket = shop.transactions[shop.transactions["member_id"] == member]["sku"].head(2).tolist()
    response = ask(client, pos, member, basket=[{"sku": s, "qty": 1, "price": 9.9} for s in basket])
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["churn"]["probability"] <= 1.0 and body["churn"]["model_version"] == "4"
    assert body["model_versions"] == {"churn": "4", "recommender": "2", "ltv": None, "response": None}
    skus = [r["sku"] for r in body["recommendations"]]
    assert len(skus) == 5 and not set(skus) & set(basket)
    assert body["degraded"] is False


@pytest.mark.secure_redis  # also over a password and over TLS
def test_a_new_member_gets_the_first_order_coupon_with_the_reason(client: TestClient, pos) -> None:
    member = new_member(client, pos)
    body = ask(client, pos, member).json()
    offer = next(o for o in body["offers"] if o["rule_id"] == NEW_MEMBER_RULE)
    assert offer["kind"] == "coupon" and offer["coupon"]["template"] == "NEW5" and offer["coupon"]["value"] == 5
    assert len(offer["coupon"]["code"]) == 16
    assert any("orders_total" in c for c in offer["conditions"])


@pytest.mark.secure_redis  # also over a password and over TLS
def test_the_same_request_id_returns_the_same_answer_and_issues_nothing_twice(
    client: TestClient, pos, redis_client: redis.Redis
) -> None:
    member = new_member(client, pos)
    first = ask(client, pos, member, request_id="till7-0001").json()
    again = ask(client, pos, member, request_id="till7-0001").json()
    assert first == again
    assert len(redis_client.keys(coupon_key("*"))) == 1
    # A different checkout of the same member does not get a second first-order coupon (1 ever).
    other = ask(client, pos, member, request_id="till7-0002").json()
    assert not [o for o in other["offers"] if o["rule_id"] == NEW_MEMBER_RULE]
    assert any("member cap" in note for note in other["notes"])


def test_a_member_in_a_rules_control_group_gets_nothing_from_it_and_is_told(client: TestClient, pos) -> None:
    member = new_member(client, pos, prefix="CTL", holdout=True)
    body = ask(client, pos, member).json()
    assert NEW_MEMBER_RULE in body["holdout"]
    assert not [o for o in body["offers"] if o["rule_id"] == NEW_MEMBER_RULE]


def test_an_opted_out_member_gets_no_coupon(client: TestClient, pos) -> None:
    member = new_member(client, pos)
    client.post("/v1/events", headers=pos, json=[{"event_id": "c1", "type": "consent", "member_id": member,
                                                  "ts": "2026-02-21T10:00:00", "opted_out": True}])
    body = ask(client, pos, member).json()
    assert not [o for o in body["offers"] if o["kind"] == "coupon"]


def test_an_unknown_member_gets_a_cold_start_answer(client: TestClient, pos) -> None:
    response = ask(client, pos, "never-seen-before")
    assert response.status_code == 200
    body = response.json()
    assert len(body["recommendations"]) == 5 and body["offers"] == []
    assert body["churn"]["probability"] is None


def test_a_store_key_cannot_ask_for_another_store(client: TestClient, redis_client: redis.Redis) -> None:
    other_store = {"Authorization": f"Bearer {ApiKeys(redis_client).create('pos', scope='store:S999')}"}
    response = ask(client, other_store, "anyone")
    assert response.status_code == 403 and "store:S999" in response.json()["detail"]


def test_bad_requests_say_which_field(client: TestClient, pos) -> None:
    response = client.post("/v1/next-best-offer", headers=pos,
                           json={"request_id": "r", "member_id": "A", "store_id": "S1", "basket": [{"sku": "x", "qty": -1}]})
    assert response.status_code == 422
    assert any(err["loc"][-1] == "qty" for err in response.json()["detail"])


def test_when_redis_goes_away_answers_degrade_instead_of_failing(nbo_settings: Settings, models, tmp_path) -> None:
    server = start_redis_server(tmp_path / "doomed")
    try:
        doomed = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=0.2, socket_connect_timeout=0.2)
        headers = {"Authorization": f"Bearer {ApiKeys(doomed).create('pos')}"}
        with serve(nbo_settings, doomed, models=models) as client:
            assert ask(client, headers, "A", request_id="before").json()["degraded"] is False
            server.stop()  # the key was verified a moment ago, so it is still trusted
            response = ask(client, headers, "A", request_id="after")
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True and body["offers"] == []
    assert len(body["recommendations"]) == 5


@pytest.mark.secure_redis  # also over a password and over TLS
def test_a_region_key_sees_only_its_regions_members_even_on_a_retry(client: TestClient, pos, redis_client) -> None:
    member = new_member(client, pos)  # registered without a region
    client.post("/v1/events", headers=pos, json=[{"event_id": "p1", "type": "profile", "member_id": member,
                                                  "ts": "2026-02-21T10:00:00", "region": "north"}])
    north = {"Authorization": f"Bearer {ApiKeys(redis_client).create('app', scope='region:north')}"}
    south = {"Authorization": f"Bearer {ApiKeys(redis_client).create('app', scope='region:south')}"}
    assert ask(client, north, member, request_id="r1").status_code == 200
    assert ask(client, south, member, request_id="r1").status_code == 403


def test_ready_once_redis_rules_and_both_models_are_there(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["models"] == {"churn": "4", "recommender": "2", "ltv": None, "response": None} and ready.json()["rules_version"]


HIGH_VALUE_RULE = """\
id: high-ltv-thanks
name: High lifetime value thanks
trigger: checkout
when: ltv >= {threshold}
then:
  - issue_coupon: {{template: M200_50, channel: pos}}
priority: 50
holdout: 0
"""


def test_rules_read_the_lifetime_value_and_the_response_model_values_the_coupon(
    nbo_settings: Settings, redis_client: redis.Redis, churn_result, recommender_result, ltv_result,
    response_result, shop, tmp_path, pos,
) -> None:
    import shutil

    from training.champions import ChampionModels

    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(nbo_settings.rules_dir / "coupons.yaml", rules / "coupons.yaml")
    models = ChampionModels.from_models(churn=churn_result.model, recommender=recommender_result.model,
                                        ltv=ltv_result.model, response=response_result.model, version="9")
    members = shop.transactions["member_id"].value_counts().index[:40].astype(str)
    with serve(nbo_settings.model_copy(update={"rules_dir": rules}), redis_client, models=models) as client:
        backfill(client.app.state.services.store, shop.transactions, shop.members)
        store = client.app.state.services.store
        ltv = {m: models.score_member(store.member_features(m)).ltv for m in members}
        threshold = sorted(ltv.values())[len(ltv) // 2]
        (rules / "high_ltv.yaml").write_text(HIGH_VALUE_RULE.format(threshold=round(threshold, 2)))
        client.app.state.services.rules.reload()
        answers = {m: ask(client, pos, m, request_id=f"ltv-{m}").json() for m in members}
    fired = {m for m, body in answers.items() if any(o["rule_id"] == "high-ltv-thanks" for o in body["offers"])}
    assert fired == {m for m in members if round(ltv[m], 2) >= round(threshold, 2)}
    offer = next(o for o in answers[next(iter(fired))]["offers"] if o["rule_id"] == "high-ltv-thanks")
    assert "response model 9" in offer["reason"]
    assert all(body["model_versions"]["ltv"] == "9" and body["model_versions"]["response"] == "9"
               for body in answers.values())
