"""The request context and the one fact the rules see: member features + context, flat and typed.

A fact holds every member feature of ``engine.features`` (one definition of each) and what the
moment adds: the basket (skus, categories, total) at checkout or in a purchase event, the store,
the channel, the local day of week, hour and month, and the festival calendar (days to the next
festival and to each festival of ``rules/festivals.yaml``). Two internal fields anchor a rule:
``_t`` (the trigger) and ``_day`` (the local day number, for active windows).

Values are coerced to their declared kind and missing values are left out of the fact, which is
what makes "a comparison on a missing value is false" hold in durable_rules too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from engine.calendar import day_number
from engine.events import EVENT_TYPES, Event, PurchaseEvent
from engine.features import FEATURES, FeatureDef
from engine.rules.conditions import Vocabulary

TRIGGERS: tuple[str, ...] = ("checkout", "schedule.daily", *(f"event.{t}" for t in EVENT_TYPES), "event.tier_change")
"""Every trigger a rule can have: a checkout, a daily schedule, an event of each type, or a tier change."""
BASKET_TRIGGERS = frozenset({"checkout", "event.purchase"})
CHANNEL_TRIGGERS = frozenset({"checkout"})
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TRIGGER_FIELD, DAY_FIELD = "_t", "_day"
LIST_LENGTH_SUFFIX = "__n"
"""``<list>__n`` holds a list's length: "contains none of" must hold for an empty list, and
durable_rules' ``$iall`` is false on one (measured), so the compiler tests the length too."""

BASKET_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("basket_skus", "list[str]", "SKUs in the basket (checkout) or in the purchase (event.purchase)"),
    FeatureDef("basket_categories", "list[str]", "categories of the basket's lines (when known)"),
    FeatureDef("basket_total", "float", "basket total in yuan (sum of qty x price)"),
    FeatureDef("basket_items", "int", "lines in the basket"),
)
MOMENT_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("store", "str", "store of the checkout or event; the member's home store otherwise", nullable=True),
    FeatureDef("channel", "str", "where a checkout request comes from (pos, app, ...)", nullable=True),
    FeatureDef("day_of_week", "str", "local day of the week", values=WEEKDAYS),
    FeatureDef("is_weekend", "bool", "Saturday or Sunday"),
    FeatureDef("hour", "int", "local hour of the day, 0-23"),
    FeatureDef("month", "int", "local month, 1-12"),
)


class FestivalCalendar:
    """Festival dates by festival id (``rules/festivals.yaml``); answers "days until" for a day."""

    def __init__(self, festivals: Mapping[str, Iterable[date]], names: Mapping[str, str] | None = None) -> None:
        self.dates: dict[str, tuple[int, ...]] = {
            festival: tuple(sorted({day_number(d) for d in dates})) for festival, dates in festivals.items()
        }
        self.names = dict(names or {})
        self.ids: tuple[str, ...] = tuple(sorted(self.dates))
        defs = [
            FeatureDef("days_to_festival", "int", "days until the next festival of the calendar (0: today)",
                       nullable=True),
            FeatureDef("next_festival", "str", "the next festival of the calendar (today's included)",
                       nullable=True, values=self.ids),
        ]
        for festival in self.ids:
            label = self.names.get(festival, festival)
            defs.append(FeatureDef(f"days_to_{festival}", "int", f"days until {label} (0: today)", nullable=True))
        self._defs = tuple(defs)
        self.feature_names: frozenset[str] = frozenset(d.name for d in defs)

    def feature_defs(self) -> tuple[FeatureDef, ...]:
        """``days_to_festival``, ``next_festival`` and one ``days_to_<festival>`` per festival."""
        return self._defs

    def on(self, day: int) -> Mapping[str, object]:
        """The calendar features of local day number ``day`` (cached: one computation a day; don't mutate)."""
        return _calendar_features(self, day)


@lru_cache(maxsize=64)
def _calendar_features(calendar: FestivalCalendar, day: int) -> dict[str, object]:
    values: dict[str, object] = {}
    nearest: tuple[int, str] | None = None
    for festival in calendar.ids:
        ahead = [d - day for d in calendar.dates[festival] if d >= day]
        days = min(ahead) if ahead else None
        values[f"days_to_{festival}"] = days
        if days is not None and (nearest is None or (days, festival) < nearest):
            nearest = (days, festival)
    values["days_to_festival"] = nearest[0] if nearest else None
    values["next_festival"] = nearest[1] if nearest else None
    return values


def vocabulary(calendar: FestivalCalendar) -> Vocabulary:
    """Every name a condition may use: member features, basket and moment, the calendar."""
    defs = [*FEATURES, *BASKET_FEATURES, *MOMENT_FEATURES, *calendar.feature_defs()]
    only_for = {d.name: BASKET_TRIGGERS for d in BASKET_FEATURES}
    only_for["channel"] = CHANNEL_TRIGGERS
    return Vocabulary(features={d.name: d for d in defs}, only_for=only_for)


def internal_features() -> dict[str, FeatureDef]:
    """The fields only the compiler writes (trigger anchor, day number), for the analysis."""
    return {
        TRIGGER_FIELD: FeatureDef(TRIGGER_FIELD, "str", "trigger", values=TRIGGERS),
        DAY_FIELD: FeatureDef(DAY_FIELD, "int", "local day number"),
    }


