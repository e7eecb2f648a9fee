"""The checkout decision: features, models, rules, arbitration, limits and coupons for one request.

    features (1 Redis round trip) -> churn score -> recommendations -> checkout rules
      -> arbitration (consent, exclusivity, score) -> holdouts, caps and budgets (atomic, Redis)
      -> coupons issued once per (request, rule) -> the answer, remembered per request_id

If Redis is away the answer is still made, within budget: ``degraded``, popular items of the
store, no coupons (nothing can be reserved or recorded). A missing model degrades the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import redis
from prometheus_client import Counter

from engine import measurement
from engine.arbitration import NO_OUTLOOK, Candidate, Outlook, Ranked, Response, arbitrate
from engine.clock import Clock
from engine.coupons import CouponLedger
from engine.feature_store import FeatureStore
from engine.features import member_features
from engine.keys import ANSWER_TTL_SECONDS, answer_key
from engine.member_state import MemberState
from engine.programme import Programme
from engine.redis_circuit import REDIS_DOWN
from engine.rules import BasketLine, RequestContext, RuleLimits, RuleRuntime, action_body, action_kind
from engine.settings import ArbitrationRules
from serving.auth import ApiKey, OutOfScope
from serving.schemas import ChurnOut, CouponOut, OfferOut, OfferRequest, OfferResponse, RecommendationOut
from training.champions import ChampionModels, MemberScores, ModelUnavailable

log = logging.getLogger(__name__)

OFFERS_MADE = Counter("nbo_offers_total", "offers made at checkout, by rule and kind", ["rule", "kind"])
DEGRADED = Counter("nbo_degraded_answers_total", "answers made without the feature store or a model", ["why"])
RECOMMENDATIONS = 5
RANKED_FOR_RULES = 50


@dataclass
class _Member:
    state: MemberState | None
    features: dict
    degraded: list[str]
    ranked: list = field(default_factory=list)
    """The recommender's best items for this member and basket (best first), scored once per request."""
    scores: MemberScores = field(default_factory=MemberScores)
    """Churn, lifetime value and response, scored once per request from one input row."""


