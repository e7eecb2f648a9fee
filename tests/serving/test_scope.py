"""Scope on every read: a key of store A (or of A's region) walks every route of the API and the console and gets
nothing of store B back: not its members, its coupons, its rules, its figures or its audit entries."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from engine.settings import Settings
from tests.helpers.events import register
from tests.helpers.http import bearer, serve
from tests.helpers.paths import REPO
from training.champions import ChampionModels

B_RULE = """
id: store-b-welcome
name: Store B welcome
trigger: checkout
when:
  all:
    - registered
    - orders_total == 0
then:
  - issue_coupon: {template: NEW5, channel: pos}
limits: {per_member: 1 ever, budget: {coupons: 100}}
priority: 90
scope: {stores: [S002]}
"""
A_MEMBERS, B_MEMBERS = ("A1", "A2"), ("B1", "B2")


def checkout(member: str, store: str) -> dict:
    return {"request_id": f"till-{member}", "member_id": member, "store_id": store, "channel": "pos",
            "basket": [{"sku": "SKU00001", "qty": 2, "price": 15.0}]}


@pytest.fixture
def shop_of_two_stores(nbo_settings: Settings, tmp_path: Path, redis_client: redis.Redis,
                       models: ChampionModels) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Members of store A (S001, north) and store B (S002, south); B1 gets store B's own rule's coupon at its
    store, B2 the new-member coupon at a checkout in store A; coupons redeemed, an audit log of all of it."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    (rules / "store_b_welcome.yaml").write_text(B_RULE)
    with serve(nbo_settings.model_copy(update={"rules_dir": rules}), redis_client, models=models) as client:
        services = client.app.state.services
        admin = bearer(services.keys.create("admin"))
        events = [register(m) for m in A_MEMBERS] + [register(m, store_id="S002", region="south") for m in B_MEMBERS]
        assert client.post("/v1/events", headers=admin, json=events).json()["accepted"] == 4
        codes = {}
        for member, store in (("A1", "S001"), ("B1", "S002"), ("B2", "S001")):
            offers = client.post("/v1/next-best-offer", headers=admin, json=checkout(member, store)).json()["offers"]
            coupon = next(o for o in offers if o.get("coupon"))
            codes[member] = coupon["coupon"]["code"]
            assert coupon["rule_id"] == ("store-b-welcome" if member == "B1" else "new-member-first-order")
            redeemed = client.post(f"/v1/coupons/{codes[member]}/redeem", headers=admin,
                                   json={"member_id": member, "store_id": store, "basket_total": 30})
            assert redeemed.status_code == 200, redeemed.text
        yield client, codes


def store_b_traces(codes: dict[str, str]) -> list[str]:
    return ["B1", "B2", "S002", "south", "store-b-welcome", "Store B welcome", codes["B1"], codes["B2"],
            codes["B1"][-4:], codes["B2"][-4:]]


PATH_VALUES = {"member_id": "A1", "key_id": "0123456789ab", "name": "churn", "version": "1", "plot": "roc.png"}
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""Operations endpoints without a key (liveness, readiness and Prometheus: for the operator's network)."""


def api_get_routes(app) -> list[str]:
    found = []

    def walk(routes) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                if "GET" in route.methods and route.path not in OPEN and not route.path.startswith("/console"):
                    found.append(route.path)
            elif (included := getattr(route, "original_router", None)) is not None:
                walk(included.routes)

    walk(app.routes)
    return sorted(set(found))


@pytest.mark.parametrize("scope", ["store:S001", "region:north"])
def test_a_key_of_store_a_gets_nothing_of_store_b_from_any_route(shop_of_two_stores, scope: str) -> None:
    client, codes = shop_of_two_stores
    services = client.app.state.services
    key = services.keys.create("admin", scope=scope)  # the widest role: every route admits it
    headers = bearer(key)
    traces = store_b_traces(codes)
    answers: dict[str, str] = {}
    for path in api_get_routes(client.app):
        params = re.findall(r"{(\w+)}", path)
        assert set(params) <= set(PATH_VALUES), f"{path}: give the walk a value for {set(params) - set(PATH_VALUES)}"
        url = path.format(**PATH_VALUES)
        response = client.get(url, headers=headers)
        assert response.status_code < 500, (url, response.text)
        answers[url] = response.text
    nbo = client.post("/v1/next-best-offer", headers=headers, json=checkout("A2", "S001"))
    assert nbo.status_code == 200
    answers["POST /v1/next-best-offer"] = nbo.text
    assert {"/v1/rules", "/v1/reports/rules", "/v1/audit", "/v1/members/A1/export", "/v1/members/A1/features"} <= \
        set(answers), sorted(answers)

    # The console, signed in with the same key.
    assert client.post("/console/login", data={"key": key}, follow_redirects=False).status_code == 303
    for page in ("rules", "try", "models", "health"):
        response = client.get(f"/console/{page}")
        assert response.status_code == 200, page
        answers[f"/console/{page}"] = response.text

    leaks = {where: [t for t in traces if t in text] for where, text in answers.items()}
    assert not {where: found for where, found in leaks.items() if found}, "store B showed through"
    for member in B_MEMBERS:  # and asking for store B's members by name is refused
        for url in (f"/v1/members/{member}/features", f"/v1/members/{member}/export"):
            assert client.get(url, headers=headers).status_code == 403, url


def test_a_scoped_report_counts_its_own_members_only(shop_of_two_stores) -> None:
    client, _ = shop_of_two_stores
    keys = client.app.state.services.keys

    def new_member_rule(scope: str | None) -> dict:
        report = client.get("/v1/reports/rules", headers=bearer(keys.create("marketer", scope=scope))).json()
        return {r["rule_id"]: r for r in report["rules"]}

    everything, store_a, store_b = new_member_rule(None), new_member_rule("store:S001"), new_member_rule("store:S002")
    first_order = "new-member-first-order"
    assert (everything[first_order]["issued"], everything[first_order]["redeemed"]) == (2, 2)  # A1 and B2
    assert (store_a[first_order]["issued"], store_a[first_order]["redeemed"], store_a[first_order]["treatment"]) == (
        1, 1, 1), "only A1: B2 checked out in store A but is store B's member"
    assert store_a[first_order]["coupon_cost"] == 5.0 and everything[first_order]["coupon_cost"] == 10.0
    assert (store_b[first_order]["issued"], store_b["store-b-welcome"]["issued"]) == (1, 1)
    assert "store-b-welcome" not in store_a and "store-b-welcome" in everything
    rules_a = client.get("/v1/rules", headers=bearer(keys.create("marketer", scope="store:S001"))).json()["rules"]
    assert all(rule["budget"] == [] for rule in rules_a), "a programme-wide budget is not store A's figure"
    rules_b = client.get("/v1/rules", headers=bearer(keys.create("marketer", scope="store:S002"))).json()["rules"]
    confined = next(rule for rule in rules_b if rule["id"] == "store-b-welcome")
    assert confined["budget"] and confined["budget"][0]["coupons_used"] == 1, "a rule only store B runs: its own figure"
