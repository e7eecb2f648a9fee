"""Members' data rights: ``DELETE /v1/members/{id}`` forgets a member for good (every key, their coupons and
exposures; a tombstone without personal data; later events refused with the reason; imports and training skip
them) and ``GET /v1/members/{id}/export`` hands them everything held; both once, scoped and audited."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.data_rights import DataRights, drop_erased, erased_members_for, member_keys
from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer, backfill, publish_events
from engine.keys import ERASED_MEMBERS, OUTBOX_STREAM, REJECTED_EVENTS_STREAM, erased_marker_key, hash_tag
from engine.settings import Settings, get_settings
from serving.cli import app as cli
from tests.helpers.clock import NOW
from tests.helpers.events import purchase, register
from tests.helpers.http import bearer
from tests.helpers.personal_data import PHONES, in_clear
from tests.helpers.redis_dump import dump_redis
from training.data import load_transactions

GONE, KEPT = "ERASE-ME", "KEEP-ME"


def checkout(member: str, request_id: str) -> dict:
    return {"request_id": request_id, "member_id": member, "store_id": "S001", "channel": "pos",
            "basket": [{"sku": "SKU00001", "qty": 2, "price": 15.0}]}


def member_keys_in(dump: dict, member: str) -> dict:
    return {key: value for key, value in dump.items() if hash_tag(key) == member}


@pytest.fixture
def lived(service: TestClient) -> dict[str, object]:
    """Two members with a life in the store: registered with a phone and a birthday, a checkout coupon (an answer
    remembered, an exposure), a purchase, an unknown code tried, batch recommendations."""
    services = service.app.state.services
    pos = bearer(services.keys.create("pos"))
    events = [register(GONE, phone=PHONES[0], birthday="1990-07-15"), register(KEPT)]
    assert service.post("/v1/events", headers=pos, json=events).json()["accepted"] == 2
    codes = {}
    for member in (GONE, KEPT):
        offers = service.post("/v1/next-best-offer", headers=pos, json=checkout(member, f"till-{member}")).json()["offers"]
        codes[member] = next(o["coupon"]["code"] for o in offers if o.get("coupon"))
    assert service.post("/v1/events", headers=pos, json=[purchase(GONE, event_id="p1"), purchase(KEPT, event_id="p2")]).json()[
        "accepted"] == 2
    assert service.post(f"/v1/coupons/{'0' * 16}/redeem", headers=pos, json={"member_id": GONE}).status_code == 404
    services.store.write_recommendations({GONE: [("SKU00002", 0.9)], KEPT: [("SKU00002", 0.8)]}, model_version="2")
    return {"pos": pos, "privacy": bearer(services.keys.create("privacy")), "codes": codes}


def test_an_export_holds_everything_about_the_member(service: TestClient, lived) -> None:
    exported = service.get(f"/v1/members/{GONE}/export", headers=lived["privacy"], params={"request_id": "dsr-1"})
    assert exported.status_code == 200, exported.text
    body = exported.json()
    kinds = set(body["keys"])
    assert {"member profile", "member state", "answer", "coupon issuance", "event dedup", "member recommendations",
            "member redemption failures"} <= kinds, kinds
    profile = next(iter(body["keys"]["member profile"].values()))
    assert profile["store"] == "S001" and profile["bday"] == "07-15" and "phone_h" in profile
    assert not in_clear(json.dumps(body), PHONES[0]), "the phone is held only as a keyed hash, and exported so"
    assert list(body["coupons"]) == [lived["codes"][GONE]]
    assert {e["group"] for e in body["exposures"]} == {"treatment"} and body["features"]["orders_total"] == 1
    assert {e["action"] for e in body["audit"]} >= {"coupon.issued"} and KEPT not in json.dumps(body)

    again = service.get(f"/v1/members/{GONE}/export", headers=lived["privacy"], params={"request_id": "dsr-1"})
    assert again.status_code == 200
    audited = service.app.state.services.audit.recent(100, "member.exported")
    assert len(audited) == 1 and audited[0]["request_id"] == "dsr-1", "a retried export is audited once"


def test_erasure_forgets_the_member_and_leaves_only_a_tombstone(service: TestClient, lived, redis_client: redis.Redis,
                                                                 nbo_settings: Settings) -> None:
    before = dump_redis(redis_client)
    erased = service.delete(f"/v1/members/{GONE}", headers=lived["privacy"])
    assert erased.status_code == 200, erased.text
    tombstone = erased.json()
    assert tombstone["already_erased"] is False and tombstone["coupons_removed"] == 1
    assert tombstone["keys_removed"] >= 8 and tombstone["exposures_removed"] == 1

    after = dump_redis(redis_client)
    assert list(member_keys_in(after, GONE)) == [erased_marker_key(GONE)], "every key of the member went"
    assert member_keys_in(after, KEPT) == member_keys_in(before, KEPT), "the other member is untouched"
    assert redis_client.smembers(ERASED_MEMBERS) == {GONE}
    leftover = {key for key, value in after.items() if GONE in json.dumps(value, default=str) or GONE in key}
    assert leftover <= {erased_marker_key(GONE), ERASED_MEMBERS, "nbo:audit"}, leftover
    assert lived["codes"][GONE] not in json.dumps(after, default=str).replace('"code_hint"', ""), "coupon gone"
    for place in (json.dumps(after[erased_marker_key(GONE)]), json.dumps(
            service.app.state.services.audit.recent(5, "member.erased"))):
        assert not in_clear(place, PHONES[0]) and "07-15" not in place and "1990" not in place

    again = service.delete(f"/v1/members/{GONE}", headers=lived["privacy"])
    assert again.status_code == 200 and again.json()["already_erased"] is True
    assert again.json()["erased_at"] == tombstone["erased_at"]
    assert len(service.app.state.services.audit.recent(100, "member.erased")) == 1, "erased once, audited once"
    audit_file = (nbo_settings.var_dir / "audit" / "audit.jsonl").read_text()
    assert audit_file.count('"member.erased"') == 1


def test_after_erasure_events_are_refused_with_the_reason_and_reads_answer_as_for_a_stranger(
        service: TestClient, lived, redis_client: redis.Redis) -> None:
    services = service.app.state.services
    pos = lived["pos"]
    assert service.delete(f"/v1/members/{GONE}", headers=lived["privacy"]).status_code == 200
    again = service.post("/v1/events", headers=pos, json=[register(GONE) | {"event_id": "reg-again"},
                                                          purchase(GONE, event_id="p9"), purchase(KEPT, event_id="p10")]).json()
    assert again["accepted"] == 1 and [r["index"] for r in again["rejected"]] == [0, 1]
    assert all("erased at their request" in r["reason"] for r in again["rejected"])

    publish_events(redis_client, [purchase(GONE, event_id="p-stream")])
    assert EventStreamConsumer(services.store, consumer="c1", block_ms=10).run_once() == 1
    (_, rejected), = redis_client.xrange(REJECTED_EVENTS_STREAM)
    assert rejected["event_id"] == "p-stream" and "erased" in rejected["reason"]

    assert service.get(f"/v1/members/{GONE}/features", headers=pos).status_code == 404
    assert service.get(f"/v1/members/{GONE}/export", headers=lived["privacy"]).status_code == 404
    assert service.post(f"/v1/coupons/{lived['codes'][GONE]}/redeem", headers=pos,
                        json={"member_id": GONE}).status_code == 404
    answer = service.post("/v1/next-best-offer", headers=pos, json=checkout(GONE, "till-after")).json()
    assert answer["offers"] == [] and answer["churn"]["probability"] is None
    services.store.write_recommendations({GONE: [("SKU00003", 0.5)]})
    services.store.write_profile_values({GONE: {"churn_p": 0.5}})
    services.redis.xadd(OUTBOX_STREAM, {"e": json.dumps({
        "key": f"lapsed|{GONE}|d2026-03-01", "action": 0, "rule": "lapsed", "name": "lapsed", "member": GONE,
        "kind": "coupon", "channel": "app", "body": {"template": "PCT20", "kind": "percent_off", "value": 20,
                                                      "valid_days": 7}, "trigger": "schedule.daily",
        "period": "d2026-03-01"})})
    delivery = services.outbox_consumer("d1")
    delivery.drain()
    assert delivery.stats.suppressed == 1 and delivery.stats.delivered == 0
    assert list(member_keys_in(dump_redis(redis_client), GONE)) == [erased_marker_key(GONE)], "nothing written again"


@pytest.mark.cluster
def test_a_writer_that_still_caches_the_member_is_refused_by_the_commit_itself(
        redis_client: redis.Redis, programme) -> None:
    """The tombstone is in the member's slot and the commit script checks it: a process that read the member before
    the erasure (its writer cache) cannot bring them back."""
    writer = FeatureStore(redis_client, programme, clock=lambda: NOW)
    assert writer.ingest([register(GONE)]).accepted == 1  # now in this writer's cache
    other = FeatureStore(redis_client, programme, clock=lambda: NOW)
    DataRights(redis_client, other).erase(GONE, actor="test")
    result = writer.ingest([purchase(GONE, event_id="p1")])
    assert result.accepted == 0 and "erased" in result.rejected[0].reason
    assert member_keys(redis_client, GONE) == [erased_marker_key(GONE)]  # on a cluster: the slot's keys


def test_erasure_and_export_are_scoped_and_for_the_privacy_role(service: TestClient, lived) -> None:
    keys = service.app.state.services.keys
    other_store = bearer(keys.create("privacy", scope="store:S002"))
    for method, path in (("DELETE", f"/v1/members/{GONE}"), ("GET", f"/v1/members/{GONE}/export")):
        outside = service.request(method, path, headers=other_store)
        assert outside.status_code == 403 and "store:S002" in outside.json()["detail"]
        assert service.request(method, path, headers=lived["pos"]).status_code == 403
        assert service.request(method, path.replace(GONE, "NOBODY"), headers=lived["privacy"]).status_code == 404
    assert service.get(f"/v1/members/{GONE}/features", headers=lived["pos"]).status_code == 200, "nothing was erased"
    own_store = bearer(keys.create("privacy", scope="store:S001"))
    assert service.delete(f"/v1/members/{GONE}", headers=own_store).status_code == 200


def test_imports_backfills_and_training_leave_erased_members_out(service: TestClient, lived, tmp_path,
                                                                monkeypatch: pytest.MonkeyPatch, redis_server,
                                                                nbo_settings: Settings) -> None:
    services = service.app.state.services
    assert service.delete(f"/v1/members/{GONE}", headers=lived["privacy"]).status_code == 200
    history = pd.DataFrame({"member_id": [GONE, GONE, "NEW-1"], "ts": pd.to_datetime(["2026-01-02"] * 3),
                            "sku": ["a", "b", "c"], "qty": [1.0] * 3, "amount": [3.0, 4.0, 5.0]})
    result = backfill(services.store, history)
    assert result.skipped == 2 and result.rejected == [] and services.store.read_state(GONE) is None

    path = tmp_path / "history.csv"
    history.assign(ts=history["ts"].dt.date.astype(str)).to_csv(path, index=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        assert erased_members_for(get_settings()) == {GONE}
        imported = CliRunner().invoke(cli, ["data", "import", str(path), "--out", str(tmp_path / "out.parquet")])
        assert imported.exit_code == 0, imported.output
        assert "2 lines of members erased at their request left out" in imported.output
        assert pd.read_parquet(tmp_path / "out.parquet")["member_id"].tolist() == ["NEW-1"]
    finally:
        get_settings.cache_clear()
    assert erased_members_for(Settings(_env_file=None, redis_url=None, var_dir=tmp_path / "none")) == set(), \
        "no store: none is started, nobody was erased"
    loaded = load_transactions(path, exclude_members={GONE})  # what every nbo train command loads with
    assert loaded.frame["member_id"].tolist() == ["NEW-1"] and "2 lines of erased members left out" in loaded.notes
    assert drop_erased(history, [])[1] == 0
