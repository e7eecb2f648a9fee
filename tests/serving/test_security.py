"""Security: scoped keys stay in their store, roles guard changes, coupon codes cannot be guessed, and no
phone number or birth date is kept in clear in Redis, the logs or the audit file."""

from __future__ import annotations

import io
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from scipy.stats import chi2

from engine.coupons import CODE_ALPHABET, CODE_ENTROPY_BITS, CODE_LENGTH, CouponTerms, new_code
from engine.ingestion import EventStreamConsumer, publish_events
from engine.keys import issuance_key
from engine.settings import Settings
from serving.auth import ApiKey, ApiKeys
from serving.console.session import SESSION_COOKIE
from serving.json_logs import JsonFormatter
from tests.helpers.events import register
from tests.helpers.http import bearer
from tests.helpers.personal_data import BIRTH_DATES, PHONES, in_clear
from tests.helpers.redis_dump import dump_redis

OFF5 = CouponTerms("OFF5", "amount_off", 5, valid_days=7)



def checkout(member: str, store: str, request_id: str) -> dict:
    return {"request_id": request_id, "member_id": member, "store_id": store, "channel": "pos",
            "basket": [{"sku": "SKU00001", "qty": 2, "price": 15.0}]}


# --- scopes and roles ------------------------------------------------------------------------------


def test_a_store_key_cannot_read_score_or_redeem_for_another_store(service: TestClient, keys: ApiKeys) -> None:
    admin = bearer(keys.create("admin"))
    service.post("/v1/events", headers=admin,
                 json=[register("A", store_id="S001"), register("B", store_id="S002", region="south")])
    ledger = service.app.state.services.coupons
    coupon_b = ledger.issue("B", OFF5, "r", "pos", "req-b")
    s001 = bearer(keys.create("pos", scope="store:S001"))

    assert service.get("/v1/members/A/features", headers=s001).status_code == 200
    refused = service.get("/v1/members/B/features", headers=s001)
    assert refused.status_code == 403 and "store:S001" in refused.json()["detail"]

    redeem = service.post(f"/v1/coupons/{coupon_b.code}/redeem", headers=s001, json={"member_id": "B"})
    assert redeem.status_code == 403 and "scope" in redeem.json()["detail"]
    assert ledger.get(coupon_b.code).status == "issued"  # nothing was redeemed

    scored = service.post("/v1/next-best-offer", headers=s001, json=checkout("B", "S002", "till-9"))
    assert scored.status_code == 403
    issued = list(service.app.state.services.redis.scan_iter(match=issuance_key("B", "*")))
    assert issued == [issuance_key("B", "req-b")]  # the checkout issued nothing


def test_a_pos_key_cannot_reload_rules_or_promote_models(service: TestClient, keys: ApiKeys) -> None:
    pos_key = keys.create("pos")
    refused = service.post("/v1/admin/rules/reload", headers=bearer(pos_key))
    assert refused.status_code == 403 and "'pos' may not rules:write" in refused.json()["detail"]
    pos = ApiKey(key_id="k", role="pos")
    assert not pos.allows("rules:write") and not pos.allows("models:write")
    # Promotion is a data scientist's (nbo models promote, or the console); the console turns a pos key away,
    # and a cookie holding a key instead of a session id is no session.
    assert service.post("/console/login", data={"key": pos_key}).status_code == 403
    service.cookies.set(SESSION_COOKIE, pos_key)
    promote = service.post("/console/models/promote", data={"name": "churn", "version": "1"},
                           follow_redirects=False)
    assert promote.status_code in (303, 403) and "promoted" not in promote.text
    assert not service.app.state.services.audit.recent(action_prefix="model.")


# --- coupon codes ----------------------------------------------------------------------------------


def test_coupon_codes_carry_80_bits_from_the_csprng_uniformly() -> None:
    """16 characters of a 32-letter alphabet: 80 bits. Guessing one of a million live codes takes ~2**60 tries."""
    assert len(set(CODE_ALPHABET)) == 32 and CODE_ENTROPY_BITS == CODE_LENGTH * math.log2(32) == 80
    random.seed(7)
    first = new_code()
    random.seed(7)
    assert new_code() != first  # not Python's seedable generator
    codes = [new_code() for _ in range(4000)]
    assert len(set(codes)) == len(codes)
    assert all(len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET) for code in codes)
    # Chi-square over (position, character): every character equally likely at every position.
    expected = len(codes) / len(CODE_ALPHABET)
    statistic = 0.0
    for position in range(CODE_LENGTH):
        counts = Counter(code[position] for code in codes)
        statistic += sum((counts.get(c, 0) - expected) ** 2 / expected for c in CODE_ALPHABET)
    degrees = CODE_LENGTH * (len(CODE_ALPHABET) - 1)
    assert chi2.sf(statistic, degrees) > 1e-6, statistic


# --- personal data ---------------------------------------------------------------------------------

@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log record of the process, as the service writes them (JSON lines), from DEBUG up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def test_no_phone_number_or_birth_date_is_kept_in_clear(service: TestClient, keys: ApiKeys, nbo_settings: Settings,
                                                        redis_client: redis.Redis, log_lines: io.StringIO) -> None:
    pos = bearer(keys.create("pos"))
    services = service.app.state.services
    # Over HTTP: registration with phone and birthday, a profile change, a bad phone (rejected).
    answer = service.post("/v1/events", headers=pos, json=[
        register("P1", store_id="S001", phone=PHONES[0], birthday=BIRTH_DATES[0]),
        {"event_id": "prof-1", "type": "profile", "member_id": "P1", "ts": "2026-02-21T10:00:00",
         "phone": PHONES[1]},
        {"event_id": "prof-2", "type": "profile", "member_id": "P1", "ts": "2026-02-21T11:00:00",
         "phone": PHONES[1] + "#"},
    ]).json()
    assert answer["accepted"] == 2 and len(answer["rejected"]) == 1
    assert not any(in_clear(json.dumps(r), PHONES[1]) for r in answer["rejected"])
    # Through the events stream, as a POS gateway would send them.
    publish_events(redis_client,
                   [register("P2", store_id="S002", region="south", phone=PHONES[2], birthday=BIRTH_DATES[1])])
    assert EventStreamConsumer(services.store, consumer="c1", block_ms=10).run_once() == 1
    # The usual traffic: features, a checkout that issues a coupon, its redemption, a failing request.
    assert service.get("/v1/members/P1/features", headers=pos).json()["features"]["days_to_birthday"] is not None
    offers = service.post("/v1/next-best-offer", headers=pos, json=checkout("P1", "S001", "till-1")).json()["offers"]
    code = next(o["coupon"]["code"] for o in offers if o.get("coupon"))
    assert service.post(f"/v1/coupons/{code}/redeem", headers=pos, json={"member_id": "P1"}).status_code == 200
    service.post("/v1/next-best-offer", headers=pos, json={**checkout("P2", "S002", "t"), "phone": PHONES[2]})

    redis_text = json.dumps(dump_redis(redis_client), ensure_ascii=False, default=str)
    audit_text = (nbo_settings.var_dir / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    places = {"redis": redis_text, "logs": log_lines.getvalue(), "audit": audit_text}
    assert "coupon.redeemed" in audit_text and "P1" in redis_text  # the scan sees the data it should
    for secret in PHONES + BIRTH_DATES:
        found = [place for place, text in places.items() if in_clear(text, secret)]
        assert not found, f"{secret} in clear in {found}"
    redis_client.set("probe", "call 138 0013 8000")  # and it would see a phone that were there
    assert in_clear(json.dumps(dump_redis(redis_client)), PHONES[0])
