"""``/v1/admin/keys``: list, create, revoke and rotate API keys (an unscoped admin key; every change audited).

The same operations as ``nbo keys list | create | revoke | rotate`` (``serving.auth.ApiKeys``). A
secret is in the answer that made it, and never again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from serving.auth import ROLES, KeyInfo, NewSecret
from serving.dependencies import KeysAdminKey, ServicesDep

router = APIRouter(tags=["keys"])

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="the key's id (nbo keys list)")]
Role = Literal[ROLES]  # type: ignore[valid-type]


class KeyOut(BaseModel):
    """A key without its secret."""

    id: str
    name: str
    role: str
    scope: str | None
    created: datetime
    expires: datetime | None
    last_used: datetime | None = Field(description="to within the 30 s verification cache")
    status: Literal["active", "rotating", "expired", "revoked"]
    previous_secret_until: datetime | None = Field(description="after a rotation: the old secret works until then")


class KeysOut(BaseModel):
    keys: list[KeyOut]


class NewKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    scope: str | None = Field(None, max_length=80, pattern=r"^(region|store):[^\s:]{1,64}$",
                              description="region:NAME or store:ID (none: everything)")
    name: str = Field("", max_length=80, description="a label (which till, which team)")
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="the key stops working after this")


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(86_400, ge=0, le=30 * 86_400, description="how long the current secret keeps working")


class SecretOut(BaseModel):
    """A new secret: shown in this answer only."""

    id: str
    key: str = Field(description="the secret: send it as 'Authorization: Bearer <key>'; it is not shown again")
    expires: datetime | None
    previous_secret_until: datetime | None = None


def key_out(info: KeyInfo) -> KeyOut:
    return KeyOut(id=info.key_id, name=info.name, role=info.role, scope=info.scope, created=info.created,
                  expires=info.expires, last_used=info.last_used, status=info.status,
                  previous_secret_until=info.previous_secret_until)


def secret_out(new: NewSecret) -> SecretOut:
    return SecretOut(id=new.key_id, key=new.secret, expires=new.expires, previous_secret_until=new.previous_secret_until)


@router.get("/v1/admin/keys", response_model=KeysOut, operation_id="listKeys")
def list_keys(key: KeysAdminKey, services: ServicesDep) -> KeysOut:
    """Every key, revoked and expired ones too, with its last use; never a secret."""
    return KeysOut(keys=[key_out(info) for info in services.keys.list()])


@router.post("/v1/admin/keys", response_model=SecretOut, status_code=201, operation_id="createKey")
def create_key(body: NewKeyIn, key: KeysAdminKey, services: ServicesDep) -> SecretOut:
    """A new key (its secret is in this answer only)."""
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    try:
        new = services.keys.issue(body.role, body.scope, body.name, expires, actor=f"key:{key.key_id}")
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return secret_out(new)


@router.post("/v1/admin/keys/{key_id}/revoke", response_model=KeyOut, operation_id="revokeKey",
             responses={404: {"description": "no key with this id"}})
def revoke_key(key_id: KeyId, key: KeysAdminKey, services: ServicesDep) -> KeyOut:
    """Revoke every secret of the key and end its console sessions: refused by every worker within a second."""
    return key_out(services.keys.revoke(key_id, actor=f"key:{key.key_id}"))


@router.post("/v1/admin/keys/{key_id}/rotate", response_model=SecretOut, operation_id="rotateKey",
             responses={404: {"description": "no key with this id"},
                        409: {"description": "the key is revoked or expired"}})
def rotate_key(key_id: KeyId, key: KeysAdminKey, services: ServicesDep, body: RotateIn | None = None) -> SecretOut:
    """A new secret for the key; the current one keeps working for the grace period."""
    body = body or RotateIn()
    try:
        new = services.keys.rotate(key_id, timedelta(seconds=body.grace_seconds), actor=f"key:{key.key_id}")
    except ValueError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return secret_out(new)
