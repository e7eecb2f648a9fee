"""Events as POS terminals and apps send them (``engine/events.py`` validates them).

One builder per event type; each has the fields most specifications want, and a keyword changes
any of them. An event's id is derived from what it says, so building the same event twice gives
a duplicate, as a retried send does.
"""

from __future__ import annotations

from datetime import datetime

REGISTERED = "2026-01-02T09:00:00"
"""When a member registers unless a test says otherwise."""
BOUGHT = "2026-02-01T10:00:00"
"""When a purchase happens unless a test says otherwise."""


def _stamp(ts: datetime | str) -> str:
    return ts.isoformat() if isinstance(ts, datetime) else ts


def register(member_id: str, ts: datetime | str = REGISTERED, *, store_id: str | None = "S001",
             region: str | None = "north", **fields) -> dict:
    """A registration at a store (``store_id=None`` / ``region=None`` leave them out); ``fields`` add or override."""
    event = {"event_id": f"reg-{member_id}", "type": "register", "member_id": member_id, "ts": _stamp(ts)}
    if store_id is not None:
        event["store_id"] = store_id
    if region is not None:
        event["region"] = region
    return {**event, **fields}


def purchase(member_id: str, ts: datetime | str = BOUGHT, amount: float = 30.0, *, event_id: str | None = None,
             n: int = 0, sku: str = "milk", qty: int = 1, category: str | None = "dairy",
             store_id: str | None = "S001", **fields) -> dict:
    """A one-line purchase of ``amount`` yuan; its id is ``event_id`` or made from the member, time and ``n``."""
    line: dict[str, object] = {"sku": sku, "qty": qty, "amount": amount}
    if category is not None:
        line["category"] = category
    event = {"event_id": event_id or f"buy-{member_id}-{_stamp(ts)}-{n}", "type": "purchase", "member_id": member_id,
             "ts": _stamp(ts), "lines": [line]}
    if store_id is not None:
        event["store_id"] = store_id
    return {**event, **fields}
