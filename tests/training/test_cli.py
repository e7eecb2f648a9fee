"""The data scientist's commands (DESIGN.md's CLI contract) against an MLflow store in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.settings import get_settings
from engine.transactions import write_transactions
from serving.cli import app
from tests.helpers.shop import SHOP_CUTOFF, SHOP_HORIZON


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBO_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("NBO_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "mlruns" / "artifacts"))
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NBO_PII_KEY", "test-secret")
    for name in ("REDIS_URL", "NBO_REDIS_URL"):  # the audit stream must never reach a Redis the suite did not start
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_train_churn_writes_the_metrics_contract_and_registers(cli_env: Path, shop):
    transactions = cli_env / "transactions.csv"
    write_transactions(shop.transactions.drop(columns=["sku", "category"]), transactions)  # dates and amounts only
    metrics = cli_env / "churn.json"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "churn", "--transactions", str(transactions), "--cutoff", SHOP_CUTOFF.isoformat(),
                                 "--horizon-days", str(SHOP_HORIZON), "--metrics-out", str(metrics)])
    assert result.exit_code == 0, result.output
    document = json.loads(metrics.read_text())
    assert {"auc_roc", "pr_auc", "brier", "baseline", "n_train", "n_test", "positive_rate"} <= set(document)
    assert "auc_roc" in document["baseline"]
    assert document["model"] == {"name": "churn", "version": "1", "run_id": document["model"]["run_id"], "champion": True}

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "churn" in listed.output
    again = runner.invoke(app, ["models", "promote", "churn", "--version", "1"])
    assert again.exit_code == 0 and "already champion" in again.output
    refused = runner.invoke(app, ["models", "rollback", "churn"])
    assert refused.exit_code == 1 and "no earlier champion" in refused.output
    actions = [json.loads(line)["action"] for line in (cli_env / "var" / "audit" / "audit.jsonl").read_text().splitlines()]
    assert actions == ["model.registered", "model.promoted"]


def test_training_on_a_date_outside_the_data_says_why(cli_env: Path, shop):
    transactions = cli_env / "transactions.parquet"
    write_transactions(shop.transactions, transactions)
    result = CliRunner().invoke(app, ["train", "recommender", "--transactions", str(transactions),
                                      "--test-from", "2030-01-01", "--no-register"])
    assert result.exit_code == 1
    assert "--test-from 2030-01-01 must fall inside the data" in result.output
