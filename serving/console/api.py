"""The console reads some figures through the service's own JSON API, in process, with the user's key.

Measurement (``GET /v1/reports/rules``) and readiness (``/readyz``) are contracts of the API;
calling them keeps one definition of each and the same permission checks. The call goes through
the app's ASGI stack in this process (httpx's ASGI transport): no socket, no second server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

REPORTS_PATH = "/v1/reports/rules"
# httpx logs every request at INFO; these in-process calls are not worth a service log line each.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any


async def get_json(app: Any, path: str, raw_key: str | None = None, params: dict[str, str] | None = None) -> ApiAnswer:
    headers = {"Authorization": f"Bearer {raw_key}"} if raw_key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.local", timeout=30) as client:
        response = await client.get(path, params=params, headers=headers)
    try:
        body = response.json()
    except ValueError:
        body = None
    return ApiAnswer(response.status_code, body)

