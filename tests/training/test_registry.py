"""Runs, versions, promotion and rollback in an MLflow store of the test's own (never the repo's mlruns/)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
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


def _shuffled_ltv(result):
    """The same LTV run with a model fitted on shuffled spend: a candidate that must lose."""
    import lightgbm as lgb

    from training.churn_model import input_frame
    from training.ltv import LtvModel, ltv_metrics

    inputs = input_frame(result.valid.features)[list(result.model.inputs)]
    shuffled = np.random.default_rng(1).permutation(result.valid.label.to_numpy())
    booster = lgb.train({"objective": "tweedie", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
                        lgb.Dataset(inputs, shuffled), num_boost_round=20)
    model = LtvModel(booster=booster, horizon_days=result.model.horizon_days, inputs=result.model.inputs)
    scores = model.score_frame(input_frame(result.test.features))
    return replace(result, model=model, test_scores=scores, metrics=ltv_metrics(result.test.label, scores))


def test_an_ltv_model_is_registered_gated_and_served(registry: ModelRegistry, ltv_result, shop):
    data = from_frame(shop.transactions)
    first = registry.log_ltv(ltv_result, data, name="ltv-gated")
    assert first.is_champion and first.tags["metric.gini"] == f"{ltv_result.metrics['gini']:.6f}"
    artifacts = {a.path for a in registry.client.list_artifacts(first.run_id, "plots")}
    assert {"plots/gain.png", "plots/calibration.png"} <= artifacts
    assert "baselines.bgnbd_gg.gini" in registry.client.get_run(first.run_id).data.metrics
    worse = registry.log_ltv(_shuffled_ltv(ltv_result), data, name="ltv-gated")
    with pytest.raises(PromotionRefused, match="gini"):
        registry.promote("ltv-gated", worse.version)
    models = ChampionModels(registry.tracking_uri, ltv_name="ltv-gated").load()
    assert models.versions["ltv"] == first.version
    features = {k: (None if v != v else v) for k, v in ltv_result.test.features.iloc[0].items()}
    assert models.score_member(features).ltv == pytest.approx(ltv_result.model.score(features))


def test_a_response_model_is_registered_gated_and_served(registry: ModelRegistry, response_result, campaign_shop):
    data = from_frame(campaign_shop.transactions)
    first = registry.log_response(response_result, data, name="response-gated")
    assert first.is_champion
    assert "baselines.heuristic.qini" in registry.client.get_run(first.run_id).data.metrics
    models = ChampionModels(registry.tracking_uri, response_name="response-gated").load()
    assert models.versions["response"] == first.version
    row = response_result.holdout.iloc[0]
    from training.churn_model import NUMERIC_FEATURES

    features = {name: (None if row[name] != row[name] else row[name]) for name in NUMERIC_FEATURES}
    served = models.score_member(features).response
    local = response_result.model.score(features)
    assert (served.redeem, served.uplift, served.version) == (pytest.approx(local.redeem), pytest.approx(local.uplift),
                                                             first.version)
    # A candidate whose treated and control boosters are swapped predicts the opposite uplift: refused.
    swapped = replace(response_result.model, treated=response_result.model.control,
                      control=response_result.model.treated)
    worse = registry.log_response(replace(response_result, model=swapped), data, name="response-gated")
    with pytest.raises(PromotionRefused, match="qini"):
        registry.promote("response-gated", worse.version)
    assert registry.champion("response-gated") == first.version
