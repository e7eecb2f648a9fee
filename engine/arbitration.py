"""Arbitration: from every offer the rules proposed to a short ranked list worth making.

Order of checks: eligibility and consent first (an opted-out member gets no marketing, a rule
only reaches the channels the member accepts), then the rule's own exclusivity, then the score:

    score = priority + expected_value
    expected_value (yuan) = propensity x (margin_rate x expected_spend - cost)

``propensity`` is the chance the member takes the offer up. With a response model (``nbo train
response``, handed in as the member's ``Outlook``) a coupon's propensity is the model's chance
that this member redeems, and its expected spend is the *incremental* spend per redemption the
model predicts (uplift / propensity), so the value is margin x uplift - propensity x cost: a
coupon for a member who would have bought anyway is worth its cost, negative. Without one (the
fallback) it is a base rate per kind of offer, raised for members who redeemed coupons before
(``redeemer_uplift`` each, up to five), and ``expected_spend`` is what redeeming brings in: a
threshold coupon's minimum spend (满200减50 brings at least 200), else the member's average
basket, or with a lifetime-value model the spend it predicts over the coupon's validity
(LTV x valid days / the LTV horizon) when that is more. ``cost`` is the coupon's face value.
Priority (0-100) dominates; expected value orders offers of similar priority and sinks offers
that cost more than they earn. Caps, budgets and holdouts are enforced by the caller in Redis
(atomically) on the ranked list, best first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.coupons import CouponTerms
from engine.settings import ArbitrationRules

MARKETING_KINDS = frozenset({"coupon", "message", "points"})
"""Kinds of offer an opted-out member never gets (product recommendations are not marketing)."""


@dataclass(frozen=True)
class Candidate:
    """One action a rule proposes for this member now."""

    rule_id: str
    kind: str  # coupon | points | recommend | message | tag
    priority: int
    reason: str
    conditions: tuple[str, ...] = ()
    coupon: CouponTerms | None = None
    skus: tuple[str, ...] = ()
    points: int = 0
    channel: str | None = None
    exclusive: bool = False
    extra: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Response:
    """A response model's estimate for this member: chance of redeeming, incremental spend (yuan)."""

    redeem: float
    uplift: float
    version: str | None = None


@dataclass(frozen=True)
class Outlook:
    """What the models expect of this member (each None without its model)."""

    ltv: float | None = None
    ltv_horizon_days: int | None = None
    response: Response | None = None


NO_OUTLOOK = Outlook()


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float
    expected_value: float
    propensity: float
    model_version: str | None = None
    """The response model version that valued this offer (None: the hand-set propensity)."""


@dataclass(frozen=True)
class Dropped:
    candidate: Candidate
    why: str


def expected_value(candidate: Candidate, features: dict, basket_total: float, rules: ArbitrationRules,
                   outlook: Outlook = NO_OUTLOOK) -> tuple[float, float]:
    """(propensity, expected value in yuan) of making this offer to this member."""
    spend = float(features.get("avg_basket") or 0.0) or basket_total
    cost = 0.0
    coupon = candidate.coupon
    if coupon is not None:
        if outlook.ltv is not None and outlook.ltv_horizon_days:
            spend = max(spend, outlook.ltv * coupon.valid_days / outlook.ltv_horizon_days)
        spend = max(spend, coupon.min_spend)
        cost = coupon.face_value(spend) if coupon.kind == "percent_off" else coupon.value
        if outlook.response is not None:
            propensity = min(max(outlook.response.redeem, 0.0), 1.0)
            return propensity, round(rules.margin_rate * outlook.response.uplift - propensity * cost, 4)
    redeemed = min(int(features.get("coupons_redeemed") or 0), 5)
    propensity = rules.base_propensity.get(candidate.kind, 0.0) * (1 + rules.redeemer_uplift * redeemed)
    propensity = min(propensity, 1.0)
    return propensity, round(propensity * (rules.margin_rate * spend - cost), 4)


def arbitrate(
    candidates: list[Candidate], features: dict, basket_total: float, channel: str, rules: ArbitrationRules,
    outlook: Outlook = NO_OUTLOOK,
) -> tuple[list[Ranked], list[Dropped]]:
    """Rank the candidates for one member at one checkout; returns (ranked best first, dropped with why)."""
    dropped: list[Dropped] = []
    eligible: list[Ranked] = []
    for candidate in candidates:
        why = _ineligible(candidate, features, channel)
        if why:
            dropped.append(Dropped(candidate, why))
            continue
        propensity, value = expected_value(candidate, features, basket_total, rules, outlook)
        modelled = candidate.coupon is not None and outlook.response is not None
        eligible.append(Ranked(candidate, round(candidate.priority + value, 4), value, propensity,
                               outlook.response.version if modelled else None))
    eligible.sort(key=lambda r: (-r.score, r.candidate.rule_id, r.candidate.kind))

    ranked: list[Ranked] = []
    coupons = 0
    exclusive_taken = False
    for offer in eligible:
        candidate = offer.candidate
        if exclusive_taken or (candidate.exclusive and ranked):
            dropped.append(Dropped(candidate, "an exclusive offer ranks above it" if exclusive_taken
                                   else "exclusive, and a better offer ranks above it"))
            continue
        if candidate.kind == "coupon" and coupons >= rules.max_coupons:
            dropped.append(Dropped(candidate, f"at most {rules.max_coupons} coupon(s) per checkout"))
            continue
        if len(ranked) >= rules.max_offers:
            dropped.append(Dropped(candidate, f"at most {rules.max_offers} offers per checkout"))
            continue
        ranked.append(offer)
        coupons += candidate.kind == "coupon"
        exclusive_taken = candidate.exclusive
    return ranked, dropped


def _ineligible(candidate: Candidate, features: dict, channel: str) -> str | None:
    if candidate.kind in MARKETING_KINDS and features.get("opted_out"):
        return "the member opted out of marketing"
    wanted = candidate.channel
    if wanted and wanted != channel and candidate.kind == "message":
        if not features.get(f"channel_{wanted}", False):
            return f"the member does not accept {wanted}"
    return None
