"""``GET /v1/models``: the models serving uses and the registry's versions of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.dependencies import ModelsReadKey, ServicesDep

router = APIRouter(tags=["models"])


@router.get("/v1/models")
def get_models(
    key: ModelsReadKey,
    services: ServicesDep,
) -> dict[str, Any]:
    """Versions in use by this process (a model not loaded is null: answers are then degraded)."""
    return {"in_use": services.models.versions}
