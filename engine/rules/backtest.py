"""Backtests: what the rules would do over every member on a date, before they go live.

``backtest_history`` computes each member's features as of the date from transaction history
(``engine.point_in_time.features_as_of``: the one feature definition), then ``backtest`` evaluates
every rule over all members at once with the vectorised evaluator (the same compiled conditions
durable_rules runs; property tests prove the three evaluators agree), and reports per rule:
members that would fire, how many of them are held out, coupons and face value, overlap with the
other rules of its trigger, and a projected budget exhaustion date.

The moment of the backtest: every member's trigger happens on the date at noon, at their home
store, with an empty basket and no channel; so basket and channel conditions hold only as they
would for an empty checkout. Projections assume the day repeats: a daily rule fires again for a
member once their per-member cap allows; a checkout rule fires on the days the member shops
(``frequency_30d`` / 30 a day); other event rules are not projected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.features import FEATURES_BY_NAME
from engine.point_in_time import features_as_of
from engine.programme import Programme
from engine.rules.compiler import CompiledRule, CompiledRules, compile_rules
from engine.rules.context import LIST_LENGTH_SUFFIX, FactBuilder, RequestContext
from engine.rules.limits import holdout_mask, member_hashes
from engine.rules.loader import LoadedRules, load_rules
from engine.rules.vectorised import FactColumns

PROJECTION_DAYS = 365
Progress = Callable[[str, int, int], None]
"""on_progress(step, done, total)."""


@dataclass(frozen=True)
class RuleBacktest:
    """What one rule would do on the date."""

    rule_id: str
    name: str
    trigger: str
    status: str  # live | scheduled | expired on the date
    members: int
    holdout: int
    coupons: int
    face_value: float
    overlaps: dict[str, int]
    """Other rules of the same trigger -> members for whom both fire."""
    daily_offers: float | None
    """Projected offers a day after the first (None: not projected for this trigger)."""
    budget: str
    """The budget and when it runs out (projected), or that it has none."""
    exhausted_on: date | None

    @property
    def offers(self) -> int:
        """Members it would fire for outside its holdout: the offers made."""
        return self.members - self.holdout


@dataclass(frozen=True)
class BacktestReport:
    """Per-rule results of a backtest, with its timings (features and evaluation are reported apart)."""

    as_of: date
    version: str
    members: int
    rules: tuple[RuleBacktest, ...]
    feature_seconds: float = 0.0
    evaluation_seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())


def backtest(compiled: CompiledRules, features: pd.DataFrame, as_of: date, programme: Programme,
             on_progress: Progress | None = None) -> BacktestReport:
    """Evaluate every rule over all members' features (one row per member, index member_id) on ``as_of``."""
    started = time.perf_counter()
    n = len(features)
    member_ids = [str(m) for m in features.index]
    hashes = member_hashes(member_ids)
    builder = FactBuilder(compiled.loaded.calendar, programme.tz)
    moment = RequestContext(at=datetime.combine(as_of, clock_time(12, 0)))
    masks: dict[str, np.ndarray] = {}
    rules = list(compiled.rules)
    total = len(rules)
    for trigger in sorted({r.trigger for r in rules}):
        columns = _fact_columns(features, trigger, compiled.reads(trigger), builder, moment)
        for rule in (r for r in rules if r.trigger == trigger):
            masks[rule.id] = columns.mask(rule.condition)
            if on_progress is not None:
                on_progress("evaluate", len(masks), total)
    results = []
    for rule in rules:
        fired = masks[rule.id]
        held = fired & holdout_mask(rule.id, hashes, rule.checked.rule.holdout)
        offered = fired & ~held
        overlaps = {other.id: int((fired & masks[other.id]).sum()) for other in rules
                    if other.id != rule.id and other.trigger == rule.trigger}
        daily = _daily_offers(rule, features, offered)
        budget, exhausted = _exhaustion(rule, int(offered.sum()), daily, as_of)
        offers = int(offered.sum())
        results.append(RuleBacktest(
            rule_id=rule.id, name=rule.checked.rule.name, trigger=rule.trigger, status=_status(rule, as_of),
            members=int(fired.sum()), holdout=int(held.sum()), coupons=offers * rule.checked.coupons,
            face_value=round(offers * _worth(rule), 2), overlaps={k: v for k, v in overlaps.items() if v},
            daily_offers=None if daily is None else round(daily, 1), budget=budget, exhausted_on=exhausted))
    notes = ("every member's trigger at noon on the date, at the home store, with an empty basket",
             "projections assume the date's picture repeats every day")
    return BacktestReport(as_of=as_of, version=compiled.version, members=n, rules=tuple(results),
                          evaluation_seconds=time.perf_counter() - started, notes=notes)


