"""Trained models and an MLflow store in a temporary folder, shared by the training specifications."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from engine.audit import AuditLog
from engine.member_state import Programme
from engine.settings import Settings
from engine.synthetic import SyntheticData
from recommender import ALSParams
from tests.recommender.datasets import synthetic_shop
from training.churn import ChurnTraining, train_churn
from training.recommendation import RecommenderTraining, train_recommender
from training.registry import ModelRegistry

SHOP_CUTOFF = date(2026, 1, 20)  # the synthetic shop runs 2025-10-01 .. 2026-02-27
SHOP_HORIZON = 30
SHOP_TEST_FROM = date(2026, 2, 1)


@pytest.fixture(scope="session")
def shop() -> SyntheticData:
    return synthetic_shop()


@pytest.fixture(scope="session")
def shop_programme() -> Programme:
    return Programme.from_settings(Settings(_env_file=None, redis_url=None, pii_key="test-secret"))


@pytest.fixture(scope="session")
def churn_result(shop: SyntheticData, shop_programme: Programme) -> ChurnTraining:
    return train_churn(shop.transactions, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, members=shop.members)


@pytest.fixture(scope="session")
def recommender_result(shop: SyntheticData) -> RecommenderTraining:
    return train_recommender(shop.transactions, SHOP_TEST_FROM, k=10, grid=((16, 1.0),),
                             base_params=ALSParams(iterations=8))


@pytest.fixture(scope="module")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store per test module (creating its SQLite schema takes seconds); never the repo's mlruns/."""
    return tmp_path_factory.mktemp("mlruns")


@pytest.fixture
def registry(mlflow_dir: Path, tmp_path: Path) -> Iterator[ModelRegistry]:
    """The module's store, with an audit log (file only) of this test's own."""
    audit = AuditLog(None, tmp_path / "audit")
    yield ModelRegistry(f"sqlite:///{mlflow_dir}/mlflow.db", mlflow_dir / "artifacts", audit, actor="test")
    audit.close()


def audit_entries(registry: ModelRegistry) -> list[dict]:
    """The audit lines the registry wrote, oldest first."""
    return [json.loads(line) for line in registry.audit.path.read_text(encoding="utf-8").splitlines() if line]
