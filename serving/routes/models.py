"""``GET /v1/models``: the models serving uses and the registry's versions of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from serving.auth import ApiKey
from serving.dependencies import get_services, require
from serving.services import Services

router = APIRouter(tags=["models"])


@router.get("/v1/models")
def get_models(
    key: ApiKey = Depends(require("models:read")),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    """Versions in use by this process (a model not loaded is null: answers are then degraded)."""
    return {"in_use": services.models.versions}
