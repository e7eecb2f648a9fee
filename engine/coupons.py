"""Coupons (优惠券): issued to a member with a unique unguessable code, redeemable once, tracked.

A coupon lives in ``cp:{<code>}`` (its own cluster slot, found from the code alone); the member's
``m:{id}:cpi:<key>`` records which code an issuance key produced, so a retried request or a
re-run trigger gets the same coupon instead of a second one. Codes are 16 characters of
Crockford base32 from ``secrets``: 80 bits, so guessing one valid code among a million live ones
takes about 2**60 tries.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal

import redis

from engine import measurement
from engine.audit import AuditLog
from engine.calendar import day_number
from engine.clock import utc_now
from engine.events import CouponRedeemedEvent
from engine.feature_store import FeatureStore
from engine.keys import COUPON_KEEP_DAYS, DAY_SECONDS, coupon_key, issuance_key

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 16
CODE_ENTROPY_BITS = CODE_LENGTH * 5
STATUSES = ("issued", "seen", "redeemed", "expired")

CouponKind = Literal["percent_off", "amount_off", "free_item"]
CouponRefusal = Literal["not_found", "foreign", "redeemed", "expired"]
"""Why a coupon cannot be redeemed: no such code, another member's, redeemed already, past its expiry."""


@dataclass(frozen=True)
class CouponTerms:
    """What a coupon gives: ``percent_off`` (value in %), ``amount_off`` (yuan, over ``min_spend``), ``free_item``."""

    template: str
    kind: CouponKind
    value: float
    valid_days: int
    min_spend: float = 0.0
    sku: str | None = None
    name: str = ""
    max_value: float | None = None
    """The most a percent-off coupon is worth in yuan (budgets count this)."""

    def face_value(self, basket_total: float | None = None) -> float:
        """The yuan it is worth: amount off, the item's value, or percent of a basket (capped at max_value)."""
        if self.kind == "percent_off":
            value = round((basket_total or 0.0) * self.value / 100, 2)
            return min(value, self.max_value) if self.max_value is not None else value
        return float(self.value)


@dataclass(frozen=True)
class Coupon:
    code: str
    member_id: str
    terms: CouponTerms
    rule_id: str
    channel: str
    issued_at: str
    expires_at: str
    status: str = "issued"
    redeemed_at: str | None = None
    redeemed_store: str | None = None


