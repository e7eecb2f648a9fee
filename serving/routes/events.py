"""``POST /v1/events``: a batch of member events, applied exactly once each."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from serving.dependencies import EventsKey, ServicesDep

router = APIRouter(tags=["events"])

MAX_BATCH = 5000


class RejectedEvent(BaseModel):
    index: int
    event_id: str | None
    reason: str


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]


@router.post("/v1/events", response_model=IngestResponse)
def post_events(
    events: Annotated[list[Any], Body(
        max_length=MAX_BATCH,
        description="a JSON array of events {event_id, type, member_id, ts, ...}; each is validated on its own",
    )],
    key: EventsKey,
    services: ServicesDep,
) -> IngestResponse:
    """Apply a batch: bad events are rejected one by one with the reason, the rest are applied."""
    result = services.store.ingest(events)
    services.after_ingest(result.applied)
    return IngestResponse(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[RejectedEvent(index=r.index, event_id=r.event_id, reason=r.reason) for r in result.rejected],
    )
