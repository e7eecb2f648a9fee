"""Item-item similarity from baskets, for basket completion ("bought milk, suggest bread").

Two items are similar when they are bought in the same baskets (cosine of their basket
co-occurrence), which is what "goes with" means at a till; items bought by the same members at
different times are ALS's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp

from recommender.base import MemberQuery, Recommendation, Recommender, top_positions
from recommender.interactions import Interactions

_ROWS_PER_CHUNK = 2048  # items per block of the co-occurrence product: bounds memory on big catalogues


class ItemSimilarity(Recommender):
    """Each item's ``neighbours`` most co-purchased items (cosine over baskets).

    As a recommender it scores items by similarity to the basket, or with an empty basket to the
    member's past purchases (item-kNN), and falls back to popularity.
    """

    name = "item-item"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours

    def fit(self, interactions: Interactions) -> Self:
        return self.restore(interactions, *_top_cosine(interactions.baskets, self.neighbours))

    def restore(self, interactions: Interactions, positions: np.ndarray, scores: np.ndarray) -> Self:
        """Install neighbour lists for the items of ``interactions`` (fit, or loading a saved model)."""
        self.catalogue = interactions.catalogue
        self.counts = interactions.counts
        self.member_index = interactions.member_index
        buyers = interactions.buyers()
        self.popularity = (buyers / max(float(buyers.max(initial=0.0)), 1.0)).astype(np.float32)
        self.neighbour_positions = np.ascontiguousarray(positions, dtype=np.int32)
        self.neighbour_scores = np.ascontiguousarray(scores, dtype=np.float32)
        return self

    def basket_scores(self, basket: np.ndarray) -> np.ndarray:
        """Sum of the basket items' similarities to every catalogue item (0 where unrelated)."""
        scores = np.zeros(len(self.catalogue), dtype=np.float32)
        if len(basket):
            np.add.at(scores, self.neighbour_positions[basket].ravel(), self.neighbour_scores[basket].ravel())
        return scores

    def score_items(self, member: MemberQuery, basket: np.ndarray) -> np.ndarray:
        if not len(basket):
            row = self.member_index.get(member.member_id) if member.member_id is not None else None
            if row is not None:
                basket = self.counts.indices[self.counts.indptr[row]:self.counts.indptr[row + 1]]
            elif member.items:
                basket = self.catalogue.positions(member.items)
        # Popularity, scaled far below any similarity, orders items unrelated to the basket.
        return self.basket_scores(basket) + 1e-3 * self.popularity

    def similar(self, skus: Sequence[str], k: int = 10) -> list[Recommendation]:
        """The ``k`` items most co-purchased with ``skus`` (never one of ``skus``)."""
        positions = self.catalogue.positions(skus)
        scores = self.basket_scores(positions)
        scores[scores <= 0] = -np.inf  # only items actually bought together
        top = top_positions(scores, k, exclude=positions)
        return [Recommendation(self.catalogue.skus[i], float(scores[i]), "often bought together") for i in top]

    def explain(self, member: MemberQuery, positions: np.ndarray, basket: np.ndarray) -> list[str]:
        return ["often bought together" if len(basket) else "like items you bought"] * len(positions)


def _top_cosine(baskets: sp.csr_matrix, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the positions and cosine similarities of its ``neighbours`` nearest items (padded with 0)."""
    n_items = baskets.shape[1]
    k = max(0, min(neighbours, n_items - 1))
    positions = np.zeros((n_items, k), dtype=np.int32)
    scores = np.zeros((n_items, k), dtype=np.float32)
    if k == 0:
        return positions, scores
    by_item = baskets.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    scale = sp.diags(1.0 / norms)
    normalised = (scale @ by_item).tocsr()
    for start in range(0, n_items, _ROWS_PER_CHUNK):
        block = (normalised[start:start + _ROWS_PER_CHUNK] @ normalised.T).tocsr()
        for offset in range(block.shape[0]):
            item = start + offset
            lo, hi = block.indptr[offset], block.indptr[offset + 1]
            cols, values = block.indices[lo:hi], block.data[lo:hi]
            mask = cols != item
            cols, values = cols[mask], values[mask]
            if len(cols) > k:
                keep = np.argpartition(-values, k - 1)[:k]
                cols, values = cols[keep], values[keep]
            order = np.argsort(-values, kind="stable")
            positions[item, :len(order)] = cols[order]
            scores[item, :len(order)] = values[order]
    return positions, scores
