"""``GET /v1/members/{id}/features``: one member's live feature vector."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from engine.events import MEMBER_ID_PATTERN
from serving.auth import OutOfScope
from serving.dependencies import MembersReadKey, ServicesDep

router = APIRouter(tags=["members"])


@router.get("/v1/members/{member_id}/features")
def get_member_features(
    member_id: Annotated[str, Path(min_length=1, max_length=64, pattern=MEMBER_ID_PATTERN, description="the member's id")],
    key: MembersReadKey,
    services: ServicesDep,
) -> dict[str, Any]:
    """Every feature of the member now; 404 for an unknown member, 403 outside the key's scope."""
    features = services.store.member_features(member_id)
    if features is None:
        raise HTTPException(404, detail=f"member {member_id!r} is not registered")
    if not key.covers(features["region"], features["home_store"]):
        raise OutOfScope(f"member {member_id!r} is outside this key's scope {key.scope}")
    return {"member_id": member_id, "features": features}
