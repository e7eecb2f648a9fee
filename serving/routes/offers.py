"""``POST /v1/next-best-offer``: what to offer this member now, at this checkout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from serving.auth import ApiKey
from serving.dependencies import get_services, require
from serving.next_best_offer import NextBestOffer, OutOfScope
from serving.schemas import OfferRequest, OfferResponse
from serving.services import Services

router = APIRouter(tags=["offers"])


@router.post("/v1/next-best-offer", response_model=OfferResponse,
             responses={403: {"description": "the member or store is outside this key's scope"}})
async def next_best_offer(
    request: OfferRequest,
    key: ApiKey = Depends(require("score")),
    services: Services = Depends(get_services),
) -> OfferResponse:
    """Offers (with coupons issued once per request_id), recommendations and churn for this checkout."""
    # Run on the event loop, not in the thread pool: the decision is ~1.5 ms of CPU-bound Python
    # holding the GIL, so a thread hop only adds overhead (measured: see the README's figures);
    # a worker process per core is what scales it.
    try:
        return NextBestOffer(services).answer(request, key)
    except OutOfScope as exc:
        raise HTTPException(403, detail=str(exc)) from None
