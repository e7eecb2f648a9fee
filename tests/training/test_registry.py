"""Runs, versions, promotion and rollback in an MLflow store of the test's own (never the repo's mlruns/)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.audit import audit_entries
from tests.helpers.models import worse_churn
from training.champions import ChampionModels
from training.data import from_frame
from training.registry import ModelRegistry, PromotionRefused


def test_a_run_logs_params_metrics_fingerprint_code_version_and_model(registry: ModelRegistry, churn_result, shop):
    data = from_frame(shop.transactions, source="synthetic")
    version = registry.log_churn(churn_result, data, name="churn-logged")
    assert version.version == "1" and version.is_champion, "the first version of a model becomes champion"
    run = registry.client.get_run(version.run_id)
    assert run.data.params["cutoff"] == churn_result.split.test.isoformat()
    assert run.data.params["data_fingerprint"] == data.fingerprint == run.data.tags["data_fingerprint"]
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    assert run.data.metrics["auc_roc"] == pytest.approx(churn_result.metrics["auc_roc"])
    assert "baselines.rfm.auc_roc" in run.data.metrics
    artifacts = {a.path for a in registry.client.list_artifacts(version.run_id, "plots")}
    assert {"plots/roc.png", "plots/calibration.png", "plots/gain_lift.png", "plots/feature_importance.png"} <= artifacts
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/churn-logged/{version.version}")
    assert info.signature is not None and "recency_days" in info.signature.inputs.input_names()
    assert [e["action"] for e in audit_entries(registry.audit.path)] == ["model.registered", "model.promoted"]


def test_promotion_refuses_a_worse_candidate(registry: ModelRegistry, churn_result, shop):
    data = from_frame(shop.transactions)
    good = registry.log_churn(churn_result, data, name="churn-refuse")
    bad = registry.log_churn(worse_churn(churn_result), data, name="churn-refuse")
    with pytest.raises(PromotionRefused, match="candidate .* champion"):
        registry.promote("churn-refuse", bad.version)
    assert registry.champion("churn-refuse") == good.version
    refused = audit_entries(registry.audit.path)[-1]
    assert refused["action"] == "model.promotion_refused" and refused["candidate_score"] < refused["champion_score"]


def test_forced_promotion_is_recorded_everywhere(registry: ModelRegistry, churn_result, shop):
    data = from_frame(shop.transactions)
    registry.log_churn(churn_result, data, name="churn-force")
    bad = registry.log_churn(worse_churn(churn_result), data, name="churn-force")
    result = registry.promote("churn-force", bad.version, force=True, reason="testing the override")
    assert result.promoted and registry.champion("churn-force") == bad.version
    version = registry.client.get_model_version("churn-force", bad.version)
    assert version.tags["nbo.promotion_forced"] == "true"
    assert registry.client.get_run(version.run_id).data.tags["nbo.promotion_forced"] == "true"
    line = audit_entries(registry.audit.path)[-1]
    assert line["action"] == "model.promoted" and line["forced"] is True and line["reason"] == "testing the override"
    assert line["actor"] == "test" and line["subject"] == f"model:churn-force/{bad.version}"


def test_rollback_restores_previous_champion(registry: ModelRegistry, churn_result, shop):
    data = from_frame(shop.transactions)
    first = registry.log_churn(churn_result, data, name="churn-rollback")
    second = registry.log_churn(churn_result, data, name="churn-rollback")
    registry.promote("churn-rollback", second.version, force=True)
    assert registry.champion("churn-rollback") == second.version
    registry.rollback("churn-rollback", reason="bad week")
    assert registry.champion("churn-rollback") == first.version
    assert audit_entries(registry.audit.path)[-1]["action"] == "model.rolled_back"
    with pytest.raises(ValueError, match="no earlier champion"):
        registry.rollback("churn-rollback")


def test_serving_swaps_in_a_new_champion_without_restart(registry: ModelRegistry, churn_result, shop):
    data = from_frame(shop.transactions)
    registry.log_churn(churn_result, data, name="churn-serving")
    models = ChampionModels(registry.tracking_uri, churn_name="churn-serving").load()
    features = {name: (None if value != value else value) for name, value in churn_result.test.features.iloc[0].items()}
    assert models.versions["churn"] == "1"
    before = models.score_churn(features)
    assert models.reload_if_changed() is False
    worse = registry.log_churn(worse_churn(churn_result), data, name="churn-serving")
    registry.promote("churn-serving", worse.version, force=True)
    assert models.reload_if_changed() is True
    assert models.versions["churn"] == worse.version
    assert models.score_churn(features) != before
    registry.rollback("churn-serving")
    assert models.reload_if_changed() is True and models.versions["churn"] == "1"
    assert models.score_churn(features) == before


def test_a_registered_recommender_is_served(registry: ModelRegistry, recommender_result, shop):
    version = registry.log_recommender(recommender_result, from_frame(shop.transactions), name="recommender-served")
    run = registry.client.get_run(version.run_id)
    assert run.data.metrics["ndcg_at_k"] == pytest.approx(recommender_result.reports["blend"].ndcg)
    assert {"baselines.popular.ndcg_at_k", "baselines.repeat.recall_at_k"} <= set(run.data.metrics)
    models = ChampionModels(registry.tracking_uri, recommender_name="recommender-served").load()
    member = next(iter(recommender_result.truth))
    assert models.versions["recommender"] == version.version
    assert models.recommend(member, (), 5) == recommender_result.model.recommend(member, (), 5)
    # The same version must not beat itself.
    assert registry.promote("recommender-served", version.version).promoted is False
    # MLflow's own tools can use it too (pyfunc, with its signature); the basket is "|"-joined.
    import mlflow.pyfunc
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(f"models:/recommender-served/{version.version}")
    basket = [r.sku for r in models.recommend(member, (), 2)]
    answer = pyfunc.predict(pd.DataFrame({"member_id": [member], "basket": ["|".join(basket)], "k": [5]}))
    expected = [r.sku for r in models.recommend(member, basket, 5)]
    assert answer["skus"].iloc[0].split("|") == expected and not set(expected) & set(basket)


def test_loading_the_serving_loader_does_not_import_mlflow():
    code = "import sys, training.champions, serving.cli; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
