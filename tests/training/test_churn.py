"""The churn pipeline: point-in-time features, labels, time split, baselines, the single-row scorer."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.helpers.shop import SHOP_CUTOFF, SHOP_HORIZON
from tests.recommender.datasets import online_retail, online_retail_sample
from training.churn import ChurnSplit, churn_snapshot, train_churn
from training.churn_model import DERIVED_INPUTS, NUMERIC_FEATURES, input_frame, input_row


def _rewrite_after(lines: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """The same history before ``cutoff``; everything on and after it changed, and a purchase at exactly midnight."""
    start = pd.Timestamp(cutoff)
    after = lines["ts"] >= start
    changed = lines.copy()
    changed.loc[after, "amount"] = changed.loc[after, "amount"] * 10 + 1
    changed = changed.drop(changed.index[after][::2])
    midnight = lines[~after].groupby("member_id").tail(1).assign(ts=start, basket_id="midnight")
    return pd.concat([changed, midnight], ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)


def test_features_ignore_data_after_cutoff(shop, shop_programme):
    before = churn_snapshot(shop.transactions, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, shop.members)
    rewritten = _rewrite_after(shop.transactions, SHOP_CUTOFF)
    after = churn_snapshot(rewritten, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, shop.members)
    pd.testing.assert_frame_equal(before.features, after.features)
    assert not before.label.equals(after.label), "the label, unlike the features, is about the future"


def test_features_ignore_data_after_cutoff_on_real_data(shop_programme):
    lines = online_retail_sample(members=300)
    cutoff = date(2011, 9, 1)
    before = churn_snapshot(lines, cutoff, 90, shop_programme)
    after = churn_snapshot(_rewrite_after(lines, cutoff), cutoff, 90, shop_programme)
    pd.testing.assert_frame_equal(before.features, after.features)


def test_churn_label_is_no_purchase_within_the_horizon(shop, shop_programme):
    snapshot = churn_snapshot(shop.transactions, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, shop.members)
    start = pd.Timestamp(SHOP_CUTOFF)
    window = shop.transactions[(shop.transactions["ts"] >= start) & (shop.transactions["ts"] < start + pd.Timedelta(days=30))]
    bought = set(window["member_id"])
    expected = pd.Series([0 if m in bought else 1 for m in snapshot.label.index], index=snapshot.label.index)
    assert (snapshot.label.astype(int) == expected).all()
    assert (snapshot.features["orders_total"] > 0).all(), "only members with history before the cutoff"
    assert 0 < snapshot.label.mean() < 1


def test_time_split_never_lets_labels_overlap():
    split = ChurnSplit.before(date(2011, 9, 1), 90)
    assert split.train + timedelta(days=90) == split.valid
    assert split.valid + timedelta(days=90) == split.test


def test_churn_trains_on_transactions_without_items(shop_programme):
    lines = online_retail_sample().drop(columns=["sku"])
    result = train_churn(lines, date(2011, 9, 1), 90, shop_programme)
    document = result.metrics_json()
    for key in ("auc_roc", "pr_auc", "brier", "baseline", "n_train", "n_test", "positive_rate"):
        assert key in document
    assert set(document["baselines"]) == {"recency", "frequency", "monetary", "rfm"}
    assert "auc_roc" in document["baseline"]
    assert result.validation == "time"
    assert document["auc_roc"] > 0.6


def test_the_lead_over_each_baseline_has_a_paired_bootstrap_interval(churn_result):
    document = churn_result.metrics_json()
    low, high = document["auc_roc_ci"]
    assert low < document["auc_roc"] < high
    lead = document["auc_roc_over_best_baseline"]
    assert lead["baseline"] == churn_result.strongest_baseline
    assert lead["ci95"][0] <= lead["difference"] <= lead["ci95"][1]
    assert set(document["auc_roc_vs_baselines"]) == {"recency", "frequency", "monetary", "rfm"}


def test_weighted_auc_is_roc_auc_on_the_resampled_members():
    from sklearn.metrics import roc_auc_score

    from training.churn import weighted_auc

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * label, 1)  # ties count half, as in roc_auc_score
    picked = rng.integers(0, 300, 300)
    counts = np.bincount(picked, minlength=300).astype(float)
    aucs = weighted_auc(label, scores, np.vstack([np.ones(300), counts]))
    assert aucs[0] == pytest.approx(roc_auc_score(label, scores), abs=1e-12)
    assert aucs[1] == pytest.approx(roc_auc_score(label[picked], scores[picked]), abs=1e-12)


def test_older_non_overlapping_snapshots_are_stacked_when_the_history_allows():
    split = ChurnSplit.before(date(2011, 9, 1), 30, first_day=date(2010, 12, 1), max_train_snapshots=6)
    dates = [split.valid, *split.train_dates]
    assert len(split.train_dates) == 6
    assert all(a - b == timedelta(days=30) for a, b in zip(dates, dates[1:])), "label windows never overlap"
    assert ChurnSplit.before(date(2011, 9, 1), 90, first_day=date(2010, 12, 1)).train_dates == (date(2011, 3, 5),)


def test_a_cutoff_without_a_full_label_window_is_refused(shop, shop_programme):
    with pytest.raises(ValueError, match="choose an earlier --cutoff"):
        train_churn(shop.transactions, date(2026, 2, 20), 30, shop_programme)


def test_one_member_scores_the_same_as_the_batch_and_the_booster(churn_result):
    model = churn_result.model
    features = churn_result.test.features.head(50)
    frame_scores = model.score_frame(input_frame(features))
    for (_member, row), batch_score in zip(features.iterrows(), frame_scores):
        values = {name: (None if pd.isna(v) else v) for name, v in row.items()}
        single = model.score(values)
        booster = model.booster.predict(input_row(values, model.inputs).reshape(1, -1))[0]
        assert single == pytest.approx(booster, abs=1e-12)
        assert single == pytest.approx(batch_score, abs=1e-12)


def test_derived_inputs_are_the_same_for_one_member_and_a_frame(churn_result):
    features = churn_result.test.features.head(30)
    frame = input_frame(features)
    for member, row in features.iterrows():
        values = {name: (None if pd.isna(v) else v) for name, v in row.items()}
        np.testing.assert_array_equal(input_row(values), frame.loc[member].to_numpy())
    assert set(DERIVED_INPUTS) <= set(frame.columns) and set(NUMERIC_FEATURES) <= set(frame.columns)


@pytest.mark.slow
def test_churn_beats_the_best_single_feature_on_online_retail(shop_programme):
    result = train_churn(online_retail(), date(2011, 9, 1), 90, shop_programme)
    best = result.best_single_feature_baseline
    assert result.metrics["auc_roc"] > result.baseline_metrics[best]["auc_roc"] + 0.01
    assert datetime.fromisoformat(result.metrics_json()["cutoff"]).date() == date(2011, 9, 1)


def test_a_member_scored_before_it_registered_gets_the_frames_inputs_not_an_error(churn_result) -> None:
    # Tenure 0 (scored the day before registration) divides by zero: inf / NaN like the training
    # frame's numpy columns, never a ZeroDivisionError in a checkout or the daily run.
    features = {"days_since_registration": -1, "orders_total": 2, "recency_days": 3, "frequency_90d": 1,
                "frequency_365d": 2, "monetary_90d": 10.0, "monetary_365d": 20.0}
    row = input_row(features)
    frame = input_frame(pd.DataFrame([features]))
    np.testing.assert_array_equal(row, frame.iloc[0].to_numpy())
    assert 0.0 <= churn_result.model.score(features) <= 1.0
