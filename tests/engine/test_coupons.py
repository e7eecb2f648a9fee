"""Coupons: unguessable codes, issued once per issuance key, redeemed once, expiry and ownership."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from engine.audit import AuditLog
from engine.coupons import CODE_ENTROPY_BITS, CouponError, CouponLedger, CouponTerms
from engine.keys import coupon_key, issuance_key
from tests.helpers.clock import NOW

pytestmark = pytest.mark.cluster

PCT20 = CouponTerms(template="PCT20", kind="percent_off", value=20, valid_days=14)
OFF50 = CouponTerms(template="OFF50_200", kind="amount_off", value=50, min_spend=200, valid_days=7)


@pytest.fixture
def clock():
    class Clock:
        now = NOW

        def __call__(self) -> datetime:
            return self.now

    return Clock()


@pytest.fixture
def ledger(redis_client: redis.Redis, tmp_path: Path, clock) -> CouponLedger:
    return CouponLedger(redis_client, AuditLog(redis_client, tmp_path, clock=clock), clock=clock)


def test_codes_are_unique_and_carry_80_bits(ledger: CouponLedger) -> None:
    codes = {ledger.issue("A", PCT20, "r1", "app", issuance=f"req-{i}").code for i in range(300)}
    assert len(codes) == 300
    assert CODE_ENTROPY_BITS >= 80
    assert all(len(code) == 16 and code.isalnum() and code.isupper() for code in codes)


def test_a_retried_issuance_returns_the_same_coupon(ledger: CouponLedger, redis_client: redis.Redis) -> None:
    first = ledger.issue("A", PCT20, "r1", "app", issuance="req-1")
    again = ledger.issue("A", PCT20, "r1", "app", issuance="req-1")
    assert again.code == first.code
    assert len(list(redis_client.scan_iter(match=coupon_key("*")))) == 1


def test_an_issuance_interrupted_between_writes_is_completed_with_the_same_code(
    ledger: CouponLedger, redis_client: redis.Redis
) -> None:
    redis_client.set(issuance_key("A", "req-9"), "ABCDEFGHJKMNPQRS")  # the marker was written, then a crash
    coupon = ledger.issue("A", OFF50, "r1", "app", issuance="req-9")
    assert coupon.code == "ABCDEFGHJKMNPQRS" and ledger.get(coupon.code).terms == OFF50


def test_redeemed_once_then_refused_saying_when(ledger: CouponLedger, clock) -> None:
    coupon = ledger.issue("A", OFF50, "r1", "pos", issuance="x")
    redeemed = ledger.redeem(coupon.code, "A", "S001")
    assert redeemed.status == "redeemed" and redeemed.redeemed_store == "S001"
    clock.now = NOW + timedelta(hours=2)
    with pytest.raises(CouponError) as refused:
        ledger.redeem(coupon.code, "A", "S002")
    assert refused.value.reason == "redeemed" and NOW.isoformat() in str(refused.value) and "S001" in str(refused.value)


def test_expired_and_foreign_and_unknown_coupons_are_refused(ledger: CouponLedger, clock) -> None:
    coupon = ledger.issue("A", OFF50, "r1", "pos", issuance="x")
    with pytest.raises(CouponError) as foreign:
        ledger.redeem(coupon.code, "B", "S001")
    assert foreign.value.reason == "foreign"
    with pytest.raises(CouponError) as unknown:
        ledger.redeem("0000000000000000", "A", "S001")
    assert unknown.value.reason == "not_found"
    clock.now = NOW + timedelta(days=8)
    assert ledger.get(coupon.code).status == "expired"
    with pytest.raises(CouponError) as expired:
        ledger.redeem(coupon.code, "A", "S001")
    assert expired.value.reason == "expired" and "expired" in str(expired.value)


def test_concurrent_redemptions_only_one_wins(ledger: CouponLedger) -> None:
    coupon = ledger.issue("A", OFF50, "r1", "pos", issuance="x")

    def attempt(_: int) -> bool:
        try:
            ledger.redeem(coupon.code, "A", "S001")
            return True
        except CouponError:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(attempt, range(16))) == 1


def test_issue_and_redeem_are_audited_without_the_full_code(ledger: CouponLedger) -> None:
    coupon = ledger.issue("A", PCT20, "lapsed-30d", "sms", issuance="x")
    ledger.redeem(coupon.code, "A", "S001")
    entries = ledger.audit.recent()
    assert [e["action"] for e in entries] == ["coupon.redeemed", "coupon.issued"]
    assert all(coupon.code not in str(e) for e in entries)
    assert entries[1]["rule_id"] == "lapsed-30d" and entries[1]["code_hint"] == coupon.code[-4:]


def test_seen_is_tracked_but_never_undoes_a_redemption(ledger: CouponLedger) -> None:
    coupon = ledger.issue("A", PCT20, "r1", "app", issuance="x")
    ledger.mark_seen(coupon.code)
    assert ledger.get(coupon.code).status == "seen"
    ledger.redeem(coupon.code, "A", None)
    ledger.mark_seen(coupon.code)
    assert ledger.get(coupon.code).status == "redeemed"
