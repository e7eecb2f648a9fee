"""Members' data rights: ``DELETE /v1/members/{id}`` (erasure) and ``GET /v1/members/{id}/export`` (a copy).

Both for the ``privacy`` role (or ``admin``), within the key's scope, audited (``engine.data_rights``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from engine.data_rights import UnknownMember
from engine.events import MEMBER_ID_PATTERN
from serving.auth import ApiKey, OutOfScope
from serving.dependencies import MembersEraseKey, MembersExportKey, ServicesDep
from serving.services import Services

router = APIRouter(tags=["members"])

MemberId = Annotated[str, Path(min_length=1, max_length=64, pattern=MEMBER_ID_PATTERN, description="the member's id")]


class ErasureOut(BaseModel):
    """The tombstone an erasure leaves (no personal data)."""

    member_id: str
    erased_at: str
    keys_removed: int = Field(description="the member's Redis keys deleted")
    coupons_removed: int
    exposures_removed: int = Field(description="marks in the rules' exposure records")
    already_erased: bool = Field(description="an earlier call erased the member; this one changed nothing")


def _in_scope(services: Services, key: ApiKey, member_id: str) -> None:
    where = services.data_rights.where(member_id)
    if where is None:
        raise UnknownMember(f"member {member_id!r} is not registered")
    if not key.covers(*where):
        raise OutOfScope(f"member {member_id!r} is outside this key's scope {key.scope}")


@router.delete("/v1/members/{member_id}", response_model=ErasureOut, operation_id="eraseMember",
               responses={404: {"description": "no such member"}, 403: {"description": "outside this key's scope"}})
def erase_member(member_id: MemberId, key: MembersEraseKey, services: ServicesDep) -> ErasureOut:
    """Forget the member: every key, coupon and exposure removed, later events refused, reads answer 404; once."""
    _in_scope(services, key, member_id)
    tombstone = services.data_rights.erase(member_id, actor=f"key:{key.key_id}")
    return ErasureOut(member_id=member_id, erased_at=tombstone.erased_at, keys_removed=tombstone.keys_removed,
                      coupons_removed=tombstone.coupons_removed, exposures_removed=tombstone.exposures_removed,
                      already_erased=tombstone.already_erased)


@router.get("/v1/members/{member_id}/export", operation_id="exportMember",
            responses={404: {"description": "no such member (or erased)"},
                       403: {"description": "outside this key's scope"}})
def export_member(
    member_id: MemberId,
    key: MembersExportKey,
    services: ServicesDep,
    request_id: Annotated[str | None, Query(max_length=128, pattern=r"^[\w.:\-]+$",
                                            description="a retry with the same id is audited once")] = None,
) -> dict[str, Any]:
    """Everything the service holds about the member, as JSON: every Redis key by kind, coupons, exposures,
    features, audit entries."""
    if services.data_rights.tombstone(member_id) is not None:
        raise UnknownMember(f"member {member_id!r} is not registered")
    _in_scope(services, key, member_id)
    return services.data_rights.export(member_id, actor=f"key:{key.key_id}", request_id=request_id)
