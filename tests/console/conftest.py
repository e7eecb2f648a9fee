"""The console's fixtures: the app over the suite's real Redis, the synthetic shop's members loaded,
the tiny models trained on it (tests/conftest.py), rules copied from rules/, and an MLflow store
with real registered versions (a weaker churn champion and a better challenger)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from engine.audit import AuditLog
from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from engine.settings import Settings
from serving.app import create_app
from serving.auth import ApiKeys
from tests.helpers.clock import NOW
from tests.helpers.console import NEW_MEMBER
from tests.helpers.events import register
from tests.helpers.models import worse_churn
from tests.helpers.paths import REPO
from training.champions import ChampionModels
from training.data import from_frame
from training.registry import ModelRegistry


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory, shop, churn_result, recommender_result,
                ltv_result) -> dict[str, str]:
    """An MLflow store with churn v1 (worse: champion, as the first version) and v2 (better: a challenger that
    passes the promotion gate), recommender v1 and ltv v1; its URIs for Settings."""
    folder = tmp_path_factory.mktemp("console-mlruns")
    uris = {"mlflow_tracking_uri": f"sqlite:///{folder}/mlflow.db", "mlflow_artifacts_dir": folder / "artifacts"}
    audit = AuditLog(None, folder / "audit")
    registry = ModelRegistry(uris["mlflow_tracking_uri"], uris["mlflow_artifacts_dir"], audit, actor="test")
    data = from_frame(shop.transactions, source="synthetic shop")
    registry.log_churn(worse_churn(churn_result), data)
    registry.log_churn(churn_result, data)
    registry.log_recommender(recommender_result, data)
    registry.log_ltv(ltv_result, data)
    audit.close()
    return uris


@pytest.fixture
def console_settings(settings: Settings, tmp_path: Path, model_store) -> Settings:
    """Rules copied from rules/, and a copy of the model store's database: a test that promotes a version
    changes only its own copy (the artifacts it points at are read, never written)."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    database = Path(model_store["mlflow_tracking_uri"].removeprefix("sqlite:///"))
    shutil.copy(database, tmp_path / "mlflow.db")
    return settings.model_copy(update={"rules_dir": rules_dir, "mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                                       "mlflow_artifacts_dir": model_store["mlflow_artifacts_dir"]})


@pytest.fixture(scope="session")
def shop_in_redis(redis_server, shop, shop_programme) -> list[tuple[bytes, bytes, int]]:
    """The shop's members backfilled once (~2 s), kept as DUMPs of every key to restore before each test."""
    raw = redis.Redis.from_url(redis_server.url)
    raw.flushall()
    backfill(FeatureStore(redis.Redis.from_url(redis_server.url, decode_responses=True), shop_programme),
             shop.transactions, shop.members)
    names = list(raw.scan_iter(count=1000))
    pipe = raw.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
        pipe.pttl(name)
    replies = pipe.execute()
    raw.flushall()
    raw.close()
    return [(name, replies[2 * i], max(replies[2 * i + 1], 0)) for i, name in enumerate(names)]


@pytest.fixture
def loaded_store(redis_client: redis.Redis, redis_server, console_settings: Settings, shop_in_redis) -> FeatureStore:
    """The shop's members and their history, and one new member who has not bought yet."""
    from engine.programme import Programme

    raw = redis.Redis.from_url(redis_server.url)
    pipe = raw.pipeline(transaction=False)
    for name, value, ttl in shop_in_redis:
        pipe.restore(name, ttl, value)
    pipe.execute()
    raw.close()
    store = FeatureStore(redis_client, Programme.from_settings(console_settings), clock=lambda: NOW)
    result = store.ingest([register(NEW_MEMBER, "2026-01-05T10:00:00")])
    assert result.accepted == 1
    return store


@pytest.fixture
def console_app(console_settings: Settings, redis_client: redis.Redis, loaded_store: FeatureStore):
    """The service with the console, serving the registry's champions (loaded as ``make run`` does)."""
    models = ChampionModels.from_settings(console_settings).load()
    return create_app(console_settings, redis_client=redis_client, clock=lambda: NOW, background=False, models=models)


@pytest.fixture
def client(console_app) -> Iterator[TestClient]:
    with TestClient(console_app) as test_client:
        yield test_client


@pytest.fixture
def keys(redis_client: redis.Redis) -> ApiKeys:
    return ApiKeys(redis_client)
