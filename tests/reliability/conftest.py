"""A service under test for the process-level specifications: the synthetic shop in a Redis of its
own, the tiny models of tests/conftest.py registered as champions in an MLflow store of its own,
the shipped rules, and an admin key; servers are real ``nbo serve`` processes (``BenchService.serve``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from engine.programme import Programme
from serving.auth import ApiKeys
from tools.benchmarks import BenchService, environment
from training.data import from_frame
from training.registry import ModelRegistry

SERVICE_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
"""The servers' and commands' clock starts here: the day after the shop's history, at noon (outside quiet hours)."""


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, shop, churn_result, recommender_result) -> Iterator[BenchService]:
    service = BenchService.create(tmp_path_factory.mktemp("service"), now=SERVICE_NOW)
    try:
        settings = service.settings()
        client = service.client()
        backfill(FeatureStore(client, Programme.from_settings(settings), clock=lambda: SERVICE_NOW), shop.transactions,
                 shop.members)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        shop.catalogue[["sku", "category"]].to_parquet(settings.var_dir / "catalogue.parquet", index=False)
        with environment(service.env):
            registry = ModelRegistry.from_settings(settings)
            data = from_frame(shop.transactions, source="synthetic shop")
            registry.log_churn(churn_result, data)
            registry.log_recommender(recommender_result, data)
            registry.audit.close()
        service.key = ApiKeys(client, clock=lambda: SERVICE_NOW).create("admin", name="reliability tests")
        service.members = shop.members["member_id"].astype(str).tolist()
        service.skus = shop.catalogue["sku"].astype(str).tolist()
        yield service
    finally:
        service.close()
