"""Campaign measurement: who each rule targeted or held out, what its coupons did, and the lift.

Every time a rule fires for a member (checkout, event or daily trigger) the member is recorded
once per rule and local day as **treatment** (the offer was made) or **holdout** (the rule's
control group got nothing): ``mx:{<rule>}:<day>`` maps member -> ``t`` / ``h``. Per-rule daily
counters sit beside it in ``ms:{<rule>}`` (fired, held out, coupons issued and redeemed, coupon
cost in fen). Both live in the rule's hash slot.

The report compares spend after the exposure: for each exposed member, spend from the exposure
day through ``attribution_days`` (or today) read from the member's daily buckets, the same data
the features use. Lift per member is the difference of the two groups' means with a Welch 95%
interval; incremental revenue is lift x treated members; ROI is (incremental revenue x margin -
coupon cost) / coupon cost. Holdouts are a sticky random share per rule (``engine.rules.limits``),
so the comparison is a randomised one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import redis

from engine.calendar import day_number, day_to_date
from engine.keys import EXPOSURE_TTL_SECONDS, exposures_key, member_key, rule_counters_key
from engine.member_state import DAYS

TREATMENT, HOLDOUT = "t", "h"
COUNTERS = ("fired", "held", "issued", "redeemed", "cost")
Z95 = 1.959964


def record_exposures(pipe: redis.client.Pipeline, rule_id: str, day: int, treatment: Iterable[str] = (),
                     holdout: Iterable[str] = ()) -> None:
    """Queue on ``pipe``: these members met the rule on ``day`` (the first record of a member that day stands)."""
    key = exposures_key(rule_id, day)
    written = False
    for group, members in ((TREATMENT, treatment), (HOLDOUT, holdout)):
        count = 0
        for member_id in members:
            pipe.hsetnx(key, member_id, group)
            count += 1
        if count:
            written = True
            pipe.hincrby(rule_counters_key(rule_id), f"{'fired' if group == TREATMENT else 'held'}|{day}", count)
    if written:
        pipe.expire(key, EXPOSURE_TTL_SECONDS)


def count(pipe: redis.client.Pipeline | redis.Redis, rule_id: str, counter: str, day: int, amount: int = 1) -> None:
    """Add to one of a rule's daily counters (``issued``, ``redeemed``, ``cost`` in fen, ...)."""
    pipe.hincrby(rule_counters_key(rule_id), f"{counter}|{day}", amount)


@dataclass(frozen=True)
class GroupSpend:
    """Spend per exposed member of one group after the exposure."""

    members: int
    mean: float | None
    variance: float | None


@dataclass(frozen=True)
class PeriodReport:
    """One rule over one campaign period (or the whole report range)."""

    period: str
    targeted: int
    treatment: int
    holdout: int
    fired: int
    issued: int
    redeemed: int
    coupon_cost: float
    spend_per_member_treatment: float | None
    spend_per_member_holdout: float | None
    lift_per_member: float | None
    lift_ci95: tuple[float, float] | None
    incremental_revenue: float | None
    roi: float | None

    @property
    def redemption_rate(self) -> float | None:
        """Coupons redeemed / issued (None when none was issued)."""
        return round(self.redeemed / self.issued, 4) if self.issued else None


@dataclass(frozen=True)
class RuleReport:
    """A rule's measurement: the whole range, each period, and the daily counters."""

    rule_id: str
    name: str
    trigger: str
    total: PeriodReport
    periods: tuple[PeriodReport, ...]
    daily: tuple[dict, ...] = field(default=())


