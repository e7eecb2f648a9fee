"""FastAPI dependencies: the services of the running app and the caller's API key, as ``Annotated`` aliases.

A route's signature names what it needs (``services: ServicesDep``, ``key: ScoreKey``), as the
FastAPI full-stack template does with ``SessionDep`` and ``CurrentUser``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.redis_circuit import REDIS_DOWN
from serving.auth import ApiKey
from serving.services import Services

_bearer = HTTPBearer(auto_error=False, description="an API key made by `nbo keys create`")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
"""What the running app owns (``Services.build``)."""


def require(permission: str) -> Callable[..., ApiKey]:
    """A dependency that admits only keys whose role has ``permission``."""

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        services: ServicesDep,
    ) -> ApiKey:
        if credentials is None:
            raise HTTPException(401, detail="missing API key: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            key = services.keys.verify(credentials.credentials)
        except REDIS_DOWN:
            raise HTTPException(503, detail="cannot verify the API key: the feature store is unavailable") from None
        if key is None:
            raise HTTPException(401, detail="unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if not key.allows(permission):
            raise HTTPException(403, detail=f"role {key.role!r} may not {permission}")
        return key

    check.permission = permission  # type: ignore[attr-defined]  # which permission guards a route (tests list them)
    return check


# The caller's key, admitted for one permission (``serving.auth.PERMISSIONS``).
ScoreKey = Annotated[ApiKey, Depends(require("score"))]
EventsKey = Annotated[ApiKey, Depends(require("events"))]
MembersReadKey = Annotated[ApiKey, Depends(require("members:read"))]
RulesReadKey = Annotated[ApiKey, Depends(require("rules:read"))]
RulesWriteKey = Annotated[ApiKey, Depends(require("rules:write"))]
ModelsReadKey = Annotated[ApiKey, Depends(require("models:read"))]
ReportsReadKey = Annotated[ApiKey, Depends(require("reports:read"))]
