"""Fixtures of the serving tests: API keys, and the settings and models of a fully set-up service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from engine.settings import Settings
from serving.auth import ApiKeys
from tests.helpers.http import serve
from tests.helpers.paths import REPO
from training.champions import ChampionModels


@pytest.fixture
def keys(redis_client: redis.Redis) -> ApiKeys:
    return ApiKeys(redis_client)


@pytest.fixture
def nbo_settings(settings: Settings, shop) -> Settings:
    """Settings with the shipped rules and the synthetic shop's catalogue."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    shop.catalogue[["sku", "category"]].to_parquet(settings.var_dir / "catalogue.parquet", index=False)
    return settings.model_copy(update={"rules_dir": REPO / "rules"})


@pytest.fixture
def models(churn_result, recommender_result) -> ChampionModels:
    """The tiny real models trained on the synthetic shop, as champions."""
    return ChampionModels.from_models(churn=churn_result.model, recommender=recommender_result.model,
                                      churn_version="4", recommender_version="2")


@pytest.fixture
def service(nbo_settings: Settings, redis_client: redis.Redis, models: ChampionModels) -> Iterator[TestClient]:
    """The service with the shipped rules and the tiny real models, over the suite's Redis, at ``NOW``."""
    with serve(nbo_settings, redis_client, models=models) as client:
        yield client
