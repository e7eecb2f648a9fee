"""Delivering the outbox: consumer groups, consent and quiet hours, coupons issued once, adapters.

Consumers read the outbox stream in the group ``deliver``; each entry is handled, then acked and
deleted. A consumer that dies between read and ack leaves the entry pending, and another one
claims it once it has been idle ``claim_idle_seconds`` (XAUTOCLAIM). Handling an entry twice is
harmless:

* a coupon is issued under the entry's key (``CouponLedger.issue``): the same coupon comes back;
* points are an event with the entry's key as its id: applied once by the feature store;
* the member's marker ``m:{<member>}:dl:<key>#<action>`` records a finished delivery, so a claimed
  entry that was already delivered is only acked. (The one window left is a crash after the
  adapter accepted and before the marker is set; the adapter gets the key as an idempotency key
  for exactly that case.)

At delivery time consent is checked again (the member may have opted out since the rule fired):
an opted-out member or a refused channel gets nothing and the entry is recorded as suppressed.
An entry in its channel's quiet hours waits in a sorted set until they end, then goes back into
the stream. An adapter that fails leaves the entry pending for a retry; after
``max_delivery_attempts`` it goes to the dead-letter stream.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Protocol

import redis

from engine.audit import AuditLog
from engine.clock import Clock
from engine.coupons import CouponLedger, CouponTerms
from engine.events import PointsAwardedEvent
from engine.feature_store import FeatureStore
from engine.keys import (
    DEAD_LETTERS_MAXLEN,
    DELIVERY_GROUP,
    MARKER_TTL_SECONDS,
    OUTBOX_DEAD_LETTERS,
    OUTBOX_DEFERRED,
    OUTBOX_STREAM,
    delivery_marker_key,
    member_key,
)
from engine.member_state import PROFILE
from engine.programme import Programme
from engine.settings import TriggerSettings
from engine.streams import GroupConsumer

log = logging.getLogger(__name__)

CONSENT_FIELDS = {"sms": "ch_sms", "app": "ch_app", "email": "ch_email"}
"""Channels that need the member's consent, and the profile field that holds it."""

# KEYS: deferred (sorted set), outbox stream; one slot ({outbox}). ARGV: now (ms), most to move.
_RELEASE_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, entry in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'e', entry)
  redis.call('ZREM', KEYS[1], entry)
