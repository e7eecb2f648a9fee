"""Member features: each one defined once, computed from a ``MemberState`` as of a day.

Online serving computes them from the state read from Redis at "now"; training and backtests
compute them from the state folded from history before a cutoff (``engine.point_in_time``).
Both call ``member_features``: the same code, so there is no train/serve skew. Rolling windows
are evaluated at read time from daily buckets, so they are right even weeks after the last event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from engine.calendar import day_number, day_to_date, from_local_seconds
from engine.member_state import (
    MemberState,
    effective_tier,
    growth_in_window,
    live_point_lots,
    lot_expiry_day,
    month_spend,
)
from engine.programme import Programme
from engine.settings import TIERS

WINDOWS: tuple[int, ...] = (30, 90, 365)


@dataclass(frozen=True)
class FeatureDef:
    """A feature's name, value type and meaning (what rules, models and docs refer to)."""

    name: str
    kind: str  # "int", "float", "str", "bool", "list[str]"
    description: str
    nullable: bool = False
    values: tuple[str, ...] = ()  # the allowed values of a categorical feature


def _window_defs() -> list[FeatureDef]:
    defs = []
    for w in WINDOWS:
        defs.append(FeatureDef(f"frequency_{w}d", "int", f"purchases (baskets) in the last {w} days, today included"))
        defs.append(FeatureDef(f"monetary_{w}d", "float", f"spend in yuan in the last {w} days, today included"))
    return defs


SEGMENTS: tuple[str, ...] = ("new", "lapsed", "at_risk", "champion", "loyal", "occasional")

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("registered", "bool", "the member has registered"),
    FeatureDef("days_since_registration", "int", "days since registration", nullable=True),
    FeatureDef("tier", "str", "tier held today", values=TIERS),
    FeatureDef("tier_rank", "int", "0 regular, 1 silver, 2 gold, 3 diamond"),
    FeatureDef("growth_value", "float", "growth value earned since joining"),
    FeatureDef("growth_12m", "float", "growth value in the tier window (default 12 months)"),
    FeatureDef("points_balance", "int", "points that can be used today"),
    FeatureDef("points_expiring_30d", "int", "points that expire within 30 days"),
    FeatureDef("recency_days", "int", "days since the last purchase (0: today)", nullable=True),
    *_window_defs(),
    FeatureDef("month_spend", "float", "spend this calendar month"),
    FeatureDef("month_orders", "int", "purchases (baskets) this calendar month, today included"),
    FeatureDef("avg_basket", "float", "average basket value since joining (0 without purchases)"),
    FeatureDef("orders_total", "int", "purchases since joining"),
    FeatureDef("spend_total", "float", "spend since joining"),
    FeatureDef("first_purchase_days", "int", "days since the first purchase (0: today)", nullable=True),
    FeatureDef("purchase_days_365d", "int", "distinct days with a purchase in the last 365 days, today included"),
    FeatureDef("purchase_gap_mean_365d", "float", "mean days between consecutive purchase days in the last 365 days "
               "(needs two purchase days)", nullable=True),
    FeatureDef("purchase_gap_std_365d", "float", "spread (standard deviation) of those gaps (needs three purchase days)",
               nullable=True),
    FeatureDef("purchase_gap_max_365d", "int", "longest of those gaps (needs two purchase days)", nullable=True),
    FeatureDef("categories_bought", "int", "distinct categories bought since joining"),
    FeatureDef("favourite_categories", "list[str]", "up to 3 categories bought most (by quantity)"),
    FeatureDef("last_purchase_at", "str", "local time of the last purchase (ISO)", nullable=True),
    FeatureDef("last_store", "str", "store of the last purchase", nullable=True),
    FeatureDef("home_store", "str", "the member's home store", nullable=True),
    FeatureDef("region", "str", "the member's region", nullable=True),
    FeatureDef("birthday", "str", "birthday as MM-DD", nullable=True),
    FeatureDef("days_to_birthday", "int", "days until the next birthday (0: today)", nullable=True),
    FeatureDef("opted_out", "bool", "the member opted out of marketing"),
    FeatureDef("channel_sms", "bool", "accepts SMS"),
    FeatureDef("channel_app", "bool", "accepts app messages"),
    FeatureDef("channel_email", "bool", "accepts e-mail"),
    FeatureDef("referrals", "int", "new members referred"),
    FeatureDef("checkins", "int", "check-ins"),
    FeatureDef("coupons_redeemed", "int", "coupons redeemed"),
    FeatureDef("segment", "str", "RFM segment", values=SEGMENTS),
    FeatureDef("churn_probability", "float", "probability of no purchase in the next 30 days (batch scored)", nullable=True),
    FeatureDef("churn_model_version", "str", "model version that scored churn_probability", nullable=True),
    FeatureDef("ltv", "float", "predicted spend in yuan over the lifetime-value model's horizon (scored at checkout, "
               "else the batch score)", nullable=True),
    FeatureDef("ltv_model_version", "str", "model version that scored ltv", nullable=True),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, FeatureDef] = {f.name: f for f in FEATURES}