class Measurement:
    """Reads exposures, counters and spend from Redis into per-rule reports."""

    def __init__(self, client: redis.Redis, attribution_days: int = 14, margin_rate: float = 0.25,
                 chunk: int = 1000) -> None:
        self.redis = client
        self.attribution_days = attribution_days
        self.margin_rate = margin_rate
        self.chunk = chunk

    def report(self, rules: Sequence[tuple[str, str, str]], since: date, until: date,
               period: str = "month") -> list[RuleReport]:
        """Each rule ``(id, name, trigger)`` measured over exposures from ``since`` to ``until`` (local days)."""
        first, last = day_number(since), day_number(until)
        return [self._rule(rule_id, name, trigger, first, last, period) for rule_id, name, trigger in rules]

    def _rule(self, rule_id: str, name: str, trigger: str, first: int, last: int, period: str) -> RuleReport:
        days = list(range(first, last + 1))
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(exposures_key(rule_id, day))
        pipe.hgetall(rule_counters_key(rule_id))
        *exposed_by_day, counters = pipe.execute()
        exposures = [(day, member, group) for day, exposed in zip(days, exposed_by_day)
                     for member, group in exposed.items()]
        spend = self._spend_after(exposures, last)
        daily = tuple(
            {"day": day_to_date(day).isoformat(),
             **{c: _counter(counters, c, day) / (100 if c == "cost" else 1) for c in COUNTERS}}
            for day in days if any(_counter(counters, c, day) for c in COUNTERS))
        groups: dict[str, list[int]] = {}
        for day in days:
            groups.setdefault(_period_label(day, period), []).append(day)
        periods = tuple(self._summarise(label, set(group_days), exposures, spend, counters)
                        for label, group_days in groups.items()
                        if any(d in group_days for d, _, _ in exposures)
                        or any(_counter(counters, c, d) for c in COUNTERS for d in group_days))
        total = self._summarise(f"{day_to_date(first)}..{day_to_date(last)}", set(days), exposures, spend, counters)
        return RuleReport(rule_id=rule_id, name=name, trigger=trigger, total=total, periods=periods, daily=daily)

    def _spend_after(self, exposures: list[tuple[int, str, str]], last: int) -> list[float]:
        """Each exposed member's spend (yuan) from the exposure day through the attribution window."""
        spend = []
        for start in range(0, len(exposures), self.chunk):
            part = exposures[start:start + self.chunk]
            pipe = self.redis.pipeline(transaction=False)
            for day, member, _ in part:
                end = min(day + self.attribution_days - 1, last)
                pipe.hmget(member_key(member, DAYS), [f"s{d}" for d in range(day, end + 1)])
            for values in pipe.execute():
                spend.append(sum(float(v) for v in values if v is not None) / 100)  # buckets hold fen
        return spend

    def _summarise(self, label: str, days: set[int], exposures: list[tuple[int, str, str]], spend: list[float],
                   counters: dict) -> PeriodReport:
        treated = [s for (day, _, group), s in zip(exposures, spend) if day in days and group == TREATMENT]
        held = [s for (day, _, group), s in zip(exposures, spend) if day in days and group == HOLDOUT]
        t, h = _group(treated), _group(held)
        fired = sum(_counter(counters, "fired", d) + _counter(counters, "held", d) for d in days)
        issued = sum(_counter(counters, "issued", d) for d in days)
        redeemed = sum(_counter(counters, "redeemed", d) for d in days)
        cost = sum(_counter(counters, "cost", d) for d in days) / 100
        lift = ci = incremental = roi = None
        if t.mean is not None and h.mean is not None:
            lift = t.mean - h.mean
            if t.members > 1 and h.members > 1:
                se = math.sqrt(t.variance / t.members + h.variance / h.members)
                ci = (round(lift - Z95 * se, 2), round(lift + Z95 * se, 2))
            incremental = round(lift * t.members, 2)
            if cost > 0:
                roi = round((incremental * self.margin_rate - cost) / cost, 3)
            lift = round(lift, 2)
        return PeriodReport(
            period=label, targeted=t.members + h.members, treatment=t.members, holdout=h.members, fired=fired,
            issued=issued, redeemed=redeemed, coupon_cost=round(cost, 2),
            spend_per_member_treatment=None if t.mean is None else round(t.mean, 2),
            spend_per_member_holdout=None if h.mean is None else round(h.mean, 2),
            lift_per_member=lift, lift_ci95=ci, incremental_revenue=incremental, roi=roi)


def _group(values: list[float]) -> GroupSpend:
    if not values:
        return GroupSpend(0, None, None)
    array = np.asarray(values, dtype=float)
    return GroupSpend(len(array), float(array.mean()), float(array.var(ddof=1)) if len(array) > 1 else 0.0)


def _counter(counters: dict, name: str, day: int) -> int:
    return int(counters.get(f"{name}|{day}", 0))


def _period_label(day: int, period: str) -> str:
    d = day_to_date(day)
    if period == "day":
        return d.isoformat()
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{d.year}-{d.month:02d}"
    return "total"


EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
MAX_REPORT_DAYS = 400


def report_window(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """The report's days: ``until`` defaults to today, ``since`` to 30 days before; ``ValueError`` says what is wrong."""
    until = until or today
    since = since or (until - timedelta(days=29) if until >= EARLIEST + timedelta(days=29) else until)
    for name, day in (("since", since), ("until", until)):
        if not EARLIEST <= day <= LATEST:
            raise ValueError(f"{name} {day} is outside {EARLIEST}..{LATEST}")
    if since > until:
        raise ValueError(f"since {since} is after until {until}")
    if (until - since).days >= MAX_REPORT_DAYS:
        raise ValueError(f"at most {MAX_REPORT_DAYS} days at once (asked {(until - since).days + 1})")
    return since, until
