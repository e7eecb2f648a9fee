"""The recommender that serves: personal repeat purchase blended with ALS, basket-aware.

For a member with history, an item's score is a linear blend of what the member did with it
(how often and how recently they bought it, how habitual the item is), of ALS's guess for items
they never bought, and of the item's popularity and trend. The weights are fitted by logistic
regression on a validation period carved from the training data (``fit_blend_weights``): which
items did members buy next? A basket adds item-item similarity (basket completion); a member
with no history gets their store's popular items.

Scoring a known member costs one matrix-vector product (ALS), a few vector operations over the
catalogue and a sparse update on the member's own items: tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Self

import numpy as np

from recommender.als import ALSParams, ALSRecommender
from recommender.base import MemberQuery, Recommendation, Recommender, top_positions
from recommender.baselines import PopularRecommender
from recommender.interactions import RECENT_DAYS, Interactions
from recommender.similarity import ItemSimilarity

PERSONAL_FEATURES: tuple[str, ...] = (
    "log_count",  # log(1 + baskets that held the item)
    "basket_share",  # share of the member's baskets that held it
    "recency",  # exp(-days since the member last bought it / recency_days)
    "bought_before",  # 1
    "repeat_rate",  # the item's share of buyers who bought it again (smoothed)
    "history",  # log(the member's number of baskets)
)
"""Features of (member, item) pairs the member bought; 0 for items they never bought."""
ITEM_FEATURES: tuple[str, ...] = (
    "popularity_recent",  # distinct buyers in the last 30 days, scaled to [0, 1]
    "popularity",  # distinct buyers, scaled to [0, 1]
    "trend",  # log of recent vs overall popularity
)
BLEND_FEATURES: tuple[str, ...] = (*PERSONAL_FEATURES, "als", *ITEM_FEATURES)


@dataclass(frozen=True)
class BlendWeights:
    """Linear weights of ``BLEND_FEATURES``, an intercept, and the weight of basket similarity."""

    coefficients: Mapping[str, float] = field(default_factory=dict)
    intercept: float = 0.0
    basket: float = 1.0

    def vector(self) -> np.ndarray:
        return np.array([self.coefficients.get(name, 0.0) for name in BLEND_FEATURES], dtype=np.float32)


DEFAULT_WEIGHTS = BlendWeights(
    # Fitted on Online Retail (validation 2011-06..08); used only until a training run fits its own.
    coefficients={
        "log_count": 0.8, "basket_share": 1.0, "recency": 0.9, "bought_before": -1.0, "repeat_rate": 2.5,
        "history": 0.55, "als": 1.6, "popularity_recent": 2.0, "popularity": -1.5, "trend": 0.2,
    },
    intercept=-3.0,
    basket=1.0,
)


@dataclass
class _History:
    """One member's purchases as the blend reads them."""

    positions: np.ndarray
    counts: np.ndarray
    days_since: np.ndarray | None  # None: not known (live purchases)
    baskets: float


