"""Batch scoring writes what online scoring computes, for the same member in the same state."""

from __future__ import annotations

import pytest

from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from training.batch import score_members
from training.champions import ChampionModels


@pytest.fixture
def loaded_store(store: FeatureStore, shop) -> FeatureStore:
    result = backfill(store, shop.transactions, shop.members)
    assert result.accepted and not result.rejected
    return store


def test_batch_and_online_churn_scores_agree(loaded_store: FeatureStore, churn_result, recommender_result):
    models = ChampionModels.from_models(churn=churn_result.model, recommender=recommender_result.model,
                                        churn_version="7", recommender_version="3")
    progress: list[int] = []
    result = score_members(loaded_store, models, top_n=5, on_progress=progress.append)
    assert result.members == result.churn_scored == result.recommended == sum(progress) > 100

    for member_id in list(loaded_store.member_ids())[:60]:
        state = loaded_store.read_state(member_id)
        profile = state.profile
        online = models.score_churn(loaded_store.member_features(member_id))
        assert float(profile["churn_p"]) == online  # exactly: the same calls on the same state
        assert profile["churn_v"] == "7"
        features = loaded_store.member_features(member_id)
        assert features["churn_probability"] == online and features["churn_model_version"] == "7"
        stored = loaded_store.read_recommendations(member_id)
        assert stored["model_version"] == "3"
        assert [(i["sku"], i["score"]) for i in stored["items"]] == [
            (r.sku, r.score) for r in models.recommend(state, (), 5)
        ]


def test_recommendations_of_an_unknown_member_are_none(store: FeatureStore):
    assert store.read_recommendations("nobody") is None
