"""Point-in-time member features from transaction history, for training and backtests.

History becomes the same events the online store ingests (a ``register`` per member, a
``purchase`` per basket), folded with the same ``apply_event`` and read with the same
``member_features``. "As of D" means: only events before D 00:00 local time are folded, and the
features are evaluated on day D, so nothing from D or later can leak into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, time

import numpy as np
import pandas as pd

from engine.events import Channels, Event, PurchaseEvent, PurchaseLine, RegisterEvent
from engine.features import FEATURE_NAMES, member_features
from engine.member_state import EventRejected, MemberState, apply_event
from engine.programme import Programme
from engine.transactions import baskets


def history_events(transactions: pd.DataFrame, members: pd.DataFrame | None = None) -> Iterator[Event]:
    """Register and purchase events for canonical transactions, in time order.

    Members come from ``members`` (profiles: registered, birthday, region, store_id, phone, consent)
    when given; otherwise a member registers at their first transaction. Event ids are
    deterministic, so replaying the same history is idempotent.
    """
    registrations = _registrations(transactions, members)
    purchases = _purchases(transactions)
    # Merge two time-ordered streams; a registration goes first at an equal timestamp.
    reg_iter, pur_iter = iter(registrations), iter(purchases)
    reg, pur = next(reg_iter, None), next(pur_iter, None)
    while reg is not None or pur is not None:
        if pur is None or (reg is not None and reg.ts <= pur.ts):
            yield reg
            reg = next(reg_iter, None)
        else:
            yield pur
            pur = next(pur_iter, None)


def _registrations(transactions: pd.DataFrame, members: pd.DataFrame | None) -> list[RegisterEvent]:
    if members is None:
        first = transactions.groupby("member_id", sort=False)["ts"].min().sort_values(kind="stable")
        return [
            RegisterEvent.model_construct(
                event_id=f"reg:{member_id}", type="register", member_id=str(member_id), ts=ts.to_pydatetime(),
                store_id=None, region=None, birthday=None, phone=None, opted_out=False, channels=Channels(),
            )
            for member_id, ts in first.items()
        ]
    frame = members.sort_values("registered", kind="stable")
    events = []
    for row in frame.itertuples(index=False):
        registered = pd.Timestamp(row.registered).to_pydatetime()
        birthday = getattr(row, "birthday", None)
        events.append(RegisterEvent.model_construct(
            event_id=f"reg:{row.member_id}", type="register", member_id=str(row.member_id), ts=registered,
            store_id=_opt(getattr(row, "home_store_id", getattr(row, "store_id", None))),
            region=_opt(getattr(row, "region", None)),
            birthday=pd.Timestamp(birthday).date() if _opt(birthday) is not None else None,
            phone=_opt(getattr(row, "phone", None)),
            opted_out=bool(getattr(row, "opted_out", False)),
            channels=Channels(
                sms=_opt_bool(getattr(row, "channel_sms", None)),
                app=_opt_bool(getattr(row, "channel_app", None)),
                email=_opt_bool(getattr(row, "channel_email", None)),
            ),
        ))
    return events


def _purchases(transactions: pd.DataFrame) -> Iterator[PurchaseEvent]:
    """One purchase event per basket (see ``engine.transactions.baskets``), in time order."""
    grouped = baskets(transactions)
    lines, table = grouped.lines, grouped.table
    n = len(lines)
    skus = lines["sku"].astype(str).to_numpy() if "sku" in lines else np.full(n, "_", dtype=object)
    qty = lines["qty"].to_numpy(dtype=float) if "qty" in lines else np.ones(n)
    amount = lines["amount"].to_numpy(dtype=float)
    category = lines["category"].to_numpy(dtype=object) if "category" in lines else np.full(n, None, dtype=object)
    stores = table["store_id"].to_numpy(dtype=object) if "store_id" in table else np.full(len(table), None, dtype=object)
    basket_ts = pd.DatetimeIndex(table["ts"]).to_pydatetime()
    for member_id, basket_id, ts, store, start, stop in zip(
        table["member_id"].to_numpy(), table["basket_id"].to_numpy(), basket_ts, stores,
        table["start"].to_numpy(), table["stop"].to_numpy(),
    ):
        yield PurchaseEvent.model_construct(
            event_id=f"bf:{basket_id}", type="purchase", member_id=str(member_id), ts=ts,
            store_id=_opt(store), basket_id=str(basket_id), points_used=0,
            lines=[
                PurchaseLine.model_construct(sku=skus[i], qty=float(qty[i]), amount=float(amount[i]),
                                             category=_opt(category[i]))
                for i in range(start, stop)
            ],
        )


def fold_history(events: Iterable[Event], programme: Programme, before: datetime | None = None) -> dict[str, MemberState]:
    """Member states after applying ``events`` with ts before ``before`` (time-ordered input)."""
    states: dict[str, MemberState] = {}
    for event in events:
        if before is not None and programme.local(event.ts) >= before:
            break
        _apply_or_skip(states, event, programme)
    return {member_id: state for member_id, state in states.items() if state.registered}


def features_as_of(
    transactions: pd.DataFrame, as_of: date, programme: Programme, members: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every member's features on ``as_of`` from history strictly before it (one row per member)."""
    cutoff = datetime.combine(as_of, time.min)
    states = fold_history(history_events(transactions[transactions["ts"] < cutoff], members), programme, before=cutoff)
    return _feature_frame(states, as_of, programme)


def features_as_of_dates(
    transactions: pd.DataFrame, dates: Iterable[date], programme: Programme, members: pd.DataFrame | None = None
) -> dict[date, pd.DataFrame]:
    """``features_as_of`` for each of ``dates``, folding the history once (snapshots of a training set).

    Each frame is exactly what ``features_as_of(transactions, d, ...)`` returns (tested): the fold
    stops at each date in turn, reads every member's features, and goes on.
    """
    wanted = sorted(set(dates))
    if not wanted:
        return {}
    last = datetime.combine(wanted[-1], time.min)
    events = history_events(transactions[transactions["ts"] < last], members)
    states: dict[str, MemberState] = {}
    out: dict[date, pd.DataFrame] = {}
    pending: Event | None = None
    for as_of in wanted:
        cutoff = datetime.combine(as_of, time.min)
        while True:
            event = pending if pending is not None else next(events, None)
            pending = None
            if event is None:
                break
            if programme.local(event.ts) >= cutoff:
                pending = event
                break
            _apply_or_skip(states, event, programme)
        registered = {member_id: state for member_id, state in states.items() if state.registered}
        out[as_of] = _feature_frame(registered, as_of, programme)
    return out


def _apply_or_skip(states: dict[str, MemberState], event: Event, programme: Programme) -> None:
    state = states.get(event.member_id)
    if state is None:
        state = states[event.member_id] = MemberState(event.member_id)
    try:
        apply_event(state, event, programme)
    except EventRejected:
        pass  # the online store would have rejected it too


def _feature_frame(states: dict[str, MemberState], as_of: date, programme: Programme) -> pd.DataFrame:
    rows = [member_features(state, as_of, programme) for state in states.values()]
    return pd.DataFrame(rows, index=pd.Index(list(states), name="member_id"), columns=list(FEATURE_NAMES))


def _opt(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _opt_bool(value: object) -> bool | None:
    value = _opt(value)
    return None if value is None else bool(value)
