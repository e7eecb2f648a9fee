"""``GET /v1/reports/rules``: each rule's reach, holdout, coupons, redemption and lift (for the console)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from engine.measurement import report_window
from serving.auth import ApiKey
from serving.dependencies import ReportsReadKey, ServicesDep
from serving.schemas import RulesReport, rule_measured
from serving.services import Services

router = APIRouter(tags=["reports"])


def rules_report(services: Services, key: ApiKey, since: date | None = None, until: date | None = None,
                 period: str = "month") -> RulesReport:
    """The report for ``key``: the rules that apply in its scope, counting its scope's members only (the route and
    the console's rules page); ``ValueError`` for a bad range."""
    since, until = report_window(since, until, services.today())
    reports = services.rule_reports(since, until, period, key.reach)
    return RulesReport(since=since, until=until, attribution_days=services.settings.triggers.attribution_days,
                       rules=[rule_measured(r) for r in reports])


@router.get("/v1/reports/rules", response_model=RulesReport)
def get_rules_report(
    key: ReportsReadKey,
    services: ServicesDep,
    since: Annotated[date | None, Query(description="first exposure day (default: 30 days before until)")] = None,
    until: Annotated[date | None, Query(description="last exposure day (default: today)")] = None,
    period: Annotated[Literal["day", "week", "month"],
                      Query(description="campaign periods to break the range into")] = "month",
) -> RulesReport:
    """Per rule: members targeted and held out, coupons issued and redeemed, spend after exposure, lift, ROI
    (a scoped key: its region's or store's members only)."""
    try:
        return rules_report(services, key, since, until, period)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
