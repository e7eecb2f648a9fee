"""A member's stored state and the one fold that applies an event to it.

The state is small sufficient statistics (profile values, monthly and daily buckets, category and
item counters), so every feature can be computed from it *as of any day* (``engine.features``).
``apply_event`` is the single definition of how events change that state: online ingestion records
its changes and commits them to Redis atomically, offline training folds the history up to a date
through the same function. There is no second implementation to drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from engine.calendar import day_number, local_seconds, month_index
from engine.events import (
    CheckinEvent,
    ConsentEvent,
    CouponRedeemedEvent,
    Event,
    PointsAwardedEvent,
    ProfileEvent,
    PurchaseEvent,
    QuestionnaireEvent,
    ReferralEvent,
    RegisterEvent,
    ShareEvent,
)
from engine.programme import Programme
from engine.settings import TIERS

# Parts of a member's state; each is one Redis hash ``m:{id}:<part>``. Daily buckets hold
# ``s<day>`` spend in fen and ``n<day>`` baskets, both integers.
PROFILE, MONTHS, DAYS, CATEGORIES, ITEMS = "p", "mo", "d", "c", "i"
PARTS: tuple[str, ...] = (PROFILE, MONTHS, DAYS, CATEGORIES, ITEMS)
WRITER_PARTS: tuple[str, ...] = (PROFILE, MONTHS)
"""What the fold reads; days, categories and items it only increments."""

# Profile fields and how their stored strings are parsed back.
PROFILE_FIELDS: dict[str, type] = {
    "v": int, "reg_day": int, "bday": str, "region": str, "store": str, "phone_h": str,
    "opt_out": int, "ch_sms": int, "ch_app": int, "ch_email": int,
    "orders": float, "spend": float, "first_day": int, "last_day": int, "last_ts": float,
    "last_store": str, "growth": float, "refs": int, "checkins": int, "shares": int,
    "questionnaire": int, "coupons_redeemed": int, "tier": str, "tier_day": int, "tier_prev": str,
    "tier_changed_day": int,
    "churn_p": float, "churn_v": str, "churn_day": int, "ltv": float, "ltv_v": str, "ltv_day": int,
}


class EventRejected(ValueError):
    """The event is well-formed but cannot apply to this member (the reason says why)."""


@dataclass
class MemberState:
    """One member's sufficient statistics, as stored in Redis (numbers parsed)."""

    member_id: str
    profile: dict[str, object] = field(default_factory=dict)
    months: dict[str, float] = field(default_factory=dict)
    days: dict[str, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return "reg_day" in self.profile

    def part(self, name: str) -> dict:
        return getattr(self, _PART_ATTRIBUTES[name])

    @classmethod
    def from_stored(cls, member_id: str, stored: dict[str, dict]) -> MemberState:
        """Build from the hashes as Redis returns them (decoded strings; bytes are accepted too)."""
        profile: dict[str, object] = {}
        for key, value in stored.get(PROFILE, {}).items():
            if isinstance(key, bytes):
                key, value = key.decode(), value.decode()
            kind = PROFILE_FIELDS.get(key, str)
            profile[key] = value if kind is str else (float(value) if kind is float else int(float(value)))
        state = cls(member_id=member_id, profile=profile)
        for part in (MONTHS, DAYS, CATEGORIES, ITEMS):
            raw = stored.get(part)
            if raw:
                state.part(part).update({_text(k): float(v) for k, v in raw.items()})
        return state


_PART_ATTRIBUTES = {PROFILE: "profile", MONTHS: "months", DAYS: "days", CATEGORIES: "categories", ITEMS: "items"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


INCREMENTED_PARTS: tuple[str, ...] = (DAYS, CATEGORIES, ITEMS)


@dataclass
class Changes:
    """What a fold changed, in the form a store commits it.

    Profile and month fields are written as absolute values (the writer read them, and its commit
    is guarded by the state version); days, categories and items are blind increments, so the
    writer never has to read those larger hashes.
    """

    profile: set[str] = field(default_factory=set)
    months: set[str] = field(default_factory=set)
    months_deleted: set[str] = field(default_factory=set)
    increments: dict[tuple[str, str], float] = field(default_factory=dict)

    def merge(self, other: Changes) -> None:
        self.profile |= other.profile
        self.months |= other.months
        self.months -= other.months_deleted
        self.months_deleted |= other.months_deleted
        self.months_deleted -= other.months
        for key, amount in other.increments.items():
            self.increments[key] = self.increments.get(key, 0) + amount


class StateWriter:
    """Changes a ``MemberState`` and records what changed so a store can commit it."""

    __slots__ = ("state", "changes")

    def __init__(self, state: MemberState) -> None:
        self.state = state
        self.changes = Changes()

    def incr(self, part: str, key: str, amount: float) -> None:
        if part == PROFILE:
            profile = self.state.profile
            profile[key] = profile.get(key, 0) + amount
            self.changes.profile.add(key)
        elif part == MONTHS:
            months = self.state.months
            months[key] = months.get(key, 0.0) + amount
            self.changes.months.add(key)
            self.changes.months_deleted.discard(key)
        else:
            target = self.state.part(part)
            target[key] = target.get(key, 0) + amount
            increments = self.changes.increments
            increments[(part, key)] = increments.get((part, key), 0) + amount

    def add_lines(self, lines) -> None:
        """Count each line's quantity for its item and category (the hot loop of a purchase)."""
        items, categories = self.state.items, self.state.categories
        increments = self.changes.increments
        for line in lines:
            sku, qty, category = line.sku, line.qty, line.category
            items[sku] = items.get(sku, 0) + qty
            increments[(ITEMS, sku)] = increments.get((ITEMS, sku), 0) + qty
            if category:
                categories[category] = categories.get(category, 0) + qty
                increments[(CATEGORIES, category)] = increments.get((CATEGORIES, category), 0) + qty

    def set(self, key: str, value: object) -> None:
        self.state.profile[key] = value
        self.changes.profile.add(key)

    def delete_month(self, key: str) -> None:
        self.state.months.pop(key, None)
        self.changes.months.discard(key)
        self.changes.months_deleted.add(key)


# --- tier and points: functions of the state, used by the fold and by the features -------------


def growth_in_window(state: MemberState, day: int, window_months: int) -> float:
    """Growth value earned in the ``window_months`` calendar months up to and including ``day``'s."""
    current = month_index(day)
    months = state.months
    return sum(months.get(f"g{m}", 0.0) for m in range(current - window_months + 1, current + 1))


def month_spend(state: MemberState, day: int) -> float:
    """Spend in the calendar month of ``day`` (the stored month bucket)."""
    return state.months.get(f"s{month_index(day)}", 0.0)


def qualifying_tier(state: MemberState, day: int, programme: Programme) -> str:
    """The highest tier whose thresholds the member meets on ``day``."""
    t = programme.settings.tiers
    growth = growth_in_window(state, day, t.window_months)
    refs = int(state.profile.get("refs", 0))
    if growth >= t.diamond_growth and refs >= t.diamond_referrals:
        return "diamond"
    if growth >= t.gold_growth and month_spend(state, day) >= t.gold_month_spend:
        return "gold"
    if growth >= t.silver_growth:
        return "silver"
    return "regular"


def effective_tier(state: MemberState, day: int, programme: Programme, qualified: str | None = None) -> str:
    """The tier held on ``day``: a tier reached is kept ``keep_days``, then re-evaluated (it can go down)."""
    qualified = qualified or qualifying_tier(state, day, programme)
    held = state.profile.get("tier")
    held_day = state.profile.get("tier_day")
    if held and held_day is not None and 0 <= day - int(held_day) < programme.settings.tiers.keep_days:
        return max(str(held), qualified, key=TIERS.index)
    return qualified


def live_point_lots(state: MemberState, day: int, programme: Programme) -> list[tuple[int, float]]:
    """(earn month, remaining points) of lots not yet expired on ``day``, oldest first.

    A month's points expire at the end of the month ``expiry_months`` later (FIFO by earn month).
    """
    current = month_index(day)
    oldest = current - programme.settings.points.expiry_months
    lots = [(int(k[1:]), v) for k, v in state.months.items() if k[0] == "p" and v > 0]
    return sorted((m, v) for m, v in lots if oldest <= m <= current)


def lot_expiry_day(month: int, programme: Programme) -> int:
    """The last day on which points earned in ``month`` can be used."""
    last_month = month + programme.settings.points.expiry_months
    year, month0 = divmod(last_month + 1, 12)
    return day_number(date(year, month0 + 1, 1)) - 1


# --- the fold ------------------------------------------------------------------------------------


def apply_event(state: MemberState, event: Event, programme: Programme) -> Changes:
    """Apply one event to ``state`` in place and return what changed.

    Raises ``EventRejected`` (state untouched) when the event cannot apply to this member.
    """
    handler = _HANDLERS[type(event)]
    if not isinstance(event, RegisterEvent) and not state.registered:
        raise EventRejected(f"member {event.member_id!r} is not registered (send a register event first)")
    writer = StateWriter(state)
    snapshot = _snapshot(state)
    try:
        handler(writer, event, programme)
    except EventRejected:
        _restore(state, snapshot)
        raise
    return writer.changes


def _snapshot(state: MemberState) -> tuple[dict, dict]:
    # The fold only reads and rewrites profile and months before it can reject; copying the
    # two small dicts makes a rejection leave no trace.
    return dict(state.profile), dict(state.months)


def _restore(state: MemberState, snapshot: tuple[dict, dict]) -> None:
    state.profile.clear()
    state.profile.update(snapshot[0])
    state.months.clear()
    state.months.update(snapshot[1])


def _register(w: StateWriter, e: RegisterEvent, p: Programme) -> None:
    if w.state.registered:
        raise EventRejected(f"member {e.member_id!r} is already registered")
    w.set("reg_day", p.day_of(e.ts))
    _set_profile_fields(w, e.store_id, e.region, e.birthday, e.phone, p)
    w.set("opt_out", int(e.opted_out))
    _set_channels(w, e.channels, default=True)
    w.set("tier", "regular")
    w.set("tier_day", p.day_of(e.ts))


def _purchase(w: StateWriter, e: PurchaseEvent, p: Programme) -> None:
    day = p.day_of(e.ts)
    local_ts = p.local(e.ts)
    month = month_index(day)
    total_fen = e.total_fen
    total = total_fen / 100
    tier_now = effective_tier(w.state, day, p)
    if e.points_used:
        _use_points(w, e.points_used, day, p)
    # Daily spend is kept in integer fen (分): exact sums, and Redis adds integers cheaply.
    w.incr(DAYS, f"s{day}", total_fen)
    w.incr(DAYS, f"n{day}", 1)
    w.incr(MONTHS, f"s{month}", total)
    w.incr(PROFILE, "orders", 1)
    w.incr(PROFILE, "spend", total)
    w.add_lines(e.lines)
    last_day = w.state.profile.get("last_day")
    seconds = local_seconds(local_ts)
    if last_day is None or seconds >= float(w.state.profile.get("last_ts", 0)):
        w.set("last_day", day)
        w.set("last_ts", seconds)
        if e.store_id:
            w.set("last_store", e.store_id)
    first_day = w.state.profile.get("first_day")
    if first_day is None or day < int(first_day):
        w.set("first_day", day)
    # Rounded before the floor so that 1.2 x 65.80 earns 78 points, not 78.95999... -> 78 by luck.
    earned = math.floor(round(total * p.settings.points.earn_per_yuan[tier_now], 6))
    if earned > 0:
        w.incr(MONTHS, f"p{month}", earned)
    _add_growth(w, total * p.settings.growth.per_yuan, day, p)


def _use_points(w: StateWriter, points: int, day: int, p: Programme) -> None:
    lots = live_point_lots(w.state, day, p)
    balance = sum(v for _, v in lots)
    if points > balance:
        raise EventRejected(f"points_used {points} exceeds the balance of {int(balance)} points")
    remaining = float(points)
    for month, available in lots:  # oldest first: FIFO
        take = min(available, remaining)
        w.incr(MONTHS, f"p{month}", -take)
        remaining -= take
        if remaining <= 0:
            break


def _add_growth(w: StateWriter, amount: float, day: int, p: Programme) -> None:
    """Add growth value and re-evaluate the tier: up at once, and a tier met again is kept longer."""
    before = effective_tier(w.state, day, p) if w.state.profile.get("tier") else None
    if amount:
        w.incr(MONTHS, f"g{month_index(day)}", amount)
        w.incr(PROFILE, "growth", amount)
    qualified = qualifying_tier(w.state, day, p)
    held = effective_tier(w.state, day, p, qualified)
    if TIERS.index(qualified) >= TIERS.index(held):
        if before is not None and qualified != before:  # a tier change (what event.tier_change rules answer)
            w.set("tier_prev", before)
            w.set("tier_changed_day", day)
        if qualified != w.state.profile.get("tier"):
            w.set("tier", qualified)
        w.set("tier_day", day)
    _prune_months(w, day, p)


def _prune_months(w: StateWriter, day: int, p: Programme) -> None:
    # Month buckets older than both the growth window and the points expiry can never count again.
    keep = max(p.settings.tiers.window_months, p.settings.points.expiry_months) + 1
    oldest = month_index(day) - keep
    for key in [k for k in w.state.months if int(k[1:]) < oldest]:
        w.delete_month(key)


def _checkin(w: StateWriter, e: CheckinEvent, p: Programme) -> None:
    w.incr(PROFILE, "checkins", 1)
    _add_growth(w, p.settings.growth.checkin, p.day_of(e.ts), p)


def _share(w: StateWriter, e: ShareEvent, p: Programme) -> None:
    w.incr(PROFILE, "shares", 1)
    _add_growth(w, p.settings.growth.share, p.day_of(e.ts), p)


def _questionnaire(w: StateWriter, e: QuestionnaireEvent, p: Programme) -> None:
    if w.state.profile.get("questionnaire"):
        raise EventRejected("the questionnaire's growth value was already awarded to this member")
    w.set("questionnaire", 1)
    _add_growth(w, p.settings.growth.questionnaire, p.day_of(e.ts), p)


def _referral(w: StateWriter, e: ReferralEvent, p: Programme) -> None:
    if e.referred_member_id == e.member_id:
        raise EventRejected("a member cannot refer themselves")
    w.incr(PROFILE, "refs", 1)
    _add_growth(w, p.settings.growth.referral, p.day_of(e.ts), p)


def _coupon_redeemed(w: StateWriter, e: CouponRedeemedEvent, p: Programme) -> None:
    w.incr(PROFILE, "coupons_redeemed", 1)


def _points_awarded(w: StateWriter, e: PointsAwardedEvent, p: Programme) -> None:
    # A bonus lot of the event's month: used and expired FIFO with earned points; no growth value.
    w.incr(MONTHS, f"p{month_index(p.day_of(e.ts))}", e.points)


def _profile(w: StateWriter, e: ProfileEvent, p: Programme) -> None:
    _set_profile_fields(w, e.store_id, e.region, e.birthday, e.phone, p)


def _consent(w: StateWriter, e: ConsentEvent, p: Programme) -> None:
    if e.opted_out is not None:
        w.set("opt_out", int(e.opted_out))
    _set_channels(w, e.channels, default=None)


def _set_profile_fields(w: StateWriter, store_id, region, birthday, phone, p: Programme) -> None:
    if store_id:
        w.set("store", store_id)
    if region:
        w.set("region", region)
    if birthday:
        # Month and day are all the offers need; the year is personal data we do not keep.
        w.set("bday", birthday.strftime("%m-%d"))
    if phone:
        w.set("phone_h", p.hash_pii(phone))


def _set_channels(w: StateWriter, channels, default: bool | None) -> None:
    for name in ("sms", "app", "email"):
        value = getattr(channels, name)
        if value is None:
            value = default
        if value is not None:
            w.set(f"ch_{name}", int(value))


_HANDLERS: dict[type, Callable[[StateWriter, Event, Programme], None]] = {
    RegisterEvent: _register,
    PurchaseEvent: _purchase,
    CheckinEvent: _checkin,
    ShareEvent: _share,
    QuestionnaireEvent: _questionnaire,
    ReferralEvent: _referral,
    CouponRedeemedEvent: _coupon_redeemed,
    PointsAwardedEvent: _points_awarded,
    ProfileEvent: _profile,
    ConsentEvent: _consent,
}
