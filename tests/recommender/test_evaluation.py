"""Offline metrics, checked on cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender import Catalogue, MemberQuery, Recommender, evaluate_ranking, paired_difference
from recommender.base import top_positions


class FixedRanking(Recommender):
    """Always ranks the catalogue in a given order (a test double for the interface)."""

    name = "fixed"

    def __init__(self, order: list[str]) -> None:
        self.catalogue = Catalogue.from_skus(order)
        self.order = order

    def fit(self, interactions):
        return self

    def score_items(self, member: MemberQuery, basket: np.ndarray) -> np.ndarray:
        scores = np.zeros(len(self.catalogue), dtype=np.float32)
        for rank, sku in enumerate(self.order):
            scores[self.catalogue.index[sku]] = len(self.order) - rank
        return scores


def test_precision_recall_ndcg_match_the_textbook_definitions():
    model = FixedRanking(["a", "b", "c", "d", "e"])
    # member 1: relevant {a, c}; top-3 a, b, c -> hits at ranks 1 and 3.
    # member 2: relevant {e, x}; "x" is not in the catalogue, so it does not count.
    report = evaluate_ranking(model, {"m1": {"a", "c"}, "m2": {"e", "x"}}, k=3)
    ndcg_m1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert report.precision == pytest.approx((2 / 3 + 0) / 2)
    assert report.recall == pytest.approx((1.0 + 0.0) / 2)
    assert report.ndcg == pytest.approx((ndcg_m1 + 0.0) / 2)
    assert report.coverage == pytest.approx(3 / 5)
    assert report.n_users == 2


def test_top_positions_skip_excluded_and_impossible_items():
    scores = np.array([0.1, 0.9, -np.inf, 0.5, 0.7], dtype=np.float32)
    assert top_positions(scores.copy(), 3, exclude=np.array([1])).tolist() == [4, 3, 0]
    assert top_positions(scores.copy(), 10, exclude=np.array([], dtype=np.int64)).tolist() == [1, 4, 3, 0]


def test_paired_difference_brackets_the_mean():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    mean, low, high = paired_difference(a + 0.05, a)
    assert mean == pytest.approx(0.05)
    assert low <= mean <= high
