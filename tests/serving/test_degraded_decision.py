"""The checkout decision built from its named collaborators: when the models fail it still answers, degraded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pytest
import redis
from prometheus_client import REGISTRY

from engine.coupons import CouponLedger
from engine.feature_store import FeatureStore
from engine.programme import Programme
from engine.redis_server import free_port
from engine.rules import RuleLimits, RuleRuntime, in_holdout
from engine.settings import Settings
from serving.auth import ApiKey
from serving.next_best_offer import NextBestOffer
from serving.schemas import ChurnOut, OfferRequest
from tests.helpers.clock import NOW
from tests.helpers.paths import REPO
from training.champions import ModelUnavailable

POS = ApiKey(key_id="till-key", role="pos")


class FailingModels:
    """Champions that fail when asked (a corrupt artifact, a model that cannot score): the decision's own
    collaborator failing, which is the behaviour under test."""

    versions = {"churn": "7", "recommender": "3"}

    def score_churn(self, features: Mapping[str, object]) -> float:
        raise ModelUnavailable("the churn model could not score")

    def score_member(self, features: Mapping[str, object]) -> object:
        raise ModelUnavailable("the churn, lifetime-value and response models could not score")

    def recommend(self, member: object, basket: Sequence[str] = (), k: int = 10) -> list:
        raise ModelUnavailable("the recommender could not rank")


def decision(client: redis.Redis, programme: Programme, now: datetime = NOW) -> NextBestOffer:
    """The decision wired as ``Services.build`` wires it, over ``client``, with the shipped rules."""
    store = FeatureStore(client, programme, clock=lambda: now)
    rules = RuleRuntime(REPO / "rules", programme.tz)
    assert rules.reload().ok
    return NextBestOffer(client=client, store=store, programme=programme, models=FailingModels(), rules=rules,
                         limits=RuleLimits(client, programme.tz), coupons=CouponLedger(client, clock=lambda: now,
                                                                                        store=store),
                         catalogue={}, arbitration=programme.settings.arbitration, clock=lambda: now)


def checkout(member_id: str, request_id: str = "till-1") -> OfferRequest:
    return OfferRequest(request_id=request_id, member_id=member_id, store_id="S001", channel="pos",
                        basket=[{"sku": "SKU00001", "qty": 2, "price": 15.0}])


def degraded(why: str) -> float:
    return REGISTRY.get_sample_value("nbo_degraded_answers_total", {"why": why}) or 0.0


@pytest.fixture
def programme(settings: Settings) -> Programme:
    return Programme.from_settings(settings)


def test_with_no_redis_and_failing_models_the_answer_is_degraded_not_an_error(programme: Programme) -> None:
    nowhere = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2,
                          decode_responses=True)  # nothing listens there: no Redis at all
    before = {why: degraded(why) for why in ("redis", "recommender", "churn_model")}
    answer = decision(nowhere, programme).answer(checkout("M1"), POS)
    assert answer.degraded is True
    assert answer.offers == [] and answer.holdout == [] and answer.notes == ["no offers: the feature store is unavailable"]
    assert answer.recommendations == []  # the recommender failed too: no popular items to fall back on
    assert answer.churn.probability is None and answer.model_versions == FailingModels.versions
    assert {why: degraded(why) - before[why] for why in before} == {"redis": 1, "recommender": 1, "churn_model": 0}


def test_a_failing_churn_model_falls_back_to_the_batch_score_and_offers_are_still_made(
    redis_client: redis.Redis, programme: Programme
) -> None:
    member = next(f"N{i}" for i in range(1000) if not in_holdout("new-member-first-order", f"N{i}", 0.05))
    made = decision(redis_client, programme)
    assert made.store.ingest([{"event_id": f"reg-{member}", "type": "register", "member_id": member,
                               "ts": "2026-02-20T10:00:00", "store_id": "S001"}]).accepted == 1
    made.store.write_profile_values({member: {"churn_p": 0.42, "churn_v": "6"}})
    answer = made.answer(checkout(member), POS)
    assert answer.degraded is True
    assert answer.churn == ChurnOut(probability=0.42, model_version=None)  # last night's score, not the failing model's
    assert answer.recommendations == []
    assert [(o.rule_id, o.kind) for o in answer.offers] == [("new-member-first-order", "coupon")]
