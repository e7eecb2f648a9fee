"""The recommender contract, checked against every implementation (blend, ALS, item-item, baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import (
    NON_PRODUCT_CODES,
    BlendRecommender,
    Catalogue,
    Interactions,
    MemberQuery,
    Recommender,
    load_recommender,
    save_recommender,
)
from recommender.blend import BLEND_FEATURES
from tests.recommender.datasets import synthetic_shop

MODELS = ("blend", "als", "item-item", "popular", "popular-by-store", "repeat")


def _members(interactions: Interactions, n: int = 25) -> list[str]:
    return [str(m) for m in interactions.members[:: max(1, len(interactions.members) // n)][:n]]


@pytest.mark.parametrize("name", MODELS)
def test_basket_items_are_never_recommended(name: str, fitted: dict[str, Recommender], retail_interactions: Interactions):
    model = fitted[name]
    rng = np.random.default_rng(0)
    counts = retail_interactions.counts
    for member in _members(retail_interactions):
        row = retail_interactions.member_index[member]
        own = counts.indices[counts.indptr[row]:counts.indptr[row + 1]]
        # The member's own favourites are the items most tempting to recommend again: put them in the basket.
        basket = list(model.catalogue.skus[own[:5]]) + list(rng.choice(model.catalogue.skus, 5, replace=False))
        recommended = [r.sku for r in model.recommend(member, basket, k=20)]
        assert not set(recommended) & set(basket)
        assert len(recommended) == len(set(recommended)) == 20


@pytest.mark.parametrize("name", MODELS)
def test_only_catalogue_items_are_recommended(name: str, fitted: dict[str, Recommender], retail_lines):
    model = fitted[name]
    present_non_products = set(retail_lines["sku"]) & NON_PRODUCT_CODES
    assert present_non_products, "the sample should contain postage and other non-product lines"
    for member in ["12347", "unknown-member", None]:
        recommended = {r.sku for r in model.recommend(member, ["POST", "85123A"], k=len(model.catalogue) + 5)}
        assert recommended <= set(model.catalogue.skus)
        assert not recommended & NON_PRODUCT_CODES


@pytest.mark.parametrize("name", MODELS)
def test_recommendations_come_best_first(name: str, fitted: dict[str, Recommender], retail_interactions: Interactions):
    model = fitted[name]
    for member in _members(retail_interactions, 5):
        scores = [r.score for r in model.recommend(member, (), k=10)]
        assert scores == sorted(scores, reverse=True)
        assert all(r.reason for r in model.recommend(member, (), k=3))


def test_non_product_codes_are_not_in_the_catalogue():
    catalogue = Catalogue.from_skus(["85123A", "POST", "M", "C2", "DOT", "BANK CHARGES", "PADS", "gift_0001_10", "22423"])
    assert list(catalogue.skus) == ["22423", "85123A"]
    assert "POST" not in catalogue


def test_member_without_history_gets_their_store_favourites(fitted: dict[str, Recommender], retail_lines):
    blend = fitted["blend"]
    store = retail_lines["store_id"].value_counts().index[1]  # not the largest country: differs from overall
    favourites = fitted["popular-by-store"].recommend(MemberQuery(store=store), (), k=5)
    cold = blend.recommend(MemberQuery(member_id="never-seen", store=store), (), k=5)
    assert [r.sku for r in cold] == [r.sku for r in favourites]
    assert all(r.reason == f"popular in store {store}" for r in cold)


def test_basket_completion_suggests_items_bought_together():
    shop = synthetic_shop()
    interactions = Interactions.from_transactions(shop.transactions)
    blend = BlendRecommender().fit(interactions)
    pairs = shop.truth.complements
    pairs = pairs[pairs["sku"].isin(interactions.catalogue.index) & pairs["complement_sku"].isin(interactions.catalogue.index)]
    hits = [row.complement_sku in {r.sku for r in blend.similar([row.sku], k=10)} for row in pairs.head(40).itertuples()]
    assert np.mean(hits) >= 0.5, f"complements found for only {np.mean(hits):.0%} of 'milk -> bread' pairs"
    anonymous = blend.recommend(None, basket=[pairs["sku"].iloc[0]], k=10)
    assert anonymous[0].reason == "goes with your basket"


def test_a_member_unknown_to_the_model_is_personalised_from_live_purchases(fitted: dict[str, Recommender]):
    blend = fitted["blend"]
    counts = blend.counts
    row = int(np.argmax(np.diff(counts.indptr)))  # a member with a long history
    own = blend.catalogue.skus[counts.indices[counts.indptr[row]:counts.indptr[row + 1]]]
    live = MemberQuery(member_id="joined-after-training", items={sku: 3.0 for sku in own})
    cold = [r.sku for r in blend.recommend(MemberQuery(member_id="joined-after-training"), (), k=10)]
    personal = [r.sku for r in blend.recommend(live, (), k=10)]
    assert personal != cold
    assert set(personal) & set(own)
    folded = blend.als.member_vector(live)
    trained = blend.als.user_factors[row]
    correlation = np.corrcoef(blend.als.item_factors @ folded, blend.als.item_factors @ trained)[0, 1]
    assert correlation > 0.8, f"folded-in member scores correlate only {correlation:.2f} with the trained ones"


def test_fast_scores_equal_the_blend_of_its_features(fitted: dict[str, Recommender], retail_interactions: Interactions):
    blend = fitted["blend"]
    assert isinstance(blend, BlendRecommender)
    weights = blend.weights.vector()
    empty = np.zeros(0, dtype=np.int64)
    for member in _members(retail_interactions, 10):
        query = MemberQuery(member_id=member)
        expected = blend.feature_matrix(query) @ weights + blend.weights.intercept
        np.testing.assert_allclose(blend.score_items(query, empty), expected, rtol=1e-4, atol=1e-4)
    assert len(weights) == len(BLEND_FEATURES)


def test_a_saved_model_recommends_exactly_the_same(fitted: dict[str, Recommender], retail_interactions, tmp_path):
    blend = fitted["blend"]
    loaded = load_recommender(save_recommender(blend, tmp_path / "model"))
    for member in [*_members(retail_interactions, 10), "never-seen"]:
        for basket in ((), ("85123A", "22423")):
            assert loaded.recommend(member, basket, 10) == blend.recommend(member, basket, 10)
    live = MemberQuery(items={"85123A": 1.0, "22423": 2.0})
    assert [r.sku for r in loaded.recommend(live, (), 10)] == [r.sku for r in blend.recommend(live, (), 10)]


def test_recommender_imports_neither_training_nor_serving():
    import subprocess
    import sys

    code = "import sys, recommender; print(sorted({m.split('.')[0] for m in sys.modules} & {'training', 'serving', 'mlflow'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
