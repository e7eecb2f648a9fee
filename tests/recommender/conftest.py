"""Fitted recommenders on a real Online Retail sample, shared by the recommender specifications."""

from __future__ import annotations

import pandas as pd
import pytest

from recommender import (
    ALSParams,
    ALSRecommender,
    BlendRecommender,
    Interactions,
    ItemSimilarity,
    PopularRecommender,
    Recommender,
    RepeatPurchaseRecommender,
)
from tests.recommender.datasets import RETAIL_TEST_FROM, online_retail_sample

SMALL_ALS = ALSParams(factors=16, regularization=1.0, iterations=8)


@pytest.fixture(scope="session")
def retail_lines() -> pd.DataFrame:
    return online_retail_sample()


@pytest.fixture(scope="session")
def retail_interactions(retail_lines: pd.DataFrame) -> Interactions:
    return Interactions.from_transactions(retail_lines, as_of=RETAIL_TEST_FROM)


@pytest.fixture(scope="session")
def fitted(retail_interactions: Interactions) -> dict[str, Recommender]:
    """Every implementation of the interface, fitted on the same history."""
    return {
        "blend": BlendRecommender(SMALL_ALS).fit(retail_interactions),
        "als": ALSRecommender(SMALL_ALS).fit(retail_interactions),
        "item-item": ItemSimilarity().fit(retail_interactions),
        "popular": PopularRecommender().fit(retail_interactions),
        "popular-by-store": PopularRecommender(by_store=True).fit(retail_interactions),
        "repeat": RepeatPurchaseRecommender().fit(retail_interactions),
    }
