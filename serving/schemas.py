"""HTTP bodies of ``POST /v1/next-best-offer`` (the contract in shared/DESIGN.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.events import MEMBER_ID_PATTERN, PRINTABLE
from engine.measurement import PeriodReport, RuleReport

Channel = Literal["pos", "app", "web", "kiosk"]


class BasketLine(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sku: Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
    qty: float = Field(1.0, gt=0, le=10_000)
    price: float = Field(0.0, ge=0, le=1_000_000, description="unit price in yuan")


class OfferRequest(BaseModel):
    """A POS terminal or app asks what to offer this member now."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    request_id: Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)] = Field(
        description="the same request_id returns the same answer and issues nothing twice")
    member_id: Annotated[str, Field(min_length=1, max_length=64, pattern=MEMBER_ID_PATTERN)]
    store_id: Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
    channel: Channel = "pos"
    basket: list[BasketLine] = Field(default_factory=list, max_length=500)
    ts: datetime | None = Field(None, description="checkout time; default now")

    @property
    def basket_total(self) -> float:
        return round(sum(line.qty * line.price for line in self.basket), 2)


class CouponOut(BaseModel):
    code: str
    template: str
    kind: str
    value: float
    min_spend: float = 0.0
    expires_at: str


class OfferOut(BaseModel):
    offer_id: str
    rule_id: str
    kind: str
    coupon: CouponOut | None = None
    skus: list[str] | None = None
    points: int | None = None
    message: str | None = None
    score: float
    reason: str
    conditions: list[str] = Field(default_factory=list, description="the rule conditions that held")


class RecommendationOut(BaseModel):
    sku: str
    score: float
    reason: str


class ChurnOut(BaseModel):
    probability: float | None
    model_version: str | None


class OfferResponse(BaseModel):
    request_id: str
    member_id: str
    offers: list[OfferOut]
    recommendations: list[RecommendationOut]
    churn: ChurnOut
    model_versions: dict[str, str | None]
    degraded: bool = Field(description="true when an answer was made without the feature store or a model")
    holdout: list[str] = Field(default_factory=list, description="rules whose control group this member is in")
    notes: list[str] = Field(default_factory=list, description="why offers were held back (caps, budgets, consent)")


# --- campaign measurement (GET /v1/reports/rules, nbo report rules --json) ---------------------------

class Measured(BaseModel):
    """A rule's figures over a period (spend is per exposed member, in yuan, within the attribution window)."""

    period: str
    targeted: int = Field(description="members reached or held out (one per rule and day)")
    treatment: int
    holdout: int
    fired: int
    issued: int
    redeemed: int
    redemption_rate: float | None
    spend_per_member_treatment: float | None
    spend_per_member_holdout: float | None
    lift_per_member: float | None = Field(description="treatment minus holdout spend per member")
    lift_ci95: tuple[float, float] | None = Field(description="Welch 95% interval of the lift")
    incremental_revenue: float | None = Field(description="lift x treated members")
    coupon_cost: float = Field(description="face value of the coupons redeemed")
    roi: float | None = Field(description="(incremental revenue x margin - coupon cost) / coupon cost")


class DailyCounts(BaseModel):
    day: date
    fired: int
    held: int
    issued: int
    redeemed: int
    cost: float


class RuleMeasured(Measured):
    rule_id: str
    name: str
    trigger: str
    periods: list[Measured]
    daily: list[DailyCounts]


class RulesReport(BaseModel):
    since: date
    until: date
    attribution_days: int
    rules: list[RuleMeasured]


def _measured(report: PeriodReport) -> dict:
    return {**{k: getattr(report, k) for k in Measured.model_fields if k != "redemption_rate"},
            "redemption_rate": report.redemption_rate}


def rule_measured(report: RuleReport) -> RuleMeasured:
    """The API shape of one rule's report."""
    return RuleMeasured(rule_id=report.rule_id, name=report.name, trigger=report.trigger, **_measured(report.total),
                        periods=[Measured(**_measured(p)) for p in report.periods],
                        daily=[DailyCounts(**d) for d in report.daily])
