"""``POST /v1/coupons/{code}/redeem``: redeem a coupon once, at a store, for its member."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from engine.coupons import CODE_ALPHABET, CODE_LENGTH
from engine.events import MEMBER_ID_PATTERN
from serving.auth import OutOfScope
from serving.dependencies import ScoreKey, ServicesDep

router = APIRouter(tags=["coupons"])

CODE_PATTERN = f"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$"


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: str | None = Field(None, max_length=64, pattern=MEMBER_ID_PATTERN,
                                  description="the member presenting it; another member's coupon is refused")
    store_id: str | None = Field(None, max_length=64, description="where it is redeemed")
    request_id: str | None = Field(None, max_length=128, description="the POS transaction, for the audit log")
    basket_total: float | None = Field(None, ge=0, le=10_000_000, allow_inf_nan=False,
                                       description="the basket it was used on: prices a percent-off coupon's cost")


class Redemption(BaseModel):
    code: str
    member_id: str
    template: str
    kind: str
    value: float
    rule_id: str
    redeemed_at: str
    store_id: str | None


@router.post("/v1/coupons/{code}/redeem", response_model=Redemption,
             responses={403: {"description": "another member's coupon, or outside this key's scope"},
                        404: {"description": "unknown code"},
                        409: {"description": "already redeemed (says when and where) or expired"}})
def redeem_coupon(
    code: Annotated[str, Path(pattern=CODE_PATTERN, description="the coupon code")],
    key: ScoreKey,
    services: ServicesDep,
    body: RedeemRequest | None = None,
) -> Redemption:
    """Redeem once; a second redemption is a 409 saying when and where the first happened (``serving.errors``)."""
    body = body or RedeemRequest()
    coupon = services.coupons.coupon(code)
    if key.scope is not None:
        features = services.store.member_features(coupon.member_id) or {}
        if not key.covers(features.get("region"), features.get("home_store")):
            raise OutOfScope(f"this coupon's member is outside this key's scope {key.scope}")
    redeemed = services.coupons.redeem(code, body.member_id, body.store_id, actor=f"key:{key.key_id}",
                                       basket_total=body.basket_total)
    return Redemption(code=code, member_id=redeemed.member_id, template=redeemed.terms.template,
                      kind=redeemed.terms.kind, value=redeemed.terms.value, rule_id=redeemed.rule_id,
                      redeemed_at=redeemed.redeemed_at, store_id=redeemed.redeemed_store)
