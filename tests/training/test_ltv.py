"""Lifetime value: spend labels, the time split, the baselines, the metrics and the single-row scorer."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.helpers.shop import SHOP_CUTOFF, SHOP_HORIZON
from tests.recommender.datasets import online_retail_sample
from training.churn_model import input_frame
from training.ltv import normalised_gini, spend_between, train_ltv


def test_the_label_is_spend_in_the_horizon_after_the_cutoff(shop, ltv_result):
    label = ltv_result.test.label
    start = pd.Timestamp(SHOP_CUTOFF)
    lines = shop.transactions
    window = lines[(lines["ts"] >= start) & (lines["ts"] < start + pd.Timedelta(days=SHOP_HORIZON))]
    expected = window.groupby("member_id")["amount"].sum().reindex(label.index).fillna(0.0)
    np.testing.assert_allclose(label.to_numpy(), expected.to_numpy())
    assert (label == 0).any() and (label > 0).any()


def test_the_metrics_document_has_the_contract_and_every_baseline(ltv_result):
    document = ltv_result.metrics_json()
    for key in ("spearman", "gini", "mae", "baselines", "n_train", "n_test"):
        assert key in document
    assert set(document["baselines"]) == {"last_period", "bgnbd_gg"}
    assert {"gini", "spearman", "mae"} <= set(document["baselines"]["bgnbd_gg"])
    low, high = document["gini_ci"]
    assert low <= document["gini"] <= high


def test_the_model_ranks_spend_better_than_last_period_spend(ltv_result):
    assert ltv_result.metrics["gini"] > ltv_result.baseline_metrics["last_period"]["gini"]
    assert ltv_result.metrics["spearman"] > 0.3


def test_normalised_gini_is_one_in_hindsight_and_near_zero_by_chance():
    rng = np.random.default_rng(0)
    spend = rng.gamma(0.5, 100.0, 5000)
    assert normalised_gini(spend, spend) == pytest.approx(1.0)
    assert abs(normalised_gini(spend, rng.random(5000))) < 0.05
    assert normalised_gini(spend, -spend) == pytest.approx(-1.0, abs=0.01)


def test_one_member_scores_the_same_as_the_batch(ltv_result):
    features = ltv_result.test.features.head(40)
    batch = np.maximum(ltv_result.model.score_frame(input_frame(features)), 0.0)
    for (_, row), expected in zip(features.iterrows(), batch):
        values = {name: (None if pd.isna(v) else v) for name, v in row.items()}
        assert ltv_result.model.score(values) == pytest.approx(expected, abs=1e-9)


def test_ltv_trains_on_real_data_without_items(shop_programme):
    lines = online_retail_sample(members=600).drop(columns=["sku"])
    result = train_ltv(lines, date(2011, 9, 1), 90, shop_programme)
    assert result.metrics["gini"] > 0.3
    assert spend_between(lines, result.test.features.index[:5], date(2011, 9, 1), 90).ge(0).all()