class BlendRecommender(Recommender):
    """Repeat purchase + ALS + item popularity, linearly blended; basket completion; store cold start."""

    name = "blend"

    def __init__(
        self,
        als_params: ALSParams | None = None,
        weights: BlendWeights | None = None,
        recency_days: float = 60.0,
        neighbours: int = 50,
    ) -> None:
        self.als_params = als_params or ALSParams()
        self.weights = weights or DEFAULT_WEIGHTS
        self.recency_days = recency_days
        self.neighbours = neighbours

    # --- learning -------------------------------------------------------------------------------

    def fit(self, interactions: Interactions) -> Self:
        als = ALSRecommender(self.als_params).fit(interactions)
        similarity = ItemSimilarity(self.neighbours).fit(interactions)
        cold = PopularRecommender(by_store=True).fit(interactions)
        return self.assemble(interactions, als, similarity, cold)

    def assemble(
        self, interactions: Interactions, als: ALSRecommender, similarity: ItemSimilarity, cold: PopularRecommender
    ) -> Self:
        """Build from already fitted parts (a fitted ALS can be reused across blend weights)."""
        self.catalogue = interactions.catalogue
        self.als, self.similarity, self.cold = als, similarity, cold
        self.member_index = interactions.member_index
        self.members = interactions.members
        self.member_store = interactions.member_store
        self.counts = interactions.counts
        last_day = interactions.last_day.tocsr()
        last_day.sort_indices()
        self.last_day = last_day
        self.member_baskets = interactions.member_baskets
        self.as_of_day = interactions.as_of_day
        buyers = interactions.buyers()
        recent = interactions.recent_buyers(RECENT_DAYS)
        scale, recent_scale = max(float(buyers.max(initial=0.0)), 1.0), max(float(recent.max(initial=0.0)), 1.0)
        self.item_features = {
            "popularity_recent": (recent / recent_scale).astype(np.float32),
            "popularity": (buyers / scale).astype(np.float32),
            "trend": np.log((recent / recent_scale + 0.01) / (buyers / scale + 0.01)).astype(np.float32),
        }
        # Smoothed towards ~20%: an item with two buyers says little about habits.
        self.repeat_rate = ((interactions.repeat_buyers() + 1.0) / (buyers + 5.0)).astype(np.float32)
        self._compile()
        return self

    def with_weights(self, weights: BlendWeights) -> Self:
        """Use new blend weights (the fitted parts stay)."""
        self.weights = weights
        self._compile()
        return self

    def _compile(self) -> None:
        w = self.weights.vector()
        self._personal_weights = w[: len(PERSONAL_FEATURES)]
        self._als_weight = np.float32(w[len(PERSONAL_FEATURES)])
        prior = np.full(len(self.catalogue), self.weights.intercept, dtype=np.float32)
        for name in ITEM_FEATURES:
            prior += np.float32(self.weights.coefficients.get(name, 0.0)) * self.item_features[name]
        self._prior = prior
        self._basket_weight = np.float32(self.weights.basket)
        # Every snapshot member's personal scores, once per weights: a request then only adds a slice.
        counts = self.counts
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        columns = self._personal_columns(
            counts.data, (self.as_of_day - self.last_day.data).astype(np.float32),
            self.member_baskets[rows], counts.indices,
        )
        self._snapshot_personal = (columns @ self._personal_weights).astype(np.float32)

    # --- scoring --------------------------------------------------------------------------------

    def history(self, member: MemberQuery) -> _History | None:
        """The member's purchases: from the training snapshot, else from live items, else None."""
        row = self.member_index.get(member.member_id) if member.member_id is not None else None
        if row is not None:
            lo, hi = self.counts.indptr[row], self.counts.indptr[row + 1]
            days = self.as_of_day - self.last_day.data[lo:hi]
            return _History(self.counts.indices[lo:hi], self.counts.data[lo:hi], days.astype(np.float32),
                            float(self.member_baskets[row]))
        if member.items:
            positions = np.unique(self.catalogue.positions(member.items))
            if len(positions):
                # Live state counts quantities, not baskets or dates: read it as one basket per item.
                return _History(positions, np.ones(len(positions), dtype=np.float32), None, float(len(positions)))
        return None

    def _personal(self, history: _History) -> np.ndarray:
        """The member's PERSONAL_FEATURES, one row per item they bought."""
        return self._personal_columns(history.counts, history.days_since, history.baskets, history.positions)

    def _personal_columns(
        self, counts: np.ndarray, days_since: np.ndarray | None, baskets: float | np.ndarray, positions: np.ndarray
    ) -> np.ndarray:
        """PERSONAL_FEATURES of (member, item) purchases: one formula for one member or the whole snapshot."""
        n = len(counts)
        baskets = np.maximum(np.asarray(baskets, dtype=np.float32), 1.0)
        recency = np.exp(-days_since / self.recency_days) if days_since is not None else np.zeros(n, dtype=np.float32)
        return np.column_stack([
            np.log1p(counts),
            counts / baskets,
            recency,
            np.ones(n, dtype=np.float32),
            self.repeat_rate[positions],
            np.broadcast_to(np.log(baskets), (n,)),
        ]).astype(np.float32)

    def feature_matrix(self, member: MemberQuery) -> np.ndarray:
        """All ``BLEND_FEATURES`` for every catalogue item (items x features), for fitting weights."""
        n = len(self.catalogue)
        matrix = np.zeros((n, len(BLEND_FEATURES)), dtype=np.float32)
        history = self.history(member)
        if history is not None:
            matrix[history.positions, : len(PERSONAL_FEATURES)] = self._personal(history)
        vector = self.als.member_vector(member)
        if vector is not None:
            matrix[:, len(PERSONAL_FEATURES)] = self.als.item_factors @ vector
        for j, name in enumerate(ITEM_FEATURES, start=len(PERSONAL_FEATURES) + 1):
            matrix[:, j] = self.item_features[name]
        return matrix

    def score_items(self, member: MemberQuery, basket: np.ndarray) -> np.ndarray:
        row = self.member_index.get(member.member_id) if member.member_id is not None else None
        if row is not None:  # the hot path: a member of the training snapshot
            scores = self.als.item_factors @ self.als.user_factors[row]
            scores *= self._als_weight
            scores += self._prior
            lo, hi = self.counts.indptr[row], self.counts.indptr[row + 1]
            scores[self.counts.indices[lo:hi]] += self._snapshot_personal[lo:hi]
        else:
            history = self.history(member)
            if history is None:
                scores = 1e-3 * self.cold.score_items(member, basket)
            else:
                scores = self._prior.copy()
                vector = self.als.member_vector(member)
                if vector is not None:
                    scores += self._als_weight * (self.als.item_factors @ vector)
                scores[history.positions] += self._personal(history) @ self._personal_weights
        if len(basket):
            scores += self._basket_weight * self.similarity.basket_scores(basket)
        return scores

    def explain(self, member: MemberQuery, positions: np.ndarray, basket: np.ndarray) -> list[str]:
        row = self.member_index.get(member.member_id) if member.member_id is not None else None
        if row is not None:
            bought_positions = self.counts.indices[self.counts.indptr[row]:self.counts.indptr[row + 1]]
        else:
            history = self.history(member)
            bought_positions = history.positions if history is not None else None
        known = bought_positions is not None
        bought = _contains_sorted(bought_positions, positions) if known else np.zeros(len(positions), dtype=bool)
        related = self.similarity.basket_scores(basket)[positions] > 0 if len(basket) else np.zeros(len(positions), dtype=bool)
        fallback = "members with similar purchases buy it"
        if not known and len(positions):
            fallback = self.cold.explain(member, positions[:1], basket)[0]
        return [
            "bought before" if was_bought else "goes with your basket" if goes_with else fallback
            for was_bought, goes_with in zip(bought.tolist(), related.tolist())
        ]

    def similar(self, skus: Sequence[str], k: int = 10) -> list[Recommendation]:
        """Basket completion from item-item similarity (see ``ItemSimilarity.similar``)."""
        return self.similarity.similar(skus, k)


