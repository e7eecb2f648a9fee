"""The member-state fold on its own, without Redis: tiers, points, rejections, what a fold reports.

``apply_event`` is the one definition of how an event changes a member (ingestion commits what it
reports, training folds history through it), so these specifications hold for both. The programme
is the domain's defaults: silver at 500 growth value, gold at 1,500 with 200 yuan spent in the
month, a tier kept 365 days, points at 1 (regular) or 1.2 (silver) a yuan, and a month's points
usable until the end of the month twelve months later.
"""

from __future__ import annotations

import copy
from datetime import date

import pytest

from engine.calendar import day_number, month_index
from engine.events import parse_event
from engine.member_state import (
    CATEGORIES,
    DAYS,
    ITEMS,
    EventRejected,
    MemberState,
    apply_event,
    effective_tier,
    live_point_lots,
    lot_expiry_day,
)
from engine.programme import Programme
from engine.settings import Settings
from tests.helpers.events import purchase, register

PROGRAMME = Programme.from_settings(Settings(_env_file=None, redis_url=None, pii_key="test-secret"))


def fold(*events: dict, state: MemberState | None = None) -> MemberState:
    """Member A's state after these events (applied to ``state`` when given)."""
    state = state if state is not None else MemberState("A")
    for raw in events:
        apply_event(state, parse_event(raw), PROGRAMME)
    return state


def day(text: str) -> int:
    return day_number(date.fromisoformat(text))


def month(text: str) -> int:
    return month_index(day(text))


def buy(ts: str, amount: float, **fields) -> dict:
    """A purchase by A at ``ts`` (its id from the time, so two purchases at one moment need ``n``)."""
    return purchase("A", ts, amount, **fields)


# --- tiers -----------------------------------------------------------------------------------------


def test_a_new_member_is_regular_with_no_points() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"))
    assert state.profile["tier"] == "regular"
    assert live_point_lots(state, day("2025-01-01"), PROGRAMME) == []


def test_growth_reaching_the_silver_threshold_moves_the_member_up_at_once() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 499.0))
    assert state.profile["tier"] == "regular"
    fold(buy("2025-01-11T10:00:00", 1.0), state=state)
    assert state.profile["tier"] == "silver"
    assert (state.profile["tier_prev"], state.profile["tier_changed_day"]) == ("regular", day("2025-01-11"))


def test_points_are_earned_at_the_rate_of_the_tier_held_before_the_purchase() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 500.0))
    assert state.months[f"p{month('2025-01-10')}"] == 500  # regular when it paid: 1 a yuan
    fold(buy("2025-02-10T10:00:00", 100.0), state=state)
    assert state.months[f"p{month('2025-02-10')}"] == 120  # silver: 1.2 a yuan


def test_gold_needs_the_months_spend_as_well_as_the_growth() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 1400.0),
                 buy("2025-02-03T10:00:00", 150.0))
    assert state.profile["tier"] == "silver", "1,550 growth value, but 150 yuan spent in February"
    fold(buy("2025-02-04T10:00:00", 50.0), state=state)
    assert state.profile["tier"] == "gold"


def test_a_tier_is_kept_a_year_then_falls_to_what_the_member_still_qualifies_for() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-15T10:00:00", 600.0))
    reached = day("2025-01-15")
    assert effective_tier(state, reached + 364, PROGRAMME) == "silver"
    assert effective_tier(state, reached + 365, PROGRAMME) == "regular", "no growth in the last 12 months"
    assert state.profile["tier"] == "silver", "until an event re-evaluates it"
    fold({"event_id": "c1", "type": "checkin", "member_id": "A", "ts": "2026-01-15T10:00:00"}, state=state)
    assert state.profile["tier"] == "regular"


# --- points ----------------------------------------------------------------------------------------


def test_points_are_used_oldest_month_first() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 100.0),
                 buy("2025-03-10T10:00:00", 50.0))
    fold(buy("2025-06-01T10:00:00", 0.0, points_used=120), state=state)
    assert live_point_lots(state, day("2025-06-01"), PROGRAMME) == [(month("2025-03-10"), 30)]


def test_a_months_points_expire_after_the_end_of_the_month_twelve_months_later() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 100.0))
    january = month("2025-01-10")
    assert lot_expiry_day(january, PROGRAMME) == day("2026-01-31")
    assert live_point_lots(state, day("2026-01-31"), PROGRAMME) == [(january, 100)]
    assert live_point_lots(state, day("2026-02-01"), PROGRAMME) == []
    with pytest.raises(EventRejected, match="balance of 0 points"):
        fold(buy("2026-02-01T10:00:00", 0.0, points_used=1), state=state)


def test_using_more_points_than_the_balance_is_rejected_and_changes_nothing() -> None:
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 100.0),
                 buy("2025-03-10T10:00:00", 50.0))
    before = copy.deepcopy(state)
    with pytest.raises(EventRejected, match="points_used 151 exceeds the balance of 150 points"):
        fold(buy("2025-06-01T10:00:00", 80.0, points_used=151), state=state)
    assert state == before, "no spend, no points earned or used, no growth"


# --- rejections and what a fold reports ------------------------------------------------------------


def test_an_event_before_registration_is_rejected_and_changes_nothing() -> None:
    state = MemberState("A")
    with pytest.raises(EventRejected, match="not registered"):
        fold(buy("2025-01-10T10:00:00", 10.0), state=state)
    assert state == MemberState("A")


def test_registering_twice_is_rejected_and_keeps_the_first_registration() -> None:
    state = fold(register("A", "2025-01-01T09:00:00", store_id="S001"))
    before = copy.deepcopy(state)
    with pytest.raises(EventRejected, match="already registered"):
        fold(register("A", "2025-02-01T09:00:00", store_id="S002"), state=state)
    assert state == before


def test_the_questionnaires_growth_value_is_awarded_once() -> None:
    answered = {"event_id": "q1", "type": "questionnaire", "member_id": "A", "ts": "2025-01-05T10:00:00"}
    state = fold(register("A", "2025-01-01T09:00:00"), answered)
    growth = state.profile["growth"]
    with pytest.raises(EventRejected, match="already awarded"):
        fold({**answered, "event_id": "q2"}, state=state)
    assert state.profile["growth"] == growth == PROGRAMME.settings.growth.questionnaire


def test_the_same_history_folds_to_the_same_state() -> None:
    history = [register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 700.0),
               buy("2025-02-01T10:00:00", 20.0, points_used=300), buy("2025-02-01T10:00:00", 5.0, n=1)]
    assert fold(*history) == fold(*history)


def test_the_changes_name_everything_the_fold_changed() -> None:
    """A store commits only what ``Changes`` names: any other difference would be lost in Redis."""
    state = fold(register("A", "2025-01-01T09:00:00"), buy("2025-01-10T10:00:00", 600.0))
    before = copy.deepcopy(state)
    changes = apply_event(state, parse_event(buy("2025-02-01T10:00:00", 80.0, points_used=100, sku="tea",
                                                 category="drinks")), PROGRAMME)
    assert {k for k in state.profile.keys() | before.profile.keys()
            if state.profile.get(k) != before.profile.get(k)} <= changes.profile
    assert {k for k in state.months if state.months[k] != before.months.get(k)} <= changes.months
    assert set(before.months) - set(state.months) <= changes.months_deleted
    for part in (DAYS, CATEGORIES, ITEMS):
        now, then = state.part(part), before.part(part)
        assert {k: now[k] - then.get(k, 0) for k in now if now[k] != then.get(k, 0)} == \
            {k: v for (p, k), v in changes.increments.items() if p == part}
