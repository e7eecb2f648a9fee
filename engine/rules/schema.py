"""The rule file format: pydantic models of rules, coupon templates and the festival calendar.

``rules/*.yaml`` hold one rule (a mapping) or several (a list); ``rules/coupons.yaml`` holds the
coupon templates and ``rules/festivals.yaml`` the festival calendar. ``json_schema()`` exports
all of it as one JSON Schema (``rules/schema.json``) so an editor completes and flags fields.
These models check shape and ranges; names of features, values and templates are checked by
``engine.rules.loader`` against the feature definitions and the templates, with line numbers.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from engine.coupons import CouponTerms

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
TEMPLATE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,31}$"
FESTIVAL_ID_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
TRIGGER_PATTERN = r"^(checkout|schedule\.daily|event\.[a-z_]+)$"
CHANNELS: tuple[str, ...] = ("pos", "app", "sms", "email")
"""Where an offer reaches the member; sms, app and email need the member's consent for that channel."""
CONSENT_CHANNELS = frozenset({"sms", "app", "email"})
ACTION_KINDS: tuple[str, ...] = ("issue_coupon", "award_points", "recommend", "send_message", "tag")
MARKETING_ACTIONS = frozenset({"issue_coupon", "award_points", "send_message"})
"""Actions an opted-out member never gets (a product recommendation is not marketing)."""

RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, description="unique id: lower case, digits, - _ .")]
TemplateId = Annotated[str, Field(pattern=TEMPLATE_ID_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]

CONDITION_GRAMMAR = (
    "A condition on member features and the request context, e.g. 'recency_days >= 30', "
    "'tier in [silver, gold]', 'days_to_birthday between 0 and 7', 'basket_categories contains dairy', "
    "'basket_skus contains any [SKU00001, SKU00002]', 'not opted_out', 'churn_probability is null'; "
    "combine with and / or / not and parentheses. A comparison on a missing value is false, and so is its negation."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True,
                              populate_by_name=True)


# --- conditions --------------------------------------------------------------------------------

ConditionText = Annotated[str, Field(min_length=1, max_length=4000, description=CONDITION_GRAMMAR)]


class AllCondition(_Strict):
    """Every condition of the list holds."""

    all: list[Condition] = Field(min_length=1)


class AnyCondition(_Strict):
    """At least one condition of the list holds."""

    any: list[Condition] = Field(min_length=1)


class NotCondition(_Strict):
    """The condition does not hold (on a missing value neither it nor its negation holds)."""

    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
    if isinstance(value, BaseModel):
        return {AllCondition: "all", AnyCondition: "any", NotCondition: "not"}.get(type(value))
    return None


Condition = Annotated[
    Union[
        Annotated[ConditionText, Tag("text")],
        Annotated[AllCondition, Tag("all")],
        Annotated[AnyCondition, Tag("any")],
        Annotated[NotCondition, Tag("not")],
    ],
    Discriminator(_condition_kind, custom_error_type="condition",
                  custom_error_message="a condition is a text, or a mapping with one of all / any / not"),
]
AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()

# --- actions -----------------------------------------------------------------------------------


class IssueCoupon(_Strict):
    """Issue a coupon from a template of ``rules/coupons.yaml``."""

    template: TemplateId
    channel: Literal["pos", "app", "sms", "email"] | None = Field(
        None, description="where the coupon is sent; sms / app / email need the member's consent")
    valid_days: int | None = Field(None, ge=1, le=366, description="overrides the template's validity")
    percent_off: float | None = Field(None, gt=0, lt=100, description="must agree with the template (a reminder for readers)")
    amount_off: float | None = Field(None, gt=0, description="must agree with the template (a reminder for readers)")
    min_spend: float | None = Field(None, ge=0, description="must agree with the template (a reminder for readers)")


class AwardPoints(_Strict):
    """Award points (valued at the programme's redemption rate in budgets)."""

    points: int = Field(ge=1, le=1_000_000)
    reason: str = Field("", max_length=200)


class Recommend(_Strict):
    """Recommend products: from these categories and/or SKUs (the recommender ranks them)."""

    categories: list[ShortText] = Field(default_factory=list, max_length=50)
    skus: list[ShortText] = Field(default_factory=list, max_length=200)
    k: int = Field(3, ge=1, le=20, description="how many products")
    exclude_basket: bool = Field(True, description="leave out what is already in the basket")
    reason: str = Field("", max_length=200, description="what the member is told")

    @model_validator(mode="after")
    def _has_a_filter(self) -> Recommend:
        if not self.categories and not self.skus:
            raise ValueError("recommend needs categories or skus")
        return self


class SendMessage(_Strict):
    """Send a message on a channel the member accepts."""

    channel: Literal["sms", "app", "email"]
    template: ShortText = Field(description="message template id of the messaging system")
    text: str = Field("", max_length=500)


class IssueCouponAction(_Strict):
    """``issue_coupon: {template: ...}``"""

    issue_coupon: IssueCoupon


class AwardPointsAction(_Strict):
    """``award_points: {points: ...}``"""

    award_points: AwardPoints


class RecommendAction(_Strict):
    """``recommend: {categories: [...], skus: [...]}``"""

    recommend: Recommend


class SendMessageAction(_Strict):
    """``send_message: {channel: ..., template: ...}``"""

    send_message: SendMessage


class TagAction(_Strict):
    """``tag: call-back``"""

    tag: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$", description="a label, e.g. a call-back task")]


def _action_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [key for key in ACTION_KINDS if key in value]
        return found[0] if len(found) == 1 else None
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Action = Annotated[
    Union[
        Annotated[IssueCouponAction, Tag("issue_coupon")],
        Annotated[AwardPointsAction, Tag("award_points")],
        Annotated[RecommendAction, Tag("recommend")],
        Annotated[SendMessageAction, Tag("send_message")],
        Annotated[TagAction, Tag("tag")],
    ],
    Discriminator(_action_kind, custom_error_type="action",
                  custom_error_message="an action is a mapping with exactly one of " + ", ".join(ACTION_KINDS)),
]


def action_kind(action: BaseModel) -> str:
    """The kind of an action: issue_coupon, award_points, recommend, send_message or tag."""
    return next(iter(type(action).model_fields))


def action_body(action: BaseModel) -> Any:
    """What an action carries (the model under its one key, or the tag's text)."""
    return getattr(action, action_kind(action))


def action_channel(action: BaseModel) -> str | None:
    """The channel an action reaches the member on, if it names one."""
    body = action_body(action)
    return getattr(body, "channel", None)


# --- limits, window, scope, examples -----------------------------------------------------------

_PER_MEMBER = re.compile(r"^\s*(\d+)\s+(?:per\s+(?:(\d+)\s*([dw])|(day|week|month|year))|(ever))\s*$")
_PERIOD_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


class Budget(_Strict):
    """A budget in coupons and/or in face value (yuan), over the rule's life or per period."""

    coupons: int | None = Field(None, ge=1, le=100_000_000)
    amount: float | None = Field(None, gt=0, le=1e12, description="face value in yuan")
    period: Literal["total", "day", "week", "month"] = Field(
        "total", description="total: over the rule's life; day/week/month: calendar periods, local time")

    @model_validator(mode="after")
    def _something_to_limit(self) -> Budget:
        if self.coupons is None and self.amount is None:
            raise ValueError("a budget needs coupons and/or amount")
        return self


class Limits(_Strict):
    """How often and how much: per member (rolling window), overall budget, budget of each store."""

    per_member: Annotated[str, Field(
        pattern=_PER_MEMBER.pattern,
        description="'1 per 60d', '2 per 1w', '1 per month' (30 days), '1 per year', '1 ever'; rolling windows",
    )] | None = None
    budget: Budget | None = None
    per_store: Budget | None = Field(None, description="the same budget for each store separately")

    @property
    def member_cap(self) -> tuple[int, int | None] | None:
        """(count, window in days or None for ever) of ``per_member``."""
        if self.per_member is None:
            return None
        match = _PER_MEMBER.match(self.per_member)
        assert match is not None  # the field pattern guarantees it
        count = int(match.group(1))
        if match.group(5):
            return count, None
        if match.group(2):
            return count, int(match.group(2)) * (7 if match.group(3) == "w" else 1)
        return count, _PERIOD_DAYS[match.group(4)]


class ActiveWindow(_Strict):
    """The days the rule is live, both included (local dates); open-ended when a side is absent."""

    from_: date | None = Field(None, alias="from")
    to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ActiveWindow:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError(f"active window ends ({self.to}) before it starts ({self.from_})")
        return self


class Scope(_Strict):
    """Where the rule applies: member regions, stores (of the checkout or event, else home store), channels."""

    regions: list[ShortText] = Field(default_factory=list)
    stores: list[ShortText] = Field(default_factory=list)
    channels: list[ShortText] = Field(default_factory=list, description="checkout channels (pos, app, ...)")


ExampleValue = Union[bool, int, float, str, list[str], None]


class Example(_Strict):
    """A case run by ``nbo rules test``: given these features (and context), does the rule fire?"""

    name: str = Field("", max_length=200)
    given: dict[str, ExampleValue] = Field(
        default_factory=dict,
        description="features and context fields (basket_skus, basket_total, day_of_week, ...); "
                    "the rest are those of a registered member who accepts every channel")
    at: datetime | None = Field(None, description="local time; default: inside the rule's active window")
    store: str | None = None
    channel: str | None = None
    fires: bool
    actions: list[Literal["issue_coupon", "award_points", "recommend", "send_message", "tag"]] | None = Field(
        None, description="the kinds of action expected when it fires")
    coupon: TemplateId | None = Field(None, description="the coupon template expected when it fires")


class Rule(_Strict):
    """A marketing rule: when its conditions hold for a member on its trigger, its actions are proposed."""

    id: RuleId
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    trigger: Annotated[str, Field(pattern=TRIGGER_PATTERN, description="checkout, schedule.daily or event.<type>")]
    when: Condition
    then: list[Action] = Field(min_length=1, max_length=10)
    priority: int = Field(50, ge=0, le=100, description="higher goes first in arbitration")
    exclusive: bool = Field(False, description="when this rule's offer is made, no other offer is")
    limits: Limits | None = None
    holdout: float = Field(0.0, ge=0, le=0.5, description="share of members kept as a sticky control group")
    active: ActiveWindow | None = None
    scope: Scope | None = None
    examples: list[Example] = Field(default_factory=list)


RuleFile = Union[Rule, list[Rule]]

# --- coupon templates --------------------------------------------------------------------------


class CouponTemplate(_Strict):
    """A coupon template: percent off (capped by max_value), amount off over a threshold (满200减50), or a free item."""

    kind: Literal["percent_off", "amount_off", "free_item"]
    name: str = Field(min_length=1, max_length=100)
    percent_off: float | None = Field(None, gt=0, lt=100)
    max_value: float | None = Field(None, gt=0, description="most a percent-off coupon can be worth (yuan)")
    amount_off: float | None = Field(None, gt=0, le=100_000)
    min_spend: float = Field(0.0, ge=0, le=1_000_000, description="basket total needed to use it")
    sku: ShortText | None = Field(None, description="the free item")
    value: float | None = Field(None, gt=0, description="the free item's value (yuan)")
    categories: list[ShortText] = Field(default_factory=list, description="only on these categories (empty: all)")
    valid_days: int = Field(ge=1, le=366)

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> CouponTemplate:
        needed = {"percent_off": ("percent_off",), "amount_off": ("amount_off",), "free_item": ("sku", "value")}[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} template needs {', '.join(missing)}")
        if self.kind == "amount_off" and self.min_spend and self.amount_off >= self.min_spend:
            raise ValueError(f"amount_off {self.amount_off} must be below min_spend {self.min_spend}")
        return self

    @property
    def face_value(self) -> float | None:
        """The most one coupon can be worth (yuan); None for an uncapped percent-off coupon."""
        if self.kind == "amount_off":
            return self.amount_off
        if self.kind == "free_item":
            return self.value
        return self.max_value

    def terms(self, template_id: str, valid_days: int | None = None) -> CouponTerms:
        """The coupon terms the coupon ledger issues (``engine.coupons.CouponTerms``)."""
        value = {"percent_off": self.percent_off, "amount_off": self.amount_off, "free_item": self.value}[self.kind]
        return CouponTerms(template=template_id, kind=self.kind, value=float(value),
                           valid_days=valid_days or self.valid_days, min_spend=self.min_spend, sku=self.sku,
                           name=self.name, max_value=self.max_value)


class CouponsFile(_Strict):
    """``rules/coupons.yaml``: coupon templates by id."""

    templates: dict[TemplateId, CouponTemplate]


# --- festival calendar -------------------------------------------------------------------------


class Festival(_Strict):
    """A festival: its name and its day in each year."""

    name: str = Field(min_length=1, max_length=100)
    dates: list[date] = Field(min_length=1, description="the festival day in each year")


class FestivalsFile(_Strict):
    """``rules/festivals.yaml``: festival days by festival id (real dates; lunar festivals move)."""

    festivals: dict[Annotated[str, Field(pattern=FESTIVAL_ID_PATTERN)], Festival]


# --- JSON Schema -------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every file in ``rules/`` (a rule, a list of rules, coupons, festivals)."""
    adapter = TypeAdapter(Union[Rule, list[Rule], CouponsFile, FestivalsFile])
    schema = adapter.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Next-best-offer rule files"
    schema["description"] = ("rules/*.yaml: a rule or a list of rules; rules/coupons.yaml: coupon templates; "
                             "rules/festivals.yaml: the festival calendar. Generated by `nbo rules schema`.")
    return schema


def schema_text() -> str:
    """``json_schema()`` as the text committed in ``rules/schema.json``."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schema(path: Path) -> Path:
    """Write the JSON Schema to ``path`` (``nbo rules schema``)."""
    path.write_text(schema_text(), encoding="utf-8")
    return path