# --- choosing the weights on a validation period ------------------------------------------------


def fit_blend_weights(
    model: BlendRecommender,
    truth: Mapping[str, set[str] | frozenset[str]],
    candidates: int = 50,
    max_members: int = 3000,
    seed: int = 0,
) -> BlendWeights:
    """Blend weights by logistic regression: did the member buy the item in the validation period?

    ``model`` is fitted on the history before the validation period; ``truth`` maps members to
    the items they bought in it. Rows are each member's own past items plus the ``candidates``
    best items by ALS and by recent popularity: the items the blend actually has to rank.
    """
    from sklearn.linear_model import LogisticRegression  # training only: keep it off the serving path

    rng = np.random.default_rng(seed)
    members = [m for m in truth if m in model.member_index]
    if len(members) > max_members:
        members = list(rng.choice(np.array(members, dtype=object), max_members, replace=False))
    rows, labels = [], []
    index = model.catalogue.index
    popular_first = np.argsort(-model.item_features["popularity_recent"], kind="stable")[:candidates]
    als_column = len(PERSONAL_FEATURES)
    for member_id in members:
        query = MemberQuery(member_id=member_id)
        matrix = model.feature_matrix(query)
        history = model.history(query)
        als_best = top_positions(matrix[:, als_column].copy(), candidates, exclude=np.zeros(0, dtype=np.int64))
        pool = np.unique(np.concatenate([history.positions if history else [], als_best, popular_first]).astype(np.int64))
        bought = {index[s] for s in truth[member_id] if s in index}
        rows.append(matrix[pool])
        labels.append(np.fromiter((i in bought for i in pool.tolist()), dtype=bool, count=len(pool)))
    if not rows:
        raise ValueError("no validation member is known to the model: cannot fit blend weights")
    x, y = np.vstack(rows), np.concatenate(labels)
    if y.all() or not y.any():
        raise ValueError("validation labels are all the same: cannot fit blend weights")
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    coefficients = {name: float(w) for name, w in zip(BLEND_FEATURES, regression.coef_[0])}
    return replace(model.weights, coefficients=coefficients, intercept=float(regression.intercept_[0]))


def choose_basket_weight(
    model: BlendRecommender,
    baskets: Sequence[tuple[str, Sequence[str]]],
    k: int = 10,
    grid: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The basket weight with the best basket-completion hit rate, and the rate of each weight tried.

    Each (member, basket) with two or more catalogue items hides one item at random; a hit is the
    hidden item in the top ``k`` recommended for the member and the rest of the basket.
    """
    from recommender.evaluation import basket_completion_cases, basket_completion_hit_rate

    cases = basket_completion_cases(baskets, model.catalogue, seed=seed)
    rates = {}
    original = model.weights
    for weight in grid:
        model.with_weights(replace(original, basket=weight))
        rates[weight] = basket_completion_hit_rate(model, cases, k)
    best = max(grid, key=lambda w: (rates[w], -w))
    model.with_weights(replace(original, basket=best))
    return best, rates


def _contains_sorted(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Which ``queries`` are in ``sorted_values`` (a CSR row's sorted columns); cheaper than np.isin for a few."""
    if not len(sorted_values):
        return np.zeros(len(queries), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, queries), len(sorted_values) - 1)
    return sorted_values[at] == queries
