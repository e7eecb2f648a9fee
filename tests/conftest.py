"""Shared fixtures: a real Redis the suite starts itself, settings, a programme and a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis

from engine.feature_store import FeatureStore
from engine.member_state import Programme
from engine.redis_server import RedisServer, start_redis_server
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
NOW = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throw-away redis-server on a free loopback port; a user's Redis is never touched."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the suite's own server, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, redis_url=None, var_dir=tmp_path / "var", pii_key="test-secret")


@pytest.fixture
def programme(settings: Settings) -> Programme:
    return Programme.from_settings(settings)


@pytest.fixture
def store(redis_client: redis.Redis, programme: Programme) -> FeatureStore:
    return FeatureStore(redis_client, programme, clock=lambda: NOW)


def shared_data(name: str) -> Path:
    """A file of ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is not present (shared/ is missing next to the repo)")
    return path
