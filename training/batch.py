"""Batch scoring: every member's churn probability, lifetime value and top-N recommendations into the store.

It reads each member's state from the store and scores it with the very calls serving makes
(``member_features`` -> ``ChampionModels.score_churn``, ``ChampionModels.recommend``), so a batch
score and an online score of the same member in the same state are the same number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from engine.calendar import day_number
from engine.feature_store import FeatureStore
from engine.features import member_features
from training.champions import ChampionModels


@dataclass
class BatchScoringResult:
    """How many members were scored, by which model versions, in how long."""

    members: int = 0
    churn_scored: int = 0
    ltv_scored: int = 0
    recommended: int = 0
    versions: dict[str, str | None] = field(default_factory=dict)
    seconds: float = 0.0


def score_members(
    store: FeatureStore,
    models: ChampionModels,
    top_n: int = 10,
    as_of: datetime | None = None,
    member_ids: Iterable[str] | None = None,
    chunk_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> BatchScoringResult:
    """Score every stored member (or ``member_ids``) as of ``as_of`` (default: the store's clock).

    Writes ``churn_p`` / ``churn_v`` / ``churn_day`` and ``ltv`` / ``ltv_v`` / ``ltv_day`` into each
    profile and the top ``top_n`` recommendations under ``m:{id}:r``; a model with no champion is skipped.
    """
    start = time.perf_counter()
    versions = models.versions
    churn_version = versions.get("churn")
    recommender_version = versions.get("recommender")
    ltv_version = versions.get("ltv")
    result = BatchScoringResult(versions=dict(versions))
    ids = member_ids if member_ids is not None else store.member_ids()
    for chunk in _chunks(ids, chunk_size):
        states = store.read_states(chunk)
        now = as_of or store.clock()
        today = day_number(store.programme.local(now).date()) if isinstance(now, datetime) else day_number(now)
        profiles: dict[str, dict[str, object]] = {}
        recommendations: dict[str, list[tuple]] = {}
        for member_id, state in states.items():
            if state is None:
                continue
            result.members += 1
            if churn_version is not None or ltv_version is not None:
                scores = models.score_member(member_features(state, now, store.programme))
                values: dict[str, object] = {}
                if scores.churn is not None:
                    values.update({"churn_p": scores.churn, "churn_v": churn_version, "churn_day": today})
                    result.churn_scored += 1
                if scores.ltv is not None:
                    values.update({"ltv": round(scores.ltv, 2), "ltv_v": ltv_version, "ltv_day": today})
                    result.ltv_scored += 1
                profiles[member_id] = values
            if recommender_version is not None:
                recommendations[member_id] = [(r.sku, r.score, r.reason) for r in models.recommend(state, (), top_n)]
        if profiles:
            store.write_profile_values(profiles)
        if recommendations:
            store.write_recommendations(recommendations, model_version=recommender_version)
            result.recommended += len(recommendations)
        if on_progress:
            on_progress(len(chunk))
    result.seconds = time.perf_counter() - start
    return result


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(ids)
    while chunk := list(islice(iterator, size)):
        yield chunk
