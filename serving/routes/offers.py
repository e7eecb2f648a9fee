"""``POST /v1/next-best-offer``: what to offer this member now, at this checkout."""

from __future__ import annotations

from fastapi import APIRouter

from serving.dependencies import ScoreKey, ServicesDep
from serving.schemas import OfferRequest, OfferResponse

router = APIRouter(tags=["offers"])


@router.post("/v1/next-best-offer", response_model=OfferResponse,
             responses={403: {"description": "the member or store is outside this key's scope"}})
async def next_best_offer(
    request: OfferRequest,
    key: ScoreKey,
    services: ServicesDep,
) -> OfferResponse:
    """Offers (with coupons issued once per request_id), recommendations and churn for this checkout."""
    # Run on the event loop, not in the thread pool: the decision is ~1.5 ms of CPU-bound Python
    # holding the GIL, so a thread hop only adds overhead (measured: see the README's figures);
    # a worker process per core is what scales it.
    return services.next_best_offer.answer(request, key)