class BasketLine(BaseModel):
    """One basket line: ``price`` is the unit price in yuan; ``category`` when the caller knows it."""

    model_config = ConfigDict(extra="ignore")

    sku: str = Field(min_length=1, max_length=64)
    qty: float = Field(1.0, gt=0, le=10_000)
    price: float = Field(0.0, ge=0, le=10_000_000)
    category: str | None = Field(None, max_length=64)


class RequestContext(BaseModel):
    """The moment a rule is evaluated in: when (the clock), who, where, through which channel, the basket."""

    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(description="when; a naive time is the stores' local time")
    member_id: str | None = Field(None, description="needed for the sticky holdout of each rule")
    store_id: str | None = None
    channel: str | None = None
    basket: list[BasketLine] = Field(default_factory=list)

    @classmethod
    def from_event(cls, event: Event, catalogue: Mapping[str, str] | None = None) -> RequestContext:
        """The context of an event trigger: its time, member and store; a purchase brings its lines."""
        lines = []
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                category = line.category or (catalogue or {}).get(line.sku)
                lines.append(BasketLine(sku=line.sku, qty=line.qty, price=line.amount / line.qty, category=category))
        return cls(at=event.ts, member_id=event.member_id, store_id=getattr(event, "store_id", None), basket=lines)


@dataclass(frozen=True)
class FactBuilder:
    """Turns (trigger, features, context) into the flat fact of every evaluator, in the stores' time zone."""

    calendar: FestivalCalendar
    timezone: ZoneInfo
    catalogue: Mapping[str, str] = field(default_factory=dict)
    """sku -> category, for basket lines that come without one."""

    def local(self, at: datetime) -> datetime:
        """The stores' wall-clock time of ``at`` (a naive time already is)."""
        return at.astimezone(self.timezone).replace(tzinfo=None) if at.tzinfo is not None else at

    def build(self, trigger: str, features: Mapping[str, object], context: RequestContext,
              names: Iterable[str] | None = None) -> dict[str, object]:
        """The fact; ``names`` limits it to the fields some rule reads (the rest is work for nothing)."""
        local = self.local(context.at)
        day = day_number(local.date())
        fact: dict[str, object] = {TRIGGER_FIELD: trigger, DAY_FIELD: day}
        moment: dict[str, object] | None = None
        calendar: Mapping[str, object] | None = None
        calendar_names = self.calendar.feature_names
        for name in (_ALL_NAMES if names is None else names):
            coerce = _COERCE.get(name)
            if coerce is not None:
                if name in _MOMENT_NAMES:
                    if moment is None:
                        moment = self._moment(trigger, features, context, local)
                    value = moment.get(name)
                else:
                    value = features.get(name)
                if value is None:
                    continue
                if type(value) is not _TYPES[name]:  # int, str and bool of the declared kind pass as they are
                    value = coerce(value)
                    if value is None:
                        continue
                fact[name] = value
                if type(value) is list:
                    fact[name + LIST_LENGTH_SUFFIX] = len(value)
            elif name in calendar_names:
                if calendar is None:
                    calendar = self.calendar.on(day)
                value = calendar.get(name)
                if value is not None:
                    fact[name] = value
        if names is None:
            for name in sorted(calendar_names):
                value = self.calendar.on(day).get(name)
                if value is not None:
                    fact[name] = value
        return fact

    def _moment(self, trigger: str, features: Mapping[str, object], context: RequestContext,
                local: datetime) -> dict[str, object]:
        moment: dict[str, object] = {
            "store": context.store_id or features.get("home_store"),
            "channel": context.channel if trigger in CHANNEL_TRIGGERS else None,
            "day_of_week": WEEKDAYS[local.weekday()],
            "is_weekend": local.weekday() >= 5,
            "hour": local.hour,
            "month": local.month,
        }
        if trigger in BASKET_TRIGGERS:
            basket = context.basket
            moment["basket_skus"] = [line.sku for line in basket]
            categories = []
            for line in basket:
                category = line.category or self.catalogue.get(line.sku)
                if category and category not in categories:
                    categories.append(category)
            moment["basket_categories"] = categories
            # Summed in fen like the feature store, so the total does not depend on line order.
            moment["basket_total"] = sum(round(line.qty * line.price * 100) for line in basket) / 100
            moment["basket_items"] = len(basket)
        return moment


def _to_int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    number = float(value)
    return int(number) if math.isfinite(number) else None


def _to_float(value: object) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _to_list(value: object) -> list[str]:
    return [str(item) for item in value]


_KIND_COERCION = {"int": _to_int, "float": _to_float, "str": str, "bool": bool, "list[str]": _to_list}
_COERCE = {d.name: _KIND_COERCION[d.kind] for d in (*FEATURES, *BASKET_FEATURES, *MOMENT_FEATURES)}
# Floats (NaN, infinity) and lists (item types) are always coerced: None is never a fast-path type.
_TYPES = {d.name: {"int": int, "str": str, "bool": bool}.get(d.kind) for d in (*FEATURES, *BASKET_FEATURES, *MOMENT_FEATURES)}
_MOMENT_NAMES = frozenset(d.name for d in (*BASKET_FEATURES, *MOMENT_FEATURES))
_ALL_NAMES = tuple(_COERCE)
