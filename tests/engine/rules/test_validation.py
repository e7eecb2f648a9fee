"""Rule files are validated with every problem reported at once, as ``file:line: message``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.rules import load_rules, run_examples, schema_text
from engine.rules.conditions import ConditionError, check, parse_condition
from engine.rules.context import FestivalCalendar, vocabulary
from tests.helpers.rules import SHIPPED, rule

WORDS = vocabulary(FestivalCalendar({"mid_autumn": []}))


def problems(directory: Path) -> list[str]:
    return [str(p) for p in load_rules(directory).problems if p.severity == "error"]


def only(directory: Path) -> str:
    found = problems(directory)
    assert len(found) == 1, found
    return found[0]


def test_unknown_feature_is_reported_with_file_line_and_a_suggestion(rules_dir) -> None:
    directory = rules_dir({"lapsed.yaml": """
        id: lapsed
        name: Lapsed
        trigger: schedule.daily
        when:
          all:
            - tier in [silver, gold]
            - recency_dayz >= 30
        then: [{tag: t}]
    """})
    assert only(directory).endswith(
        "rules/lapsed.yaml:7: unknown feature 'recency_dayz' (did you mean 'recency_days'?)")


def test_ordering_a_category_is_a_type_error(rules_dir) -> None:
    message = only(rules_dir({"a.yaml": rule("a", "tier > 3")}))
    assert "a.yaml:4:" in message and "'tier' is a category" in message and "can't be compared with >" in message


def test_a_value_outside_a_category_is_an_error(rules_dir) -> None:
    message = only(rules_dir({"a.yaml": rule("a", "tier in [silver, platinum]")}))
    assert "'platinum' is not a tier value" in message


@pytest.mark.parametrize("text, fragment", [
    ("recency_days == gold", "gold is not a number"),
    ("opted_out > 1", "can't be compared with >"),
    ("recency_days", "not true/false"),
    ("tier contains gold", "'contains' needs a list"),
    ("favourite_categories == bakery", "test it with 'contains'"),
    ("days_to_birthday between 7 and 0", "7 is above 0"),
    ("registered is null", "never holds"),
    ("recency_days >=", "ends too early"),
    ("recency_days >= 30 or", "ends too early"),
    ("(recency_days >= 30", "expected ')'"),
    ("day_of_week in [saturday]", "did you mean 'sat'"),
])
def test_condition_mistakes_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError, match=None) as caught:
        check(parse_condition(text), WORDS, "checkout")
    assert fragment in str(caught.value)


def test_conditions_that_can_never_hold_are_errors(rules_dir) -> None:
    directory = rules_dir({
        "a.yaml": rule("a", "basket_total > 5 and basket_total < 3"),
        "b.yaml": rule("b", "recency_days > 5 and recency_days < 6"),  # whole days
        "c.yaml": rule("c", "basket_total > 5 and basket_total < 6"),  # possible
        "d.yaml": rule("d", "'(tier == gold or tier == silver) and tier == diamond'"),
    })
    found = problems(directory)
    assert any("a.yaml:4: conditions can never hold together: 'basket_total > 5' and 'basket_total < 3'" in p
               for p in found)
    assert any("b.yaml:4: conditions can never hold" in p for p in found)
    assert any("d.yaml:4: no alternative can ever hold" in p for p in found)
    assert not any("c.yaml" in p for p in found)


def test_impossible_across_the_parts_of_all_is_reported_on_when(rules_dir) -> None:
    directory = rules_dir({"a.yaml": """
        id: a
        name: a
        trigger: checkout
        when:
          all:
            - basket_total > 50
            - basket_total <= 50
        then: [{tag: t}]
    """})
    assert "a.yaml:4: conditions can never hold together" in only(directory)


def test_duplicate_ids_are_reported_with_both_places(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("same", "basket_total > 1"), "b.yaml": rule("same", "basket_total > 2")})
    message = only(directory)
    assert "b.yaml:1: duplicate rule id 'same' (first in" in message and "a.yaml:1)" in message


def test_unknown_coupon_template_is_an_error_with_a_suggestion(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("a", "basket_total > 1", then="[{issue_coupon: {template: PCT21}}]")})
    assert "a.yaml:5: unknown coupon template 'PCT21' (did you mean 'PCT20'?)" in only(directory)


def test_overlapping_exclusive_rules_of_equal_priority_conflict(rules_dir) -> None:
    directory = rules_dir({
        "a.yaml": rule("a", "tier == gold", extra="exclusive: true\n"),
        "b.yaml": rule("b", "tier in [gold, silver]", extra="exclusive: true\n"),
        "c.yaml": rule("c", "tier == regular", extra="exclusive: true\n"),  # can't overlap a or b
        "d.yaml": rule("d", "tier == gold", extra="exclusive: true\npriority: 60\n"),  # higher priority: decided
        "e.yaml": rule("e", "tier == gold", trigger="schedule.daily", extra="exclusive: true\n"),  # other trigger
    })
    message = only(directory)
    assert "b.yaml:6: rule 'b' overlaps rule 'a'" in message and "both are exclusive with priority 50" in message
    assert [r.id for r in load_rules(directory).rules] == ["a", "c", "d", "e"]


def test_every_problem_of_a_directory_is_reported_at_once(rules_dir) -> None:
    directory = rules_dir({
        "a.yaml": """
            id: a
            name: A
            trigger: event.purchse
            when:
              all:
                - recency_dayz > 3
                - tier > 3
            then:
              - issue_coupon: {template: NOPE, percent_of: 20}
            holdout: 0.9
        """,
        "b.yaml": "id: [unclosed\n",
        "c.yaml": rule("c", "basket_total > 1", extra="examples:\n  - given: {tierr: gold}\n    fires: true\n"),
    })
    found = problems(directory)
    for fragment in ("a.yaml:3: unknown trigger 'event.purchse' (did you mean 'event.purchase'?)",
                     "a.yaml:6: unknown feature 'recency_dayz'", "a.yaml:7: in 'tier > 3'",
                     "a.yaml:9: unknown field 'percent_of' (did you mean 'percent_off'?)",
                     "a.yaml:9: unknown coupon template 'NOPE'", "a.yaml:10: holdout",
                     "b.yaml:2: YAML", "c.yaml:7: example 1: unknown feature 'tierr' (did you mean 'tier'?)"):
        assert any(fragment in p for p in found), (fragment, found)


def test_duplicate_yaml_keys_are_errors(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("a", "basket_total > 1") + "priority: 10\npriority: 20\n"})
    assert "a.yaml:7: duplicate key 'priority'" in only(directory)


def test_basket_fields_are_unknown_on_a_daily_schedule(rules_dir) -> None:
    message = only(rules_dir({"a.yaml": rule("a", "basket_total > 10", trigger="schedule.daily")}))
    assert "'basket_total' is not known on trigger 'schedule.daily'" in message


def test_an_amount_budget_needs_coupons_of_known_worth(rules_dir, tmp_path: Path) -> None:
    directory = rules_dir({"a.yaml": rule("a", "basket_total > 1", then="[{issue_coupon: {template: OPEN}}]",
                                          extra="limits: {budget: {amount: 1000}}\n")})
    (directory / "coupons.yaml").write_text(
        "templates:\n  OPEN: {kind: percent_off, name: open, percent_off: 10, valid_days: 7}\n", encoding="utf-8")
    assert "an amount budget needs coupons of known worth" in only(directory)


def test_a_rule_too_complex_for_durable_rules_is_refused(rules_dir) -> None:
    alternatives = " or ".join(f"basket_total > {i}" for i in range(17))
    message = only(rules_dir({"a.yaml": rule("a", f"'{alternatives}'")}))
    assert "too many alternatives can hold at once (17, at most 16)" in message


def test_a_percent_in_the_rule_must_agree_with_the_template(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("a", "basket_total > 1",
                                          then="[{issue_coupon: {template: PCT20, percent_off: 25}}]")})
    assert "percent_off 25 disagrees with template 'PCT20' (20)" in only(directory)


def test_shipped_rules_cover_every_scenario_and_pass_lint_and_their_examples() -> None:
    loaded = load_rules(SHIPPED)
    assert loaded.ok, [str(p) for p in loaded.problems]
    assert not loaded.warnings, [str(p) for p in loaded.warnings]
    triggers = {r.rule.trigger for r in loaded.rules}
    assert {"checkout", "schedule.daily", "event.referral"} <= triggers
    assert len(loaded.rules) >= 9 and all(r.rule.examples for r in loaded.rules)
    report = run_examples(SHIPPED)
    assert report.ok and len(report.results) >= 27, [str(r) for r in report.failures]


def test_failing_examples_say_which_conditions_did_not_hold(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("a", "'recency_days >= 30 and tier == gold'", trigger="schedule.daily",
                                          extra="examples:\n  - given: {recency_days: 12, tier: gold}\n"
                                                "    fires: true\n")})
    report = run_examples(directory)
    assert not report.ok
    (failure,) = report.failures
    assert "a.yaml:7: example 1: expected to fire, but it did not" in str(failure)
    assert "recency_days = 12" in str(failure)


def test_schema_json_is_up_to_date() -> None:
    committed = (SHIPPED / "schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `nbo rules schema` and commit rules/schema.json"
    schema = json.loads(committed)
    assert {"Rule", "CouponsFile", "FestivalsFile"} <= set(schema["$defs"])


def test_festival_calendar_has_real_dates_for_2025_to_2027() -> None:
    calendar = load_rules(SHIPPED).calendar
    from datetime import date

    from engine.calendar import day_number

    mid_autumn = {d for d in calendar.dates["mid_autumn"]}
    assert {day_number(date(2025, 10, 6)), day_number(date(2026, 9, 25)), day_number(date(2027, 9, 15))} <= mid_autumn
    assert calendar.on(day_number(date(2026, 9, 20)))["days_to_mid_autumn"] == 5
    assert calendar.on(day_number(date(2026, 2, 17)))["next_festival"] == "spring_festival"
    assert {"spring_festival", "dragon_boat", "national_day", "qingming"} <= set(calendar.ids)


def test_shipped_files_validate_against_schema_json_as_an_editor_would() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # comes with schemathesis (dev)
    import yaml

    validator = jsonschema_rs.validator_for(json.loads((SHIPPED / "schema.json").read_text(encoding="utf-8")))
    for path in sorted(SHIPPED.glob("*.yaml")):
        data = json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))
        assert validator.is_valid(data), (path, [e.message for e in validator.iter_errors(data)][:3])
    misspelt = {"id": "x", "name": "x", "trigger": "checkout", "when": "registered", "then": [{"tag": "t"}],
                "priorty": 3}
    assert not validator.is_valid(misspelt)


def test_not_of_a_condition_that_never_holds_is_allowed(rules_dir) -> None:
    directory = rules_dir({"a.yaml": """
        id: a
        name: a
        trigger: checkout
        when:
          all:
            - basket_total > 0
            - not: basket_total > 5 and basket_total < 3
        then: [{tag: t}]
    """})
    assert problems(directory) == []