def member_features(state: MemberState | None, as_of: datetime | date, programme: Programme) -> dict[str, object]:
    """Every feature of one member on the day of ``as_of`` (an unknown member gets the defaults)."""
    if isinstance(as_of, datetime):
        today = programme.day_of(as_of)
    else:
        today = day_number(as_of)
    state = state or MemberState(member_id="")
    profile = state.profile
    counts, spends, orders_this_month, purchase_days = _window_sums(state.days, today)
    gaps = _gap_statistics(purchase_days)
    orders = float(profile.get("orders", 0.0))
    spend = float(profile.get("spend", 0.0))
    reg_day = profile.get("reg_day")
    last_day = profile.get("last_day")
    first_day = profile.get("first_day")
    tier = effective_tier(state, today, programme) if state.registered else "regular"
    lots = live_point_lots(state, today, programme)
    recency = today - int(last_day) if last_day is not None else None
    bday = profile.get("bday")

    features: dict[str, object] = {
        "registered": state.registered,
        "days_since_registration": today - int(reg_day) if reg_day is not None else None,
        "tier": tier,
        "tier_rank": TIERS.index(tier),
        "growth_value": round(float(profile.get("growth", 0.0)), 2),
        "growth_12m": round(growth_in_window(state, today, programme.settings.tiers.window_months), 2),
        "points_balance": int(sum(v for _, v in lots)),
        "points_expiring_30d": int(
            sum(v for m, v in lots if lot_expiry_day(m, programme) - today < 30)
        ),
        "recency_days": recency,
    }
    for w in WINDOWS:
        features[f"frequency_{w}d"] = int(counts[w])
        features[f"monetary_{w}d"] = round(spends[w], 2)
    features.update({
        "month_spend": round(month_spend(state, today), 2),
        "month_orders": orders_this_month,
        "avg_basket": round(spend / orders, 2) if orders else 0.0,
        "orders_total": int(orders),
        "spend_total": round(spend, 2),
        "first_purchase_days": today - int(first_day) if first_day is not None else None,
        "purchase_days_365d": len(purchase_days),
        "purchase_gap_mean_365d": gaps[0],
        "purchase_gap_std_365d": gaps[1],
        "purchase_gap_max_365d": gaps[2],
        "categories_bought": sum(1 for quantity in state.categories.values() if quantity > 0),
        "favourite_categories": [c for c, _ in sorted(state.categories.items(), key=lambda kv: (-kv[1], kv[0]))[:3]],
        "last_purchase_at": _iso_local(profile.get("last_ts")),
        "last_store": profile.get("last_store"),
        "home_store": profile.get("store"),
        "region": profile.get("region"),
        "birthday": bday,
        "days_to_birthday": days_to_birthday(str(bday), today) if bday else None,
        "opted_out": bool(profile.get("opt_out", 0)),
        "channel_sms": bool(profile.get("ch_sms", 0)),
        "channel_app": bool(profile.get("ch_app", 0)),
        "channel_email": bool(profile.get("ch_email", 0)),
        "referrals": int(profile.get("refs", 0)),
        "checkins": int(profile.get("checkins", 0)),
        "coupons_redeemed": int(profile.get("coupons_redeemed", 0)),
        "churn_probability": _maybe_float(profile.get("churn_p")),
        "churn_model_version": profile.get("churn_v"),
        "ltv": _maybe_float(profile.get("ltv")),
        "ltv_model_version": profile.get("ltv_v"),
    })
    features["segment"] = rfm_segment(features, programme)
    return features


