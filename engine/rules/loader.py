"""Loading ``rules/``: YAML with a line number for every node, validation, every problem at once.

Problems read ``rules/lapsed.yaml:7: unknown feature 'recency_dayz' (did you mean 'recency_days'?)``.
Checks: YAML syntax and duplicate keys; the schema (unknown fields, types, ranges); conditions
(unknown features with a suggestion, type mismatches such as ``tier > 3``, values outside a
category such as ``tier in [platinum]``, conditions that can never hold such as
``x > 5 and x < 3``, conditions too complex for durable_rules); duplicate rule ids; unknown coupon
templates; amount budgets on coupons of unknown worth; overlapping exclusive rules of equal
priority; examples naming unknown fields. A rule with an error is left out; ``LoadedRules.ok``
says whether the whole directory is fit to go live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from engine.calendar import day_number
from engine.features import FeatureDef
from engine.rules.conditions import (
    MAX_TEXT_LENGTH,
    AllOf,
    AnyOf,
    Atom,
    ConditionError,
    Node,
    NotOf,
    Syntax,
    check,
    complexity,
    conjoin,
    disjoin,
    dnf,
    parse_condition,
    suggest,
    why_impossible,
)
from engine.rules.conditions import conflict as term_conflict
from engine.rules.context import (
    CHANNEL_TRIGGERS,
    DAY_FIELD,
    TRIGGERS,
    FestivalCalendar,
    internal_features,
    vocabulary,
)
from engine.rules.schema import (
    CONSENT_CHANNELS,
    MARKETING_ACTIONS,
    AllCondition,
    AnyCondition,
    CouponsFile,
    CouponTemplate,
    FestivalsFile,
    NotCondition,
    Rule,
    action_body,
    action_channel,
    action_kind,
)

COUPONS_FILE = "coupons.yaml"
FESTIVALS_FILE = "festivals.yaml"
RESERVED_FILES = frozenset({COUPONS_FILE, FESTIVALS_FILE})
MAX_RULE_PATHS = 16
"""Alternatives of one rule that can hold at once (durable_rules evaluates each as its own path)."""
MAX_RULE_LEAVES = 300
"""Alpha tests of one rule (each value of an ``in`` list is one)."""

Path_ = tuple[Any, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: ``file:line: message``; an error keeps the directory from going live, a warning doesn't."""

    file: str
    line: int
    message: str
    severity: str = "error"
    rule_id: str | None = None

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True)
class Part:
    """One condition of a rule as written (or implicit, e.g. consent), checked and in negation normal form."""

    text: str
    node: Node
    line: int
    implicit: bool = False


@dataclass(frozen=True)
class CheckedRule:
    """A valid rule with its source location, its checked conditions and what one firing costs."""

    rule: Rule
    file: str
    line: int
    parts: tuple[Part, ...]
    combine: str  # "all" or "any": how the written parts combine
    implicit: tuple[Part, ...]
    condition: Node
    """The whole condition (written parts, then scope, active window and consent), without the trigger."""
    coupons: int
    face_value: float
    lines: Mapping[Path_, int] = field(repr=False, default_factory=dict)

    @property
    def id(self) -> str:
        """The rule id."""
        return self.rule.id

    def line_of(self, *path: Any) -> int:
        """The line of a node of this rule's YAML (the closest known ancestor)."""
        return _line_for(self.lines, path, self.line)


@dataclass(frozen=True)
class InvalidRule:
    """A rule that did not pass validation (its id, if it could be read, and its problems)."""

    id: str | None
    file: str
    line: int
    trigger: str | None
    problems: tuple[Problem, ...]


@dataclass
class LoadedRules:
    """What a rules directory holds: valid rules, coupon templates, calendar, and every problem found."""

    directory: Path
    rules: list[CheckedRule]
    templates: dict[str, CouponTemplate]
    calendar: FestivalCalendar
    problems: list[Problem]
    invalid: list[InvalidRule]
    files: dict[str, str] = field(default_factory=dict)
    """file name -> its text, as loaded (the compiled version hashes it)."""

    @property
    def errors(self) -> list[Problem]:
        """Problems that keep the directory from going live."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth fixing that don't block a reload."""
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """No errors: every rule file is valid and may go live."""
        return not self.errors

    def rule(self, rule_id: str) -> CheckedRule:
        """The valid rule with this id (KeyError if there is none)."""
        for checked in self.rules:
            if checked.id == rule_id:
                return checked
        raise KeyError(rule_id)


# --- YAML with line numbers ----------------------------------------------------------------------


