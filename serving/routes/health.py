"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.redis_circuit import REDIS_DOWN
from serving.dependencies import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """Ready to serve: Redis answers, rules are live, the churn model and the recommender are loaded (503 with
    what is missing).

    Also says which process answered (``pid``: one of ``nbo serve --workers N``), the rules and model
    versions it serves, and the problems of rule files it refused (the last good rules stay live)."""
    checks: dict[str, str] = {}
    try:
        services.redis.ping()
        checks["redis"] = "ok"
    except REDIS_DOWN as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    version = services.rules.version
    checks["rules"] = "ok" if version else "no valid rules loaded (see nbo rules lint)"
    for model, loaded in services.models.versions.items():
        if model in REQUIRED_MODELS:
            checks[f"model:{model}"] = "ok" if loaded else "not loaded (train one: nbo train ...)"
    ready = all(v == "ok" for v in checks.values())
    # A refused reload leaves the last good rules live (still ready); say why the new files are not.
    last = services.rules.last_load
    refused = [str(p) for p in last.errors][:20] if last is not None and not last.ok else []
    return JSONResponse({"ready": ready, "checks": checks, "rules_version": version, "rules_refused": refused,
                         "models": services.models.versions, "models_refused": services.models.refused,
                         "pid": os.getpid()},
                        status_code=200 if ready else 503)


REQUIRED_MODELS = frozenset({"churn", "recommender"})
"""Models an answer needs; without a lifetime-value or response model arbitration uses its hand-set fallbacks."""


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
