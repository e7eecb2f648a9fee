"""The recommender pipeline: split by time -> choose hyper-parameters on validation -> refit -> evaluate.

Periods (test from T, data ending at E, validation length V = min(E - T, 120 days)):

=============  ==================  ====================================================
period         lines               used for
=============  ==================  ====================================================
fit            before T - V        fitting candidates: ALS grid, blend parts
validation     [T - V, T)          choosing ALS factors/regularisation (NDCG@k of ALS
                                   alone), fitting the blend weights, the basket weight
training       before T            refitting the chosen model (what is registered)
test           from T              the reported metrics; the promotion holdout
=============  ==================  ====================================================

Every model, the baselines included, is fitted on the same training period and asked about the
same members (history before T, at least one catalogue item bought from T) with an empty basket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from recommender import (
    ALSParams,
    ALSRecommender,
    BlendRecommender,
    BlendWeights,
    Interactions,
    ItemSimilarity,
    PopularRecommender,
    RankingReport,
    RepeatPurchaseRecommender,
    basket_completion_cases,
    basket_completion_hit_rate,
    baskets_of,
    choose_basket_weight,
    evaluate_ranking,
    fit_blend_weights,
    holdout_truth,
    paired_difference,
)
from training.steps import StepTimes

ALS_GRID: tuple[tuple[int, float], ...] = ((64, 1.0), (64, 10.0), (128, 1.0), (128, 10.0))
"""(factors, regularisation) pairs tried on the validation period."""
MAX_VALIDATION_DAYS = 120
MIN_VALIDATION_DAYS = 14


@dataclass(frozen=True)
class RecommenderSplit:
    """The period boundaries (see the module docstring)."""

    validation_from: date
    test_from: date
    data_end: date

    @classmethod
    def for_data(cls, transactions: pd.DataFrame, test_from: date, validation_days: int | None = None) -> RecommenderSplit:
        first = pd.Timestamp(transactions["ts"].min()).date()
        last = pd.Timestamp(transactions["ts"].max()).date()
        if not first < test_from <= last:
            raise ValueError(
                f"--test-from {test_from} must fall inside the data ({first} .. {last}), with history before it"
            )
        days = validation_days or min(MAX_VALIDATION_DAYS, max(MIN_VALIDATION_DAYS, (last - test_from).days + 1))
        validation_from = test_from - timedelta(days=days)
        if validation_from <= first:
            raise ValueError(
                f"no history before the validation period ({validation_from}): the data starts on {first}; "
                "choose a later --test-from"
            )
        return cls(validation_from=validation_from, test_from=test_from, data_end=last)


@dataclass
class RecommenderTraining:
    """Everything a recommender run produced."""

    model: BlendRecommender
    split: RecommenderSplit
    k: int
    reports: dict[str, RankingReport]  # "blend", "popular", "repeat", "als"
    truth: dict[str, frozenset[str]]
    als_params: ALSParams
    als_grid: dict[str, float]  # "factors=64,regularization=1.0" -> validation NDCG@k of ALS alone
    weights: BlendWeights
    basket_rates: dict[float, float]
    basket_completion: dict[str, float]  # test hit rate@k: blend vs popular
    vs_repeat: dict[str, tuple[float, float, float]]  # metric -> (mean diff, 95% low, high)
    times: StepTimes = field(default_factory=StepTimes)

    def metrics_json(self) -> dict[str, object]:
        """The ``--metrics-out`` document of DESIGN.md (plus ALS alone, basket completion and choices)."""
        blend = self.reports["blend"]
        return {
            **blend.as_dict(),
            "k": self.k,
            "baselines": {name: self.reports[name].as_dict() for name in ("popular", "repeat")},
            "als": self.reports["als"].as_dict(),
            "basket_completion_hit_rate": self.basket_completion,
            "blend_minus_repeat": {
                metric: {"mean": round(m, 6), "ci95": [round(lo, 6), round(hi, 6)]}
                for metric, (m, lo, hi) in self.vs_repeat.items()
            },
            "test_from": self.split.test_from.isoformat(),
            "validation_from": self.split.validation_from.isoformat(),
            "chosen": {
                "factors": self.als_params.factors,
                "regularization": self.als_params.regularization,
                "basket_weight": self.weights.basket,
                "blend_weights": {k: round(v, 4) for k, v in self.weights.coefficients.items()},
            },
            "als_validation_ndcg": self.als_grid,
        }


def choose_als_params(
    fit: Interactions,
    validation_truth: dict[str, frozenset[str]],
    grid: Sequence[tuple[int, float]],
    k: int,
    base: ALSParams,
) -> tuple[ALSParams, ALSRecommender, dict[str, float]]:
    """The grid point whose ALS alone ranks the validation period best (NDCG@k), its model, and all scores."""
    scores: dict[str, float] = {}
    best: tuple[float, ALSParams, ALSRecommender] | None = None
    for factors, regularization in grid:
        params = ALSParams(**{**base.as_dict(), "factors": factors, "regularization": regularization})
        model = ALSRecommender(params).fit(fit)
        ndcg = evaluate_ranking(model, validation_truth, k).ndcg
        scores[f"factors={factors},regularization={regularization}"] = round(ndcg, 6)
        if best is None or ndcg > best[0]:
            best = (ndcg, params, model)
    assert best is not None, "the ALS grid is empty"
    return best[1], best[2], scores


def train_recommender(
    transactions: pd.DataFrame,
    test_from: date,
    k: int = 10,
    validation_days: int | None = None,
    grid: Sequence[tuple[int, float]] = ALS_GRID,
    base_params: ALSParams | None = None,
) -> RecommenderTraining:
    """Run the recommender pipeline on canonical transactions (they need a ``sku`` column)."""
    if "sku" not in transactions.columns:
        raise ValueError("the recommender needs item ids: these transactions have no 'sku' column")
    times = StepTimes()
    base_params = base_params or ALSParams()
    split = RecommenderSplit.for_data(transactions, test_from, validation_days)
    ts = transactions["ts"]
    validation_start, test_start = pd.Timestamp(split.validation_from), pd.Timestamp(split.test_from)
    validation_lines = transactions[(ts >= validation_start) & (ts < test_start)]

    with times.step("validation_interactions"):
        fit = Interactions.from_transactions(transactions, as_of=split.validation_from)
        validation_truth = holdout_truth(validation_lines, fit.catalogue, fit.members)
    if not validation_truth:
        raise ValueError(f"no member with earlier history bought a known item in [{split.validation_from}, {test_from})")
    with times.step("choose_als"):
        als_params, als, grid_scores = choose_als_params(fit, validation_truth, grid, k, base_params)
    with times.step("fit_blend_weights"):
        candidate = BlendRecommender(als_params).assemble(
            fit, als, ItemSimilarity().fit(fit), PopularRecommender(by_store=True).fit(fit)
        )
        candidate.with_weights(fit_blend_weights(candidate, validation_truth))
        _, basket_rates = choose_basket_weight(candidate, baskets_of(validation_lines), k)
        weights = candidate.weights
    with times.step("fit"):
        training = Interactions.from_transactions(transactions, as_of=split.test_from)
        model = BlendRecommender(als_params, weights).fit(training)
    with times.step("evaluate"):
        test_lines = transactions[ts >= test_start]
        truth = holdout_truth(test_lines, training.catalogue, training.members)
        models = {
            "blend": model,
            "popular": PopularRecommender().fit(training),
            "repeat": RepeatPurchaseRecommender().fit(training),
            "als": model.als,
        }
        reports = {name: evaluate_ranking(m, truth, k) for name, m in models.items()}
        for name, report in reports.items():
            report.name = name
        cases = basket_completion_cases(baskets_of(test_lines[test_lines["member_id"].astype(str).isin(truth)]),
                                        training.catalogue)
        basket_completion = {name: round(basket_completion_hit_rate(models[name], cases, k), 6)
                             for name in ("blend", "popular")}
        vs_repeat = {
            "ndcg_at_k": paired_difference(reports["blend"].per_user_ndcg, reports["repeat"].per_user_ndcg),
            "recall_at_k": paired_difference(reports["blend"].per_user_recall, reports["repeat"].per_user_recall),
        }
    return RecommenderTraining(
        model=model, split=split, k=k, reports=reports, truth=truth, als_params=als_params, als_grid=grid_scores,
        weights=weights, basket_rates=basket_rates, basket_completion=basket_completion, vs_repeat=vs_repeat,
        times=times,
    )