def _window_sums(days: dict[str, float], today: int) -> tuple[dict[int, float], dict[int, float], int, list[int]]:
    """Baskets and spend (yuan) in each window ending today, baskets this calendar month and the ages
    (days ago) of the purchase days of the longest window, from the daily buckets (one pass)."""
    counts = dict.fromkeys(WINDOWS, 0.0)
    spends = dict.fromkeys(WINDOWS, 0.0)
    month_age = day_to_date(today).day - 1  # days since the 1st of this month
    month_orders = 0.0
    longest = WINDOWS[-1]
    purchase_ages: list[int] = []
    for key, value in days.items():
        age = today - int(key[1:])
        if age < 0:
            continue  # a bucket after "as of" never counts (back-dated reads, replays)
        if key[0] == "n":
            target = counts
            if age <= month_age:
                month_orders += value
            if age < longest and value > 0:
                purchase_ages.append(age)
        else:
            target = spends
        for w in WINDOWS:
            if age < w:
                target[w] += value
    return counts, {w: total / 100 for w, total in spends.items()}, int(month_orders), purchase_ages  # buckets hold fen


def _gap_statistics(purchase_ages: list[int]) -> tuple[float | None, float | None, int | None]:
    """Mean, standard deviation (population) and maximum of the days between consecutive purchase days.

    A member's own rhythm: "late" means something different for a daily and a monthly shopper.
    """
    if len(purchase_ages) < 2:
        return None, None, None
    ages = sorted(purchase_ages)
    gaps = [b - a for a, b in zip(ages, ages[1:])]
    mean = sum(gaps) / len(gaps)
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) if len(gaps) > 1 else None
    return round(mean, 4), (round(std, 4) if std is not None else None), max(gaps)


def rfm_segment(features: dict[str, object], programme: Programme) -> str:
    """The member's RFM segment from recency and 90-day frequency (thresholds are settings)."""
    rules = programme.settings.segments
    recency = features["recency_days"]
    registered_for = features["days_since_registration"]
    if recency is None:
        return "new"
    if registered_for is not None and registered_for <= rules.new_within_days and features["orders_total"] <= 1:
        return "new"
    if recency > rules.lapsed_after_days:
        return "lapsed"
    if recency > rules.at_risk_after_days:
        return "at_risk"
    orders_90 = features["frequency_90d"]
    if recency <= rules.champion_recency_days and orders_90 >= rules.champion_orders_90d:
        return "champion"
    if recency <= rules.loyal_recency_days and orders_90 >= rules.loyal_orders_90d:
        return "loyal"
    return "occasional"


def days_to_birthday(mm_dd: str, today: int) -> int:
    """Days from ``today`` to the next ``MM-DD`` (0 on the day; 29 Feb falls on 28 Feb in other years)."""
    month, day = (int(x) for x in mm_dd.split("-"))
    now = day_to_date(today)
    for year in (now.year, now.year + 1):
        candidate = _birthday_in(year, month, day)
        if candidate >= now:
            return (candidate - now).days
    raise AssertionError("unreachable: next year's birthday is always ahead")


def _birthday_in(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, day - 1)  # 29 February outside leap years


def _iso_local(seconds: object) -> str | None:
    if seconds is None:
        return None
    return from_local_seconds(float(seconds)).isoformat(timespec="seconds")


def _maybe_float(value: object) -> float | None:
    return None if value is None else float(value)