class CouponError(Exception):
    """A coupon cannot be redeemed; ``reason`` says why (``CouponRefusal``), the message says it to a person."""

    def __init__(self, reason: CouponRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def not_found(cls, code: str) -> CouponError:
        return cls("not_found", f"no coupon with code {code!r}")


def new_code() -> str:
    """A fresh random coupon code (80 bits from the OS's CSPRNG)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# KEYS[1] coupon. ARGV: member, now ISO, store. Redeems once; says why not otherwise.
_REDEEM_LUA = """
local c = redis.call('HGETALL', KEYS[1])
if #c == 0 then return {'missing'} end
local f = {}
for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
if ARGV[1] ~= '' and f['member_id'] ~= ARGV[1] then return {'foreign'} end
if f['status'] == 'redeemed' then return {'redeemed', f['redeemed_at'], f['redeemed_store'] or ''} end
if ARGV[2] > f['expires_at'] then return {'expired', f['expires_at']} end
redis.call('HSET', KEYS[1], 'status', 'redeemed', 'redeemed_at', ARGV[2], 'redeemed_store', ARGV[3])
return {'ok', f['member_id']}
"""


class CouponLedger:
    """Issues, shows and redeems coupons in Redis; every issue and redemption is audited."""

    def __init__(
        self,
        client: redis.Redis,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = utc_now,
        keep_days_after_expiry: int = COUPON_KEEP_DAYS,
        store: FeatureStore | None = None,
    ) -> None:
        self.redis = client
        self.audit = audit
        self.store = store
        self.clock = clock
        self.keep_seconds = keep_days_after_expiry * DAY_SECONDS
        self._redeem = client.register_script(_REDEEM_LUA)

    def issue(self, member_id: str, terms: CouponTerms, rule_id: str, channel: str, issuance: str,
              actor: str = "engine") -> Coupon:
        """Issue a coupon once per ``issuance`` key (request id, or rule + period): a retry returns the same one."""
        now = self.clock()
        code = new_code()
        marker = issuance_key(member_id, issuance)
        ttl = (terms.valid_days * DAY_SECONDS) + self.keep_seconds
        if not self.redis.set(marker, code, nx=True, ex=ttl):
            code = self.redis.get(marker)
            existing = self.get(code)
            if existing is not None:
                return existing
            # The earlier attempt stopped between the two writes: finish it with the same code.
        expires = now + timedelta(days=terms.valid_days)
        coupon = Coupon(code=code, member_id=member_id, terms=terms, rule_id=rule_id, channel=channel,
                        issued_at=now.isoformat(), expires_at=expires.isoformat())
        record = {"member_id": member_id, "terms": json.dumps(asdict(terms)), "rule_id": rule_id,
                  "channel": channel, "issued_at": coupon.issued_at, "expires_at": coupon.expires_at,
                  "status": "issued"}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(coupon_key(code), mapping=record)
        pipe.expire(coupon_key(code), ttl)
        measurement.count(pipe, rule_id, "issued", self._day(now))
        pipe.execute()
        if self.audit:
            self.audit.record("coupon.issued", actor=actor, subject=member_id, code_hint=code[-4:], rule_id=rule_id,
                              template=terms.template, value=terms.value, channel=channel, expires_at=coupon.expires_at)
        return coupon

    def coupon(self, code: str) -> Coupon:
        """The coupon with this code; ``CouponError`` (``not_found``) if there is none."""
        coupon = self.get(code)
        if coupon is None:
            raise CouponError.not_found(code)
        return coupon

    def get(self, code: str) -> Coupon | None:
        """The coupon with this code, or None."""
        fields = self.redis.hgetall(coupon_key(code))
        if not fields:
            return None
        return Coupon(code=code, member_id=fields["member_id"], terms=CouponTerms(**json.loads(fields["terms"])),
                      rule_id=fields["rule_id"], channel=fields["channel"], issued_at=fields["issued_at"],
                      expires_at=fields["expires_at"], status=self._status(fields),
                      redeemed_at=fields.get("redeemed_at"), redeemed_store=fields.get("redeemed_store"))

    def _status(self, fields: dict) -> str:
        if fields["status"] != "redeemed" and self.clock().isoformat() > fields["expires_at"]:
            return "expired"
        return fields["status"]

    def mark_seen(self, code: str) -> None:
        """Record that the member saw the coupon (an issued coupon only; never un-redeems)."""
        key = coupon_key(code)
        if self.redis.hget(key, "status") == "issued":
            self.redis.hset(key, "status", "seen")

    def _day(self, now: datetime) -> int:
        """The stores' local day of ``now`` (measurement counts by it)."""
        return self.store.programme.day_of(now) if self.store is not None else day_number(now.date())

    def redeem(self, code: str, member_id: str | None, store_id: str | None, actor: str = "pos",
               basket_total: float | None = None) -> Coupon:
        """Redeem once; raises ``CouponError`` saying why not (``not_found``, ``foreign``, ``redeemed``, ``expired``).

        ``basket_total`` prices a percent-off coupon's cost (else its cap counts, or nothing)."""
        moment = self.clock()
        now = moment.isoformat()
        outcome = self._redeem(keys=[coupon_key(code)], args=[member_id or "", now, store_id or ""])
        verdict = outcome[0]
        if verdict == "missing":
            raise CouponError.not_found(code)
        if verdict == "foreign":
            raise CouponError("foreign", "this coupon belongs to another member")
        if verdict == "redeemed":
            where = f" at store {outcome[2]}" if outcome[2] else ""
            raise CouponError("redeemed", f"coupon already redeemed on {outcome[1]}{where}")
        if verdict == "expired":
            raise CouponError("expired", f"coupon expired on {outcome[1]}")
        coupon = self.get(code)
        cost = coupon.terms.face_value(basket_total) if basket_total is not None or coupon.terms.kind != "percent_off" \
            else (coupon.terms.max_value or 0.0)
        pipe = self.redis.pipeline(transaction=False)
        measurement.count(pipe, coupon.rule_id, "redeemed", self._day(moment))
        measurement.count(pipe, coupon.rule_id, "cost", self._day(moment), round(cost * 100))
        pipe.execute()
        if self.store is not None:
            # Redemptions feed the member's features like any other event (exactly once per code).
            self.store.apply_events([CouponRedeemedEvent(
                event_id=f"redeem:{code}", type="coupon_redeemed", member_id=coupon.member_id,
                ts=self.clock(), code=code, value=coupon.terms.value,
            )])
        if self.audit:
            self.audit.record("coupon.redeemed", actor=actor, subject=coupon.member_id, code_hint=code[-4:],
                              rule_id=coupon.rule_id, store_id=store_id, value=coupon.terms.value)
        return coupon
