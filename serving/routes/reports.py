"""``GET /v1/reports/rules``: each rule's reach, holdout, coupons, redemption and lift (for the console)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from serving.dependencies import ReportsReadKey, ServicesDep
from serving.schemas import RulesReport
from serving.scoping import rules_report

router = APIRouter(tags=["reports"])


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
