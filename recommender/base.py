"""The one interface every recommender fills in: ``fit``, ``recommend(member, basket, k)``, ``similar``.

A model only says how much it likes each catalogue item for a member (``score_items``); this base
class turns scores into recommendations the same way for every model, which is where the two
promises are kept: nothing in the basket and nothing outside the catalogue is ever returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np

from recommender.catalogue import Catalogue
from recommender.interactions import Interactions


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended item, its score (higher is better, comparable within one answer) and why."""

    sku: str
    score: float
    reason: str


@dataclass(frozen=True)
class MemberQuery:
    """Who is asking.

    ``member_id`` finds the member's history in the model's training snapshot; ``items`` (item ->
    quantity bought, e.g. the live feature store's ``MemberState.items``) is used for a member the
    snapshot does not know; ``store`` picks the store's popular items for a member with no history.
    """

    member_id: str | None = None
    items: Mapping[str, float] | None = None
    store: str | None = None


Member = str | MemberQuery | None
"""A member id, a full query, or None for an anonymous shopper."""


def as_query(member: Member) -> MemberQuery:
    """The query for a member id, a query, or nobody."""
    if member is None:
        return MemberQuery()
    if isinstance(member, MemberQuery):
        return member
    return MemberQuery(member_id=str(member))


class Recommender(ABC):
    """Scores catalogue items for a member and a basket; ranking and exclusions are shared."""

    name: str = "recommender"
    catalogue: Catalogue

    @abstractmethod
    def fit(self, interactions: Interactions) -> Self:
        """Learn from purchase history; returns self."""

    @abstractmethod
    def score_items(self, member: MemberQuery, basket: np.ndarray) -> np.ndarray:
        """A float score per catalogue item (a fresh array the caller may modify)."""

    def explain(self, member: MemberQuery, positions: np.ndarray, basket: np.ndarray) -> list[str]:
        """Why each item at ``positions`` was recommended (models override with their own words)."""
        return [self.name] * len(positions)

    def recommend(self, member: Member, basket: Sequence[str] = (), k: int = 10) -> list[Recommendation]:
        """The ``k`` best catalogue items for ``member``, never one already in ``basket``."""
        query = as_query(member)
        in_basket = self.catalogue.positions(basket)
        scores = self.score_items(query, in_basket)
        top = top_positions(scores, k, exclude=in_basket)
        reasons = self.explain(query, top, in_basket)
        skus = self.catalogue.skus
        return [Recommendation(skus[i], float(scores[i]), reason) for i, reason in zip(top, reasons)]

    def recommend_positions(self, member: Member, k: int = 10) -> np.ndarray:
        """Catalogue positions of the top ``k`` with an empty basket (what offline evaluation ranks)."""
        empty = np.zeros(0, dtype=np.int64)
        return top_positions(self.score_items(as_query(member), empty), k, exclude=empty)

    def similar(self, skus: Sequence[str], k: int = 10) -> list[Recommendation]:
        """Items that go with ``skus`` (basket completion for an anonymous shopper)."""
        return self.recommend(None, basket=skus, k=k)


def top_positions(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` highest finite scores, best first, skipping ``exclude``.

    ``scores`` is modified (excluded items are set to -inf): callers pass a fresh array.
    """
    if len(exclude):
        scores[exclude] = -np.inf
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        top = np.argpartition(scores, n - k)[n - k:]  # no negated copy of the whole catalogue
    else:
        top = np.arange(n)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[np.isfinite(scores[top])]