def backtest_history(rules: Path | LoadedRules, transactions: pd.DataFrame, as_of: date, programme: Programme,
                     members: pd.DataFrame | None = None, on_progress: Progress | None = None) -> BacktestReport:
    """Features of every member as of ``as_of`` from history (point in time), then ``backtest``."""
    loaded = rules if isinstance(rules, LoadedRules) else load_rules(rules, programme.settings.points.points_per_yuan_redeemed)
    if not loaded.ok:
        raise ValueError("the rules have errors:\n" + "\n".join(str(p) for p in loaded.errors))
    compiled = compile_rules(loaded)
    if on_progress is not None:
        on_progress("features", 0, 1)
    started = time.perf_counter()
    features = features_as_of(transactions, as_of, programme, members)
    feature_seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress("features", 1, 1)
    report = backtest(compiled, features, as_of, programme, on_progress)
    return BacktestReport(as_of=report.as_of, version=report.version, members=report.members, rules=report.rules,
                          feature_seconds=feature_seconds, evaluation_seconds=report.evaluation_seconds,
                          notes=report.notes)


def _fact_columns(features: pd.DataFrame, trigger: str, reads: frozenset[str], builder: FactBuilder,
                  moment: RequestContext) -> FactColumns:
    """The facts of every member for ``trigger`` as columns: member features per row, the moment constant."""
    n = len(features)
    columns = FactColumns(n)
    constant = builder.build(trigger, {}, moment)
    for name in sorted(reads):
        if name.endswith(LIST_LENGTH_SUFFIX):
            continue  # added with its list
        definition = FEATURES_BY_NAME.get(name)
        source = "home_store" if name == "store" else name
        if definition is not None or name == "store":
            if source not in features:
                columns.add_constant(name, None)
            elif definition is not None and definition.kind == "list[str]":
                values = [list(v) if isinstance(v, (list, tuple, np.ndarray)) else None for v in features[source]]
                columns.add_lists(name, values, name + LIST_LENGTH_SUFFIX)
            else:
                columns.add(name, _column_values(features[source], definition.kind if definition else "str"))
        elif isinstance(constant.get(name), list):
            columns.add_constant(name, constant[name])
            columns.add_constant(name + LIST_LENGTH_SUFFIX, len(constant[name]))
        else:
            columns.add_constant(name, constant.get(name))
    return columns


def _column_values(series: pd.Series, kind: str) -> np.ndarray:
    if kind in ("int", "float"):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        # The fact builder turns an int feature into int(x): truncate the same way.
        return np.trunc(values) if kind == "int" else values
    values = series.to_numpy(dtype=object)
    if kind == "bool":
        return np.array([None if v is None or v != v else bool(v) for v in values], dtype=object)
    return np.array([None if v is None or v != v else str(v) for v in values], dtype=object)


def _status(rule: CompiledRule, day: date) -> str:
    window = rule.checked.rule.active
    if window is not None and window.from_ is not None and day < window.from_:
        return "scheduled"
    if window is not None and window.to is not None and day > window.to:
        return "expired"
    return "live"


def _worth(rule: CompiledRule) -> float:
    value = rule.checked.face_value
    return 0.0 if math.isnan(value) else value


def _daily_offers(rule: CompiledRule, features: pd.DataFrame, offered: np.ndarray) -> float | None:
    """Offers a day after the first, if the day repeated (see the module notes)."""
    cap = rule.checked.rule.limits.member_cap if rule.checked.rule.limits else None
    offers = float(offered.sum())
    ceiling = offers * cap[0] / cap[1] if cap and cap[1] else (0.0 if cap else offers)
    if rule.trigger == "schedule.daily":
        return ceiling
    if rule.trigger in ("checkout", "event.purchase"):
        visits = pd.to_numeric(features["frequency_30d"], errors="coerce").fillna(0).to_numpy()[offered] / 30
        return min(float(np.minimum(visits, 1.0).sum()), ceiling)
    return None


def _exhaustion(rule: CompiledRule, first_day: int, daily: float | None, as_of: date) -> tuple[str, date | None]:
    """The budget and the projected day it runs out (within its period, the active window and a year)."""
    limits = rule.checked.rule.limits
    budget = limits.budget if limits else None
    if budget is None:
        return "no overall budget", None
    coupons_per = rule.checked.coupons
    worth = _worth(rule)
    parts = []
    if budget.coupons is not None:
        parts.append(f"{budget.coupons:,} coupons")
    if budget.amount is not None:
        parts.append(f"{budget.amount:,.0f} yuan")
    label = " / ".join(parts) + ("" if budget.period == "total" else f" per {budget.period}")
    window_end = rule.checked.rule.active.to if rule.checked.rule.active and rule.checked.rule.active.to else None
    used_coupons = used_amount = 0.0
    day = as_of
    period = _period_of(budget.period, day)
    for step in range(PROJECTION_DAYS):
        if window_end is not None and day > window_end:
            break
        if _period_of(budget.period, day) != period:
            period, used_coupons, used_amount = _period_of(budget.period, day), 0.0, 0.0
        offers = first_day if step == 0 else (daily or 0.0)
        if step > 0 and daily is None:
            break
        used_coupons += offers * coupons_per
        used_amount += offers * worth
        if (budget.coupons is not None and used_coupons >= budget.coupons) or (
                budget.amount is not None and used_amount >= budget.amount):
            return f"{label}: runs out {day.isoformat()} (projected)", day
        day += timedelta(days=1)
    return f"{label}: lasts (projected)", None


def _period_of(period: str, day: date) -> object:
    if period == "day":
        return day
    if period == "week":
        return day.isocalendar()[:2]
    if period == "month":
        return day.year, day.month
    return "total"
