"""The recommender's goal on real data: beat both baselines on Online Retail (test from 2011-09-01, k=10)."""

from __future__ import annotations

import pytest

from tests.recommender.datasets import RETAIL_TEST_FROM, online_retail
from training.recommendation import train_recommender


@pytest.mark.slow
def test_blend_beats_both_baselines_on_online_retail():
    result = train_recommender(online_retail(), RETAIL_TEST_FROM, k=10)
    blend, popular, repeat = (result.reports[name] for name in ("blend", "popular", "repeat"))
    for baseline in (popular, repeat):
        assert blend.ndcg > baseline.ndcg, f"NDCG@10 {blend.ndcg:.4f} vs {baseline.name} {baseline.ndcg:.4f}"
        assert blend.recall > baseline.recall, f"recall@10 {blend.recall:.4f} vs {baseline.name} {baseline.recall:.4f}"
    assert blend.n_users == repeat.n_users > 1000
    low = result.vs_repeat["ndcg_at_k"][1]
    assert low > 0, "the NDCG gain over repeat purchase should hold across members (95% bootstrap interval)"
