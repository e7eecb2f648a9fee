"""The response (uplift) model recovers the synthetic campaigns' known effects and beats the hand-set propensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from training.response import normalise_exposures, qini_curve, uplift_metrics


def _true_uplift(result, shop) -> tuple[np.ndarray, np.ndarray]:
    truth = shop.truth.responses.set_index("member_id")["true_uplift"]
    return result.scores["uplift"].to_numpy(), truth.loc[result.holdout["member_id"]].to_numpy()


def _oracle_qini(score: np.ndarray, uplift: np.ndarray) -> float:
    """The Qini area of ranking by ``score`` measured with the members' true uplift (no outcome noise)."""
    order = np.argsort(-score, kind="stable")
    q = np.cumsum(uplift[order])
    n = len(q)
    return float(q.mean() / n - q[-1] / n * (n + 1) / (2 * n))


def test_the_model_ranks_members_by_their_true_uplift(response_result, campaign_shop):
    predicted, true = _true_uplift(response_result, campaign_shop)
    # Small data (the suite's budget): ~6,000 training exposures whose spend is mostly noise around a
    # 0-110 yuan effect; the ranking is far from perfect but clearly not chance.
    assert spearmanr(predicted, true).statistic > 0.15
    perfect = _oracle_qini(true, true)
    random = np.mean([_oracle_qini(np.random.default_rng(s).random(len(true)), true) for s in range(20)])
    assert _oracle_qini(predicted, true) > 0.15 * perfect
    assert abs(random) < 0.05 * perfect


def test_redemption_alone_would_target_the_wrong_members(response_result, campaign_shop):
    # Sure things redeem most and gain nothing: ranking by p(redeem) is why the uplift is needed.
    _, true = _true_uplift(response_result, campaign_shop)
    redeem = response_result.scores["redeem"].to_numpy()
    assert _oracle_qini(redeem, true) < _oracle_qini(response_result.scores["uplift"].to_numpy(), true)


def test_the_metrics_document_has_the_contract(response_result):
    document = response_result.metrics_json()
    for key in ("qini", "auuc", "baselines", "n_train", "n_test"):
        assert key in document
    assert set(document["baselines"]) == {"random", "heuristic"}
    assert set(document["qini_vs_baselines"]) == {"random", "heuristic"}
    assert document["n_test"] == len(response_result.holdout) > 0


def test_one_member_scores_the_same_as_the_batch(response_result):
    from training.churn_model import NUMERIC_FEATURES

    rows = response_result.holdout.head(20)
    batch = response_result.model.score_frame(rows[list(NUMERIC_FEATURES)])
    for (_, row), (_, expected) in zip(rows.iterrows(), batch.iterrows()):
        values = {name: (None if pd.isna(row[name]) else row[name]) for name in NUMERIC_FEATURES}
        score = response_result.model.score(values)
        assert score.redeem == pytest.approx(expected["redeem"], abs=1e-9)
        assert score.uplift == pytest.approx(expected["uplift"], abs=1e-9)


def test_qini_is_zero_for_random_targeting_and_positive_for_the_right_order():
    rng = np.random.default_rng(0)
    n = 40_000
    treated = rng.random(n) < 0.5
    effect = np.where(np.arange(n) < n // 2, 10.0, 0.0)
    outcome = rng.gamma(1.0, 20.0, n) + treated * effect
    right = uplift_metrics(-np.arange(n, dtype=float), treated, outcome)
    # Effect 10 for the first half, half of them treated: Q(k)/N climbs to 2.5 at k = N/2, then stays;
    # its mean 1.875 less random targeting's 1.25.
    assert right["qini"] == pytest.approx(0.625, abs=0.1)
    chance = np.mean([uplift_metrics(rng.random(n), treated, outcome, seed=s)["qini"] for s in range(10)])
    assert abs(chance) < right["qini"] / 3
    assert qini_curve(np.zeros(3), np.array([True, False, True]), np.array([1.0, 2.0, 3.0]))[-1] == pytest.approx(0.0)


def test_bad_exposure_files_say_what_is_wrong():
    with pytest.raises(ValueError, match="missing column"):
        normalise_exposures(pd.DataFrame({"member_id": ["a"], "day": ["2026-01-01"]}))
    with pytest.raises(ValueError, match="group must be 't'"):
        normalise_exposures(pd.DataFrame({"member_id": ["a"], "rule_id": ["r"], "day": ["2026-01-01"], "group": ["x"]}))
