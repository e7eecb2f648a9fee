"""Saving a fitted blend to a folder and loading it back: numpy arrays and JSON, no pickle.

A saved model is plain data (``arrays.npz`` + ``model.json``), so it loads in any process
without importing the training code, and loading it cannot execute anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.als import BM25, ALSParams, ALSRecommender
from recommender.baselines import PopularRecommender
from recommender.blend import BlendRecommender, BlendWeights
from recommender.catalogue import Catalogue
from recommender.interactions import Interactions
from recommender.similarity import ItemSimilarity

FORMAT = "nbo-blend-recommender/1"
ARRAYS, META = "arrays.npz", "model.json"


def save_recommender(model: BlendRecommender, path: str | Path) -> Path:
    """Write a fitted blend to the folder ``path`` (created); returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    counts, last_day = model.counts.tocsr(), model.last_day.tocsr()
    counts.sort_indices()
    last_day.sort_indices()
    if not (np.array_equal(counts.indptr, last_day.indptr) and np.array_equal(counts.indices, last_day.indices)):
        raise ValueError("counts and last purchase days must hold the same (member, item) pairs")
    np.savez_compressed(
        folder / ARRAYS,
        skus=np.array(model.catalogue.skus.tolist(), dtype=str),
        members=np.array(model.members.tolist(), dtype=str),
        member_store=np.array(model.member_store.tolist(), dtype=str),
        member_baskets=model.member_baskets,
        indptr=counts.indptr,
        indices=counts.indices,
        counts=counts.data,
        last_day=last_day.data,
        user_factors=model.als.user_factors,
        item_factors=model.als.item_factors,
        bm25_idf=model.als.bm25.idf,
        neighbour_positions=model.similarity.neighbour_positions,
        neighbour_scores=model.similarity.neighbour_scores,
    )
    meta = {
        "format": FORMAT,
        "as_of_day": int(model.as_of_day),
        "als_params": model.als_params.as_dict(),
        "weights": {
            "coefficients": dict(model.weights.coefficients),
            "intercept": model.weights.intercept,
            "basket": model.weights.basket,
        },
        "recency_days": model.recency_days,
        "neighbours": model.neighbours,
        "bm25_average_length": model.als.bm25.average_length,
        "n_members": len(model.members),
        "n_items": len(model.catalogue),
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return folder


def load_recommender(path: str | Path) -> BlendRecommender:
    """Load a blend saved by ``save_recommender``."""
    folder = Path(path)
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: not a saved blend recommender (format {meta.get('format')!r}, expected {FORMAT!r})")
    with np.load(folder / ARRAYS, allow_pickle=False) as arrays:
        data = {name: arrays[name] for name in arrays.files}
    catalogue = Catalogue(skus=data["skus"].astype(object), index={s: i for i, s in enumerate(data["skus"].tolist())})
    shape = (len(data["members"]), len(catalogue))
    counts = sp.csr_matrix((data["counts"], data["indices"], data["indptr"]), shape=shape)
    interactions = Interactions(
        catalogue=catalogue,
        members=data["members"].astype(object),
        counts=counts,
        last_day=sp.csr_matrix((data["last_day"], data["indices"], data["indptr"]), shape=shape),
        baskets=sp.csr_matrix((0, len(catalogue)), dtype=np.float32),
        basket_member=np.zeros(0, dtype=np.int64),
        basket_day=np.zeros(0, dtype=np.int64),
        member_baskets=data["member_baskets"],
        member_store=data["member_store"].astype(object),
        as_of_day=int(meta["as_of_day"]),
    )
    als_params = ALSParams(**meta["als_params"])
    bm25 = BM25(idf=data["bm25_idf"], average_length=float(meta["bm25_average_length"]),
                k1=als_params.bm25_k1, b=als_params.bm25_b)
    als = ALSRecommender(als_params).restore(interactions, bm25, data["user_factors"], data["item_factors"])
    similarity = ItemSimilarity(meta["neighbours"]).restore(
        interactions, data["neighbour_positions"], data["neighbour_scores"]
    )
    cold = PopularRecommender(by_store=True).fit(interactions)
    weights = BlendWeights(**meta["weights"])
    model = BlendRecommender(als_params, weights, recency_days=meta["recency_days"], neighbours=meta["neighbours"])
    return model.assemble(interactions, als, similarity, cold)


def describe(model: BlendRecommender) -> dict[str, object]:
    """Plain facts about a fitted blend, for run parameters and ``nbo models list``."""
    return {
        "n_members": len(model.members),
        "n_items": len(model.catalogue),
        **{f"als_{k}": v for k, v in asdict(model.als_params).items()},
        "recency_days": model.recency_days,
        "basket_weight": model.weights.basket,
    }
