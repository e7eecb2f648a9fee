"""The FastAPI application: routers, error handling (``serving.errors``), request metrics."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from prometheus_client import Counter, Histogram

from engine.clock import Clock
from engine.settings import Settings, get_settings
from serving.console import install_console
from serving.errors import install_error_handlers
from serving.routes import coupons, events, health, members, offers, reports
from serving.routes import models as model_routes
from serving.routes import rules as rule_routes
from serving.services import Services
from training.champions import ChampionModels

log = logging.getLogger(__name__)

REQUEST_SECONDS = Histogram(
    "nbo_request_seconds", "request latency by route", ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
ERRORS = Counter("nbo_errors_total", "responses with status >= 500 and unhandled errors", ["route"])


class RequestMetrics:
    """Latency per route and status, errors logged; plain ASGI (Starlette's decorator-style
    middleware costs a task and a queue per request, which showed at a few thousand requests/s)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observe_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            if status >= 500:
                ERRORS.labels(route).inc()
                log.error("request failed", extra={"route": route, "method": scope["method"], "status": status,
                                                   "ms": round(elapsed * 1000, 2)})


def create_app(
    settings: Settings | None = None,
    redis_client: redis.Redis | None = None,
    clock: Clock | None = None,
    background: bool = True,
    models: ChampionModels | None = None,
) -> FastAPI:
    """Build the app; Redis, the clock and the models can be handed in (tests, benchmarks)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services.build(settings, redis_client, clock, models)
        app.state.services = services
        if background:
            services.start_background()
        yield
        services.close()

    app = FastAPI(
        title="Next-best-offer service",
        version="0.1.0",
        description="Checkout next-best-offer, member features and events for loyalty programmes.",
        lifespan=lifespan,
    )
    for router in (offers.router, events.router, members.router, coupons.router, model_routes.router, health.router,
                   reports.router):
        app.include_router(router)
    app.include_router(rule_routes.router)
    install_console(app)

    install_error_handlers(app)
    app.add_middleware(RequestMetrics)
    return app
