"""``GET /v1/rules`` (every rule: status, trigger, priority, budget use) and ``POST /v1/admin/rules/reload``."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from serving.dependencies import RulesReadKey, RulesWriteKey, ServicesDep
from serving.scoping import visible_rules

router = APIRouter(tags=["rules"])


class BudgetOut(BaseModel):
    """One budget of a rule in its current period."""

    period: str = Field(description="which budget and its current period, e.g. 'overall total' or 'overall m2026-03'")
    coupons_used: int
    coupons_total: int | None
    amount_used: float
    amount_total: float | None


class RuleOut(BaseModel):
    """A rule of the rules directory and its state."""

    id: str | None
    name: str
    file: str
    line: int
    status: str = Field(description="live, scheduled, expired, or invalid (see errors)")
    trigger: str | None
    priority: int | None
    exclusive: bool
    holdout: float
    active_from: date | None
    active_to: date | None
    serving: bool = Field(description="a version of this rule is in the ruleset answering now")
    errors: list[str] = Field(description="file:line: message, for an invalid rule")
    budget: list[BudgetOut]


class RulesOut(BaseModel):
    """Every rule, and the version answering now."""

    version: str | None = Field(description="the rules answering now (hash of the files)")
    rules: list[RuleOut]


class ReloadOut(BaseModel):
    """What a reload did."""

    ok: bool
    version: str | None = Field(description="the rules answering now: the new ones, or the last good ones")
    rules: list[str]
    changed: bool
    errors: list[str]
    warnings: list[str]


@router.get("/v1/rules", response_model=RulesOut)
def list_rules(key: RulesReadKey, services: ServicesDep) -> RulesOut:
    """Every rule of the rules directory with its status (invalid ones with file:line errors) and budget use; a
    scoped key sees the rules that apply in its region or store."""
    statuses = visible_rules(services.rules.statuses(services.clock(), services.limits), key.reach,
                             services.settings.store_regions)
    rules = [RuleOut(id=s.id, name=s.name, file=s.file, line=s.line, status=s.status, trigger=s.trigger,
                     priority=s.priority, exclusive=s.exclusive, holdout=s.holdout, active_from=s.active_from,
                     active_to=s.active_to, serving=s.serving, errors=list(s.errors),
                     budget=[BudgetOut(**vars(b)) for b in s.budget]) for s in statuses]
    return RulesOut(version=services.rules.version, rules=rules)


@router.post("/v1/admin/rules/reload", response_model=ReloadOut,
             responses={422: {"model": ReloadOut, "description": "the files have errors; the last good rules stay live"}})
def reload_rules(key: RulesWriteKey, services: ServicesDep) -> JSONResponse:
    """Reload the rule files now: all or nothing; with errors the last good rules stay live and the answer says why."""
    report = services.rules.reload(actor=key.key_id)
    body = ReloadOut(ok=report.ok, version=report.version, rules=list(report.rules), changed=report.changed,
                     errors=[str(p) for p in report.errors], warnings=[str(p) for p in report.warnings])
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if report.ok else 422)