class YamlProblem(Exception):
    """A file that is not valid YAML (or has a duplicate key), at a line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def read_yaml(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse one YAML document; returns the data and the line (1-based) of every key and item."""
    try:
        loader = yaml.SafeLoader(text)  # reads the whole text: refuses control characters here
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlProblem(line, f"YAML: the character U+{code:04X} is not allowed (a control character?)") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path_, int] = {(): node.start_mark.line + 1}
        data = _construct(loader, node, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlProblem(line, f"YAML: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()
    return data, lines


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool, date)) or key is None:
                raise YamlProblem(key_node.start_mark.line + 1, "YAML: a mapping key must be a plain value")
            if key in result:
                raise YamlProblem(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, path + (key,), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            items.append(_construct(loader, item, path + (index,), lines))
        return items
    return loader.construct_object(node, deep=True)


def _line_for(lines: Mapping[Path_, int], path: Sequence[Any], default: int) -> int:
    """The line of the deepest known node on ``path`` (unknown steps, e.g. pydantic's tags, are skipped)."""
    best = lines.get((), default)
    current: Path_ = ()
    for step in path:
        candidate = current + (step,)
        if candidate in lines:
            current = candidate
            best = lines[candidate]
    return best


def describe_error(error: Mapping[str, Any], data: Any) -> str:
    """A pydantic error as a sentence: where (dotted path) and what, with a suggestion for unknown fields."""
    loc = clean_loc(error["loc"], data)
    where = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        return f"unknown field {loc[-1]!r}{suggest(str(loc[-1]), known)}" + (f" in {_dotted(loc[:-1])}" if loc[:-1] else "")
    if kind == "missing":
        return f"missing field {loc[-1]!r}" + (f" in {_dotted(loc[:-1])}" if loc[:-1] else "")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "trigger":
        message = "a trigger is checkout, schedule.daily or event.<type>"
    return f"{where}: {message}" if where else message


_TAGS = frozenset({"text", "all", "any", "not", "issue_coupon", "award_points", "recommend", "send_message", "tag",
                   "list[Rule]", "Rule", "str", "bool", "int", "float", "list[str]", "date", "datetime"})


def clean_loc(loc: Sequence[Any], data: Any) -> list[Any]:
    """A pydantic error location without the union tags pydantic inserts (walking the data to tell them apart)."""
    cleaned: list[Any] = []
    current = data
    for step in loc:
        if isinstance(current, dict) and step in current:
            cleaned.append(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            cleaned.append(step)
            current = current[step]
        elif isinstance(step, str) and step in _TAGS:
            continue  # a tag of a union member, not a key of the data
        else:
            cleaned.append(step)
            current = None
    return cleaned


def _dotted(loc: Sequence[Any]) -> str:
    text = ""
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _known_fields(loc: Sequence[Any]) -> list[str]:
    """The field names of the model at ``loc`` of a rule (to suggest a close name for a misspelt one)."""
    candidates: list[type[BaseModel]] = [Rule]
    for step in loc:
        if isinstance(step, int):
            continue
        following: list[type[BaseModel]] = []
        for model in candidates:
            info = model.model_fields.get(step) or next(
                (f for f in model.model_fields.values() if f.alias == step), None)
            if info is not None:
                following.extend(_models_in(info.annotation))
        candidates = following
        if not candidates:
            return []
    return sorted({f.alias or name for model in candidates for name, f in model.model_fields.items()})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


# --- loading a directory -------------------------------------------------------------------------


def load_rules(directory: Path, points_per_yuan: int = 100) -> LoadedRules:
    """Read and validate every file of a rules directory; never raises for bad content."""
    directory = Path(directory)
    problems: list[Problem] = []
    files: dict[str, str] = {}
    templates = _load_templates(directory, problems, files)
    calendar = _load_calendar(directory, problems, files)
    words = vocabulary(calendar)
    analysis_features = {**words.features, **internal_features()}
    checker = _RuleChecker(words, analysis_features, templates, points_per_yuan)

    rules: list[CheckedRule] = []
    invalid: list[InvalidRule] = []
    seen: dict[str, CheckedRule | InvalidRule] = {}
    paths = sorted(p for p in directory.glob("*.y*ml") if p.is_file() and p.name not in RESERVED_FILES) \
        if directory.is_dir() else []
    if not directory.is_dir():
        problems.append(Problem(str(directory), 1, "the rules directory does not exist"))
    for path in paths:
        shown = _shown(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, 1, f"cannot read the file: {exc}"))
            invalid.append(InvalidRule(None, shown, 1, None, (problems[-1],)))
            continue
        files[path.name] = text
        try:
            data, lines = read_yaml(text)
        except YamlProblem as exc:
            problems.append(Problem(shown, exc.line, str(exc)))
            invalid.append(InvalidRule(None, shown, exc.line, None, (problems[-1],)))
            continue
        if data is None:
            problems.append(Problem(shown, 1, "the file is empty", severity="warning"))
            continue
        entries = [(data, (), lines.get((), 1))] if isinstance(data, dict) else (
            [(item, (i,), lines.get((i,), 1)) for i, item in enumerate(data)] if isinstance(data, list) else None)
        if entries is None:
            problems.append(Problem(shown, 1, "a rule file holds a rule (a mapping) or a list of rules"))
            continue
        for raw, prefix, line in entries:
            rule_lines = {key[len(prefix):]: value for key, value in lines.items() if key[:len(prefix)] == prefix}
            found, result = checker.check(raw, shown, line, rule_lines)
            problems.extend(found)
            rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            if rule_id is not None and rule_id in seen:
                first = seen[rule_id]
                dup = Problem(shown, _line_for(rule_lines, ("id",), line),
                              f"duplicate rule id {rule_id!r} (first in {first.file}:{first.line})", rule_id=rule_id)
                problems.append(dup)
                found = [*found, dup]
                result = None
            if result is None:
                trigger = raw.get("trigger") if isinstance(raw, dict) else None
                invalid_rule = InvalidRule(rule_id, shown, line, trigger if isinstance(trigger, str) else None,
                                           tuple(p for p in found if p.severity == "error"))
                invalid.append(invalid_rule)
                if rule_id is not None:
                    seen.setdefault(rule_id, invalid_rule)
            else:
                rules.append(result)
                seen[rule_id] = result
    conflicts = _exclusive_conflicts(rules, analysis_features)
    problems.extend(conflicts)
    if conflicts:
        bad = {p.rule_id for p in conflicts}
        for checked in [r for r in rules if r.id in bad]:
            rules.remove(checked)
            invalid.append(InvalidRule(checked.id, checked.file, checked.line, checked.rule.trigger,
                                       tuple(p for p in conflicts if p.rule_id == checked.id)))
    problems.sort(key=lambda p: (p.file, p.line, p.message))
    return LoadedRules(directory=directory, rules=rules, templates=templates, calendar=calendar,
                       problems=problems, invalid=invalid, files=files)


def _shown(path: Path) -> str:
    """The path as problems show it: relative to the working directory when it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_templates(directory: Path, problems: list[Problem], files: dict[str, str]) -> dict[str, CouponTemplate]:
    model = _load_model(directory / COUPONS_FILE, CouponsFile, problems, files)
    return dict(model.templates) if model is not None else {}


def _load_calendar(directory: Path, problems: list[Problem], files: dict[str, str]) -> FestivalCalendar:
    model = _load_model(directory / FESTIVALS_FILE, FestivalsFile, problems, files)
    if model is None:
        return FestivalCalendar({})
    known = vocabulary(FestivalCalendar({})).features
    festivals = {}
    for festival_id, festival in model.festivals.items():
        if f"days_to_{festival_id}" in known:
            problems.append(Problem(_shown(directory / FESTIVALS_FILE), 1,
                                    f"festival id {festival_id!r} clashes with the feature days_to_{festival_id}"))
            continue
        festivals[festival_id] = festival.dates
    return FestivalCalendar(festivals, {k: v.name for k, v in model.festivals.items()})


def _load_model(path: Path, model: type[BaseModel], problems: list[Problem], files: dict[str, str]) -> Any:
    if not path.exists():
        return None
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, 1, f"cannot read the file: {exc}"))
        return None
    files[path.name] = text
    lines: dict[Path_, int] = {}
    try:
        data, lines = read_yaml(text)
        return model.model_validate(data)
    except YamlProblem as exc:
        problems.append(Problem(shown, exc.line, str(exc)))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(Problem(shown, _line_for(lines, error["loc"], 1), describe_error(error, data)))
    return None


# --- checking one rule ---------------------------------------------------------------------------


class _RuleChecker:
    def __init__(self, words, analysis_features: dict[str, FeatureDef], templates: dict[str, CouponTemplate],
                 points_per_yuan: int) -> None:
        self.words = words
        self.features = analysis_features
        self.templates = templates
        self.points_per_yuan = points_per_yuan

    def check(self, raw: Any, file: str, line: int, lines: dict[Path_, int]) -> tuple[list[Problem], CheckedRule | None]:
        rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None

        def problem(path: Sequence[Any], message: str, severity: str = "error") -> Problem:
            return Problem(file, _line_for(lines, path, line), message, severity, rule_id)

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


# --- across rules --------------------------------------------------------------------------------


def _exclusive_conflicts(rules: list[CheckedRule], features: Mapping[str, FeatureDef]) -> list[Problem]:
    """Two exclusive rules of one trigger and equal priority that can fire together: which applies is undefined."""
    found = []
    exclusive = [r for r in rules if r.rule.exclusive]
    for i, first in enumerate(exclusive):
        for second in exclusive[i + 1:]:
            if first.rule.trigger != second.rule.trigger or first.rule.priority != second.rule.priority:
                continue
            if _may_overlap(first.condition, second.condition, features):
                found.append(Problem(
                    second.file, second.line_of("exclusive"),
                    f"rule {second.id!r} overlaps rule {first.id!r} ({first.file}:{first.line}): both are exclusive "
                    f"with priority {second.rule.priority}, so which one applies is undefined; "
                    "give one a higher priority or make their conditions exclusive",
                    rule_id=second.id))
    return found


def _may_overlap(a: Node, b: Node, features: Mapping[str, FeatureDef]) -> bool:
    terms_a, terms_b = dnf(a), dnf(b)
    if terms_a is None or terms_b is None:
        return True  # too many alternatives to tell: assume they can
    return any(term_conflict(x + y, features) is None for x in terms_a for y in terms_b)
