"""Recommenders behind one small interface: ``fit``, ``recommend(member, basket, k)``, ``similar(skus, k)``.

``BlendRecommender`` serves (personal repeat purchase + ALS, basket completion, store cold start);
``ALSRecommender``, ``ItemSimilarity``, ``PopularRecommender`` and ``RepeatPurchaseRecommender``
are its parts and the baselines it is measured against, evaluated alike by ``evaluate_ranking``.
This package imports neither ``training`` nor ``serving``.
"""

from recommender.als import ALSParams, ALSRecommender
from recommender.base import Member, MemberQuery, Recommendation, Recommender
from recommender.baselines import PopularRecommender, RepeatPurchaseRecommender
from recommender.blend import BLEND_FEATURES, BlendRecommender, BlendWeights, choose_basket_weight, fit_blend_weights
from recommender.catalogue import NON_PRODUCT_CODES, Catalogue, is_product
from recommender.evaluation import (
    RankingReport,
    basket_completion_cases,
    basket_completion_hit_rate,
    baskets_of,
    evaluate_ranking,
    holdout_truth,
    paired_difference,
)
from recommender.interactions import Interactions
from recommender.similarity import ItemSimilarity
from recommender.storage import load_recommender, save_recommender

__all__ = [
    "ALSParams", "ALSRecommender", "BLEND_FEATURES", "BlendRecommender", "BlendWeights", "Catalogue",
    "Interactions", "ItemSimilarity", "Member", "MemberQuery", "NON_PRODUCT_CODES", "PopularRecommender",
    "RankingReport", "Recommendation", "Recommender", "RepeatPurchaseRecommender", "basket_completion_cases",
    "basket_completion_hit_rate", "baskets_of", "choose_basket_weight", "evaluate_ranking", "fit_blend_weights",
    "holdout_truth", "is_product", "load_recommender", "paired_difference", "save_recommender",
]
