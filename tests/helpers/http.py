"""Talking to the API as a client does: the service in process, and the header that presents a key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import redis
from fastapi.testclient import TestClient

from engine.settings import Settings
from serving.app import create_app
from tests.helpers.clock import NOW
from training.champions import ChampionModels


def bearer(key: str) -> dict[str, str]:
    """The header that presents an API key."""
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serve(settings: Settings, redis_client: redis.Redis, *, models: ChampionModels | None = None,
          clock: Callable[[], datetime] = lambda: NOW) -> Iterator[TestClient]:
    """The service over ``redis_client`` without its background threads, at ``clock`` (``NOW``), with these
    champion models (none trained unless given), answering through a test client."""
    app = create_app(settings, redis_client=redis_client, clock=clock, background=False,
                     models=models if models is not None else ChampionModels.from_models())
    with TestClient(app) as client:
        yield client
