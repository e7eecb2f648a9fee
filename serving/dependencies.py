"""FastAPI dependencies: the services of the running app and the caller's API key."""

from __future__ import annotations

from collections.abc import Callable

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.auth import ApiKey
from serving.services import Services

_bearer = HTTPBearer(auto_error=False, description="an API key made by `nbo keys create`")


def get_services(request: Request) -> Services:
    return request.app.state.services


def require(permission: str) -> Callable[..., ApiKey]:
    """A dependency that admits only keys whose role has ``permission``."""

    def check(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
        services: Services = Depends(get_services),
    ) -> ApiKey:
        if credentials is None:
            raise HTTPException(401, detail="missing API key: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            key = services.keys.verify(credentials.credentials)
        except (redis.ConnectionError, redis.TimeoutError):
            raise HTTPException(503, detail="cannot verify the API key: the feature store is unavailable") from None
        if key is None:
            raise HTTPException(401, detail="unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if not key.allows(permission):
            raise HTTPException(403, detail=f"role {key.role!r} may not {permission}")
        return key

    check.permission = permission  # type: ignore[attr-defined]  # which permission guards a route (tests list them)
    return check
