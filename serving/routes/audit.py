"""``GET /v1/audit``: the newest audit entries, limited to the key's scope (``serving.scoping``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from serving.dependencies import AuditReadKey, ServicesDep
from serving.scoping import visible_audit_entries

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    entries: list[dict[str, Any]]


@router.get("/v1/audit", response_model=AuditOut, operation_id="listAudit")
def list_audit(
    key: AuditReadKey,
    services: ServicesDep,
    action: Annotated[str, Query(max_length=64, pattern=r"^[a-z._]*$",
                                 description="only actions starting with this (e.g. coupon., keys., member.)")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditOut:
    """Newest first; a scoped key sees the entries about its members (coupons, deliveries) and its rules' files."""
    return AuditOut(entries=visible_audit_entries(services, key.reach, action, limit))
