"""An MLflow store in a temporary folder for the training specifications (trained models: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.audit import AuditLog
from training.registry import ModelRegistry


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
