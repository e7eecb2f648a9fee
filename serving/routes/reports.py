"""``GET /v1/reports/rules``: each rule's reach, holdout, coupons, redemption and lift (for the console)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from engine.measurement import PeriodReport, RuleReport, report_window
from serving.dependencies import ReportsReadKey, ServicesDep

router = APIRouter(tags=["reports"])


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


@router.get("/v1/reports/rules", response_model=RulesReport)
def rules_report(
    key: ReportsReadKey,
    services: ServicesDep,
    since: Annotated[date | None, Query(description="first exposure day (default: 30 days before until)")] = None,
    until: Annotated[date | None, Query(description="last exposure day (default: today)")] = None,
    period: Annotated[Literal["day", "week", "month"],
                      Query(description="campaign periods to break the range into")] = "month",
) -> RulesReport:
    """Per rule: members targeted and held out, coupons issued and redeemed, spend after exposure, lift, ROI."""
    try:
        since, until = report_window(since, until, services.today())
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    reports = services.rule_reports(since, until, period)
    return RulesReport(since=since, until=until, attribution_days=services.settings.triggers.attribution_days,
                       rules=[rule_measured(r) for r in reports])