end
return #due
"""


class DeliveryFailed(Exception):
    """The adapter could not deliver now; the entry stays pending and is retried."""


@dataclass(frozen=True)
class Delivery:
    """What an adapter sends: one action for one member, with its idempotency key (no personal data)."""

    key: str
    member_id: str
    rule_id: str
    kind: str
    channel: str | None
    body: dict[str, Any]
    coupon_code: str | None = None
    coupon_expires_at: str | None = None

    def as_json(self, reveal_code: bool) -> dict[str, Any]:
        """The delivery as JSON; the coupon code in full only where it is sent to the member."""
        data = {"key": self.key, "member_id": self.member_id, "rule_id": self.rule_id, "kind": self.kind,
                "channel": self.channel, "body": self.body, "coupon_expires_at": self.coupon_expires_at}
        if self.coupon_code is not None:
            data["coupon_code" if reveal_code else "coupon_code_hint"] = (
                self.coupon_code if reveal_code else self.coupon_code[-4:])
        return data


class DeliveryAdapter(Protocol):
    """Sends one delivery; raises ``DeliveryFailed`` to have it retried."""

    name: str

    def deliver(self, delivery: Delivery) -> None: ...


class LogAdapter:
    """Writes each delivery as a JSON line (the development default: what would have been sent)."""

    name = "log"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def deliver(self, delivery: Delivery) -> None:
        line = json.dumps(delivery.as_json(reveal_code=False), ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class WebhookAdapter:
    """POSTs each delivery as JSON to the messaging system, with an ``Idempotency-Key`` header."""

    name = "webhook"

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        import httpx  # only the webhook needs it

        self.url = url
        self._client = httpx.Client(timeout=timeout_seconds)
        self._errors = (httpx.HTTPError,)

    def deliver(self, delivery: Delivery) -> None:
        try:
            response = self._client.post(self.url, json=delivery.as_json(reveal_code=True),
                                         headers={"Idempotency-Key": delivery.key})
        except self._errors as exc:
            raise DeliveryFailed(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise DeliveryFailed(f"webhook answered {response.status_code}")

    def close(self) -> None:
        self._client.close()


def adapter_from_settings(settings: TriggerSettings, var_dir: Path) -> DeliveryAdapter:
    """The adapter the settings name (``log`` under var_dir/outbox, or ``webhook`` to ``webhook_url``)."""
    if settings.adapter == "webhook":
        if not settings.webhook_url:
            raise ValueError("NBO_TRIGGERS__ADAPTER=webhook needs NBO_TRIGGERS__WEBHOOK_URL")
        return WebhookAdapter(settings.webhook_url, settings.webhook_timeout_seconds)
    return LogAdapter(var_dir / "outbox" / "deliveries.jsonl")


def quiet_until(window: str | None, local: datetime) -> datetime | None:
    """The end of the quiet hours ``HH:MM-HH:MM`` that ``local`` falls in, or None if it is outside them."""
    if not window:
        return None
    start_text, end_text = window.split("-")
    start = clock_time.fromisoformat(start_text)
    end = clock_time.fromisoformat(end_text)
    now = local.timetz().replace(tzinfo=None)
    if start == end:
        return None
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=local.tzinfo)


@dataclass
class DeliveryStats:
    delivered: int = 0
    duplicates: int = 0
    suppressed: int = 0
    deferred: int = 0
    failed: int = 0
    dead: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class OutboxConsumer(GroupConsumer):
    """One consumer of the outbox group: claims stale entries, reads new ones, delivers, acks."""

    def __init__(self, *, client: redis.Redis, store: FeatureStore, programme: Programme, coupons: CouponLedger,
                 adapter: DeliveryAdapter, settings: TriggerSettings, clock: Clock, consumer: str,
                 audit: AuditLog | None = None, batch_size: int = 100, block_ms: int = 1000) -> None:
        super().__init__(client, OUTBOX_STREAM, DELIVERY_GROUP, consumer, block_ms)
        self.store = store
        """Where delivered points are applied (an exactly-once event)."""
        self.programme = programme
        self.coupons = coupons
        self.adapter = adapter
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self.batch_size = batch_size
        self._release = self.redis.register_script(_RELEASE_LUA)
        self.stats = DeliveryStats()

    def run_once(self, block: bool = True) -> int:
        """Release entries whose quiet hours ended, claim stale ones, read new ones; returns entries handled."""
        if not self._group_ready:
            self.ensure_group()
        # A naive "now" is the stores' time, never the host's (.timestamp() of a naive datetime reads the host zone).
        now_ms = int(self.programme.aware(self.clock()).timestamp() * 1000)
        self._release(keys=[OUTBOX_DEFERRED, OUTBOX_STREAM], args=[now_ms, 500])
        idle_ms = int(self.settings.claim_idle_seconds * 1000)
        _, claimed, *_ = self.redis.xautoclaim(OUTBOX_STREAM, DELIVERY_GROUP, self.consumer,
                                               min_idle_time=idle_ms, count=self.batch_size)
        handled = self._handle(claimed, claimed=True)
        client = self._blocking if block and not claimed else self.redis
        replies = client.xreadgroup(DELIVERY_GROUP, self.consumer, {OUTBOX_STREAM: ">"}, count=self.batch_size,
                                    block=self.block_ms if block and not claimed else None)
        for _, entries in replies or []:
            handled += self._handle(entries, claimed=False)
        return handled

    def drain(self) -> int:
        """Handle everything readable now (tests, the CLI's ``deliver --until-empty``)."""
        total = 0
        while (n := self.run_once(block=False)) > 0:
            total += n
        return total

    # --- one entry ------------------------------------------------------------------------------

    def _handle(self, entries: list, claimed: bool) -> int:
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return 0
        attempts = self._attempts([entry_id for entry_id, _ in entries]) if claimed else {}
        for entry_id, fields in entries:
            raw = fields.get("e") or fields.get(b"e") or b""
            try:
                entry = json.loads(raw)
            except (TypeError, ValueError):
                self._dead(entry_id, raw, "not JSON")
                continue
            try:
                outcome, until = self._deliver(entry)
            except DeliveryFailed as exc:
                self.stats.failed += 1
                if attempts.get(entry_id, 1) >= self.settings.max_delivery_attempts:
                    self._dead(entry_id, raw, str(exc))
                else:
                    log.warning("outbox delivery failed (will retry): %s", exc, extra={"rule_id": entry.get("rule")})
                continue  # stays pending: claimed again after claim_idle_seconds
            pipe = self.redis.pipeline(transaction=False)
            if outcome == "deferred":
                pipe.zadd(OUTBOX_DEFERRED, {raw if isinstance(raw, str) else raw.decode(): until})
            self._done(pipe, entry_id)
        return len(entries)

    def _done(self, pipe, entry_id: str) -> None:
        """Ack and delete a handled entry (with whatever else ``pipe`` holds), in one round trip."""
        pipe.xack(OUTBOX_STREAM, DELIVERY_GROUP, entry_id)
        pipe.xdel(OUTBOX_STREAM, entry_id)
        pipe.execute()

    def _attempts(self, entry_ids: list[str]) -> dict[str, int]:
        pending = self.redis.xpending_range(OUTBOX_STREAM, DELIVERY_GROUP, min=min(entry_ids), max=max(entry_ids),
                                            count=len(entry_ids) * 2)
        return {p["message_id"]: int(p["times_delivered"]) for p in pending}

    def _dead(self, entry_id: str, raw: object, why: str) -> None:
        self.stats.dead += 1
        log.error("outbox entry %s moved to the dead letters: %s", entry_id, why)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(OUTBOX_DEAD_LETTERS, {"e": raw if isinstance(raw, (str, bytes)) else str(raw), "why": why},
                  maxlen=DEAD_LETTERS_MAXLEN, approximate=True)
        self._done(pipe, entry_id)

    def _deliver(self, entry: dict) -> tuple[str, int | None]:
        """Deliver one entry; returns the outcome and, when deferred, until when (ms)."""
        member_id, key, action = entry["member"], entry["key"], int(entry["action"])
        marker = delivery_marker_key(member_id, key, action)
        if self.redis.exists(marker):
            self.stats.duplicates += 1
            return "duplicate", None
        channel, kind = entry.get("channel"), entry["kind"]
        refusal = self._consent_refuses(member_id, channel) if kind != "points" else None
        if refusal is not None:
            self.stats.suppressed += 1
            self.redis.set(marker, f"suppressed: {refusal}", ex=MARKER_TTL_SECONDS)
            if self.audit is not None:
                self.audit.record("outbox.suppressed", actor="outbox", subject=member_id, rule_id=entry["rule"],
                                  kind=kind, channel=channel, why=refusal)
            return "suppressed", None
        now = self.clock()
        until = quiet_until(self.settings.quiet_hours.get(channel or ""),
                            self.programme.aware(now).astimezone(self.programme.tz))
        if until is not None:
            self.stats.deferred += 1
            return "deferred", int(until.timestamp() * 1000)
        delivery = self._prepare(entry, key, action, now)
        self.adapter.deliver(delivery)
        self.redis.set(marker, "delivered", ex=MARKER_TTL_SECONDS)
        self.stats.delivered += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        return "delivered", None

    def _consent_refuses(self, member_id: str, channel: str | None) -> str | None:
        fields = self.redis.hmget(member_key(member_id, PROFILE), ["opt_out", *CONSENT_FIELDS.values()])
        consent = dict(zip(["opt_out", *CONSENT_FIELDS.values()], fields))
        if consent["opt_out"] is not None and int(float(consent["opt_out"])):
            return "opted out of marketing"
        needed = CONSENT_FIELDS.get(channel or "")
        if needed is not None and not int(float(consent[needed] or 0)):
            return f"no consent for {channel}"
        return None

    def _prepare(self, entry: dict, key: str, action: int, now: datetime) -> Delivery:
        member_id, kind, body = entry["member"], entry["kind"], entry.get("body") or {}
        code = expires = None
        issuance = f"{key}#{action}"
        if kind == "coupon":
            terms = CouponTerms(**body)
            coupon = self.coupons.issue(member_id, terms, entry["rule"], entry.get("channel") or "app",
                                        issuance=issuance, actor=f"trigger:{entry['rule']}")
            code, expires = coupon.code, coupon.expires_at
        elif kind == "points":
            self.store.apply_events([PointsAwardedEvent(
                event_id=f"award:{issuance}", type="points_awarded", member_id=member_id, ts=now,
                points=int(body["points"]), rule_id=entry["rule"])])
        return Delivery(key=issuance, member_id=member_id, rule_id=entry["rule"], kind=kind,
                        channel=entry.get("channel"), body=body, coupon_code=code, coupon_expires_at=expires)
