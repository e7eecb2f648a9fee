"""Offline evaluation, the same for every recommender: precision, recall, NDCG at k, coverage.

The question asked of each model is the one a member's next visits answer: given the history
before a date, which of the catalogue items will the member buy after it? Relevance is binary
(bought or not); only catalogue items count, so every model is asked about items it could name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recommender.base import MemberQuery, Recommender
from recommender.catalogue import Catalogue


@dataclass
class RankingReport:
    """Mean metrics over members, with the per-member values kept for paired comparisons."""

    name: str
    k: int
    precision: float
    recall: float
    ndcg: float
    coverage: float
    n_users: int
    per_user_ndcg: np.ndarray = field(repr=False)
    per_user_recall: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float | int]:
        """The recommender metrics of the ``--metrics-out`` contract."""
        return {
            "precision_at_k": round(self.precision, 6),
            "recall_at_k": round(self.recall, 6),
            "ndcg_at_k": round(self.ndcg, 6),
            "coverage": round(self.coverage, 6),
            "n_users": self.n_users,
        }


def holdout_truth(
    transactions: pd.DataFrame, catalogue: Catalogue, members: Iterable[str] | None = None
) -> dict[str, frozenset[str]]:
    """Catalogue items each member bought in ``transactions`` (members limited to ``members``)."""
    lines = transactions[transactions["sku"].astype(str).isin(catalogue.index)]
    if members is not None:
        lines = lines[lines["member_id"].astype(str).isin(set(members))]
    grouped = lines.groupby(lines["member_id"].astype(str), sort=True)["sku"]
    return {member: frozenset(skus.astype(str)) for member, skus in grouped}


def evaluate_ranking(
    recommender: Recommender, truth: Mapping[str, frozenset[str] | set[str]], k: int = 10
) -> RankingReport:
    """Precision@k, recall@k, NDCG@k (binary relevance) and catalogue coverage of ``recommender``."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    index = recommender.catalogue.index
    precision, recall, ndcg = [], [], []
    shown: set[int] = set()
    for member_id, items in truth.items():
        relevant = {index[s] for s in items if s in index}
        if not relevant:
            continue
        top = recommender.recommend_positions(MemberQuery(member_id=member_id), k)
        shown.update(top.tolist())
        hits = np.fromiter((i in relevant for i in top.tolist()), dtype=bool, count=len(top))
        n_hits = int(hits.sum())
        precision.append(n_hits / k)
        recall.append(n_hits / len(relevant))
        ndcg.append(float(discounts[: len(hits)][hits].sum() / ideal[min(k, len(relevant)) - 1]))
    n = len(ndcg)
    return RankingReport(
        name=recommender.name,
        k=k,
        precision=float(np.mean(precision)) if n else 0.0,
        recall=float(np.mean(recall)) if n else 0.0,
        ndcg=float(np.mean(ndcg)) if n else 0.0,
        coverage=len(shown) / max(len(recommender.catalogue), 1),
        n_users=n,
        per_user_ndcg=np.array(ndcg),
        per_user_recall=np.array(recall),
    )


def paired_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same members and its 95% bootstrap interval (low, high)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not len(diff):
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


@dataclass(frozen=True)
class BasketCase:
    """A basket with one item hidden: can the recommender name it from the rest?"""

    member_id: str
    rest: tuple[str, ...]
    hidden: str


def basket_completion_cases(
    baskets: Sequence[tuple[str, Sequence[str]]], catalogue: Catalogue, seed: int = 0, limit: int = 2000
) -> list[BasketCase]:
    """One case per basket with at least two distinct catalogue items (at most ``limit``, sampled)."""
    rng = np.random.default_rng(seed)
    cases = []
    for member_id, skus in baskets:
        items = sorted({s for s in skus if s in catalogue})
        if len(items) < 2:
            continue
        hidden = items[int(rng.integers(len(items)))]
        cases.append(BasketCase(str(member_id), tuple(s for s in items if s != hidden), hidden))
    if len(cases) > limit:
        keep = rng.choice(len(cases), limit, replace=False)
        cases = [cases[i] for i in sorted(keep)]
    return cases


def basket_completion_hit_rate(recommender: Recommender, cases: Sequence[BasketCase], k: int = 10) -> float:
    """Share of cases whose hidden item is among the ``k`` recommended for the member and the rest."""
    if not cases:
        return 0.0
    hits = 0
    for case in cases:
        recommended = recommender.recommend(MemberQuery(member_id=case.member_id), basket=case.rest, k=k)
        hits += any(r.sku == case.hidden for r in recommended)
    return hits / len(cases)


def baskets_of(transactions: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(member, items) per basket of canonical lines (basket_id, or member and day without one)."""
    key = transactions["basket_id"] if "basket_id" in transactions.columns else transactions["ts"].dt.date.astype(str)
    frame = pd.DataFrame({"m": transactions["member_id"].astype(str), "b": key.astype(str),
                          "s": transactions["sku"].astype(str)})
    grouped = frame.groupby(["m", "b"], sort=False)["s"].agg(list)
    return [(member, items) for (member, _), items in grouped.items()]
