"""Checking one rule: its schema, conditions, scope, consent, actions, limits and examples, every problem at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from engine.calendar import day_number
from engine.features import FeatureDef
from engine.rules.conditions import (
    MAX_TEXT_LENGTH,
    AllOf,
    AnyOf,
    Atom,
    ConditionError,
    NotOf,
    Syntax,
    check,
    complexity,
    conjoin,
    disjoin,
    parse_condition,
    suggest,
    why_impossible,
)
from engine.rules.context import CHANNEL_TRIGGERS, DAY_FIELD, TRIGGERS
from engine.rules.loader.loaded import COUPONS_FILE, CheckedRule, Part, Problem
from engine.rules.loader.yaml_lines import Path_, describe_error, line_for
from engine.rules.schema import (
    CONSENT_CHANNELS,
    MARKETING_ACTIONS,
    AllCondition,
    AnyCondition,
    CouponTemplate,
    NotCondition,
    Rule,
    action_body,
    action_channel,
    action_kind,
)

MAX_RULE_PATHS = 16
"""Alternatives of one rule that can hold at once (durable_rules evaluates each as its own path)."""
MAX_RULE_LEAVES = 300
"""Alpha tests of one rule (each value of an ``in`` list is one)."""


class RuleChecker:
    """Checks the rules of a directory one at a time against its vocabulary, coupon templates and points rate."""

    def __init__(self, words, analysis_features: dict[str, FeatureDef], templates: dict[str, CouponTemplate],
                 points_per_yuan: int) -> None:
        self.words = words
        self.features = analysis_features
        self.templates = templates
        self.points_per_yuan = points_per_yuan

    def check(self, raw: Any, file: str, line: int, lines: dict[Path_, int]) -> tuple[list[Problem], CheckedRule | None]:
        rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None

        def problem(path: Sequence[Any], message: str, severity: str = "error") -> Problem:
            return Problem(file, line_for(lines, path, line), message, severity, rule_id)

        if not isinstance(raw, dict):
            return [problem((), "a rule is a mapping (id, name, trigger, when, then, ...)")], None
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            found = [problem(err["loc"], describe_error(err, raw)) for err in exc.errors(include_url=False)]
            # Conditions and templates are checked too, so one run reports every problem of the rule.
            found += self._condition_problems(raw, problem)
            found += self._template_problems(raw, problem)
            if not any(err["loc"][:1] == ("trigger",) for err in exc.errors()):
                found += _trigger_problems(raw.get("trigger"), problem)
            return found, None

        found: list[Problem] = _trigger_problems(rule.trigger, problem)
        trigger = rule.trigger if rule.trigger in TRIGGERS else None
        parts, combine = self._parts(rule, trigger, problem, found)
        implicit = self._implicit(rule, trigger, problem, found)
        coupons, face_value = self._actions(rule, problem, found)
        self._limits(rule, face_value, problem, found)
        self._examples(rule, trigger, problem, found)
        if parts is None:
            return found, None

        written = conjoin([p.node for p in parts]) if combine == "all" else disjoin([p.node for p in parts])
        condition = conjoin([written, *(p.node for p in implicit)])
        paths, leaves, _ = complexity(condition)
        if paths > MAX_RULE_PATHS:
            found.append(problem(("when",), f"too many alternatives can hold at once ({paths}, at most "
                                            f"{MAX_RULE_PATHS}); split the rule or use 'in [...]' lists"))
        if leaves > MAX_RULE_LEAVES:
            found.append(problem(("when",), f"the conditions make {leaves} tests (at most {MAX_RULE_LEAVES}); "
                                            "split the rule"))
        impossible = why_impossible(condition, self.features)
        if impossible and not any("never hold" in p.message for p in found):
            found.append(problem(("when",), impossible))
        if not rule.examples:
            found.append(problem(("id",), "no examples: add some so `nbo rules test` checks the rule", "warning"))
        if any(p.severity == "error" for p in found):
            return found, None
        return found, CheckedRule(rule=rule, file=file, line=line, parts=tuple(parts), combine=combine,
                                  implicit=tuple(implicit), condition=condition, coupons=coupons,
                                  face_value=face_value, lines=lines)

    def _to_syntax(self, item: Any, path: Path_, trigger: str | None, problem, found: list[Problem],
                   negated: bool = False) -> Syntax:
        """A schema condition (text or all/any/not) as syntax; each text is checked alone, at its own line."""
        if isinstance(item, str):
            try:
                syntax = parse_condition(item)
                node = check(syntax, self.words, trigger)
            except ConditionError as exc:
                found.append(problem(path, str(exc)))
                raise _Reported from None
            # Under `not`, a text that can never hold makes a condition that always does: not a mistake here.
            impossible = None if negated else why_impossible(node, self.features)
            if impossible:
                found.append(problem(path, impossible))
                raise _Reported
            return syntax
        if isinstance(item, AllCondition):
            return AllOf(tuple(self._to_syntax(x, path + ("all", i), trigger, problem, found, negated)
                               for i, x in enumerate(item.all)))
        if isinstance(item, AnyCondition):
            return AnyOf(tuple(self._to_syntax(x, path + ("any", i), trigger, problem, found, negated)
                               for i, x in enumerate(item.any)))
        assert isinstance(item, NotCondition)
        return NotOf(self._to_syntax(item.not_, path + ("not",), trigger, problem, found, not negated))

    def _template_problems(self, raw: dict, problem) -> list[Problem]:
        found = []
        actions = raw.get("then")
        for index, action in enumerate(actions if isinstance(actions, list) else []):
            body = action.get("issue_coupon") if isinstance(action, dict) else None
            template = body.get("template") if isinstance(body, dict) else None
            if isinstance(template, str) and template not in self.templates:
                found.append(problem(("then", index, "issue_coupon", "template"),
                                     f"unknown coupon template {template!r}{suggest(template, self.templates)}"))
        return found

    def _condition_problems(self, raw: dict, problem) -> list[Problem]:
        trigger = raw.get("trigger") if raw.get("trigger") in TRIGGERS else None
        found: list[Problem] = []
        when = raw.get("when")
        if when is None:
            return found
        for path, text in _condition_texts(when, ("when",)):
            try:
                node = check(parse_condition(text), self.words, trigger)
            except ConditionError as exc:
                found.append(problem(path, str(exc)))
                continue
            impossible = None if path.count("not") % 2 else why_impossible(node, self.features)
            if impossible:
                found.append(problem(path, impossible))
        return found

    def _parts(self, rule: Rule, trigger: str | None, problem, found: list[Problem]) -> tuple[list[Part] | None, str]:
        when = rule.when
        if isinstance(when, AllCondition):
            items, combine, prefix = when.all, "all", ("when", "all")
        elif isinstance(when, AnyCondition):
            items, combine, prefix = when.any, "any", ("when", "any")
        else:
            items, combine, prefix = [when], "all", ("when",)
        parts: list[Part] = []
        failed = False
        for index, item in enumerate(items):
            path = prefix + (index,) if prefix != ("when",) else prefix
            try:
                syntax = self._to_syntax(item, path, trigger, problem, found)
                node = check(syntax, self.words, trigger)
            except _Reported:
                failed = True
                continue
            except ConditionError as exc:
                found.append(problem(path, str(exc)))
                failed = True
                continue
            parts.append(Part(text=_text_of(item), node=node, line=problem(path, "").line))
        return (None if failed else parts), combine

    def _implicit(self, rule: Rule, trigger: str | None, problem, found: list[Problem]) -> list[Part]:
        parts: list[Part] = []
        scope = rule.scope
        if scope is not None:
            for field_name, feature in (("regions", "region"), ("stores", "store"), ("channels", "channel")):
                values = tuple(dict.fromkeys(getattr(scope, field_name)))
                if not values:
                    continue
                if feature == "channel" and trigger is not None and trigger not in CHANNEL_TRIGGERS:
                    found.append(problem(("scope", "channels"), f"scope.channels only applies to checkout rules, "
                                                                f"not to {trigger}"))
                    continue
                if any(len(v) > MAX_TEXT_LENGTH for v in values):
                    found.append(problem(("scope", field_name), "a value is too long"))
                    continue
                op = "eq" if len(values) == 1 else "in"
                text = f"scope: {feature} in [{', '.join(values)}]"
                parts.append(Part(text, Atom(feature, op, values, text), problem(("scope", field_name), "").line, True))
        active = rule.active
        if active is not None:
            if active.from_ is not None:
                text = f"active from {active.from_.isoformat()}"
                parts.append(Part(text, Atom(DAY_FIELD, "ge", (day_number(active.from_),), text),
                                  problem(("active", "from"), "").line, True))
            if active.to is not None:
                text = f"active until {active.to.isoformat()}"
                parts.append(Part(text, Atom(DAY_FIELD, "le", (day_number(active.to),), text),
                                  problem(("active", "to"), "").line, True))
        kinds = [action_kind(a) for a in rule.then]
        if MARKETING_ACTIONS & set(kinds):
            text = "member accepts marketing (not opted out)"
            parts.append(Part(text, Atom("opted_out", "eq", (False,), text), problem(("then",), "").line, True))
        for index, action in enumerate(rule.then):
            channel = action_channel(action)
            if channel in CONSENT_CHANNELS:
                text = f"member accepts {channel}"
                atom = Atom(f"channel_{channel}", "eq", (True,), text)
                if all(p.node != atom for p in parts):
                    parts.append(Part(text, atom, problem(("then", index), "").line, True))
        return parts

    def _actions(self, rule: Rule, problem, found: list[Problem]) -> tuple[int, float]:
        coupons = 0
        value = 0.0
        for index, action in enumerate(rule.then):
            kind = action_kind(action)
            body = action_body(action)
            path = ("then", index, kind)
            if kind == "issue_coupon":
                coupons += 1
                template = self.templates.get(body.template)
                if template is None:
                    found.append(problem(path + ("template",), f"unknown coupon template {body.template!r}"
                                         + suggest(body.template, self.templates)
                                         + ("" if self.templates else f" (no templates: add rules/{COUPONS_FILE})")))
                    continue
                for name in ("percent_off", "amount_off", "min_spend"):
                    stated = getattr(body, name)
                    actual = getattr(template, name)
                    if stated is not None and (actual is None or not math.isclose(stated, actual)):
                        found.append(problem(path + (name,), f"{name} {stated:g} disagrees with template "
                                             f"{body.template!r} ({'none' if actual is None else f'{actual:g}'})"))
                worth = template.face_value
                value = math.nan if worth is None else value + worth
            elif kind == "award_points":
                value += body.points / self.points_per_yuan
        return coupons, value

    def _limits(self, rule: Rule, face_value: float, problem, found: list[Problem]) -> None:
        limits = rule.limits
        if limits is None:
            return
        for name, budget in (("budget", limits.budget), ("per_store", limits.per_store)):
            if budget is None:
                continue
            if budget.amount is not None and math.isnan(face_value):
                found.append(problem(("limits", name, "amount"),
                                     "an amount budget needs coupons of known worth: give the percent-off "
                                     "template a max_value"))
            elif budget.amount is not None and face_value > budget.amount:
                found.append(problem(("limits", name, "amount"),
                                     f"one firing is worth {face_value:g} yuan, more than the budget of {budget.amount:g}"))
            if budget.coupons is not None and not any(action_kind(a) == "issue_coupon" for a in rule.then):
                found.append(problem(("limits", name, "coupons"), "a coupon budget on a rule that issues no coupon",
                                     "warning"))

    def _examples(self, rule: Rule, trigger: str | None, problem, found: list[Problem]) -> None:
        known = self.words.features
        for index, example in enumerate(rule.examples):
            for name, value in example.given.items():
                path = ("examples", index, "given", name)
                definition = known.get(name)
                if definition is None:
                    found.append(problem(path, f"example {index + 1}: unknown feature {name!r}{suggest(name, known)}"))
                    continue
                message = example_value_problem(definition, value)
                if message:
                    found.append(problem(path, f"example {index + 1}: {message}"))
            if example.coupon is not None and example.coupon not in self.templates:
                found.append(problem(("examples", index, "coupon"),
                                     f"example {index + 1}: unknown coupon template {example.coupon!r}"))


def _trigger_problems(trigger: object, problem) -> list[Problem]:
    if not isinstance(trigger, str) or trigger in TRIGGERS:
        return []
    return [problem(("trigger",), f"unknown trigger {trigger!r}{suggest(trigger, TRIGGERS)}; "
                                  f"triggers are {', '.join(TRIGGERS)}")]


class _Reported(Exception):
    """A problem already recorded for this condition."""


def _text_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, AllCondition):
        return "all of (" + "; ".join(_text_of(x) for x in item.all) + ")"
    if isinstance(item, AnyCondition):
        return "any of (" + "; ".join(_text_of(x) for x in item.any) + ")"
    return f"not ({_text_of(item.not_)})"


def _condition_texts(raw: Any, path: Path_) -> list[tuple[Path_, str]]:
    if isinstance(raw, str):
        return [(path, raw)]
    found = []
    if isinstance(raw, dict):
        for key in ("all", "any"):
            if isinstance(raw.get(key), list):
                for i, item in enumerate(raw[key]):
                    found += _condition_texts(item, path + (key, i))
        if "not" in raw:
            found += _condition_texts(raw["not"], path + ("not",))
    return found


def example_value_problem(definition: FeatureDef, value: object) -> str | None:
    """Why ``value`` can't be a value of the feature (None if it can)."""
    if value is None:
        return None if definition.nullable or definition.kind == "list[str]" else f"{definition.name!r} can't be null"
    kind = definition.kind
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind in ("int", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and kind == "int" and value != int(value):
            return f"{value!r} is not a whole number, and {definition.name!r} counts whole units"
    elif kind == "list[str]":
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        if ok and definition.values and str(value) not in definition.values:
            return (f"{value!r} is not a {definition.name} value ({', '.join(definition.values)})"
                    + suggest(str(value), definition.values))
    return None if ok else f"{value!r} is not a valid value of {definition.name!r} ({kind})"
