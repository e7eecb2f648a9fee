"""The console reads readiness through the service's own JSON API, in process.

Readiness (``/readyz``) is a contract of the API; calling it keeps one definition of it. The call goes
through the app's ASGI stack in this process (httpx's ASGI transport): no socket, no second server.
(Measurement is read with the signed-in key's scope through ``serving.scoping.rules_report``, the function
behind ``GET /v1/reports/rules``: the session never holds the key itself, so it cannot be sent on.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

# httpx logs every request at INFO; these in-process calls are not worth a service log line each.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any


async def get_json(app: Any, path: str, params: dict[str, str] | None = None) -> ApiAnswer:
    """GET an open route of ``app`` in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.local", timeout=30) as client:
        response = await client.get(path, params=params)
    try:
        body = response.json()
    except ValueError:
        body = None
    return ApiAnswer(response.status_code, body)
