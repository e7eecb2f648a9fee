"""Running the ``examples`` of rule files (``nbo rules test``): given features, does the rule fire?

Each example starts from a registered member who accepts every channel (features from
``engine.features.member_features``, the one definition), applies ``given`` (features and context
fields alike), evaluates the rule's trigger through the runtime (durable_rules), and checks the
answer against ``fires`` (and ``actions`` / ``coupon``). The reference evaluator must agree with
durable_rules on every example too. When an example fails, the message lists the conditions that
did not hold and the values they saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.calendar import day_number
from engine.features import member_features
from engine.member_state import MemberState
from engine.programme import Programme
from engine.rules.compiler import CompiledRule
from engine.rules.conditions import atoms
from engine.rules.context import LIST_LENGTH_SUFFIX, RequestContext, vocabulary
from engine.rules.loader import Problem
from engine.rules.reference import evaluate
from engine.rules.runtime import RuleRuntime
from engine.rules.schema import Example, action_kind
from engine.settings import Settings

DEFAULT_DAY = date(2026, 6, 1)
EXAMPLE_MEMBER = "example-member"


@dataclass(frozen=True)
class ExampleResult:
    """One example: passed, or why not (as ``file:line: message``)."""

    rule_id: str
    index: int
    name: str
    file: str
    line: int
    passed: bool
    message: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if not self.passed else f"{self.rule_id} #{self.index + 1} ok"


@dataclass(frozen=True)
class ExampleReport:
    """Every example's result, and the load problems (examples run only on a valid directory)."""

    results: tuple[ExampleResult, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Every example passed and the files have no errors."""
        return all(r.passed for r in self.results) and not any(p.severity == "error" for p in self.problems)

    @property
    def failures(self) -> tuple[ExampleResult, ...]:
        """The examples that failed."""
        return tuple(r for r in self.results if not r.passed)


def example_programme(timezone: str = "Asia/Shanghai") -> Programme:
    """The programme examples are computed with: the domain defaults, no secrets needed."""
    settings = Settings(_env_file=None, pii_key="examples", timezone=timezone)
    return Programme(settings=settings, tz=ZoneInfo(timezone), _pii_secret=b"examples")


def baseline_features(at: datetime, programme: Programme) -> dict[str, object]:
    """A registered member (a year ago) with no purchases, who accepts marketing on every channel."""
    day = day_number(at.date())
    state = MemberState(member_id=EXAMPLE_MEMBER, profile={
        "reg_day": day - 365, "tier": "regular", "tier_day": day - 365, "opt_out": 0,
        "ch_sms": 1, "ch_app": 1, "ch_email": 1, "store": "S001", "region": "north",
    })
    return member_features(state, at, programme)


def run_examples(rules_dir: Path, programme: Programme | None = None) -> ExampleReport:
    """Load ``rules_dir`` and run every example of every rule (fails with the load errors if it is invalid)."""
    programme = programme or example_programme()
    runtime = RuleRuntime(rules_dir, programme.tz, programme.settings.points.points_per_yuan_redeemed)
    report = runtime.reload(actor="nbo rules test")
    loaded = runtime.last_load
    problems = tuple(loaded.problems) if loaded is not None else ()
    compiled = runtime.compiled
    if not report.ok or compiled is None:
        return ExampleReport((), problems)
    results = []
    for rule in compiled.rules:
        for index, example in enumerate(rule.checked.rule.examples):
            results.append(_run(runtime, rule, index, example, programme))
    return ExampleReport(tuple(results), problems)


def _example_time(rule: CompiledRule, example: Example) -> datetime:
    if example.at is not None:
        return example.at
    window = rule.checked.rule.active
    day = DEFAULT_DAY
    if window is not None and window.from_ is not None and (day < window.from_ or (window.to and day > window.to)):
        day = window.from_
    elif window is not None and window.to is not None and day > window.to:
        day = window.to
    return datetime.combine(day, time(12, 0))


def _run(runtime: RuleRuntime, rule: CompiledRule, index: int, example: Example, programme: Programme) -> ExampleResult:
    checked = rule.checked
    line = checked.line_of("examples", index)
    label = f"example {index + 1}" + (f" ({example.name})" if example.name else "")
    at = _example_time(rule, example)
    features = baseline_features(at, programme)
    context = RequestContext(at=at, member_id=EXAMPLE_MEMBER, store_id=example.store, channel=example.channel)
    fact = runtime.fact(checked.rule.trigger, features, context)
    known = vocabulary(runtime.compiled.loaded.calendar).features
    for name, value in example.given.items():
        kind = known[name].kind
        value = _typed(kind, value)
        if value is None:
            fact.pop(name, None)
            fact.pop(name + LIST_LENGTH_SUFFIX, None)
        else:
            fact[name] = value
            if kind == "list[str]":
                fact[name + LIST_LENGTH_SUFFIX] = len(value)
    evaluation = runtime.evaluate_fact(checked.rule.trigger, fact, EXAMPLE_MEMBER)
    firing = next((f for f in evaluation.firings if f.rule_id == rule.id), None)
    fired = firing is not None
    reference = evaluate(rule.condition, fact)
    if reference != fired:
        return ExampleResult(rule.id, index, example.name, checked.file, line, False,
                             f"{label}: durable_rules says fires={fired}, the reference evaluator {reference} "
                             "(please report: the evaluators must agree)")
    if fired != example.fires:
        if example.fires:
            message = f"{label}: expected to fire, but it did not: " + _not_held(rule, fact)
        else:
            message = f"{label}: expected not to fire, but it fired (" + "; ".join(firing.conditions) + ")"
        return ExampleResult(rule.id, index, example.name, checked.file, line, False, message)
    if fired and example.actions is not None:
        kinds = [action_kind(a) for a in checked.rule.then]
        missing = [k for k in example.actions if k not in kinds]
        if missing:
            return ExampleResult(rule.id, index, example.name, checked.file, line, False,
                                 f"{label}: expected actions {', '.join(missing)}, the rule has {', '.join(kinds)}")
    if fired and example.coupon is not None and example.coupon not in {c.template for c in firing.coupons}:
        return ExampleResult(rule.id, index, example.name, checked.file, line, False,
                             f"{label}: expected coupon {example.coupon}, the rule issues "
                             f"{', '.join(c.template for c in firing.coupons) or 'none'}")
    return ExampleResult(rule.id, index, example.name, checked.file, line, True)


def _typed(kind: str, value: object) -> object:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "list[str]":
        return [str(v) for v in value]
    if kind == "str":
        return str(value)
    return value


def _not_held(rule: CompiledRule, fact: dict[str, object]) -> str:
    missed = []
    for part, condition in rule.parts:
        if not evaluate(condition, fact):
            seen = sorted({a.feature for a in atoms(part.node)})
            values = ", ".join(f"{name} = {fact.get(name, 'missing')!r}" for name in seen if not name.startswith("_"))
            missed.append(f"'{part.text}'" + (f" ({values})" if values else ""))
    if rule.checked.combine == "any" and len(missed) > 1:
        return "none of " + "; ".join(missed) + " held"
    return "; ".join(missed) + " did not hold" if missed else "(the trigger did not match)"
