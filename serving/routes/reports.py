"""``GET /v1/reports/rules``: each rule's reach, holdout, coupons, redemption and lift (for the console)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from engine.measurement import report_window
from serving.dependencies import ReportsReadKey, ServicesDep
from serving.schemas import RulesReport, rule_measured

router = APIRouter(tags=["reports"])


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