class NextBestOffer:
    """Answers ``POST /v1/next-best-offer``; owns no state, only the collaborators it is handed
    (``serving.services.Services.build`` wires the real ones)."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        store: FeatureStore,
        programme: Programme,
        models: ChampionModels,
        rules: RuleRuntime,
        limits: RuleLimits,
        coupons: CouponLedger,
        catalogue: Mapping[str, str],
        arbitration: ArbitrationRules,
        clock: Clock,
    ) -> None:
        self.redis = client
        self.store = store
        self.programme = programme
        self.models = models
        self.rules = rules
        self.limits = limits
        self.coupons = coupons
        self.catalogue = catalogue
        """sku -> category: basket lines' categories for the rules, category recommendations."""
        self.arbitration = arbitration
        self.clock = clock

    def answer(self, request: OfferRequest, key: ApiKey) -> OfferResponse:
        """The answer for this checkout; the same ``request_id`` returns the same answer."""
        if key.scope is not None and key.scope.startswith("store:") and not key.covers(None, request.store_id):
            raise OutOfScope(f"this key is for {key.scope}; the request is for store {request.store_id}")
        now = request.ts or self.clock()
        member, remembered = self._member(request, now)
        if key.scope is not None and key.scope.startswith("region:") and member.state is not None:
            if not key.covers(member.state.profile.get("region"), None):
                raise OutOfScope(f"member {request.member_id!r} is outside this key's scope {key.scope}")
        if remembered is not None:
            return remembered
        churn = self._churn(member)
        recommendations = self._recommendations(request, member)
        offers, holdout, notes = ([], [], ["no offers: the feature store is unavailable"]) if "redis" in member.degraded \
            else self._offers(request, member, churn, now, key)
        response = OfferResponse(
            request_id=request.request_id, member_id=request.member_id, offers=offers,
            recommendations=recommendations, churn=churn, model_versions=self.models.versions,
            degraded=bool(member.degraded), holdout=holdout, notes=notes,
        )
        if "redis" not in member.degraded:
            self._remember(request, response, now)
        return response

    # --- the steps ---------------------------------------------------------------------------

    def _remember(self, request: OfferRequest, response: OfferResponse, now: datetime) -> None:
        """Keep the answer for retries and record who each rule reached or held out (for lift), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(answer_key(request.member_id, request.request_id), response.model_dump_json(), ex=ANSWER_TTL_SECONDS)
        day = self.programme.day_of(now)
        for rule_id in dict.fromkeys(offer.rule_id for offer in response.offers):
            measurement.record_exposures(pipe, rule_id, day, treatment=[request.member_id])
        for rule_id in response.holdout:
            measurement.record_exposures(pipe, rule_id, day, holdout=[request.member_id])
        try:
            pipe.execute()
        except REDIS_DOWN:
            log.warning("could not remember an answer", extra={"request_id": request.request_id})

    def _member(self, request: OfferRequest, now: datetime) -> tuple[_Member, OfferResponse | None]:
        """The member's state and features, and the answer already given to this request, in one round trip."""
        try:
            state, raw = self.store.read_state_and(request.member_id, answer_key(request.member_id, request.request_id))
        except REDIS_DOWN:
            DEGRADED.labels("redis").inc()
            return _Member(None, member_features(None, now, self.programme), ["redis"]), None
        if raw:
            return _Member(state, {}, []), OfferResponse.model_validate_json(raw)
        return _Member(state, member_features(state, now, self.programme), []), None

    def _churn(self, member: _Member) -> ChurnOut:
        version = self.models.versions.get("churn")
        if member.state is None:
            return ChurnOut(probability=None, model_version=version)
        try:
            member.scores = self.models.score_member(member.features)
        except ModelUnavailable:  # a champion that cannot score: answer as without it
            member.scores = MemberScores()
        if member.scores.churn is None:
            DEGRADED.labels("churn_model").inc()
            member.degraded.append("churn_model")
            return ChurnOut(probability=member.features.get("churn_probability"), model_version=None)
        return ChurnOut(probability=round(member.scores.churn, 4), model_version=version)

    def _outlook(self, member: _Member, features: dict) -> Outlook:
        """What the models expect of the member, for arbitration; ``ltv`` goes into the features rules read."""
        scores = member.scores
        if scores.ltv is not None:
            features["ltv"] = round(scores.ltv, 2)
            features["ltv_model_version"] = self.models.versions.get("ltv")
        if scores.ltv is None and scores.response is None:
            return NO_OUTLOOK
        response = scores.response
        return Outlook(ltv=scores.ltv, ltv_horizon_days=scores.ltv_horizon_days,
                       response=Response(response.redeem, response.uplift, response.version or "local")
                       if response is not None else None)

    def _recommendations(self, request: OfferRequest, member: _Member) -> list[RecommendationOut]:
        basket = [line.sku for line in request.basket]
        who = member.state if member.state is not None else request.member_id
        try:
            # Deeper than the answer's list: category recommendations of the rules pick from it too.
            member.ranked = self.models.recommend(who, basket, RANKED_FOR_RULES)
        except ModelUnavailable:
            DEGRADED.labels("recommender").inc()
            member.degraded.append("recommender")
            return []
        return [RecommendationOut(sku=r.sku, score=round(float(r.score), 4), reason=r.reason)
                for r in member.ranked[:RECOMMENDATIONS]]

    def _offers(self, request: OfferRequest, member: _Member, churn: ChurnOut, now: datetime,
                key: ApiKey) -> tuple[list[OfferOut], list[str], list[str]]:
        """Rules -> arbitration -> holdouts and limits -> coupons; returns (offers, holdout, notes)."""
        features = dict(member.features)
        if churn.probability is not None:
            features["churn_probability"] = churn.probability
        outlook = self._outlook(member, features)
        candidates, holdout = self._candidates(request, member, features, now)
        ranked, dropped = arbitrate(candidates, features, request.basket_total, request.channel, self.arbitration,
                                    outlook)
        notes = [f"{d.candidate.rule_id}: {d.why}" for d in dropped]
        kept, refused, reservations = self._reserve_all(ranked, request, now)
        notes += refused
        # Commit each rule's reservation before making its offers: a hold that expired is not spent.
        committed = {}
        for rule_id, reservation in reservations.items():
            committed[rule_id] = reservation.granted and self.limits.commit(reservation)
            if reservation.granted and not committed[rule_id]:
                notes.append(f"{rule_id}: its reservation expired before the offer was made")
        offers = [self._make(offer, request, key) for offer in kept if committed[offer.candidate.rule_id]]
        return offers, holdout, notes

    def _make(self, offer: Ranked, request: OfferRequest, key: ApiKey) -> OfferOut:
        candidate = offer.candidate
        coupon = None
        if candidate.coupon is not None:
            issued = self.coupons.issue(
                request.member_id, candidate.coupon, candidate.rule_id, request.channel,
                issuance=f"nbo:{request.request_id}:{candidate.rule_id}", actor=f"key:{key.key_id}")
            coupon = CouponOut(code=issued.code, template=issued.terms.template, kind=issued.terms.kind,
                               value=issued.terms.value, min_spend=issued.terms.min_spend, expires_at=issued.expires_at)
        OFFERS_MADE.labels(candidate.rule_id, candidate.kind).inc()
        return OfferOut(
            offer_id=f"{request.request_id}:{candidate.rule_id}:{candidate.kind}", rule_id=candidate.rule_id,
            kind=candidate.kind, coupon=coupon, skus=list(candidate.skus) or None, points=candidate.points or None,
            message=candidate.extra.get("message"), score=offer.score,
            reason=candidate.reason if offer.model_version is None else
            f"{candidate.reason} (valued by response model {offer.model_version}: p(redeem) {offer.propensity:.2f})",
            conditions=list(candidate.conditions),
        )

    # --- the rules' part ----------------------------------------------------------------------

    def _candidates(self, request: OfferRequest, member: _Member, features: dict,
                    now: datetime) -> tuple[list[Candidate], list[str]]:
        """The checkout rules that fired, as candidates (one per action), and the rules holding this member out."""
        catalogue = self.catalogue
        context = RequestContext(
            at=now, member_id=request.member_id, store_id=request.store_id, channel=request.channel,
            basket=[BasketLine(sku=line.sku, qty=line.qty, price=line.price, category=catalogue.get(line.sku))
                    for line in request.basket],
        )
        evaluation = self.rules.evaluate("checkout", features, context)
        basket = {line.sku for line in request.basket}
        candidates: list[Candidate] = []
        for firing in evaluation.offers:
            coupons = iter(firing.coupons)
            base = dict(rule_id=firing.rule_id, priority=firing.priority, reason=firing.name,
                        conditions=firing.conditions, exclusive=firing.exclusive)
            for action in firing.actions:
                kind, body = action_kind(action), action_body(action)
                if kind == "issue_coupon":
                    candidates.append(Candidate(kind="coupon", coupon=next(coupons), channel=body.channel,
                                                extra={"firing": firing}, **base))
                elif kind == "award_points":
                    candidates.append(Candidate(kind="points", points=body.points, extra={"firing": firing}, **base))
                elif kind == "recommend":
                    skus = self._products(member, body, basket)
                    if skus:
                        candidates.append(Candidate(kind="recommend", skus=tuple(skus),
                                                    extra={"firing": firing, "message": body.reason or None}, **base))
                elif kind == "send_message":
                    candidates.append(Candidate(kind="message", channel=body.channel,
                                                extra={"firing": firing, "message": body.text or body.template}, **base))
                else:
                    candidates.append(Candidate(kind="tag", extra={"firing": firing, "message": body}, **base))
        return candidates, list(evaluation.holdout)

    def _products(self, member: _Member, action, basket: set[str]) -> list[str]:
        """The products a recommend action names: its SKUs, then the recommender's best in its categories."""
        chosen = [sku for sku in action.skus if not (action.exclude_basket and sku in basket)]
        if action.categories and len(chosen) < action.k:
            wanted = set(action.categories)
            catalogue = self.catalogue
            chosen += [r.sku for r in member.ranked if catalogue.get(r.sku) in wanted and r.sku not in chosen]
        return chosen[: action.k]

    def _reserve_all(self, ranked: list[Ranked], request: OfferRequest,
                     now: datetime) -> tuple[list[Ranked], list[str], dict]:
        """Holdouts are already out; take each rule's cap and budget share atomically, best offers first."""
        kept, notes, granted = [], [], {}
        for offer in ranked:
            firing = offer.candidate.extra["firing"]
            if firing.rule_id not in granted:
                same_rule = [o.candidate for o in ranked if o.candidate.rule_id == firing.rule_id]
                coupons = sum(c.kind == "coupon" for c in same_rule)
                reservation = self.limits.reserve(firing.rule, request.member_id, now, request.store_id,
                                                  coupons=coupons, amount=firing.face_value if coupons else 0.0)
                granted[firing.rule_id] = reservation
                if not reservation.granted:
                    notes.append(f"{firing.rule_id}: {reservation.reason}")
            if granted[firing.rule_id].granted:
                kept.append(offer)
        return kept, notes, granted
